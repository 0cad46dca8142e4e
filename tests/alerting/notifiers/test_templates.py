"""The default templates and the sandbox they run in."""

from __future__ import annotations

import pytest

from tests.alerting.notifiers.alerts import firing, group, resolved
from trm_otel.alerting.templates import (
    DEFAULT_HTML,
    DEFAULT_SLACK_TEXT,
    DEFAULT_SMS,
    DEFAULT_TEXT,
    DEFAULT_TITLE,
    check_template,
    render,
    template_context,
)


@pytest.mark.parametrize(
    ("notification", "title"),
    [
        (group(firing("Down")), "[FIRING:1] Down"),
        (group(firing("Down", i="1"), firing("Down", i="2"), resolved("Down", i="3")), "[FIRING:2] Down"),
        (group(resolved("Down")), "[RESOLVED] Down"),
        (group(firing("Down"), folded=3), "[FIRING:1] Down (digest, 3 folded)"),
        (group(firing("Down"), escalation_step=2), "[ESCALATION 2] [FIRING:1] Down"),
    ],
)
def test_default_title(notification: object, title: str) -> None:
    assert render(DEFAULT_TITLE, notification) == title  # type: ignore[arg-type]


def test_default_text_lists_firing_then_resolved() -> None:
    shop = firing("SlowCheckout", service="shop", summary="P95 high", value=1234.5)
    notification = group(shop, resolved("SlowCheckout", service="cart"))

    assert render(DEFAULT_TEXT, notification) == (
        "Firing (1):\n"
        "- SlowCheckout [service.name=shop]\n"
        "  value: 1.234k\n"
        "  since: 2023-11-14T22:13:20.000Z\n"
        "  summary: P95 high\n"
        "  source: http://trm:8080/rules/SlowCheckout\n"
        "\n"
        "Resolved (1):\n"
        "- SlowCheckout [service.name=cart]\n"
        "  since: 2023-11-14T22:13:20.000Z, ended: 2023-11-14T22:18:20.000Z\n"
        "  source: http://trm:8080/rules/SlowCheckout\n"
        "\n"
        "http://trm:8080"
    )


def test_digest_and_escalation_lead_the_text() -> None:
    text = render(DEFAULT_TEXT, group(firing("Down"), folded=7, escalation_step=1))

    assert text.startswith(
        "Escalation step 1: the previous step was not acknowledged.\n"
        "7 notifications folded into this digest (receiver rate limit).\n"
        "\n"
        "Firing (1):\n"
    )


def test_html_is_escaped_and_text_is_not() -> None:
    notification = group(firing("Down", summary="<script>alert(1)</script> & more"))

    html = render(DEFAULT_HTML, notification, html=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html and "<script>" not in html
    assert "<script>alert(1)</script> & more" in render(DEFAULT_TEXT, notification)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in render(DEFAULT_SLACK_TEXT, notification)
    assert render("{{ common_annotations.summary }}", notification, html=True).startswith("&lt;script&gt;")


def test_sms_default_is_short() -> None:
    alerts = [firing("Down", i=str(i), summary="instance unreachable") for i in range(5)]

    assert render(DEFAULT_SMS, group(*alerts, folded=2)) == (
        "[FIRING:5] Down: instance unreachable; Down: instance unreachable (+3 more) (2 folded)"
    )
    assert render(DEFAULT_SMS, group(firing("Down", service="shop"))) == "[FIRING:1] Down service.name=shop"


def test_context_names() -> None:
    context = template_context(group(firing("Down", service="shop", value=2.0)))

    assert set(context) == {
        "status", "receiver", "group_key", "group_labels", "common_labels", "common_annotations", "external_url",
        "alerts", "firing", "resolved", "folded", "escalation_step", "title",
    }
    assert set(context["alerts"][0]) == {
        "status", "name", "labels", "annotations", "starts_at", "ends_at", "generator_url", "fingerprint", "value",
        "label_text",
    }
    assert context["alerts"][0]["value"] == 2.0


def test_missing_names_render_empty() -> None:
    assert render("[{{ common_labels.team }}][{{ nothing.at.all }}]", group(firing("Down"))) == "[][]"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ alerts.append(1) }}",
        "{{ common_labels.update(x=1) }}",
    ],
)
def test_the_sandbox_refuses_and_the_default_is_used(source: str, caplog: pytest.LogCaptureFixture) -> None:
    assert render(source, group(firing("Down")), fallback=DEFAULT_TITLE, key="test") == "[FIRING:1] Down"
    assert "template test failed (SecurityError" in caplog.text


def test_without_a_fallback_the_error_propagates() -> None:
    with pytest.raises(ZeroDivisionError):
        render("{{ 1 / 0 }}", group(firing("Down")))


def test_check_template_names_the_problem() -> None:
    assert check_template("{{ status }}") == "{{ status }}"
    with pytest.raises(ValueError, match=r"^template does not compile: Encountered unknown tag 'nope'.*\(line 2\)$"):
        check_template("ok\n{% nope %}")


def test_humanize() -> None:
    shown = render("{{ [1234567, 0.00012, 0, 42, 'n/a'] | map('humanize') | join(' ') }}", group(firing("Down")))

    assert shown == "1.235M 120µ 0 42 n/a"

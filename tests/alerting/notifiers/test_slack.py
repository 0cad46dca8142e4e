"""The Slack notifier against a real HTTP server playing Slack's incoming webhook."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.alerting.notifiers.alerts import deliver, failure, firing, group, resolved
from tests.alerting.notifiers.secrets import assert_no_secret
from tests.alerting.notifiers.servers import RecordingHttpServer, echo_request
from trm_otel.alerting.model import Alert
from trm_otel.alerting.notifiers.slack import BLUE, GREEN, ORANGE, RED, SlackNotifier
from trm_otel.alerting.receivers import SlackConfig


def slack(url: str, **config: Any) -> SlackNotifier:
    return SlackNotifier(SlackConfig.model_validate({"api_url": url, **config}), external_url="http://trm:8080")


def test_message_shape(http_server: RecordingHttpServer) -> None:
    notifier = slack(http_server.url + "/services/T0/B0/x", channel="#ops", username="trm-otel", icon_emoji=":fire:")
    alert = firing("SlowCheckout", service="shop<&>", severity="critical", summary="P95 high", value=1.5)

    deliver(notifier, group(alert))

    (request,) = http_server.requests
    assert request.path == "/services/T0/B0/x"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert set(body) == {"text", "attachments", "channel", "username", "icon_emoji"}
    assert (body["channel"], body["username"], body["icon_emoji"]) == ("#ops", "trm-otel", ":fire:")
    assert body["text"] == "[FIRING:1] SlowCheckout"
    (attachment,) = body["attachments"]
    assert attachment["color"] == RED
    assert attachment["fallback"] == body["text"]
    header, section, context = attachment["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[FIRING:1] SlowCheckout", "emoji": True},
    }
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"] == (
        "*Firing (1)*\n"
        "• *SlowCheckout* `service.name=shop&lt;&amp;&gt;, severity=critical` value 1.5 P95 high"
        " <http://trm:8080/rules/SlowCheckout|source>"
    )
    link = {"type": "mrkdwn", "text": "<http://trm:8080|Open in trm-otel>"}
    assert context == {"type": "context", "elements": [link]}


@pytest.mark.parametrize(
    ("alerts", "color"),
    [
        ([firing("A", severity="critical")], RED),
        ([firing("A", severity="warning")], ORANGE),
        ([firing("A", severity="info")], BLUE),
        ([firing("A")], BLUE),
        ([firing("A", severity="warning", i="1"), firing("A", severity="critical", i="2")], RED),
        ([firing("A", severity="warning"), resolved("A", severity="critical")], ORANGE),
        ([resolved("A", severity="critical")], GREEN),
    ],
)
def test_color_follows_severity(http_server: RecordingHttpServer, alerts: list[Alert], color: str) -> None:
    deliver(slack(http_server.url, send_resolved=True), group(*alerts))

    assert http_server.requests[0].json()["attachments"][0]["color"] == color


def test_templates_override_the_defaults(http_server: RecordingHttpServer) -> None:
    notifier = slack(
        http_server.url,
        title="{{ common_labels.alertname }} is {{ status }}",
        text="{% for a in firing %}{{ a.labels['service.name'] }} {% endfor %}",
        color="{{ '#000000' if common_labels.team == 'core' else '#ffffff' }}",
        title_link="https://runbooks.example/checkout",
    )

    alerts = [firing("Slow", service=service, team="core") for service in ("shop", "cart")]
    deliver(notifier, group(*alerts))

    attachment = http_server.requests[0].json()["attachments"][0]
    assert attachment["color"] == "#000000"
    assert attachment["blocks"][0]["text"]["text"] == "Slow is firing"
    assert attachment["blocks"][1]["text"]["text"] == "shop cart"
    assert attachment["blocks"][2]["elements"][0]["text"] == "<https://runbooks.example/checkout|Open in trm-otel>"


def test_a_template_failing_at_render_falls_back_and_warns(
    http_server: RecordingHttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    deliver(slack(http_server.url, title="{{ 1 // 0 }}"), group(firing("Down")))

    assert http_server.requests[0].json()["text"] == "[FIRING:1] Down"
    assert "template slack title failed (ZeroDivisionError: integer division or modulo by zero); used the default" in (
        caplog.text
    )


def test_resolved_is_not_sent_by_default(http_server: RecordingHttpServer) -> None:
    notifier = slack(http_server.url)
    assert notifier.send_resolved is False

    deliver(notifier, group(resolved("Down")))

    assert http_server.requests == []


def test_slack_errors(http_server: RecordingHttpServer) -> None:
    http_server.respond(404, b"no_service")
    http_server.respond(429, b"rate_limited")
    notifier = slack(http_server.url + "/services/T0/B0/x")

    gone, limited = failure(notifier, group(firing("A"))), failure(notifier, group(firing("A")))

    assert (gone.retryable, str(gone)) == (False, f"slack {http_server.url}/…: HTTP 404 Not Found: no_service")
    assert limited.retryable
    assert str(limited) == f"slack {http_server.url}/…: HTTP 429 Too Many Requests: rate_limited"


def test_no_secret_leaks(http_server: RecordingHttpServer, refused_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = SlackConfig.model_validate({"api_url": http_server.url + "/services/T0/B0/SLACKSECRET", "channel": "#ops"})
    notifier = SlackNotifier(config)
    deliver(notifier, group(firing("Down")))
    http_server.respond(500, echo_request)
    errors = [failure(notifier, group(firing("Down")))]
    errors.append(failure(slack(refused_url + "/services/T0/B0/SLACKSECRET"), group(firing("Down"))))

    assert notifier.describe() == f"slack #ops {http_server.url}/…"
    assert_no_secret("SLACKSECRET", config=config, notifier=notifier, caplog=caplog, errors=errors)

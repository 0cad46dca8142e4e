"""Rule label and annotation templates: Prometheus' dialect, compile-time errors, safe rendering."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trm_otel.alerting.rule_templates import (
    RuleTemplateError,
    compile_template,
    humanize,
    humanize_duration,
    humanize_percentage,
)
from trm_otel.errors import TrmOtelError

LABELS = {"service.name": "shop", "span.name": "POST /pay", "alertname": "SlowCheckout", "le": "250"}

RENDERS = [
    ("no template at all: $value } {", "no template at all: $value } {"),
    ("{{ $labels.service.name }}", "shop"),
    ('{{ $labels["span.name"] }} / {{ $labels[\'service.name\'] }}', "POST /pay / shop"),
    ("{{ $labels.service.name | upper }}", "SHOP"),  # the longest label path, then the filter
    ('{{ $labels["service.name"].startswith("sh") }}', "True"),
    ("[{{ $labels.missing }}] [{{ $labels.service.missing }}]", "[] []"),
    ("{{ $value }}", "1234.5"),
    ("{{ $value | humanize }} ms", "1.234k ms"),
    ("{{ humanize $value }}", "1.234k"),  # Go's call form
    ("{{- humanizeDuration 90 -}}", "1m 30s"),
    ('{{ "%.1f" | format($value) }}', "1234.5"),
    ('{{ "high" if $value > 1000 else "elevated" }}', "high"),
    ("{% if $value > 1000 %}P95 {{ $value | round | int }}{% endif %}", "P95 1234"),
    ("{% for k, v in $labels | dictsort %}{{ k }}={{ v }};{% endfor %}", "alertname=SlowCheckout;le=250;service.name=shop;span.name=POST /pay;"),
    ("{{ $labels.le | humanize }}", "250"),
    ("{{ $externalURL }}/alerts", "https://trm.example/alerts"),
    ('$value outside, {{ "$value" }} in a string', "$value outside, $value in a string"),
    ("a\n{{ $value }}\n", "a\n1234.5\n"),
]


@pytest.mark.parametrize(("text", "expected"), RENDERS, ids=[t for t, _ in RENDERS])
def test_prometheus_style_templates_render(text: str, expected: str) -> None:
    assert compile_template(text).render(LABELS, 1234.5, "https://trm.example") == expected


def test_absent_alerts_have_no_value_and_it_renders_empty() -> None:
    template = compile_template("[{{ $value }}] [{{ $value | humanize }}] [{{ humanizePercentage $value }}]")
    assert template.render({}, None) == "[] [] []"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"), (1, "1"), (999, "999"), (1234.5, "1.234k"), (1200, "1.2k"), (3.4e6, "3.4M"), (-2.5e9, "-2.5G"),
        (1e27, "1000Y"), (0.5, "500m"), (0.0012, "1.2m"), (3.3e-6, "3.3µ"), (float("inf"), "inf"), ("42", "42"),
    ],
)
def test_humanize_uses_si_prefixes_and_four_digits(value: object, text: str) -> None:
    assert humanize(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"), (0.25, "250ms"), (0.0000015, "1.5µs"), (1.5, "1.5s"), (59, "59s"), (60, "1m 0s"), (90, "1m 30s"),
        (3600, "1h 0m 0s"), (93784.9, "1d 2h 3m 4s"), (-90, "-1m 30s"), (-0.5, "-500ms"),
    ],
)
def test_humanize_duration_reads_seconds_as_days_hours_minutes(seconds: float, text: str) -> None:
    assert humanize_duration(seconds) == text


@pytest.mark.parametrize(("fraction", "text"), [(0.1234, "12.34%"), (1, "100%"), (0, "0%"), (0.000015, "0.0015%")])
def test_humanize_percentage(fraction: float, text: str) -> None:
    assert humanize_percentage(fraction) == text


BAD = [
    ("{{ $valeu }}", "line 1: unknown variable $valeu (use $labels, $value or $externalURL)"),
    ("ok\n\n{{ $labels.a }} {{ $Value }}", "line 3: unknown variable $Value (use $labels, $value or $externalURL)"),
    ("{{ $ }}", "line 1: '$' must start $labels, $value or $externalURL"),
    ("{{ value_ }}", "line 1: unknown name 'value_' (use $labels, $value or $externalURL, or set it in the template)"),
    ("{{ $value | humanise }}", "line 1: unknown filter 'humanise' (did you mean humanize?)"),
    (
        "{{ $value | zzz }}",
        "line 1: unknown filter 'zzz' (rule filters: humanize, humanizeDuration, humanizePercentage and Jinja's)",
    ),
    ("a\n{{ $value | }}", "line 2: expected token 'name', got 'end of print statement'"),
    ("{% if $value %}open", "line 1: Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'."),
    ("{{ $value ", "line 1: '{{' is not closed by '}}'"),
    ("ok {{ $value }}\n{% if $value }}", "line 2: '{%' is not closed by '%}'"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[t for t, _ in BAD])
def test_bad_templates_are_refused_at_compile_time_with_the_line(text: str, message: str) -> None:
    with pytest.raises(RuleTemplateError) as caught:
        compile_template(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, TrmOtelError)


@pytest.mark.parametrize(
    ("text", "marker"),
    [
        ("{{ $labels.service.name | humanize }}", "<error expanding template: humanize: 'shop' is not a number>"),
        ("{{ 1 / ($value - $value) }}", "<error expanding template: float division by zero>"),
        ("{{ labels.__class__.__mro__ }}", "<error expanding template: "),
        ('{{ "x" * 1000000 }}', "<error expanding template: a value longer than 100000 is not allowed>"),
        ("{{ 2 ** 100000 }}", "<error expanding template: exponent 100000 is over the limit of 1000>"),
        ("{{ labels.pop('le') }}", "<error expanding template: "),
    ],
)
def test_failures_while_rendering_give_a_marker_and_log_once(
    text: str, marker: str, caplog: pytest.LogCaptureFixture
) -> None:
    template = compile_template(text)
    with caplog.at_level(logging.WARNING, logger="trm_otel.alerting.rule_templates"):
        first = template.render(LABELS, 2.0)
        second = template.render(LABELS, 2.0)
    assert first.startswith(marker) and first.endswith(">") and second == first
    assert len(caplog.records) == 1 and text in caplog.records[0].getMessage()
    assert LABELS["le"] == "250"  # the sandbox is immutable


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.lists(
            st.sampled_from(["{{", "}}", "{%", "%}", " if ", "$value", "$labels", ".a.b", "[", "]", '"', "|",
                             " humanize", " for x in ", "endfor", "endif", " 1 ", "/", "x", "-", "$"]),
            max_size=15,
        ).map("".join),
    )
)
def test_any_template_compiles_or_is_refused_and_rendering_never_raises(text: str) -> None:
    try:
        template = compile_template(text)
    except RuleTemplateError:
        return
    assert isinstance(template.render(LABELS, 3.0), str)
    assert isinstance(template.render({}, None), str)

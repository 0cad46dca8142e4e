"""The exposition format, read back by a strict parser, and the span histograms in it."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pytest

from trm_otel.api.prometheus import (
    MetricFamily,
    Sample,
    escape_label_value,
    families_from_samples,
    format_value,
    label_name,
    metric_name,
    render,
    sanitize_labels,
)
from trm_otel.api.scrape import (
    SPAN_DURATION_BOUNDS_MS,
    cumulative_buckets,
    latency_gauge_families,
    scrape,
    span_metric_families,
)
from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.latency_report import latency_views
from trm_otel.processors.span_batch import SpanBatch
from trm_otel.slo import slo_policy

NOW = 1_800_000_000.0

# --------------------------------------------------------------------------
# A strict parser of the text format 0.0.4, as much of it as we write.

_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_VALUE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|\+Inf|-Inf")
_TYPES = {"counter", "gauge", "histogram"}
_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}


@dataclass
class ParsedFamily:
    name: str
    help: str
    type: str = ""
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def value(self, name: str, **labels: str) -> float:
        (found,) = [v for n, lab, v in self.samples if n == name and lab == labels]
        return found


def _unescape_help(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            assert text[i + 1] in "\\n", f"bad escape in HELP: {text!r}"
            out.append("\\" if text[i + 1] == "\\" else "\n")
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_sample(line: str) -> tuple[str, dict[str, str], float]:
    """``name{label="value",...} value``; no timestamps, no trailing commas, no spaces in braces."""
    match = _METRIC.match(line)
    assert match, f"bad metric name: {line!r}"
    name, i = match.group(), match.end()
    labels: dict[str, str] = {}
    if line[i] == "{":
        i += 1
        while True:
            match = _LABEL.match(line, i)
            assert match, f"bad label name at {i}: {line!r}"
            key, i = match.group(), match.end()
            assert not key.startswith("__"), f"reserved label name {key!r}"
            assert line[i : i + 2] == '="', f"expected =\" at {i}: {line!r}"
            i += 2
            chars = []
            while line[i] != '"':
                if line[i] == "\\":
                    assert line[i + 1] in _UNESCAPE, f"bad escape at {i}: {line!r}"
                    chars.append(_UNESCAPE[line[i + 1]])
                    i += 2
                else:
                    chars.append(line[i])
                    i += 1
            i += 1
            assert key not in labels, f"label {key} twice: {line!r}"
            labels[key] = "".join(chars)
            if line[i] == "}":
                i += 1
                break
            assert line[i] == ",", f"expected , or }} at {i}: {line!r}"
            i += 1
    assert line[i] == " ", f"expected one space before the value: {line!r}"
    text = line[i + 1 :]
    assert _VALUE.fullmatch(text), f"bad value {text!r}: {line!r}"
    return name, labels, float(text)


def parse_exposition(text: str) -> dict[str, ParsedFamily]:
    """Families by name; fails on anything Prometheus would reject or we never mean to write."""
    assert text.endswith("\n") and not text.endswith("\n\n"), "body must end in exactly one newline"
    families: dict[str, ParsedFamily] = {}
    current: ParsedFamily | None = None
    series: set[tuple[str, frozenset[tuple[str, str]]]] = set()
    for line in text[:-1].split("\n"):
        assert line, "no empty lines"
        if line.startswith("# HELP "):
            name, _, help_text = line[len("# HELP ") :].partition(" ")
            assert _METRIC.fullmatch(name), line
            assert name not in families, f"HELP for {name} twice"
            current = families[name] = ParsedFamily(name, _unescape_help(help_text))
        elif line.startswith("# TYPE "):
            name, kind = line[len("# TYPE ") :].split(" ")
            assert current is not None and current.name == name, f"TYPE without its HELP: {line!r}"
            assert not current.type and not current.samples, f"TYPE twice or after samples: {line!r}"
            assert kind in _TYPES, line
            current.type = kind
        else:
            assert not line.startswith("#"), f"unexpected comment {line!r}"
            name, labels, value = parse_sample(line)
            assert current is not None and current.type, f"sample before HELP/TYPE: {line!r}"
            if current.type == "histogram":
                allowed = {current.name + s for s in ("_bucket", "_sum", "_count")}
                assert ("le" in labels) == (name == current.name + "_bucket"), line
            else:
                allowed = {current.name}
            assert name in allowed, f"{name} does not belong to family {current.name}"
            key = (name, frozenset(labels.items()))
            assert key not in series, f"duplicate series {line!r}"
            series.add(key)
            current.samples.append((name, labels, value))
    for family in families.values():
        assert family.samples, f"family {family.name} has no samples"
        if family.type == "histogram":
            check_histogram(family)
    return families


def check_histogram(family: ParsedFamily) -> None:
    """Per series: ascending ``le`` ending at +Inf, monotone whole counts, +Inf == _count, a _sum."""
    buckets: dict[frozenset, list[tuple[float, float]]] = {}
    sums: dict[frozenset, float] = {}
    counts: dict[frozenset, float] = {}
    for name, labels, value in family.samples:
        rest = frozenset((k, v) for k, v in labels.items() if k != "le")
        if name.endswith("_bucket"):
            buckets.setdefault(rest, []).append((float(labels["le"]), value))
        elif name.endswith("_sum"):
            sums[rest] = value
        else:
            counts[rest] = value
    assert buckets.keys() == sums.keys() == counts.keys()
    for rest, rows in buckets.items():
        les = [le for le, _ in rows]
        values = [v for _, v in rows]
        assert les == sorted(les) and len(set(les)) == len(les), f"le not ascending: {les}"
        assert les[-1] == math.inf
        assert all(v == int(v) and v >= 0 for v in values), values
        assert all(a <= b for a, b in zip(values, values[1:])), f"not monotone: {values}"
        assert values[-1] == counts[rest], f"+Inf {values[-1]} != _count {counts[rest]}"


# --------------------------------------------------------------------------
# The parser itself must refuse what it claims to refuse.


@pytest.mark.parametrize(
    "body",
    [
        "# HELP a x\n# TYPE a gauge\na 1\n# HELP a x\n# TYPE a gauge\na 2\n",  # family twice
        "# HELP a x\n# TYPE a gauge\na 1\na 1\n",  # duplicate series
        '# HELP a x\n# TYPE a gauge\na{b="1} 1\n',  # unterminated value: escape eats the quote
        '# HELP a x\n# TYPE a gauge\na{b="\\t"} 1\n',  # unknown escape
        '# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
        '# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',
        "# HELP a x\n# TYPE a gauge\na 1",  # no final newline
        "a 1\n",  # no HELP/TYPE
    ],
)
def test_the_strict_parser_refuses_broken_bodies(body: str) -> None:
    with pytest.raises((AssertionError, IndexError)):
        parse_exposition(body)


# --------------------------------------------------------------------------
# Names, labels, values.


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("traces.span.metrics.duration", "traces_span_metrics_duration"),
        ("http:requests", "http:requests"),
        ("9lives", "_9lives"),
        ("a-b/c d", "a_b_c_d"),
        ("", "_"),
    ],
)
def test_metric_names_are_sanitized(raw: str, expected: str) -> None:
    assert metric_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("service.name", "service_name"),
        ("http.response.status_code", "http_response_status_code"),
        ("1st", "_1st"),
        ("__name__", "key__name__"),
        ("a:b", "a_b"),
    ],
)
def test_label_names_are_sanitized(raw: str, expected: str) -> None:
    assert label_name(raw) == expected
    assert label_name(expected) == expected  # idempotent: sanitizing twice changes nothing


def test_label_values_escape_backslash_quote_and_newline() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert escape_label_value("plain / {x}") == "plain / {x}"


def test_colliding_label_names_join_their_values_in_key_order() -> None:
    assert sanitize_labels({"a_b": "2", "a.b": "1", "c": True, "d": 3}) == {"a_b": "1;2", "c": "true", "d": "3"}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (3.0, "3"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (-4.0, "-4"),
        (np.int64(7), "7"),
        (1e20, "1e+20"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
    ],
)
def test_values_are_written_as_prometheus_reads_them(value: float, text: str) -> None:
    assert format_value(value) == text
    assert _VALUE.fullmatch(text)


def test_render_writes_help_and_type_once_and_escapes_help() -> None:
    family = MetricFamily("x_total", "counter", "Counts\\things\nacross lines.")
    family.add({"signal": "traces"}, 1)
    family.add({"signal": "logs"}, 2)
    body = render([family, MetricFamily("empty", "gauge", "never written")])
    assert body == (
        "# HELP x_total Counts\\\\things\\nacross lines.\n"
        "# TYPE x_total counter\n"
        'x_total{signal="traces"} 1\n'
        'x_total{signal="logs"} 2\n'
    )
    parsed = parse_exposition(body)
    assert parsed["x_total"].help == "Counts\\things\nacross lines."
    assert render([]) == ""


def test_histogram_lines_keep_le_last_and_refuse_misuse() -> None:
    family = MetricFamily("h", "histogram", "A histogram.")
    family.add_histogram({"a.b": "x"}, [(1.5, 1), (math.inf, 2)], 3.5, 2)
    family.add_histogram({}, [(math.inf, 0)], 0.0, 0)
    assert render([family]).splitlines()[2:] == [
        'h_bucket{a_b="x",le="1.5"} 1',
        'h_bucket{a_b="x",le="+Inf"} 2',
        'h_sum{a_b="x"} 3.5',
        'h_count{a_b="x"} 2',
        'h_bucket{le="+Inf"} 0',
        "h_sum 0",
        "h_count 0",
    ]
    with pytest.raises(ValueError, match="h: the label 'le' is reserved for bucket bounds"):
        family.add_histogram({"le": "1"}, [], 0.0, 0)
    with pytest.raises(ValueError, match="g is a gauge, not a histogram"):
        MetricFamily("g", "gauge", "").add_histogram({}, [], 0.0, 0)


def test_a_family_exposed_twice_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    first = MetricFamily("dup", "gauge", "first")
    first.add({}, 1)
    second = MetricFamily("dup", "gauge", "second")
    second.add({}, 2)
    with caplog.at_level(logging.WARNING):
        body = render([first, second])
    assert body == "# HELP dup first\n# TYPE dup gauge\ndup 1\n"
    assert "metric family dup is exposed twice; the second is left out" in caplog.text


def test_self_samples_get_the_prefix_and_counters_total(caplog: pytest.LogCaptureFixture) -> None:
    samples = [
        Sample("pipeline.accepted", "counter", "Items accepted.", {"signal": "traces"}, 5),
        Sample("pipeline.accepted", "counter", "ignored help", {"signal": "logs"}, 1),
        Sample("trm_otel_queue.pending", "gauge", "Items waiting.", {}, 3),
        Sample("receiver_requests_total", "counter", "Requests.", {"http.route": "/v1/traces"}, 9),
        Sample("pipeline.accepted", "gauge", "wrong kind", {"signal": "metrics"}, 1),
    ]
    with caplog.at_level(logging.WARNING):
        families = families_from_samples(samples)
    assert [(f.name, f.kind, f.help) for f in families] == [
        ("trm_otel_pipeline_accepted_total", "counter", "Items accepted."),
        ("trm_otel_queue_pending", "gauge", "Items waiting."),
        ("trm_otel_receiver_requests_total", "counter", "Requests."),
    ]
    assert "metric trm_otel_pipeline_accepted is a counter, not a gauge; sample left out" in caplog.text
    parsed = parse_exposition(render(families))
    assert parsed["trm_otel_pipeline_accepted_total"].value("trm_otel_pipeline_accepted_total", signal="logs") == 1
    assert parsed["trm_otel_receiver_requests_total"].samples == [
        ("trm_otel_receiver_requests_total", {"http_route": "/v1/traces"}, 9.0)
    ]


# --------------------------------------------------------------------------
# Exponential -> classic buckets.


def _histogram(values: list[float] | np.ndarray) -> ExponentialHistogram:
    histogram = ExponentialHistogram()
    histogram.record(np.asarray(values, dtype=np.float64))
    return histogram


def test_buckets_are_exact_when_no_bound_falls_inside_an_occupied_bucket() -> None:
    # Every value at least 5% away from every bound (buckets are 1.1% wide).
    values = [0.0, 1, 3, 5, 7, 9, 9, 20, 70, 150, 300, 600, 900, 1200, 1700, 3000, 7000, 12000, 20000, 60000]
    histogram = _histogram(values)
    expected = [sum(v <= b for v in values) for b in SPAN_DURATION_BOUNDS_MS] + [len(values)]
    assert cumulative_buckets(histogram, SPAN_DURATION_BOUNDS_MS) == expected
    assert expected == [2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20]


@pytest.mark.parametrize("seed", range(5))
def test_buckets_are_monotone_whole_counts_ending_at_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.lognormal(rng.uniform(0, 8), rng.uniform(0.1, 2), 5000), np.zeros(seed * 3)])
    histogram = _histogram(values)
    buckets = cumulative_buckets(histogram, SPAN_DURATION_BOUNDS_MS)
    assert all(isinstance(b, int) for b in buckets)
    assert all(a <= b for a, b in zip(buckets, buckets[1:]))
    assert buckets[-1] == histogram.count == len(values)
    for bound, got in zip(SPAN_DURATION_BOUNDS_MS, buckets):
        exact = int(np.count_nonzero(values <= bound))
        # Only the values in the one 1.1%-wide bucket around the bound are estimated.
        near = int(np.count_nonzero((values > bound / 1.011) & (values <= bound * 1.011)))
        assert abs(got - exact) <= near, (bound, got, exact)


def test_buckets_of_an_empty_histogram_are_zero_and_bounds_must_ascend() -> None:
    assert cumulative_buckets(ExponentialHistogram(), (1, 2)) == [0, 0, 0]
    with pytest.raises(ValueError, match=r"bucket bounds must be strictly ascending, got \[2, 2\]"):
        cumulative_buckets(ExponentialHistogram(), (2, 2))


# --------------------------------------------------------------------------
# Families over a real aggregator.


def _batch(service: str, names: list[str], durations: list[float], status: list[int]) -> SpanBatch:
    n = len(names)
    return SpanBatch(
        service=[service] * n,
        name=names,
        kind=np.full(n, 2, dtype=np.int8),
        status=np.asarray(status, dtype=np.int8),
        end_ns=np.full(n, int((NOW - 5) * 1e9), dtype=np.int64),
        duration_ms=np.asarray(durations, dtype=np.float64),
        span_id=np.zeros(n, dtype=np.uint64),
        parent_span_id=np.zeros(n, dtype=np.uint64),
    )


def test_span_families_cover_overflow_series_and_escape_span_names() -> None:
    agg = LatencyAggregator(window_s=10, history_s=600, cardinality_limit=2, clock=lambda: NOW, track_cumulative=True)
    odd = 'GET /q?x="1"\\2\nthree'
    agg.add_spans(_batch("shop", [odd, odd, "b", "c", "d"], [3.0, 70.0, 20.0, 900.0, 1200.0], [0, 0, 2, 0, 2]))
    duration, calls = span_metric_families(agg)
    parsed = parse_exposition(render([duration, calls]))
    family = parsed["traces_span_metrics_duration_milliseconds"]
    assert family.type == "histogram"
    assert parsed["traces_span_metrics_calls_total"].type == "counter"
    odd_labels = {
        "service_name": "shop",
        "span_name": odd,
        "span_kind": "SPAN_KIND_SERVER",
        "status_code": "STATUS_CODE_UNSET",
    }
    assert family.value("traces_span_metrics_duration_milliseconds_count", **odd_labels) == 2
    assert family.value("traces_span_metrics_duration_milliseconds_sum", **odd_labels) == 73.0
    assert family.value("traces_span_metrics_duration_milliseconds_bucket", **odd_labels, le="2") == 0
    assert family.value("traces_span_metrics_duration_milliseconds_bucket", **odd_labels, le="4") == 1
    assert family.value("traces_span_metrics_duration_milliseconds_bucket", **odd_labels, le="100") == 2
    # "c" and "d" went over the limit of 2 series: one overflow series per outcome.
    overflow = {"service_name": "shop", "status_code": "STATUS_CODE_UNSET", "otel_metric_overflow": "true"}
    overflow_errors = {**overflow, "status_code": "STATUS_CODE_ERROR"}
    calls_family = parsed["traces_span_metrics_calls_total"]
    assert calls_family.value("traces_span_metrics_calls_total", **overflow) == 1
    assert calls_family.value("traces_span_metrics_calls_total", **overflow_errors) == 1
    assert family.value("traces_span_metrics_duration_milliseconds_bucket", **overflow, le="800") == 0
    assert family.value("traces_span_metrics_duration_milliseconds_bucket", **overflow, le="1000") == 1
    assert sum(v for _, _, v in calls_family.samples) == 5


def test_without_cumulative_tracking_there_are_no_span_samples() -> None:
    agg = LatencyAggregator(window_s=10, history_s=600, clock=lambda: NOW)
    agg.add_spans(_batch("shop", ["a"], [1.0], [0]))
    assert render(span_metric_families(agg)) == ""


def test_latency_gauges_carry_the_views_percentiles() -> None:
    agg = LatencyAggregator(window_s=10, history_s=600, clock=lambda: NOW)
    agg.add_spans(_batch("shop", ["a"] * 100, list(np.linspace(1, 100, 100)), [0] * 100))
    (view,) = latency_views(agg, slo_policy({}), 300)
    parsed = parse_exposition(render(latency_gauge_families([view])))
    assert {name: f.samples for name, f in parsed.items()} == {
        "trm_otel_latency_p50_ms": [("trm_otel_latency_p50_ms", {"service": "shop", "endpoint": "a"}, view.p50_ms)],
        "trm_otel_latency_p95_ms": [("trm_otel_latency_p95_ms", {"service": "shop", "endpoint": "a"}, view.p95_ms)],
        "trm_otel_latency_p99_ms": [("trm_otel_latency_p99_ms", {"service": "shop", "endpoint": "a"}, view.p99_ms)],
    }
    assert [f.type for f in parsed.values()] == ["gauge"] * 3


def test_a_whole_scrape_parses_and_its_families_are_in_order() -> None:
    agg = LatencyAggregator(window_s=10, history_s=600, clock=lambda: NOW, track_cumulative=True)
    agg.add_spans(_batch("shop", ["a", "a", "b"], [5.0, 500.0, 50.0], [0, 2, 0]))
    samples = [Sample("pipeline.processed", "counter", "Items processed.", {"signal": "traces"}, 3)]
    parsed = parse_exposition(scrape(agg, slo_policy({}), samples, version="9.9.9"))
    assert list(parsed) == [
        "trm_otel_pipeline_processed_total",
        "trm_otel_build_info",
        "trm_otel_latency_p50_ms",
        "trm_otel_latency_p95_ms",
        "trm_otel_latency_p99_ms",
        "traces_span_metrics_duration_milliseconds",
        "traces_span_metrics_calls_total",
    ]
    assert parsed["trm_otel_build_info"].samples == [("trm_otel_build_info", {"version": "9.9.9"}, 1.0)]
    assert parsed["trm_otel_latency_p50_ms"].value("trm_otel_latency_p50_ms", service="shop", endpoint="b") == 50.0

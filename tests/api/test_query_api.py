"""GET /api/v1/query over the daemon's memory: Prometheus-shaped answers and exact 400 messages."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from trm_otel.api import ApiContext, build_api_app
from trm_otel.api.query import format_value, parse_time
from trm_otel.api.params import BadParameter
from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.query import MemorySource
from trm_otel.series_source import SeriesSource

from .test_app import CART_MS, NOW, PAY_MS, PAY_STATUS, POLICY, SEARCH_MS, fed_aggregator, spans

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

DURATION = "traces.span.metrics.duration"


def context(aggregator: LatencyAggregator, source: SeriesSource | None) -> ApiContext:
    return ApiContext(
        aggregator=aggregator,
        slo=POLICY,
        ready=lambda: True,
        health=lambda: {"status": "healthy", "checks": []},
        self_metrics=lambda: [],
        version="1.2.3",
        query_source=source,
    )


def scalars() -> ScalarSeriesStore:
    store = ScalarSeriesStore(window_s=10, clock=lambda: NOW)
    store.record_gauge(("queue.depth", "checkout", (("queue", "orders"),)), int((NOW - 5) * 1e9), 12.5)
    store.record_gauge(("queue.depth", "checkout", (("queue", "broken"),)), int((NOW - 5) * 1e9), math.nan)
    return store


@pytest.fixture(scope="module")
def api() -> TestClient:
    aggregator = fed_aggregator()
    app = build_api_app(context(aggregator, MemorySource(aggregator, scalars())))
    return TestClient(app, raise_server_exceptions=False)


def get(api: TestClient, params: dict[str, str], status: int = 200) -> Any:
    response = api.get("/api/v1/query", params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def reference(values: np.ndarray) -> ExponentialHistogram:
    histogram = ExponentialHistogram()
    histogram.record(values)
    return histogram


# ------------------------------------------------------------------ answers


def test_instant_query_answers_a_prometheus_vector_at_now(api: TestClient) -> None:
    body = get(api, {"q": f"p95({DURATION}[1m]) by (service.name, span.name)"})
    assert body == {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {
                    "metric": {"service.name": "checkout", "span.name": "GET /cart"},
                    "value": [int(NOW), format_value(reference(CART_MS).quantile(0.95))],
                },
                {
                    "metric": {"service.name": "checkout", "span.name": "POST /pay"},
                    "value": [int(NOW), format_value(reference(PAY_MS).quantile(0.95))],
                },
                {
                    "metric": {"service.name": "search", "span.name": "GET /search"},
                    "value": [int(NOW), format_value(reference(SEARCH_MS).quantile(0.95))],
                },
            ],
        },
    }


def test_counts_and_error_rates_are_strings_of_exact_numbers(api: TestClient) -> None:
    body = get(api, {"q": 'error_rate(traces.span.metrics.calls{span.name="POST /pay"}[1m])'})
    expected = format_value(np.count_nonzero(PAY_STATUS) / 200)
    assert body["data"]["result"] == [{"metric": {}, "value": [int(NOW), expected]}]
    body = get(api, {"q": "count(traces.span.metrics.calls[1m]) by (service.name)"})
    assert [r["value"][1] for r in body["data"]["result"]] == ["300", "60"]


@pytest.mark.parametrize("time", [str(NOW - 10), "2027-01-15T08:00:00Z", "2027-01-15T09:00:00+01:00", "1799999990.0"])
def test_time_is_unix_seconds_or_rfc3339(api: TestClient, time: str) -> None:
    at = parse_time("time", time)
    body = get(api, {"q": "count(traces.span.metrics.calls[1m])", "time": time})
    assert body["data"]["result"][0]["value"][0] == int(at)


def test_rfc3339_times_convert_to_unix_seconds() -> None:
    assert parse_time("time", "2027-01-15T08:00:00Z") == parse_time("time", "2027-01-15T09:00:00+01:00") == NOW
    assert parse_time("time", "1970-01-01T00:00:01.5Z") == 1.5
    assert parse_time("time", "1.5e3") == 1500.0


def test_instant_query_at_a_given_time_reads_the_range_before_it(api: TestClient) -> None:
    # Spans of GET /cart end in the last 30 s; at NOW - 10 with a 10 s range only [NOW - 20, NOW - 10) counts.
    body = get(api, {"q": 'count(traces.span.metrics.calls{span.name="GET /cart"}[10s])', "time": str(NOW - 10)})
    ends = np.linspace(NOW - 29.9, NOW - 0.1, 100)
    expected = np.count_nonzero((ends >= NOW - 20) & (ends < NOW - 10))
    assert body["data"]["result"] == [{"metric": {}, "value": [int(NOW - 10), str(expected)]}]


def test_range_query_answers_a_prometheus_matrix(api: TestClient) -> None:
    params = {"q": 'count(traces.span.metrics.calls{service.name="checkout"}) by (span.name)', "start": str(NOW - 30)}
    body = get(api, {**params, "end": str(NOW), "step": "10s"})
    cart_ends = np.linspace(NOW - 29.9, NOW - 0.1, 100)
    counts = [np.count_nonzero((cart_ends >= t - 10) & (cart_ends < t)) for t in (NOW - 20, NOW - 10, NOW)]
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "matrix"
    cart, pay = body["data"]["result"]
    assert cart == {
        "metric": {"span.name": "GET /cart"},
        "values": [[int(NOW - 20), str(counts[0])], [int(NOW - 10), str(counts[1])], [int(NOW), str(counts[2])]],
    }
    assert pay["metric"] == {"span.name": "POST /pay"}
    assert sum(int(v) for _, v in pay["values"]) == 200
    # step in plain seconds, times in RFC 3339, fractional steps keep fractional times
    same = get(api, {**params, "start": "2027-01-15T07:59:30Z", "end": "2027-01-15T08:00:00Z", "step": "10"})
    assert same == body
    half = get(
        api, {"q": "count(traces.span.metrics.calls[10s])", "start": str(NOW - 1), "end": str(NOW), "step": "0.5"}
    )
    assert [t for t, _ in half["data"]["result"][0]["values"]] == [NOW - 1, NOW - 0.5, NOW]


def test_nan_values_read_nan(api: TestClient) -> None:
    body = get(api, {"q": "last(queue.depth) by (queue)"})
    assert body["data"]["result"] == [
        {"metric": {"queue": "broken"}, "value": [int(NOW), "NaN"]},
        {"metric": {"queue": "orders"}, "value": [int(NOW), "12.5"]},
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [(3.0, "3"), (0.1, "0.1"), (1e-05, "0.00001"), (1e16, "10000000000000000"), (-2.5, "-2.5"),
     (math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (np.float64(428.213), "428.213")],
)
def test_values_are_formatted_like_prometheus(value: float, text: str) -> None:
    assert format_value(value) == text


# ------------------------------------------------------------------- errors


BAD: list[tuple[dict[str, str], str]] = [
    ({"q": "p95 {service.name='shop'}"}, "1:5: expected '(' after 'p95', got '{'"),
    ({"q": "p95(x"}, "1:6: expected ')' after the selector, got end of query"),
    ({"q": "median(x)"}, "1:1: unknown statistic 'median' (expected p50, p90, p95, p99, pNN, avg, min, max, sum, "
     "count, rate, error_rate, apdex or last)"),
    ({"q": "p95(queue.depth)"}, "1:1: p95 does not apply to 'queue.depth', a gauge (use avg, min, max or last)"),
    ({}, "q: required, e.g. q=p95(traces.span.metrics.duration[5m]) by (span.name)"),
    ({"q": ""}, "q: required, e.g. q=p95(traces.span.metrics.duration[5m]) by (span.name)"),
    ({"query": "p95(x)"}, "unknown parameter 'query' (known: end, q, start, step, time)"),
    ({"q": "count(x)", "time": "yesterday"}, "time: not a unix time in seconds or an RFC 3339 timestamp: 'yesterday'"),
    ({"q": "count(x)", "time": "2027-01-15T08:00:00"}, "time: an RFC 3339 timestamp needs a time zone (Z or +hh:mm): "
     "'2027-01-15T08:00:00'"),
    ({"q": "count(x)", "time": "inf"}, "time: not a unix time in seconds or an RFC 3339 timestamp: 'inf'"),
    ({"q": "count(x)", "start": "1"}, "end: required for a range query (give start, end and step together)"),
    (
        {"q": "count(x)", "start": "1", "end": "2"},
        "step: required for a range query (give start, end and step together)",
    ),
    ({"q": "count(x)", "start": "1", "end": "2", "step": "1", "time": "1"},
     "time: not allowed with start, end and step (time is for instant queries)"),
    ({"q": "count(x)", "start": "2", "end": "1", "step": "1"}, "end: must not be before start"),
    (
        {"q": "count(x)", "start": "1", "end": "2", "step": "soon"},
        "step: not a duration: 'soon' (use e.g. 500ms, 10s, 5m, 1h30m, 7d)",
    ),
    ({"q": "count(x)", "start": "1", "end": "2", "step": "0"}, "step: duration must be positive and finite, got '0'"),
    ({"q": "count(traces.span.metrics.calls)", "start": str(NOW - 11000), "end": str(NOW), "step": "1"},
     "start, end and step give 11001 steps, over the limit of 11000 points per query; use a larger step or a "
     "shorter time range"),
]


@pytest.mark.parametrize(("params", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_requests_get_a_prometheus_error_with_the_exact_message(
    api: TestClient, params: dict[str, str], message: str
) -> None:
    assert get(api, params, 400) == {"status": "error", "errorType": "bad_data", "error": message}


def test_a_query_over_too_many_series_gets_a_400_saying_the_limit() -> None:
    aggregator = LatencyAggregator(window_s=10, history_s=3600, clock=lambda: NOW)
    for i in range(1001):
        aggregator.add_spans(spans("shop", f"GET /item/{i}", np.ones(1), np.full(1, NOW - 1)))
    client = TestClient(build_api_app(context(aggregator, MemorySource(aggregator, scalars()))))
    assert get(client, {"q": f"p95({DURATION})"}, 400) == {
        "status": "error",
        "errorType": "bad_data",
        "error": "1:5: the selector matches 1001 series, over the limit of 1000 per query; "
        'narrow it with label matchers such as {service.name="..."}',
    }
    narrowed = get(client, {"q": f'p95({DURATION}{{span.name=~"GET /item/1.*"}}) by (span.name)'})
    assert len(narrowed["data"]["result"]) == 112


def test_without_a_query_source_the_route_answers_503() -> None:
    aggregator = fed_aggregator()
    client = TestClient(build_api_app(context(aggregator, None)))
    assert get(client, {"q": "p95(x)"}, 503) == {
        "status": "error",
        "errorType": "unavailable",
        "error": "queries are not available: this API was started without a query source",
    }


def test_only_get_is_allowed(api: TestClient) -> None:
    response = api.post("/api/v1/query", params={"q": "p95(x)"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_bad_parameter_is_a_value_error_naming_the_parameter() -> None:
    with pytest.raises(BadParameter, match="^start: not a finite time: '1e999'$"):
        parse_time("start", "1e999")

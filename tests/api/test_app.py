"""The real API app over a real aggregator: JSON shapes, numbers, errors and /metrics."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import warnings
from collections.abc import Iterable
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from trm_otel.api import ApiContext, Sample, build_api_app
from trm_otel.api.app import QUERY_THREADS
from trm_otel.api.scrape import SPAN_DURATION_BOUNDS_MS
import gzip

from trm_otel.api.responses import compressed, json_response
from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.latency_report import bottleneck_report, trend_report
from trm_otel.processors.span_batch import SpanBatch
from trm_otel.slo import SloPolicy, slo_policy
from trm_otel.views import LatencyView, view_to_dict

from .test_prometheus import parse_exposition

with warnings.catch_warnings():
    # starlette 1.x suggests httpx2 for its TestClient; httpx is what the project depends on.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

NOW = 1_800_000_000.0  # a window boundary (window 10 s), so the covered seconds are exact
SERVER, ERROR = 2, 2

# checkout POST /pay: 200 spans over the last 30 s, every 10th an error.
PAY_MS = np.linspace(50.0, 450.0, 200)
PAY_STATUS = np.where(np.arange(200) % 10 == 0, ERROR, 0)
# checkout GET /cart: 100 fast spans over the last 30 s.
CART_MS = np.linspace(5.0, 20.0, 100)
# search GET /search: 60 spans over the last 20 s, 3 errors.
SEARCH_MS = np.linspace(80.0, 120.0, 60)
SEARCH_STATUS = np.where(np.arange(60) < 3, ERROR, 0)


def spans(
    service: str, name: str, durations: np.ndarray, ends_s: np.ndarray, status: np.ndarray | None = None
) -> SpanBatch:
    n = len(durations)
    return SpanBatch(
        service=[service] * n,
        name=[name] * n,
        kind=np.full(n, SERVER, dtype=np.int8),
        status=np.zeros(n, dtype=np.int8) if status is None else np.asarray(status, dtype=np.int8),
        end_ns=(np.asarray(ends_s) * 1e9).astype(np.int64),
        duration_ms=np.asarray(durations, dtype=np.float64),
        span_id=np.zeros(n, dtype=np.uint64),
        parent_span_id=np.zeros(n, dtype=np.uint64),
    )


def fed_aggregator() -> LatencyAggregator:
    agg = LatencyAggregator(window_s=10, history_s=3600, clock=lambda: NOW, track_cumulative=True)
    agg.add_spans(spans("checkout", "POST /pay", PAY_MS, np.linspace(NOW - 29.9, NOW - 0.1, 200), PAY_STATUS))
    agg.add_spans(spans("checkout", "GET /cart", CART_MS, np.linspace(NOW - 29.9, NOW - 0.1, 100)))
    agg.add_spans(spans("search", "GET /search", SEARCH_MS, np.linspace(NOW - 19.9, NOW - 0.1, 60), SEARCH_STATUS))
    return agg


POLICY = slo_policy({"default": {"p95_ms": 300}})


def context(
    agg: LatencyAggregator | None = None,
    *,
    slo: SloPolicy = POLICY,
    ready: Any = lambda: True,
    health: Any = lambda: {"status": "healthy", "checks": [{"name": "disk", "status": "healthy", "detail": "ok"}]},
    self_metrics: Any = lambda: [],
) -> ApiContext:
    return ApiContext(
        aggregator=fed_aggregator() if agg is None else agg,
        slo=slo,
        ready=ready,
        health=health,
        self_metrics=self_metrics,
        version="1.2.3",
    )


def client(ctx: ApiContext | None = None) -> TestClient:
    return TestClient(build_api_app(ctx or context()), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def api() -> TestClient:
    return client()


def reference(*arrays: np.ndarray) -> ExponentialHistogram:
    """One histogram of the raw values: what the merged windows must equal."""
    histogram = ExponentialHistogram()
    histogram.record(np.concatenate(arrays))
    return histogram


def nearest_rank(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, math.ceil(q * len(ordered))) - 1])


def get_json(api: TestClient, url: str, status: int = 200) -> Any:
    response = api.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


# ------------------------------------------------------------------ probes


def test_healthz_is_liveness_only(api: TestClient) -> None:
    assert get_json(api, "/healthz") == {"status": "ok"}
    head = api.head("/healthz")
    assert head.status_code == 200


def test_readyz_follows_the_ready_callable() -> None:
    state = {"ready": False}
    probe = client(context(ready=lambda: state["ready"]))
    assert get_json(probe, "/readyz", 503) == {"status": "not ready"}
    state["ready"] = True
    assert get_json(probe, "/readyz") == {"status": "ready"}


def test_readyz_is_not_ready_when_the_check_raises(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> bool:
        raise OSError("data dir gone")

    with caplog.at_level(logging.ERROR):
        assert get_json(client(context(ready=broken)), "/readyz", 503) == {"status": "not ready"}
    assert "the readiness check raised; answering not ready" in caplog.text


@pytest.mark.parametrize(("status", "code"), [("healthy", 200), ("degraded", 200), ("unhealthy", 503)])
def test_health_returns_the_report_and_503_only_when_unhealthy(status: str, code: int) -> None:
    report = {"status": status, "checks": [{"name": "receivers", "status": status, "detail": "grpc 127.0.0.1:4317"}]}
    assert get_json(client(context(health=lambda: report)), "/api/v1/health", code) == report


def test_health_that_raises_is_an_unhealthy_report() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("disk gone")

    assert get_json(client(context(health=broken)), "/api/v1/health", 503) == {
        "status": "unhealthy",
        "checks": [{"name": "health", "status": "unhealthy", "detail": "health check failed: RuntimeError: disk gone"}],
    }


# ----------------------------------------------------------------- latency


def test_latency_views_have_the_contract_fields_and_exact_numbers(api: TestClient) -> None:
    body = get_json(api, "/api/v1/latency")
    assert body["range_s"] == 300.0
    views = {v["endpoint"]: v for v in body["views"]}
    assert [(v["service"], v["endpoint"]) for v in body["views"]] == [
        ("checkout", "GET /cart"),
        ("checkout", "POST /pay"),
        ("search", "GET /search"),
    ]
    for view in body["views"]:
        assert list(view) == [
            "service", "endpoint", "count", "errors", "rps", "error_rate",
            "p50_ms", "p95_ms", "p99_ms", "max_ms", "apdex", "level", "approximate", "exemplars",
        ]  # fmt: skip

    pay = dict(views["POST /pay"])
    assert pay.pop("exemplars")[0]["duration_ms"] == 450.0  # the slowest span leads (tests/api/test_exemplars_api.py)
    ref = reference(PAY_MS)
    ok = reference(PAY_MS[PAY_STATUS == 0])
    satisfied = ok.count_at_most(300.0)
    assert pay == {
        "service": "checkout",
        "endpoint": "POST /pay",
        "count": 200,
        "errors": 20,
        "rps": 6.6667,  # 200 spans over the three 10 s windows they cover
        "error_rate": 0.1,
        "p50_ms": round(ref.quantile(0.5), 3),
        "p95_ms": round(ref.quantile(0.95), 3),
        "p99_ms": round(ref.quantile(0.99), 3),
        "max_ms": 450.0,
        "apdex": round((satisfied + (180 - satisfied) / 2) / 200, 4),
        "level": "critical",  # 10% errors against a 1% objective
        "approximate": False,
    }
    for q, key in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
        assert pay[key] == pytest.approx(nearest_rank(PAY_MS, q), rel=0.0055)

    cart = views["GET /cart"]
    assert (cart["count"], cart["errors"], cart["rps"], cart["error_rate"]) == (100, 0, 3.3333, 0.0)
    assert (cart["max_ms"], cart["apdex"], cart["level"]) == (20.0, 1.0, "excellent")
    assert cart["p95_ms"] == round(reference(CART_MS).quantile(0.95), 3)

    search = views["GET /search"]
    assert (search["count"], search["errors"], search["rps"], search["error_rate"]) == (60, 3, 3.0, 0.05)
    assert search["level"] == "poor"  # 5% errors: five times the objective


def test_latency_filters_by_service_and_endpoint(api: TestClient) -> None:
    def endpoints(url: str) -> list[tuple[str, str]]:
        return [(v["service"], v["endpoint"]) for v in get_json(api, url)["views"]]

    assert endpoints("/api/v1/latency?service=search") == [("search", "GET /search")]
    assert endpoints("/api/v1/latency?endpoint=GET%20/cart") == [("checkout", "GET /cart")]
    assert endpoints("/api/v1/latency?service=search&endpoint=GET%20/cart") == []
    assert endpoints("/api/v1/latency?service=nobody") == []


def test_empty_parameters_mean_not_given(api: TestClient) -> None:
    assert get_json(api, "/api/v1/latency?service=&endpoint=&range=") == get_json(api, "/api/v1/latency")


def test_the_range_selects_windows_and_is_capped_at_the_history(api: TestClient) -> None:
    short = get_json(api, "/api/v1/latency?range=10s&service=checkout&endpoint=POST%20/pay")
    assert short["range_s"] == 10.0
    (view,) = short["views"]
    # Only the open window [NOW-10, NOW): a third of the spans, over 10 s.
    assert view["count"] == int(np.count_nonzero(np.linspace(NOW - 29.9, NOW - 0.1, 200) >= NOW - 10))
    assert view["rps"] == round(view["count"] / 10, 4)
    week = get_json(api, "/api/v1/latency?range=7d")
    assert week["range_s"] == 3600.0
    assert week["views"] == get_json(api, "/api/v1/latency?range=1h")["views"]


# ---------------------------------------------------------------- services


def test_services_summarise_their_endpoints(api: TestClient) -> None:
    body = get_json(api, "/api/v1/services")
    all_checkout = reference(PAY_MS, CART_MS)
    assert body == {
        "services": [
            {
                "name": "checkout",
                "endpoints": 2,
                "count": 300,
                "errors": 20,
                "rps": 10.0,  # 200/30 + 100/30
                "error_rate": 0.0667,
                "p95_ms": round(all_checkout.quantile(0.95), 3),  # of all requests, merged
                "level": "critical",  # the worst endpoint's
            },
            {
                "name": "search",
                "endpoints": 1,
                "count": 60,
                "errors": 3,
                "rps": 3.0,
                "error_rate": 0.05,
                "p95_ms": round(reference(SEARCH_MS).quantile(0.95), 3),
                "level": "poor",
            },
        ],
        "range_s": 300.0,
    }
    true_p95 = nearest_rank(np.concatenate([PAY_MS, CART_MS]), 0.95)
    assert body["services"][0]["p95_ms"] == pytest.approx(true_p95, rel=0.0055)


def test_an_empty_aggregator_answers_empty_lists() -> None:
    empty = client(context(LatencyAggregator(window_s=10, history_s=3600, clock=lambda: NOW)))
    assert get_json(empty, "/api/v1/services") == {"services": [], "range_s": 300.0}
    assert get_json(empty, "/api/v1/latency") == {"views": [], "range_s": 300.0}
    assert get_json(empty, "/api/v1/bottlenecks") == {"bottlenecks": [], "range_s": 900.0}
    assert get_json(empty, "/api/v1/trends") == {"trends": [], "range_s": 3600.0}


# ------------------------------------------------------------- bottlenecks


def test_bottlenecks_rank_errors_breaches_and_time(api: TestClient) -> None:
    body = get_json(api, "/api/v1/bottlenecks")
    assert body["range_s"] == 900.0
    found = body["bottlenecks"]
    assert [(b["kind"], b["service"], b["endpoint"]) for b in found] == [
        ("error_hotspot", "checkout", "POST /pay"),
        ("time_share", "checkout", "POST /pay"),
        ("error_hotspot", "search", "GET /search"),
        ("slo_breach", "checkout", "POST /pay"),
        ("time_share", "search", "GET /search"),
    ]  # GET /cart takes 2.2% of the time: under the 5% that makes a time_share
    by_kind = {(b["kind"], b["endpoint"]): b for b in found}
    total_ms = PAY_MS.sum() + CART_MS.sum() + SEARCH_MS.sum()
    assert by_kind[("time_share", "POST /pay")]["score"] == round(PAY_MS.sum() / total_ms, 4)
    assert by_kind[("time_share", "GET /search")]["evidence"] == {
        "share": round(SEARCH_MS.sum() / total_ms, 4),
        "total_ms": round(SEARCH_MS.sum(), 3),
        "count": 60,
        "mean_ms": 100.0,
    }
    assert by_kind[("error_hotspot", "POST /pay")]["score"] == round(math.sqrt(20 / 23), 4)
    assert by_kind[("error_hotspot", "GET /search")]["score"] == round(math.sqrt(3 / 23), 4)
    breach = by_kind[("slo_breach", "POST /pay")]
    p95 = round(reference(PAY_MS).quantile(0.95), 3)
    assert breach["evidence"] == {
        "p95_ms": p95,
        "slo_p95_ms": 300.0,
        "ratio": round(p95 / 300, 4),
        "count": 200,
        "request_share": round(200 / 360, 4),
    }
    assert breach["score"] == round((p95 / 300 - 1) * math.sqrt(200 / 360), 4)
    assert list(found[0]) == ["kind", "service", "endpoint", "score", "summary", "evidence"]
    assert found[0]["summary"] == "POST /pay fails 10% of requests against a 1% SLO (20 errors, 87% of all errors)"


def test_bottlenecks_answer_is_the_report_itself() -> None:
    ctx = context()
    body = get_json(client(ctx), "/api/v1/bottlenecks?service=search&limit=1&range=1h")
    expected = bottleneck_report(ctx.aggregator, ctx.slo, 3600.0, "search", 1)
    assert body == {"bottlenecks": [view_to_dict(b) for b in expected], "range_s": 3600.0}
    assert [(b["kind"], b["endpoint"]) for b in body["bottlenecks"]] == [("error_hotspot", "GET /search")]


# ------------------------------------------------------------------ trends


def degrading_aggregator() -> LatencyAggregator:
    """Twelve closed windows in which P95 climbs 20 ms per window, 50 requests each."""
    agg = LatencyAggregator(window_s=10, history_s=3600, clock=lambda: NOW)
    for i in range(12):
        start = NOW - 120 + 10 * i
        durations = np.linspace(90.0, 110.0, 50) + 20.0 * i
        agg.add_spans(spans("checkout", "POST /pay", durations, np.linspace(start + 0.1, start + 9.9, 50)))
    agg.add_spans(spans("search", "GET /search", np.full(5, 10.0), np.full(5, NOW - 55.0)))
    return agg


def test_trends_report_a_degrading_endpoint() -> None:
    ctx = context(degrading_aggregator())
    body = get_json(client(ctx), "/api/v1/trends")
    assert body["range_s"] == 3600.0
    (trend,) = body["trends"]  # search has one window: not enough for a line
    assert list(trend) == [
        "service", "endpoint", "windows", "window_s", "direction", "throughput_direction",
        "p95_ms", "rps", "slo_p95_ms", "slo_breach_in_s",
    ]  # fmt: skip
    assert (trend["service"], trend["endpoint"]) == ("checkout", "POST /pay")
    assert (trend["windows"], trend["window_s"]) == (12, 10.0)
    assert (trend["direction"], trend["throughput_direction"]) == ("degrading", "stable")
    assert trend["p95_ms"]["slope"] == pytest.approx(2.0, rel=0.01)  # 20 ms per 10 s window
    assert trend["p95_ms"]["significant"] is True
    assert list(trend["p95_ms"]) == ["slope", "intercept", "r_squared", "p_value", "significant", "forecast"]
    assert trend["rps"]["slope"] == 0.0 and trend["rps"]["forecast"] == 5.0
    assert trend["slo_p95_ms"] == 300.0
    expected = trend_report(ctx.aggregator, ctx.slo, 3600.0)
    assert body["trends"] == [view_to_dict(t) for t in expected]
    # The line reaches 300 ms: latest P95 is about 330 ms, so already breached.
    assert trend["slo_breach_in_s"] == 0.0


def test_trends_filter_and_short_ranges() -> None:
    api = client(context(degrading_aggregator()))
    assert get_json(api, "/api/v1/trends?service=search")["trends"] == []
    assert get_json(api, "/api/v1/trends?endpoint=POST%20/pay&range=30s") == {"trends": [], "range_s": 30.0}
    assert len(get_json(api, "/api/v1/trends?endpoint=POST%20/pay&range=1m")["trends"]) == 1


# ------------------------------------------------------------------ errors

DURATION_HINT = "(use e.g. 500ms, 10s, 5m, 1h30m, 7d)"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/api/v1/latency?range=x", f"range: not a duration: 'x' {DURATION_HINT}"),
        ("/api/v1/services?range=0", "range: duration must be positive and finite, got '0'"),
        ("/api/v1/trends?range=-1h", f"range: not a duration: '-1h' {DURATION_HINT}"),
        ("/api/v1/bottlenecks?range=5%20parsecs", f"range: not a duration: '5 parsecs' {DURATION_HINT}"),
        ("/api/v1/bottlenecks?limit=x", "limit: not an integer: 'x'"),
        ("/api/v1/bottlenecks?limit=1_0", "limit: not an integer: '1_0'"),
        ("/api/v1/bottlenecks?limit=2.5", "limit: not an integer: '2.5'"),
        ("/api/v1/bottlenecks?limit=0", "limit: must be from 1 to 1000, got 0"),
        ("/api/v1/bottlenecks?limit=-3", "limit: must be from 1 to 1000, got -3"),
        ("/api/v1/bottlenecks?limit=1001", "limit: must be from 1 to 1000, got 1001"),
        ("/api/v1/latency?rnage=1h", "unknown parameter 'rnage' (known: endpoint, range, service)"),
        ("/api/v1/latency?limit=1", "unknown parameter 'limit' (known: endpoint, range, service)"),
        ("/api/v1/services?service=a&x=1", "unknown parameters 'service', 'x' (known: range)"),
        ("/api/v1/bottlenecks?endpoint=a", "unknown parameter 'endpoint' (known: limit, range, service)"),
        ("/api/v1/trends?step=1m", "unknown parameter 'step' (known: endpoint, range, service)"),
        ("/api/v1/health?verbose=1", "unknown parameter 'verbose' (this endpoint takes none)"),
        ("/api/v1/latency?range=5m&range=1h", "range: given 2 times, expected once"),
        ("/api/v1/trends?endpoint=a&endpoint=", "endpoint: given 2 times, expected once"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(api: TestClient, url: str, message: str) -> None:
    assert get_json(api, url, 400) == {"error": message}


@pytest.mark.parametrize("path", ["/", "/api/v1", "/api/v2/latency", "/api/v1/latency/extra", "/metrics.txt"])
def test_unknown_paths_are_404_json(api: TestClient, path: str) -> None:
    assert get_json(api, path, 404) == {"error": f"not found: {path}"}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize(
    "path",
    ["/healthz", "/readyz", "/api/v1/health", "/api/v1/services", "/api/v1/latency",
     "/api/v1/bottlenecks", "/api/v1/trends", "/metrics", "/api/v1/label/service.name/values"],
)  # fmt: skip
def test_other_methods_are_405_json_with_allow(api: TestClient, method: str, path: str) -> None:
    response = api.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": f"method {method} not allowed on {path} (allowed: GET, HEAD)"}


def test_a_bug_is_a_500_json_error() -> None:
    def broken() -> Iterable[Sample]:
        raise RuntimeError("counter registry corrupted")

    response = client(context(self_metrics=broken)).get("/metrics")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (the daemon's log has the details)"}


def test_nan_becomes_null_in_json() -> None:
    view = LatencyView("s", "e", 0, 0, 0.0, 0.0, math.nan, math.nan, math.nan, math.nan, math.nan, "excellent")
    body = json_response({"views": [view_to_dict(view)]}).body
    assert b'"p50_ms":null' in body and b'"apdex":null' in body and b"NaN" not in body


# ----------------------------------------------------------------- /metrics


def test_metrics_is_prometheus_text_with_self_metrics_and_span_latency() -> None:
    samples = [
        Sample("pipeline.accepted", "counter", "Items accepted into the pipeline.", {"signal": "traces"}, 360),
        Sample("pipeline.accepted", "counter", "Items accepted into the pipeline.", {"signal": "logs"}, 0),
        Sample("pipeline.pending", "gauge", "Items waiting for the worker.", {}, 0),
        Sample("receiver.requests", "counter", "Requests.", {"protocol": "http", "http.route": "/v1/traces"}, 4),
    ]
    ctx = context(self_metrics=lambda: samples)
    response = client(ctx).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    parsed = parse_exposition(response.text)

    accepted = parsed["trm_otel_pipeline_accepted_total"]
    assert (accepted.type, accepted.help) == ("counter", "Items accepted into the pipeline.")
    assert accepted.value("trm_otel_pipeline_accepted_total", signal="traces") == 360
    assert parsed["trm_otel_pipeline_pending"].type == "gauge"
    assert parsed["trm_otel_receiver_requests_total"].value(
        "trm_otel_receiver_requests_total", protocol="http", http_route="/v1/traces"
    ) == 4
    assert parsed["trm_otel_build_info"].value("trm_otel_build_info", version="1.2.3") == 1

    views = {(v["service"], v["endpoint"]): v for v in get_json(client(ctx), "/api/v1/latency")["views"]}
    for stat in ("p50", "p95", "p99"):
        family = parsed[f"trm_otel_latency_{stat}_ms"]
        assert family.type == "gauge"
        assert {(lab["service"], lab["endpoint"]): v for _, lab, v in family.samples} == {
            key: view[f"{stat}_ms"] for key, view in views.items()
        }

    duration = parsed["traces_span_metrics_duration_milliseconds"]
    calls = parsed["traces_span_metrics_calls_total"]
    assert (duration.type, calls.type) == ("histogram", "counter")
    series = {
        ("checkout", "POST /pay", "STATUS_CODE_UNSET"): PAY_MS[PAY_STATUS == 0],
        ("checkout", "POST /pay", "STATUS_CODE_ERROR"): PAY_MS[PAY_STATUS == ERROR],
        ("checkout", "GET /cart", "STATUS_CODE_UNSET"): CART_MS,
        ("search", "GET /search", "STATUS_CODE_UNSET"): SEARCH_MS[SEARCH_STATUS == 0],
        ("search", "GET /search", "STATUS_CODE_ERROR"): SEARCH_MS[SEARCH_STATUS == ERROR],
    }
    assert len(calls.samples) == len(series)
    for (service, name, status), values in series.items():
        labels = {"service_name": service, "span_name": name, "span_kind": "SPAN_KIND_SERVER", "status_code": status}
        assert calls.value("traces_span_metrics_calls_total", **labels) == len(values)
        assert duration.value("traces_span_metrics_duration_milliseconds_count", **labels) == len(values)
        assert duration.value("traces_span_metrics_duration_milliseconds_sum", **labels) == pytest.approx(values.sum())
        for bound in SPAN_DURATION_BOUNDS_MS:
            got = duration.value("traces_span_metrics_duration_milliseconds_bucket", **labels, le=f"{bound:g}")
            exact = int(np.count_nonzero(values <= bound))
            near = int(np.count_nonzero((values > bound / 1.011) & (values <= bound * 1.011)))
            assert abs(got - exact) <= near, (service, name, status, bound, got, exact)


def test_metrics_are_gzipped_for_scrapers_that_accept_it() -> None:
    api = client()
    zipped = api.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept, Accept-Encoding"  # the body depends on Accept too (OpenMetrics)
    assert int(zipped.headers["content-length"]) < len(zipped.text) / 5
    plain = api.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.text == zipped.text
    parse_exposition(plain.text)


@pytest.mark.parametrize(
    ("accept", "gzipped"),
    [
        ("gzip", True),
        ("deflate, GZIP", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("gzip;q=x", False),
        ("identity", False),
        ("", False),
        ("x-gzip", False),
    ],
)
def test_gzip_follows_accept_encoding(accept: str, gzipped: bool) -> None:
    body = b"x" * 2000
    out, headers = compressed(body, accept)
    assert headers.get("Content-Encoding") == ("gzip" if gzipped else None)
    assert (gzip.decompress(out) if gzipped else out) == body
    assert compressed(b"small", "gzip") == (b"small", {"Vary": "Accept-Encoding"})


def test_metrics_buckets_are_cumulative_across_scrapes() -> None:
    ctx = context()
    api = client(ctx)
    labels = (
        'service_name="search",span_name="GET /search",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"'
    )
    line = f"traces_span_metrics_duration_milliseconds_count{{{labels}}}"

    def count() -> float:
        (found,) = [row for row in api.get("/metrics").text.splitlines() if row.startswith(line + " ")]
        return float(found.rsplit(" ", 1)[1])

    assert count() == 57
    ctx.aggregator.add_spans(spans("search", "GET /search", np.full(10, 90.0), np.full(10, NOW - 1.0)))
    assert count() == 67


# ------------------------------------------------------------- concurrency


def test_queries_and_scrapes_never_run_on_the_event_loop() -> None:
    agg = fed_aggregator()
    seen: list[bool] = []
    original = agg.endpoints

    def on_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def endpoints(*args: Any, **kwargs: Any) -> Any:
        seen.append(on_loop())
        return original(*args, **kwargs)

    agg.endpoints = endpoints  # type: ignore[method-assign]

    def samples() -> list[Sample]:
        seen.append(on_loop())
        return []

    api = client(context(agg, self_metrics=samples))
    for url in ("/api/v1/services", "/api/v1/latency", "/api/v1/bottlenecks", "/metrics"):
        assert api.get(url).status_code == 200
    assert seen and not any(seen)


def test_a_query_storm_is_bounded_and_probes_still_answer() -> None:
    """Twelve slow queries at once: at most QUERY_THREADS run, /healthz and /readyz are not queued."""
    agg = fed_aggregator()
    original = agg.endpoints
    running = 0
    peak = 0
    lock = threading.Lock()

    def slow_endpoints(*args: Any, **kwargs: Any) -> Any:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)
        with lock:
            running -= 1
        return original(*args, **kwargs)

    agg.endpoints = slow_endpoints  # type: ignore[method-assign]
    app = build_api_app(context(agg))

    async def storm() -> tuple[list[int], float, list[int]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            codes: list[int] = []
            probes: list[int] = []
            probe_s = 0.0

            async def query() -> None:
                codes.append((await http.get("/api/v1/latency")).status_code)

            async def probe() -> None:
                nonlocal probe_s
                await anyio.sleep(0.05)  # the storm is under way
                started = time.perf_counter()
                probes.append((await http.get("/healthz")).status_code)
                probes.append((await http.get("/readyz")).status_code)
                probe_s = time.perf_counter() - started

            async with anyio.create_task_group() as group:
                for _ in range(12):
                    group.start_soon(query)
                group.start_soon(probe)
            return codes, probe_s, probes

    codes, probe_s, probes = anyio.run(storm)
    assert codes == [200] * 12
    assert peak == QUERY_THREADS
    assert probes == [200, 200]
    assert probe_s < 0.3  # queued behind the queries it would take over 0.5 s


def test_the_package_exports_only_the_factory_its_context_and_sample() -> None:
    import trm_otel.api

    assert sorted(trm_otel.api.__all__) == ["ApiContext", "Sample", "build_api_app"]

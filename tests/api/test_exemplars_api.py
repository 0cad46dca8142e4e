"""``/api/v1/exemplars``, exemplars in ``/api/v1/latency``, and ``/metrics`` as OpenMetrics with exemplars."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from trm_otel.api import ApiContext, build_api_app
from trm_otel.api.auth import Authenticator, AuthMiddleware, TokenConfig
from trm_otel.api.prometheus import wants_openmetrics
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.series import Dimension
from trm_otel.processors.span_batch import SpanBatch
from trm_otel.receivers.otlp_traces import decode_traces
from trm_otel.slo import SloPolicy

from tests.processors.test_dimensions import request

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

SHOP_TOKEN, OTHER_TOKEN = "shop-token-0123456789", "other-token-0123456789"
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
SLOW_USER = "u-slow-42"


@pytest.fixture(scope="module")
def api() -> TestClient:
    aggregators = {
        tenant: LatencyAggregator(window_s=10, track_cumulative=True, dimensions=(Dimension("http.route"),))
        for tenant in ("shop", "other")
    }
    spans = [("GET /cart", 5.0 + i % 10, {"http.route": "/cart", "enduser.id": f"u-{i}"}) for i in range(300)]
    spans.insert(150, ("GET /cart", 1800.0, {"http.route": "/cart", "enduser.id": SLOW_USER}))
    aggregators["shop"].add_spans(decode_traces(request(spans), max_age_s=3600).batch)
    n = 20
    aggregators["other"].add_spans(SpanBatch(
        ["other"] * n, ["GET /x"] * n, np.full(n, 2, np.int8), np.zeros(n, np.int8),
        np.full(n, int(aggregators["other"].clock() * 1e9), np.int64), np.full(n, 3000.0),
        np.arange(1, n + 1, dtype=np.uint64), np.zeros(n, np.uint64),
    ))
    context = ApiContext(
        aggregator=aggregators["shop"], slo=SloPolicy(), ready=lambda: True, health=lambda: {"status": "healthy"},
        self_metrics=lambda: [], version="0.0.0-test", tenant_aggregator=aggregators.__getitem__,
    )
    tokens = [TokenConfig(token=SHOP_TOKEN, tenant="shop"), TokenConfig(token=OTHER_TOKEN, tenant="other")]
    client = TestClient(AuthMiddleware(build_api_app(context), Authenticator(tokens)))
    client.headers["Authorization"] = f"Bearer {SHOP_TOKEN}"
    return client


def slow_trace_id() -> str:
    return f"{151:032x}"  # request() numbers trace ids from 1 in span order


def test_the_slow_outlier_is_the_first_exemplar_of_its_latency_item(api: TestClient) -> None:
    (view,) = api.get("/api/v1/latency").json()["views"]
    first = view["exemplars"][0]
    assert first["trace_id"] == slow_trace_id() and first["span_id"] == f"{151:016x}"
    assert first["duration_ms"] == 1800.0 and first["attributes"]["enduser.id"] == SLOW_USER
    assert set(first) == {"trace_id", "span_id", "duration_ms", "time", "attributes"}
    assert 4 <= len(view["exemplars"]) <= 6  # three slowest, then the sample (minus spans in both)


def test_exemplars_are_listed_by_selector_and_minimum_duration(api: TestClient) -> None:
    body = api.get("/api/v1/exemplars", params={
        "q": 'traces.span.metrics.duration{service.name="shop", http.route="/cart"}', "min_ms": "1000",
    }).json()
    (only,) = body["exemplars"]
    assert only["trace_id"] == slow_trace_id() and only["attributes"]["enduser.id"] == SLOW_USER
    assert only["labels"]["http.route"] == "/cart" and only["labels"]["service.name"] == "shop"
    every = api.get("/api/v1/exemplars", params={"q": "traces.span.metrics.duration[5m]", "limit": "3"}).json()
    assert [e["duration_ms"] for e in every["exemplars"]] == sorted((e["duration_ms"] for e in every["exemplars"]),
                                                                    reverse=True)
    assert len(every["exemplars"]) == 3 and every["end"] - every["start"] == 300
    none = api.get("/api/v1/exemplars", params={"q": 'traces.span.metrics.duration{http.route="/nope"}'}).json()
    assert none["exemplars"] == []


def test_each_tenant_sees_only_its_own_exemplars(api: TestClient) -> None:
    response = api.get("/api/v1/exemplars", params={"q": "traces.span.metrics.duration"},
                       headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    assert {e["labels"]["service.name"] for e in response.json()["exemplars"]} == {"other"}
    mine = api.get("/api/v1/exemplars", params={"q": "traces.span.metrics.duration"}).json()["exemplars"]
    assert {e["labels"]["service.name"] for e in mine} == {"shop"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "q: required"),
        ({"q": "traces.span.metrics.duration{"}, "q: 1:30: expected a label name or '}'"),
        ({"q": "system.cpu.utilization"}, "q: exemplars are kept for traces.span.metrics.duration"),
        ({"q": "traces.span.metrics.duration", "min_ms": "-1"}, "min_ms: must be a number >= 0"),
        ({"q": "traces.span.metrics.duration", "start": "20", "end": "10"}, "start: must be before end"),
        ({"q": "traces.span.metrics.duration", "limit": "0"}, "limit: must be from 1 to 1000"),
        ({"q": "traces.span.metrics.duration", "rnage": "1h"}, "unknown parameter 'rnage'"),
    ],
)
def test_bad_parameters_are_400s_that_say_what_to_fix(api: TestClient, params: dict, message: str) -> None:
    response = api.get("/api/v1/exemplars", params=params)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message), response.json()


def test_openmetrics_scrapes_carry_exemplars_and_plain_scrapes_do_not(api: TestClient) -> None:
    plain = api.get("/metrics")
    assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert " # {" not in plain.text and "# EOF" not in plain.text
    om = api.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    assert om.headers["content-type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert om.text.endswith("# EOF\n")
    lines = om.text.splitlines()
    exemplar = re.compile(
        r'^traces_span_metrics_duration_milliseconds_bucket\{(?P<labels>[^}]*)\} (?P<count>\d+) '
        r'# \{trace_id="(?P<trace>[0-9a-f]{32})",span_id="(?P<span>[0-9a-f]{16})"\} '
        r'(?P<value>[0-9.]+) (?P<ts>\d+\.\d{3})$'
    )
    found = [m for m in map(exemplar.match, lines) if m]
    slow = [m for m in found if m["trace"] == slow_trace_id()]
    assert len(slow) == 1 and float(slow[0]["value"]) == 1800.0
    assert 'le="2000"' in slow[0]["labels"] and 'http_route="/cart"' in slow[0]["labels"]  # its own bucket
    # OpenMetrics names counter families without _total; their samples keep it.
    assert "# TYPE traces_span_metrics_calls counter" in lines
    assert any(line.startswith("traces_span_metrics_calls_total{") for line in lines)
    assert all(line.startswith("#") or " # " not in line or "_bucket{" in line for line in lines)


def test_accept_negotiation_follows_quality() -> None:
    assert wants_openmetrics(PROMETHEUS_ACCEPT)
    assert wants_openmetrics("application/openmetrics-text")
    assert not wants_openmetrics("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5")
    assert not wants_openmetrics("application/openmetrics-text;version=2.0.0")
    assert not wants_openmetrics("application/openmetrics-text;q=0")
    assert not wants_openmetrics("") and not wants_openmetrics("*/*")

"""The daemon end to end: exemplars through the API, /metrics (OpenMetrics) and OTLP export,
dimensions slicing queries, and the cardinality limit reporting the dimension that overflowed."""

from __future__ import annotations

import re
import time

import httpx
import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.otlp_sink import OtlpSink

from .daemon_process import DaemonProcess

OPENMETRICS = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3"
LIMIT = 10


def send(endpoint: str, service: str, spans: list[tuple[str, float, dict]]) -> dict[int, int]:
    """Real OTLP/gRPC export of ``(name, duration ms, attributes)`` spans ending now; trace id by index."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True),
                                                   max_queue_size=20_000, max_export_batch_size=512))
    tracer = provider.get_tracer("e2e")
    now = time.time_ns()
    traces = {}
    for i, (name, duration_ms, attributes) in enumerate(spans):
        end = now - i * 1000
        span = tracer.start_span(name, start_time=end - int(duration_ms * 1e6), attributes=attributes)
        span.end(end_time=end)
        traces[i] = span.get_span_context().trace_id
    provider.shutdown()
    return traces


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    with OtlpSink() as upstream:
        config = {
            "processors": {"latency": {
                "window": "1s",
                "cardinality_limit": LIMIT,
                "dimensions": [{"name": "http.route"}, {"name": "enduser.id", "default": "anonymous"}],
            }},
            "exporters": {"otlp/upstream": {"endpoint": upstream.endpoint, "compression": "none",
                                            "signals": ["spanmetrics"]}},
            "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["latency"],
                                                 "exporters": ["otlp/upstream"]}}},
        }
        with DaemonProcess(tmp_path_factory.mktemp("exemplars"), config) as daemon:
            spans = [("GET /cart", 5.0 + i % 20, {"http.route": "/cart"}) for i in range(300)]
            spans.insert(120, ("GET /cart", 2400.0, {"http.route": "/cart", "enduser.id": "u-slow-42"}))
            traces = send(daemon.grpc_endpoint, "shop", spans)
            daemon.wait_for_count(301, service="shop")
            yield daemon, upstream, traces[120]


def test_a_slow_outlier_is_an_exemplar_in_the_api(setup) -> None:
    daemon, _, slow_trace = setup
    (view,) = daemon.get("/api/v1/latency", service="shop")["views"]
    slowest = view["exemplars"][0]
    assert slowest["trace_id"] == f"{slow_trace:032x}"
    assert slowest["duration_ms"] == pytest.approx(2400.0)
    assert slowest["attributes"]["enduser.id"] == "u-slow-42" and slowest["attributes"]["http.route"] == "/cart"
    found = daemon.get("/api/v1/exemplars", q='traces.span.metrics.duration{service.name="shop"}', min_ms="1000")
    (only,) = found["exemplars"]
    assert only["trace_id"] == f"{slow_trace:032x}"
    assert only["labels"]["enduser.id"] == "u-slow-42"  # a dimension: its own series


def test_a_slow_outlier_is_an_exemplar_in_openmetrics_scrapes(setup) -> None:
    daemon, _, slow_trace = setup
    response = httpx.get(f"{daemon.api_url}/metrics", headers={"Accept": OPENMETRICS}, timeout=10)
    assert response.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.text.endswith("# EOF\n")
    (line,) = [line for line in response.text.splitlines() if f'trace_id="{slow_trace:032x}"' in line]
    assert re.match(r'traces_span_metrics_duration_milliseconds_bucket\{.*le="5000"\} 1 # \{trace_id="[0-9a-f]{32}",'
                    r'span_id="[0-9a-f]{16}"\} 2400(\.0+)? \d+\.\d{3}$', line), line
    plain = httpx.get(f"{daemon.api_url}/metrics", timeout=10)
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4") and " # {" not in plain.text


def test_a_slow_outlier_is_an_exemplar_in_the_otlp_export(setup) -> None:
    _, upstream, slow_trace = setup
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        exemplars = [
            exemplar
            for resource, point in upstream.metric_points("traces.span.metrics.duration")
            if resource.get("service.name") == "shop"
            for exemplar in point.exemplars
        ]
        slow = [e for e in exemplars if e.trace_id == slow_trace.to_bytes(16, "big")]
        if slow:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"no exemplar of trace {slow_trace:032x} exported: {exemplars[:3]}")
    exemplar = slow[0]
    assert exemplar.as_double == pytest.approx(2400.0)
    assert len(exemplar.span_id) == 8
    attributes = {kv.key: kv.value.string_value for kv in exemplar.filtered_attributes}
    assert attributes["enduser.id"] == "u-slow-42"


def test_a_dimension_slices_p95_in_the_query_api(setup) -> None:
    daemon, _, _ = setup
    rng = np.random.default_rng(8)
    fast, slow = rng.lognormal(np.log(10), 0.3, 300), rng.lognormal(np.log(250), 0.3, 300)
    send(daemon.grpc_endpoint, "routes", [("GET", float(d), {"http.route": "/fast"}) for d in fast]
         + [("GET", float(d), {"http.route": "/slow"}) for d in slow])
    daemon.wait_for_count(600, service="routes")
    body = daemon.get("/api/v1/query", q='p95(traces.span.metrics.duration{service.name="routes"}[5m]) by (http.route)')
    p95 = {r["metric"]["http.route"]: float(r["value"][1]) for r in body["data"]["result"]}
    assert p95["/fast"] == pytest.approx(np.quantile(fast, 0.95, method="inverted_cdf"), rel=0.01)
    assert p95["/slow"] == pytest.approx(np.quantile(slow, 0.95, method="inverted_cdf"), rel=0.01)


def test_crossing_the_cardinality_limit_is_folded_and_reported(setup) -> None:
    daemon, _, _ = setup
    send(daemon.grpc_endpoint, "noisy", [("GET /item", 3.0, {"http.route": f"/item/{i}"}) for i in range(3 * LIMIT)])
    views = daemon.wait_for_count(3 * LIMIT, service="noisy")
    assert {v["endpoint"] for v in views} == {"GET /item", "(overflow)"}
    assert sum(v["count"] for v in views if v["endpoint"] == "(overflow)") == 2 * LIMIT
    metrics = httpx.get(f"{daemon.api_url}/metrics", timeout=10).text
    assert f'trm_otel_series_overflow_total{{service="noisy",dimension="http.route"}} {2 * LIMIT}' in metrics
    health = httpx.get(f"{daemon.api_url}/api/v1/health", timeout=10).json()
    (check,) = [c for c in health["checks"] if c["name"] == "series_overflow"]
    assert check["status"] == "degraded" and "most distinct values: http.route" in check["detail"]
    assert any("service 'noisy' reached cardinality_limit 10" in line and "http.route has the most distinct values"
               in line for line in daemon.log)

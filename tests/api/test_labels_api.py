"""``GET /api/v1/label/{name}/values``: Prometheus-shaped label values over each tenant's memory and storage."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from trm_otel.api import ApiContext, build_api_app
from trm_otel.api.auth import Authenticator, AuthMiddleware, TokenConfig
from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.log_counts import LogCounts
from trm_otel.processors.otlp_metrics import OtlpMetricsIngest
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.query import CombinedSource, MemorySource
from trm_otel.series_source import Matcher, SeriesRef
from trm_otel.storage import StorageSource, Store
from trm_otel.tenants import TenantData, Tenants

from .test_app import CART_MS, NOW, PAY_MS, POLICY, SEARCH_MS, spans

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

SHOP_VIEWER, OTHER_ADMIN = "shop-viewer-0123456789", "other-admin-0123456789"
CALLS = "traces.span.metrics.calls"
DURATION = "traces.span.metrics.duration"


def memory(tenant: str) -> tuple[LatencyAggregator, ScalarSeriesStore]:
    aggregator = LatencyAggregator(window_s=10, history_s=3600, clock=lambda: NOW)
    scalars = ScalarSeriesStore(window_s=10, clock=lambda: NOW)
    end_ns = int((NOW - 5) * 1e9)
    if tenant == "shop":
        aggregator.add_spans(spans("checkout", "POST /pay", PAY_MS, np.linspace(NOW - 29.9, NOW - 0.1, 200)))
        aggregator.add_spans(spans("checkout", "GET /cart", CART_MS, np.linspace(NOW - 29.9, NOW - 0.1, 100)))
        aggregator.add_spans(spans("search", "GET /search", SEARCH_MS, np.linspace(NOW - 19.9, NOW - 0.1, 60)))
        # a service that only reports metrics: no span series, no panel of span queries shows it
        scalars.record_gauge(("queue.depth", "worker", (("queue", "orders"),)), end_ns, 12.0)
        scalars.record_gauge(("queue.depth", "worker", (("queue", "mail"),)), end_ns, 3.0)
    else:
        aggregator.add_spans(spans("secret-svc", "GET /hidden", CART_MS, np.linspace(NOW - 29.9, NOW - 0.1, 100)))
    return aggregator, scalars


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """History only storage knows: a service gone before start-up, a stored scalar metric."""
    path: Path = tmp_path_factory.mktemp("labels") / "store.sqlite3"
    with Store(path, window_s=10, clock=lambda: NOW) as opened:
        histogram = ExponentialHistogram()
        histogram.record(np.array([12.0, 30.0]))
        start = int(NOW - 7200)
        labels = {"service.name": "legacy", "span.name": "GET /old", "span.kind": "SPAN_KIND_SERVER",
                  "status.code": "STATUS_CODE_UNSET"}
        opened.write_latency([("shop", DURATION, labels, start, histogram)])
        opened.write_scalars([("shop", "jvm.threads", {"service.name": "billing", "state": "runnable"}, "gauge",
                               start, 40.0)])
        opened.write_latency([("other", DURATION, {**labels, "service.name": "other-legacy"}, start, histogram)])
        yield opened


def tenants(store: Store | None) -> Tenants:
    def factory(name: str) -> TenantData:
        aggregator, scalars = memory(name)
        source: Any = MemorySource(aggregator, scalars, tenant=name)
        if store is not None:
            source = CombinedSource(source, StorageSource(store, tenant=name), boundary_s=lambda: NOW - 3600)
        logs = LogCounts(window_s=10)
        return TenantData(name, aggregator, scalars, logs, OtlpMetricsIngest(aggregator, scalars), source)

    return Tenants(factory)


def client(source: Any, tokens: Sequence[TokenConfig] = ()) -> TestClient:
    aggregator = LatencyAggregator(window_s=10, clock=lambda: NOW)
    context = ApiContext(aggregator=aggregator, slo=POLICY, ready=lambda: True, health=dict, self_metrics=list,
                         version="test", query_source=source)
    app: Any = build_api_app(context)
    if tokens:
        app = AuthMiddleware(app, Authenticator(tokens))
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def api(store: Store) -> TestClient:
    tokens = [TokenConfig(token=SHOP_VIEWER, tenant="shop", role="viewer"),
              TokenConfig(token=OTHER_ADMIN, tenant="other", role="admin")]
    found = client(tenants(store).source, tokens)
    found.headers["Authorization"] = f"Bearer {SHOP_VIEWER}"
    return found


def values(api: TestClient, name: str, *matches: str, **params: str) -> list[str]:
    query: list[tuple[str, str]] = [("match[]", m) for m in matches] + list(params.items())
    response = api.get(f"/api/v1/label/{name}/values", params=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "success" and list(body) == ["status", "data"]
    return body["data"]


# ------------------------------------------------------------------ answers


def test_without_a_selector_every_series_of_the_tenant_is_read(api: TestClient) -> None:
    # span series, a metrics-only service in memory, and services storage alone remembers
    assert values(api, "service.name") == ["billing", "checkout", "legacy", "search", "worker"]
    assert values(api, "queue") == ["mail", "orders"]
    assert values(api, "state") == ["runnable"]
    assert values(api, "no.such.label") == []


def test_selectors_narrow_the_series_and_several_are_merged(api: TestClient) -> None:
    assert values(api, "span.name", f'{CALLS}{{service.name="checkout"}}') == ["GET /cart", "POST /pay"]
    assert values(api, "span.name", f'{DURATION}{{service.name=~"search|legacy"}}') == ["GET /old", "GET /search"]
    assert values(api, "service.name", "queue.depth", "jvm.threads") == ["billing", "worker"]
    assert values(api, "service.name", '{queue="orders"}') == ["worker"]  # no metric name: every metric
    assert values(api, "service.name", f'{CALLS}{{service.name="nobody"}}') == []
    assert values(api, "service.name", "no.such.metric") == []


def test_metric_names_are_the_values_of_name(api: TestClient) -> None:
    assert values(api, "__name__") == ["jvm.threads", "queue.depth", CALLS, DURATION]
    assert values(api, "__name__", '{service.name="worker"}') == ["queue.depth"]


def test_start_and_end_are_accepted(api: TestClient) -> None:
    everything = values(api, "service.name")
    assert values(api, "service.name", start=str(NOW - 3600), end="2027-01-15T08:00:00Z") == everything
    assert values(api, "service.name", start="", end="") == everything  # blank form fields mean "not given"


def test_each_tenant_sees_only_its_own_values(api: TestClient) -> None:
    shop = values(api, "service.name")
    assert "secret-svc" not in shop and "other-legacy" not in shop
    other = api.get("/api/v1/label/service.name/values", headers={"Authorization": f"Bearer {OTHER_ADMIN}"})
    assert other.json() == {"status": "success", "data": ["other-legacy", "secret-svc"]}
    selector = f'{CALLS}{{service.name="secret-svc"}}'
    spans_of_other = api.get("/api/v1/label/span.name/values", params={"match[]": selector})
    assert spans_of_other.json()["data"] == []


def test_a_viewer_may_read_and_a_stranger_may_not(api: TestClient) -> None:
    assert api.get("/api/v1/label/service.name/values").status_code == 200  # the client's token is a viewer's
    assert api.get("/api/v1/label/service.name/values", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_a_source_that_cannot_list_its_metrics_is_read_for_span_series() -> None:
    class SpansOnly:
        window_s = 10.0

        def select(self, metric: str, matchers: Sequence[Matcher], tenant: str = "default") -> list[SeriesRef]:
            if metric != CALLS or tenant != "default":
                return []
            rows = [{"service.name": "a", "span.name": "x"}, {"service.name": "b", "span.name": "y"}]
            return [SeriesRef(i, metric, row, "latency") for i, row in enumerate(rows)
                    if all(m.matches(row) for m in matchers)]

    api = client(SpansOnly())
    assert values(api, "service.name") == ["a", "b"]
    assert values(api, "span.name", f'{CALLS}{{service.name="b"}}') == ["y"]
    assert values(api, "__name__") == [CALLS]


def test_memory_alone_answers_too() -> None:
    assert values(client(MemorySource(LatencyAggregator(), ScalarSeriesStore())), "service.name") == []
    aggregator, scalars = memory("shop")
    assert values(client(MemorySource(aggregator, scalars, tenant="default")), "service.name") == [
        "checkout", "search", "worker"]
    assert values(client(MemorySource(aggregator, scalars, tenant="shop")), "service.name") == []  # not default's


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("service.name", [("range", "1h")], "unknown parameter 'range' (known: end, match[], start)"),
        ("service.name", [("start", "1"), ("start", "2")], "start: given 2 times, expected once"),
        ("service.name", [("start", "yesterday")],
         "start: not a unix time in seconds or an RFC 3339 timestamp: 'yesterday'"),
        ("service.name", [("end", "2026-01-01T00:00:00")],
         "end: an RFC 3339 timestamp needs a time zone (Z or +hh:mm): '2026-01-01T00:00:00'"),
        ("service.name", [("start", "20"), ("end", "10")], "end: must not be before start"),
        ("service.name", [("match[]", "p95(traces.span.metrics.duration)")],
         "match[]: 1:4: expected end of selector, got '(' in 'p95(traces.span.metrics.duration)'"),
        ("service.name", [("match[]", '{service.name=shop}')],
         "match[]: 1:15: expected a quoted string after '=', got 'shop' in '{service.name=shop}'"),
        ("service.name", [("match[]", "traces.span.metrics.calls[5m]")],
         "match[]: a series selector takes no [range]: 'traces.span.metrics.calls[5m]'"),
        ("service.name", [("match[]", "{}")], "match[]: give a metric name or at least one matcher: '{}'"),
        ("service.name", [("match[]", "x")] * 21, "match[]: at most 20 selectors, got 21"),
        ("a b", [], "label name: not a label name (letters, digits, '_', '.', ':', '/', '-'): 'a b'"),
        ("1abc", [], "label name: not a label name (letters, digits, '_', '.', ':', '/', '-'): '1abc'"),
    ],
)
def test_bad_parameters_are_400s_that_name_the_parameter(
    api: TestClient, path: str, params: list[tuple[str, str]], message: str
) -> None:
    response = api.get(f"/api/v1/label/{path}/values", params=params)
    assert response.status_code == 400, response.text
    assert response.json() == {"status": "error", "errorType": "bad_data", "error": message}


def test_without_a_query_source_it_is_unavailable() -> None:
    response = client(None).get("/api/v1/label/service.name/values")
    assert response.status_code == 503
    assert response.json()["errorType"] == "unavailable"


def test_other_methods_are_405() -> None:
    response = client(None).post("/api/v1/label/service.name/values")
    assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"

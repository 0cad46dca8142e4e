"""Tenants on the real daemon: OTLP ingest by token, isolation both ways on OTLP and the API, TLS."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.alerting.notifiers.servers import make_tls_files

from .daemon_process import DaemonProcess

TOKENS = {
    "a-ingest": ("tenant-a", "ingest"),
    "a-viewer": ("tenant-a", "viewer"),
    "a-editor": ("tenant-a", "editor"),
    "b-ingest": ("tenant-b", "ingest"),
    "b-viewer": ("tenant-b", "viewer"),
    "b-editor": ("tenant-b", "editor"),
}


def token(name: str) -> str:
    return f"{name}-0123456789abcdef"


def bearer(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token(name)}"}


def send(exporter: Any, service: str, spans: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tenants")
    for _ in range(spans):
        tracer.start_span("GET /x").end()
    provider.shutdown()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    tokens = [{"name": n, "token": token(n), "tenant": t, "role": r} for n, (t, r) in TOKENS.items()]
    with DaemonProcess(tmp_path_factory.mktemp("tenants"), {"auth": {"tokens": tokens}}) as process:
        send(GrpcSpanExporter(endpoint=process.grpc_endpoint, insecure=True, headers=bearer("a-ingest")), "svc-a", 7)
        send(HttpSpanExporter(endpoint=f"{process.http_url}/v1/traces", headers=bearer("b-ingest")), "svc-b", 5)
        yield process


def api(daemon: DaemonProcess, method: str, path: str, who: str | None, **kwargs: Any) -> httpx.Response:
    headers = bearer(who) if who else {}
    return httpx.request(method, f"{daemon.api_url}{path}", headers=headers, timeout=10, **kwargs)


def services(daemon: DaemonProcess, who: str) -> dict[str, int]:
    deadline = time.monotonic() + 10
    while True:
        found = {s["name"]: s["count"] for s in api(daemon, "GET", "/api/v1/services", who).json()["services"]}
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_otlp_without_or_with_a_wrong_token_is_refused(daemon: DaemonProcess) -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    with grpc.insecure_channel(daemon.grpc_endpoint) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
        for metadata in ((), (("authorization", "Bearer wrong-token-0123456789"),)):
            with pytest.raises(grpc.RpcError) as caught:
                export(request, metadata=metadata, timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "token" in caught.value.details()
    answer = httpx.post(f"{daemon.http_url}/v1/traces", content=request.SerializeToString(),
                        headers={"content-type": "application/x-protobuf"}, timeout=5)
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")


def test_each_tenant_sees_only_its_own_data(daemon: DaemonProcess) -> None:
    assert services(daemon, "a-viewer") == {"svc-a": 7}
    assert services(daemon, "b-viewer") == {"svc-b": 5}
    query = {"q": "count(traces.span.metrics.duration[5m]) by (service.name)"}
    a = api(daemon, "GET", "/api/v1/query", "a-viewer", params=query).json()["data"]["result"]
    b = api(daemon, "GET", "/api/v1/query", "b-viewer", params=query).json()["data"]["result"]
    assert [r["metric"] for r in a] == [{"service.name": "svc-a"}]
    assert [r["metric"] for r in b] == [{"service.name": "svc-b"}]
    metrics_b = api(daemon, "GET", "/metrics", "b-viewer").text
    assert "svc-b" in metrics_b and "svc-a" not in metrics_b


def test_ingest_tokens_may_only_send(daemon: DaemonProcess) -> None:
    assert api(daemon, "GET", "/api/v1/services", "a-ingest").status_code == 403


SILENCE = {"matchers": [{"name": "service.name", "value": "svc-a", "isRegex": False}],
           "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z", "createdBy": "a", "comment": "c"}
GROUP = {"rules": [{"alert": "Busy", "expr": "count(traces.span.metrics.duration[5m]) by (service.name) > 0"}]}


def test_alerting_objects_stay_in_their_tenant(daemon: DaemonProcess) -> None:
    silence_id = api(daemon, "POST", "/api/v1/silences", "a-editor", json=SILENCE).json()["silenceID"]
    assert api(daemon, "PUT", "/api/v1/rules/a-rules", "a-editor", json=GROUP).status_code == 200
    # tenant a sees them
    assert [s["id"] for s in api(daemon, "GET", "/api/v1/silences", "a-viewer").json()] == [silence_id]
    assert [g["name"] for g in api(daemon, "GET", "/api/v1/rules", "a-viewer").json()["groups"]] == ["a-rules"]
    # tenant b does not, and cannot touch them
    assert api(daemon, "GET", "/api/v1/silences", "b-viewer").json() == []
    assert api(daemon, "GET", f"/api/v1/silences/{silence_id}", "b-viewer").status_code == 404
    assert api(daemon, "DELETE", f"/api/v1/silences/{silence_id}", "b-editor").status_code == 404
    assert api(daemon, "GET", "/api/v1/rules", "b-viewer").json()["groups"] == []
    assert api(daemon, "DELETE", "/api/v1/rules/a-rules", "b-editor").status_code == 404
    # a's rule fires on a's data only
    deadline = time.monotonic() + 30
    alerts: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not alerts:
        alerts = api(daemon, "GET", "/api/v1/alerts", "a-viewer").json()["alerts"]
        time.sleep(0.2)
    assert [a["labels"]["service.name"] for a in alerts] == ["svc-a"]
    assert api(daemon, "GET", "/api/v1/alerts", "b-viewer").json()["alerts"] == []
    fingerprint = alerts[0]["fingerprint"]
    assert api(daemon, "POST", f"/api/v1/alerts/{fingerprint}/ack", "b-editor", json={"by": "b"}).status_code == 404


def test_tls_on_grpc_http_and_the_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these variables override a session's own CA file (the OTLP/HTTP exporter's)
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    files = make_tls_files(tmp_path)
    tls = {"cert_file": str(files.cert_file), "key_file": str(files.key_file)}
    config = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0", "tls": tls},
                                             "http": {"endpoint": "127.0.0.1:0", "tls": tls}}}},
        "api": {"endpoint": "127.0.0.1:0", "tls": tls},
    }
    with DaemonProcess(tmp_path, config) as process:
        ca = files.ca_file.read_bytes()
        credentials = grpc.ssl_channel_credentials(root_certificates=ca)
        send(GrpcSpanExporter(endpoint=f"localhost:{process.grpc_endpoint.rsplit(':', 1)[1]}",
                              credentials=credentials), "tls-grpc", 3)
        http_port = process.http_url.rsplit(":", 1)[1]
        send(HttpSpanExporter(endpoint=f"https://localhost:{http_port}/v1/traces",
                              certificate_file=str(files.ca_file)), "tls-http", 2)
        api_port = process.api_url.rsplit(":", 1)[1]
        trust = ssl.create_default_context(cafile=str(files.ca_file))  # httpx 0.28 deprecates verify=<path>
        deadline = time.monotonic() + 10
        found: dict[str, int] = {}
        while time.monotonic() < deadline and len(found) < 2:
            answer = httpx.get(f"https://localhost:{api_port}/api/v1/services", verify=trust, timeout=5)
            found = {s["name"]: s["count"] for s in answer.json()["services"]}
            time.sleep(0.1)
        assert found == {"tls-grpc": 3, "tls-http": 2}
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://localhost:{api_port}/api/v1/services", timeout=5)  # plain text is refused
        listening = [line.split(" listening on ", 1)[1] for line in process.log if " listening on " in line]
        assert listening == [process.grpc_endpoint, f"https://{process.addresses['http']}",
                             f"https://{process.addresses['api']}"]

"""What fuzzing and the load benchmarks found, kept as regression cases: the input that used to break, and how.

1. OTLP/JSON: locating the bad field of a failed parse re-parsed every
   array element on its own and every level's subtree again: a 3 MB body
   with one bad value at the end of an array held the event loop for 10 s,
   inside ten levels of nesting for 30 s (found by timing the JSON fuzz).
2. OTLP/HTTP: large JSON bodies were converted on the event loop (pure
   Python, ~1 s for 4 MB), stalling every other client of the daemon.
3. OTLP/gRPC: a failure other than an ``OtlpError`` left the handler as
   grpc's bare UNKNOWN, without the Status trailer and without a log line
   (HTTP already answered 500 with a Status body).
4. Config: a control character (a NUL byte) in the file escaped
   ``load_config`` as PyYAML's ``ReaderError`` instead of a ``ConfigError``.
5. Queries: ``[99999...9]`` (400 digits) and ``99999999999999999999w``
   parsed to an infinite or far too long range; alert conditions then
   failed with ``ValueError: cannot convert float NaN to integer``, and
   ``/api/v1/query?time=1e300`` with an ``OverflowError`` (HTTP 500).
6. Overload benchmark: with senders outpacing the event loop, gRPC held
   every request in flight in memory (4500 requests, +270 MiB RSS); now
   at most ``MAX_CONCURRENT_STREAMS`` per connection, the rest wait in
   the client.
7. Overload benchmark ("every acknowledged span is counted"): once windows
   were flushed, ``count(...[1h])`` counted them twice, from memory and
   from the 1-hour rollup starting before the memory/storage boundary.
8. Soak benchmark (same check, ``history: 2m`` so storage answers most of
   an hour): a rollup starting before a read's start was left out whole,
   so ``count(...[1h])`` at 07:05 lost 06:05-07:00.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.receivers import GrpcServer, HttpServer, RecordingConsumer
from trm_otel.alerting.conditions import parse_condition
from trm_otel.config import load_config
from trm_otel.errors import ConfigError
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.query import CombinedSource, Evaluator, MemorySource, QueryError, parse_query
from trm_otel.receivers import otlp_grpc, otlp_http, otlp_json
from trm_otel.series_source import DURATION_METRIC, SeriesRef
from trm_otel.receivers.otlp_errors import InvalidData

from .daemon_tools import EXPORT_PATHS, span_request
from .mutations import otlp_json as to_otlp_json
from .mutations import valid_request

# ------------------------------------------------------------------ 1. JSON error location


def _array_attribute(values: str) -> bytes:
    """A trace request whose resource has one array attribute holding ``values`` (JSON text)."""
    value = '{"arrayValue":{"values":[%s]}}' % values
    return ('{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":%s}]}}]}' % value).encode()


@pytest.fixture
def parse_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times ``ParseDict`` runs inside ``parse_json`` (the cost that was per element)."""
    calls: list[int] = []
    real = otlp_json.json_format.ParseDict

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(otlp_json.json_format, "ParseDict", counting)
    return calls


def test_json_bad_value_at_the_end_of_a_long_array_is_found_by_bisection(parse_calls: list[int]) -> None:
    body = _array_attribute(",".join(['{"intValue":"1"}'] * 20_000) + ',{"intValue":"x"}')
    with pytest.raises(InvalidData) as caught:
        otlp_json.parse_json(body, ExportTraceServiceRequest)
    assert caught.value.field == "resourceSpans[0].resource.attributes[0].value.arrayValue.values[20000].intValue"
    assert "invalid literal for int()" in caught.value.message
    assert len(parse_calls) < 40  # was one per element: 20,000 and more


def test_json_nesting_around_the_bad_value_is_not_reparsed_per_level(parse_calls: list[int]) -> None:
    inner = ",".join(['{"intValue":"1"}'] * 2_000) + ',{"intValue":"x"}'
    value = '{"arrayValue":{"values":[' * 30 + inner + "]}}" * 30
    body = ('{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":%s}]}}]}' % value).encode()
    with pytest.raises(InvalidData) as caught:
        otlp_json.parse_json(body, ExportTraceServiceRequest)
    assert caught.value.field is not None and caught.value.field.endswith(".values[2000].intValue")
    assert caught.value.field.count("arrayValue") == 30
    assert len(parse_calls) < 40  # each level's array holds one element: no parse needed to pick it


def test_json_search_for_the_field_stops_at_its_deadline() -> None:
    """Past the deadline the deepest path found so far is the answer, with the parser's own message."""
    document = json.loads(_array_attribute('{"intValue":"1"},{"intValue":"x"}'))
    try:
        otlp_json.json_format.ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except otlp_json.json_format.ParseError as error:
        late = otlp_json._Locator(error, deadline=float("-inf"))
        assert late.locate(document, ExportTraceServiceRequest.DESCRIPTOR, "") == ("", "")
        timely = otlp_json._Locator(error, deadline=float("inf"))
        path, _ = timely.locate(document, ExportTraceServiceRequest.DESCRIPTOR, "")
        assert path == "resourceSpans[0].resource.attributes[0].value.arrayValue.values[1].intValue"
    else:
        raise AssertionError("the document was meant not to parse")


def test_json_oneof_members_are_located_without_their_names_in_the_message() -> None:
    """``arrayValue`` and ``gauge`` are oneof members: ParseDict leaves them out of its message."""
    metric = {"name": "m", "gauge": {"dataPoints": [{"asDouble": 1.0}, {"asDouble": "x"}]}}
    body = json.dumps({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "ok"}, metric]}]}]}).encode()
    with pytest.raises(InvalidData) as caught:
        otlp_json.parse_json(body, valid_request("metrics").__class__)
    assert caught.value.field == "resourceMetrics[0].scopeMetrics[0].metrics[1].gauge.dataPoints[1].asDouble"


# ------------------------------------------------------------------ 2. JSON off the event loop


def test_large_json_bodies_are_parsed_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    on_loop: list[bool] = []
    real = otlp_http.parse_json

    def recording(data: bytes, message_class: type[Any]) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(data, message_class)

    monkeypatch.setattr(otlp_http, "parse_json", recording)
    small = json.dumps(to_otlp_json(valid_request("traces"))).encode()
    document = to_otlp_json(valid_request("traces"))
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans *= 200  # about 200 KiB
    large = json.dumps(document).encode()
    assert len(small) <= otlp_http._JSON_INLINE_LIMIT < len(large)
    consumer = RecordingConsumer()
    with HttpServer(consumer) as server, httpx.Client(base_url=server.url) as client:
        for body in (small, large):
            response = client.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 200, response.text
        bad = large.replace(b'"name": "GET /fuzz/0"', b'"name": 5', 1)
        response = client.post("/v1/traces", content=gzip.compress(bad),
                               headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert response.status_code == 400 and ".spans[0].name" in response.json()["message"]
    assert on_loop == [True, False, False]
    assert sum(len(batch) for batch in consumer.traces) == 4 + 4 * 200


# ------------------------------------------------------------------ 3. gRPC bugs answer INTERNAL


class _Exploding(RecordingConsumer):
    def offer_traces(self, batch: Any, request: Any = None, tenant: str = "default") -> bool:
        raise ZeroDivisionError("a bug downstream")


def test_grpc_failure_that_is_a_bug_is_internal_with_a_status_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with GrpcServer(_Exploding()) as server, grpc.insecure_channel(server.endpoint) as channel:
        export = channel.unary_unary(EXPORT_PATHS["traces"], request_serializer=None, response_deserializer=None)
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as caught:
                export(span_request("bug", 3, seed=1), timeout=10)
            assert caught.value.code() is grpc.StatusCode.INTERNAL
            status = status_pb2.Status.FromString(dict(caught.value.trailing_metadata())["grpc-status-details-bin"])
            assert status.code == code_pb2.INTERNAL
            assert status.message == "internal error while handling the request"
        logs = channel.unary_unary(EXPORT_PATHS["logs"], request_serializer=None, response_deserializer=None)
        assert logs(valid_request("logs").SerializeToString(), timeout=10) is not None
    assert "ZeroDivisionError" in caplog.text


# ------------------------------------------------------------------ 4. config control characters


@pytest.mark.parametrize(
    ("text", "where", "character"),
    [
        ("api:\n  endpoint: 127.0.0.1:8080\x00\n", "2:27", "U+0000"),
        ("receivers:\n\x07otlp: {}\n", "2:1", "U+0007"),
        ("\ufffe", "1:1", "U+FFFE"),
    ],
)
def test_control_characters_in_a_config_file_are_a_config_error(
    tmp_path: Any, text: str, where: str, character: str
) -> None:
    path = tmp_path / "trm-otel.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    ((location, message),) = caught.value.problems
    assert location == f"{path}:{where}"
    assert message.startswith(f"invalid YAML: character {character} is not allowed")


# ------------------------------------------------------------------ 5. ranges and times out of reach


@pytest.mark.parametrize(
    ("query", "column", "problem"),
    [
        ("p95(x[" + "9" * 400 + "])", 7, "longer than 100 years"),
        ("p95(x[99999999999999999999w])", 7, "longer than 100 years"),
        ("count(x[3200000000])", 9, "longer than 100 years"),
        ("apdex(x[5m], " + "9" * 400 + ")", 14, "must be a finite number"),
    ],
)
def test_ranges_too_long_to_represent_are_refused_at_their_token(query: str, column: int, problem: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    assert caught.value.column == column
    assert problem in caught.value.message


def test_a_century_is_still_a_range() -> None:
    assert parse_query("count(x[5200w])").range_s == 5200 * 604800


@pytest.mark.parametrize(
    "condition",
    [
        "madscore(p99(x[1m]) by (span.name), " + "9" * 400 + ") > 5",
        "slope(p95(x[5m]), 99999999999999999999999d) > 1",
        "forecast(avg(x[5m]), 6h, " + "9" * 400 + ") > 0.95",
    ],
)
def test_condition_windows_too_long_to_represent_are_a_query_error(condition: str) -> None:
    with pytest.raises(QueryError, match="longer than 100 years"):
        parse_condition(condition)


@pytest.mark.parametrize(("time_s", "start_s"), [(1e300, None), (float("inf"), None), (None, -1e300), (None, -9.3e9)])
def test_query_times_out_of_reach_are_a_query_error(time_s: float | None, start_s: float | None) -> None:
    evaluator = Evaluator(MemorySource(LatencyAggregator(window_s=10.0), ScalarSeriesStore(window_s=10.0)))
    with pytest.raises(QueryError, match="Unix times in seconds between"):
        if time_s is not None:
            evaluator.instant("p95(traces.span.metrics.duration[5m])", time_s)
        else:
            evaluator.range("p95(traces.span.metrics.duration[5m])", start_s, start_s + 600, 60)


# ------------------------------------------------------------------ 6. gRPC requests in flight


def test_grpc_requests_in_flight_are_bounded_per_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []
    real = otlp_grpc.grpc.aio.server

    def spy(*args: Any, **kwargs: Any) -> Any:
        built.append(dict(kwargs.get("options", ())))
        return real(*args, **kwargs)

    monkeypatch.setattr(otlp_grpc.grpc.aio, "server", spy)
    with GrpcServer(RecordingConsumer()) as server, grpc.insecure_channel(server.endpoint) as channel:
        channel.unary_unary(EXPORT_PATHS["traces"], request_serializer=None, response_deserializer=None)(
            span_request("bounded", 2, seed=3), timeout=10)
    assert built[0]["grpc.max_concurrent_streams"] == otlp_grpc.MAX_CONCURRENT_STREAMS == 100


# ------------------------------------------------------------------ 7. memory + storage counted once


class _Storage:
    """Storage's shape of answer: one count per window, 10 s raw windows or 1 h rollups merged on the fly."""

    window_s = 10.0

    def __init__(self, flushed: dict[float, int]) -> None:
        self.flushed = flushed  # raw window start -> spans

    def resolution_for(self, start_s: float, *, step_s: float | None = None) -> int:
        return 3600 if step_s is not None and step_s % 3600 == 0 else 10

    def select(self, metric: str, matchers: Any, tenant: str = "default") -> list[SeriesRef]:
        return [SeriesRef("stored", DURATION_METRIC, {}, "latency")]

    def latency_windows(self, refs: Any, start_s: float, end_s: float, resolution_s: float | None = None, *,
                        step_s: float | None = None) -> dict[Any, list[tuple[float, int]]]:
        size = resolution_s or self.resolution_for(start_s, step_s=step_s)
        merged: dict[float, int] = {}
        for at, count in self.flushed.items():
            window = at // size * size
            if start_s <= window < end_s:
                merged[window] = merged.get(window, 0) + count
        return {"stored": sorted(merged.items())}


class _Memory(_Storage):
    def resolution_for(self, start_s: float, *, step_s: float | None = None) -> int:  # never asked
        raise AssertionError("the recent side is read as it is")

    def select(self, metric: str, matchers: Any, tenant: str = "default") -> list[SeriesRef]:
        return [SeriesRef("memory", DURATION_METRIC, {}, "latency")]

    def latency_windows(self, refs: Any, start_s: float, end_s: float, *,
                        step_s: float | None = None) -> dict[Any, list[tuple[float, int]]]:
        return {"memory": sorted((at, n) for at, n in self.flushed.items() if start_s <= at < end_s)}


@pytest.mark.parametrize("step_s", [None, 3600.0])
def test_windows_both_in_memory_and_in_a_rollup_are_counted_once(step_s: float | None) -> None:
    hour = 1_800_000_000.0  # an hour boundary
    spans = {hour + 10 * i: 1 for i in range(360)}  # one span per raw window for an hour
    flushed = {at: n for at, n in spans.items() if at < hour + 1800}  # storage has the first half
    in_memory = {at: n for at, n in spans.items() if at >= hour + 1200}  # memory the last 40 minutes
    source = CombinedSource(_Memory(in_memory), _Storage(flushed), boundary_s=lambda: hour + 1200)
    (ref,) = source.select(DURATION_METRIC, [])
    windows = source.latency_windows([ref], hour, hour + 3600, step_s=step_s)[ref.key]
    assert sum(n for _, n in windows) == 360
    assert max(at for at, _ in windows if at < hour + 1200) < hour + 1200


@pytest.mark.parametrize("step_s", [None, 3600.0])
def test_a_rollup_starting_before_the_range_still_counts_its_part_inside(step_s: float | None) -> None:
    hour = 1_800_000_000.0
    spans = {hour + 10 * i: 1 for i in range(720)}  # two hours, all flushed
    source = CombinedSource(_Memory({}), _Storage(spans), boundary_s=lambda: hour + 7200)
    (ref,) = source.select(DURATION_METRIC, [])
    windows = source.latency_windows([ref], hour + 300, hour + 3900, step_s=step_s)[ref.key]
    assert sum(n for _, n in windows) == 360  # the windows starting in [start, end), as memory answers
    assert min(at for at, _ in windows) == hour + 300

"""Fuzzing OTLP decoding: whatever the body, the answer is a documented one, and accepted data is processable.

The receivers' contract (``receivers/otlp_errors.py``): a body that cannot
be used is :class:`InvalidData` (400 / INVALID_ARGUMENT) with a message;
anything else escaping ``parse``/``parse_json``/``export`` would be a 500 or
a gRPC UNKNOWN. What *is* accepted must then go through the same handlers
the daemon's pipeline runs (aggregation, metric ingest, log counts) without
raising ("bad points are counted, never raised"), and for traces every span
of the request is either in the batch or counted as rejected.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import currently_in_test_context, event, given
from hypothesis import strategies as st

from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.log_counts import LogCounts
from trm_otel.processors.otlp_metrics import OtlpMetricsIngest
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.receivers.otlp_errors import InvalidData, OtlpError
from trm_otel.receivers.otlp_grpc import otlp_services
from trm_otel.receivers.otlp_json import parse_json
from trm_otel.receivers.otlp_slim import slim_trace_request

from .mutations import DataChooser, mutate_bytes, mutate_json, mutate_message, otlp_json, valid_request
from .settings import fuzz_settings

SIGNALS = ("traces", "metrics", "logs")


class _Accepting:
    """A consumer that takes everything and keeps the last offer, as the daemon's pipeline would."""

    def __init__(self) -> None:
        self.last: Any = None

    def offer_traces(self, batch: Any, request: Any = None, tenant: str = "default") -> bool:
        self.last = batch
        return True

    def offer_metrics(self, request: Any, points: int, tenant: str = "default") -> bool:
        self.last = request
        return True

    def offer_logs(self, request: Any, records: int, tenant: str = "default") -> bool:
        self.last = request
        return True


class Harness:
    """The three receivers over an accepting consumer, and the daemon's handlers behind it."""

    def __init__(self) -> None:
        self.consumer = _Accepting()
        services = otlp_services(self.consumer, max_age_s=86_400)
        self.services = dict(zip(SIGNALS, services))
        self.aggregator = LatencyAggregator(window_s=10.0)
        self.ingest = OtlpMetricsIngest(self.aggregator, ScalarSeriesStore(window_s=10.0))
        self.log_counts = LogCounts(window_s=10.0)

    def export(self, signal: str, body: bytes, *, as_json: bool = False) -> str:
        """``"ok"`` or ``"invalid"``; fails the test on any other outcome."""
        service = self.services[signal]
        self.consumer.last = None
        try:
            request = parse_json(body, service.json_class or service.request_class) if as_json else service.parse(body)
            response = service.export(request)
        except OtlpError as error:
            assert isinstance(error, InvalidData), f"{type(error).__name__} for a body: {error}"
            assert str(error)
            error.status().SerializeToString()  # the answer can be built and sent
            _note("invalid")
            return "invalid"
        response.SerializeToString()
        self.process(signal, request, response)
        partial = signal == "traces" and response.partial_success.rejected_spans
        _note("accepted, some spans rejected" if partial else "accepted")
        return "ok"

    def process(self, signal: str, request: Any, response: Any) -> None:
        offered = self.consumer.last
        if signal == "traces":
            slim = slim_trace_request(request)
            total = sum(len(scope.spans) for resource in slim.resource_spans for scope in resource.scope_spans)
            accepted = 0 if offered is None else len(offered)
            assert accepted + response.partial_success.rejected_spans == total
            assert bool(response.partial_success.error_message) == bool(response.partial_success.rejected_spans)
            if offered is not None:
                self.aggregator.add_spans(offered)
        elif signal == "metrics" and offered is not None:
            self.ingest.consume(offered)
        elif signal == "logs" and offered is not None:
            self.log_counts.consume(offered)


def _note(outcome: str) -> None:
    """Count outcomes for ``pytest --hypothesis-show-statistics``: a fuzz that only meets refusals tests little."""
    if currently_in_test_context():
        event(outcome)


@pytest.fixture(scope="module")
def harness() -> Harness:
    return Harness()


@pytest.mark.parametrize("signal", SIGNALS)
@fuzz_settings()
@given(data=st.data())
def test_protobuf_byte_mutations(harness: Harness, signal: str, data: st.DataObject) -> None:
    body = valid_request(signal).SerializeToString()
    harness.export(signal, mutate_bytes(body, DataChooser(data)))


@pytest.mark.parametrize("signal", SIGNALS)
@fuzz_settings()
@given(data=st.data())
def test_protobuf_field_mutations(harness: Harness, signal: str, data: st.DataObject) -> None:
    now = time.time_ns()
    message = mutate_message(valid_request(signal, now), DataChooser(data), now)
    harness.export(signal, message.SerializeToString())


@pytest.mark.parametrize("signal", SIGNALS)
@fuzz_settings()
@given(data=st.data())
def test_json_mutations(harness: Harness, signal: str, data: st.DataObject) -> None:
    body = mutate_json(otlp_json(valid_request(signal)), DataChooser(data))
    harness.export(signal, body, as_json=True)


@pytest.mark.parametrize("signal", SIGNALS)
@fuzz_settings()
@given(body=st.binary(max_size=512))
def test_arbitrary_bytes(harness: Harness, signal: str, body: bytes) -> None:
    harness.export(signal, body)
    harness.export(signal, body, as_json=True)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["resourceSpans", "resourceMetrics", "resourceLogs", "scopeSpans", "scopeMetrics", "scopeLogs", "spans",
         "metrics", "logRecords", "traceId", "spanId", "name", "attributes", "value", "gauge", "dataPoints", "x"]
    ) | st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@pytest.mark.parametrize("signal", SIGNALS)
@fuzz_settings()
@given(document=_JSON)
def test_arbitrary_json_documents(harness: Harness, signal: str, document: Any) -> None:
    harness.export(signal, json.dumps(document).encode(), as_json=True)


def test_the_valid_requests_are_accepted_whole(harness: Harness) -> None:
    """The starting points of every mutation are valid: otherwise the fuzz would only test refusals."""
    for signal in SIGNALS:
        request = valid_request(signal)
        assert harness.export(signal, request.SerializeToString()) == "ok"
        assert harness.export(signal, json.dumps(otlp_json(request)).encode(), as_json=True) == "ok"
        if signal == "traces":
            assert len(harness.consumer.last) == 4

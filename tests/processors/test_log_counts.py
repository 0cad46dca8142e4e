"""Log records counted by service and severity, from what the real SDK sends."""

from __future__ import annotations

import logging
import time

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from trm_otel.processors.log_counts import SEVERITIES, LogCounts, severity_of_text

T0 = 1_700_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ns(seconds_after_t0: float) -> int:
    return int((T0 + seconds_after_t0) * 1e9)


class App:
    """One process logging through the SDK; ``request()`` is what its OTLP exporter sends."""

    def __init__(self, service: str = "shop") -> None:
        self.exporter = InMemoryLogRecordExporter()
        self.provider = LoggerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.exporter))
        self.logger = self.provider.get_logger("app")

    def emit(self, at: float, number: SeverityNumber, text: str | None = None) -> None:
        self.logger.emit(timestamp=ns(at), severity_number=number, severity_text=text, body="something happened")

    def request(self) -> ExportLogsServiceRequest:
        request = encode_logs(self.exporter.get_finished_logs())
        self.exporter.clear()
        return request


def records(*severities: tuple[int, str], at: float = 5.0, service: str | None = "shop") -> ExportLogsServiceRequest:
    """A hand-made request, for severities the SDK would not produce."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    if service is not None:
        resource_logs.resource.attributes.add(key="service.name").value.string_value = service
    scope = resource_logs.scope_logs.add()
    for number, text in severities:
        scope.log_records.add(time_unix_nano=ns(at), severity_number=number, severity_text=text)
    return request


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def counts(clock: Clock) -> LogCounts:
    return LogCounts(window_s=10, history_s=600, clock=clock)


def zeros(**nonzero: int) -> dict[str, int]:
    return {severity: nonzero.get(severity, 0) for severity in SEVERITIES}


def test_sdk_logs_are_counted_by_service_and_severity(counts, clock) -> None:
    shop, billing = App("shop"), App("billing")
    shop.emit(1, SeverityNumber.INFO)
    shop.emit(2, SeverityNumber.WARN2)
    shop.emit(3, SeverityNumber.ERROR)
    shop.emit(12, SeverityNumber.FATAL4)
    billing.emit(4, SeverityNumber.DEBUG)
    counts.consume(shop.request())
    counts.consume(billing.request())
    clock.t = T0 + 20
    assert counts.counts(60) == {
        "billing": zeros(DEBUG=1),
        "shop": zeros(INFO=1, WARN=1, ERROR=1, FATAL=1),
    }
    assert counts.counts(60, service="billing") == {"billing": zeros(DEBUG=1)}
    assert counts.counts(5) == {"shop": zeros(FATAL=1)}  # only the window [T0+10, T0+20)
    assert counts.stats == {"counted": 5}


# The SDK's handler is what OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED installs;
# it now warns that it moves to opentelemetry-instrumentation-logging.
@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
def test_python_logging_through_the_sdk_handler(counts, clock) -> None:
    app = App()
    logger = logging.getLogger("test_log_counts.python")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(logger_provider=app.provider)
    logger.addHandler(handler)
    try:
        logger.debug("d")
        logger.warning("w")
        logger.error("e")
        logger.critical("c")
    finally:
        logger.removeHandler(handler)
    clock.t = time.time()  # the handler stamps records with the real time
    counts.consume(app.request())
    assert counts.counts(60) == {"shop": zeros(DEBUG=1, WARN=1, ERROR=1, FATAL=1)}


@pytest.mark.parametrize(
    ("number", "severity"),
    [(0, "UNSPECIFIED")]
    + [(n, "TRACE") for n in range(1, 5)]
    + [(n, "DEBUG") for n in range(5, 9)]
    + [(n, "INFO") for n in range(9, 13)]
    + [(n, "WARN") for n in range(13, 17)]
    + [(n, "ERROR") for n in range(17, 21)]
    + [(n, "FATAL") for n in range(21, 25)]
    + [(25, "UNSPECIFIED"), (-3, "UNSPECIFIED")],
)
def test_severity_number_ranges(counts, number: int, severity: str) -> None:
    counts.consume(records((number, "")))
    assert counts.counts(60) == {"shop": zeros(**{severity: 1})}


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("error", "ERROR"),
        ("ERROR2", "ERROR"),
        ("Warning", "WARN"),
        ("warn", "WARN"),
        ("SEVERE", "ERROR"),
        ("err", "ERROR"),
        ("CRITICAL", "FATAL"),
        ("panic", "FATAL"),
        ("notice", "INFO"),
        (" info ", "INFO"),
        ("fine", "DEBUG"),
        ("trace", "TRACE"),
        ("loud", "UNSPECIFIED"),
        ("", "UNSPECIFIED"),
    ],
)
def test_severity_text_is_the_fallback(counts, text: str, severity: str) -> None:
    counts.consume(records((0, text)))
    assert counts.counts(60) == {"shop": zeros(**{severity: 1})}
    assert SEVERITIES[severity_of_text(text)] == severity


def test_the_number_wins_over_the_text(counts) -> None:
    counts.consume(records((9, "ERROR")))
    assert counts.counts(60)["shop"]["INFO"] == 1


def test_error_rate_is_per_second_over_the_covered_range(counts, clock) -> None:
    app = App()
    for second in (5, 15, 25):
        app.emit(second, SeverityNumber.ERROR)
    app.emit(26, SeverityNumber.FATAL)
    app.emit(27, SeverityNumber.WARN)
    counts.consume(app.request())
    clock.t = T0 + 40
    # The instance started at T0: a 5-minute range covers only its 40 s.
    assert counts.error_rate(300, "shop") == pytest.approx(4 / 40)
    assert counts.error_rate(20, "shop") == pytest.approx(2 / 20)  # windows [T0+20, T0+40)
    assert counts.error_rate(300, "nobody") == 0.0
    clock.t = T0 + 500
    assert counts.error_rate(600, "shop") == pytest.approx(4 / 500)
    assert counts.error_rate(1, "shop") == 0.0


def test_error_rate_covers_backfilled_windows(counts, clock) -> None:
    clock.t = T0 + 100
    late = LogCounts(window_s=10, history_s=600, clock=clock)  # started at T0 + 100
    late.consume(records((17, ""), (17, ""), at=50))  # sent late, stamped before we started
    assert late.error_rate(300, "shop") == pytest.approx(2 / 50)


def test_missing_time_falls_back_to_observed_then_arrival(counts, clock) -> None:
    request = records((17, ""))
    record = request.resource_logs[0].scope_logs[0].log_records[0]
    record.time_unix_nano = 0
    record.observed_time_unix_nano = ns(35)
    request.resource_logs[0].scope_logs[0].log_records.add(severity_number=9)  # no time at all
    clock.t = T0 + 45
    counts.consume(request)
    assert counts.counts(12) == {"shop": zeros(ERROR=1, INFO=1)}
    assert counts.counts(5) == {"shop": zeros(INFO=1)}


def test_records_without_a_service_name(counts) -> None:
    counts.consume(records((17, ""), service=None))
    assert list(counts.counts(60)) == ["unknown_service"]


def test_history_bounds_memory(counts, clock) -> None:
    counts.consume(records((17, ""), at=5))
    clock.t = T0 + 700
    counts.consume(records((17, ""), at=695, service="billing"))
    counts.consume(records((17, ""), (9, ""), at=50))  # older than the 600 s history
    counts.consume(records((17, ""), at=700 + 3600))  # an hour ahead: a broken clock
    assert counts.counts(10_000) == {"billing": zeros(ERROR=1)}
    assert counts.stats == {"counted": 2, "outside_history": 3}


def test_service_limit(clock) -> None:
    counts = LogCounts(window_s=10, max_services=2, clock=clock)
    for service in ("a", "b", "c"):
        counts.consume(records((17, ""), (17, ""), service=service))
    counts.consume(records((17, ""), service="a"))
    assert {name: c["ERROR"] for name, c in counts.counts(60).items()} == {"a": 3, "b": 2}
    assert counts.stats == {"counted": 5, "service_limit": 2}


def test_constructor_errors_name_the_rule() -> None:
    with pytest.raises(ValueError, match="window_s must be > 0, got -1"):
        LogCounts(window_s=-1)
    with pytest.raises(ValueError, match=r"history_s \(1\) must be at least window_s \(10\)"):
        LogCounts(window_s=10, history_s=1.0)
    with pytest.raises(ValueError, match="max_services must be >= 1, got 0"):
        LogCounts(max_services=0)

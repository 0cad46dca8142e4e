"""Health: held thresholds with a fake clock and fed readings, custom checks with real time-outs."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from tests.system import metric_points
from trm_otel.errors import ConfigError
from trm_otel.system.health import HealthMonitor, HealthThresholds, Threshold, register_health_instruments
from trm_otel.system.readings import FixedReader, HostReading


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def host() -> FixedReader:
    return FixedReader(HostReading.of(cpu=0.1, memory=0.3, disk=0.4))


@pytest.fixture
def monitor(host: FixedReader, clock: FakeClock):
    return HealthMonitor(host, clock=clock)


@pytest.fixture
def release():
    """Set at teardown, so threads of hung checks end with the test."""
    event = threading.Event()
    yield event
    event.set()


def statuses(monitor: HealthMonitor) -> dict[str, str]:
    report = monitor.report()
    return {"overall": report.status, **{c.name: c.status for c in report.checks}}


# ------------------------------------------------------------ host levels


def test_cpu_goes_healthy_degraded_unhealthy_healthy_only_after_each_hold(monitor, host, clock) -> None:
    def cpu_at(value: float, seconds: float) -> list[str]:
        """Feed ``value`` and report at 0 s, just before the hold ends and at its end."""
        host.feed(HostReading.of(cpu=value, memory=0.3, disk=0.4))
        seen = [monitor.report().check("system.cpu").status]
        clock.advance(seconds - 0.001)
        seen.append(monitor.report().check("system.cpu").status)
        clock.advance(0.001)
        seen.append(monitor.report().check("system.cpu").status)
        return seen

    assert cpu_at(0.10, 60) == ["healthy"] * 3
    assert cpu_at(0.90, 60) == ["healthy", "healthy", "degraded"]
    assert cpu_at(0.96, 60) == ["degraded", "degraded", "unhealthy"]
    assert cpu_at(0.20, 60) == ["unhealthy", "unhealthy", "healthy"]
    assert monitor.report().status == "healthy"


def test_a_dip_shorter_than_the_hold_does_not_flap(monitor, host, clock) -> None:
    for value in (0.97, 0.97, 0.5, 0.97, 0.97, 0.97):  # 40 s high, 10 s low, 30 s high
        host.feed(HostReading.of(cpu=value))
        assert monitor.report().check("system.cpu").status == "healthy"
        clock.advance(10)
    host.feed(HostReading.of(cpu=0.97))
    clock.advance(30)
    assert monitor.report().check("system.cpu").status == "unhealthy"
    host.feed(HostReading.of(cpu=0.1))
    for _ in range(5):  # 50 s of calm is not enough to clear it
        clock.advance(10)
        assert monitor.report().check("system.cpu").status == "unhealthy"


def test_memory_and_the_fullest_disk_count_and_the_detail_says_why(monitor, host, clock) -> None:
    host.feed(HostReading.of(cpu=0.1, memory=0.96, disk=0.91))
    monitor.report()
    clock.advance(60)
    report = monitor.report()
    assert statuses(monitor) == {
        "overall": "unhealthy", "system.cpu": "healthy", "system.memory": "unhealthy", "system.disk": "degraded"
    }
    assert report.check("system.disk").detail == "filesystem / 91.0% (degraded at 90%, unhealthy at 97%)"
    host.feed(HostReading.of(cpu=0.1, memory=0.2, disk=0.91))
    monitor.report()  # the drop is seen here
    clock.advance(15)
    assert monitor.report().check("system.memory").detail.endswith("; healthy if it stays 45s more")


def test_thresholds_and_hold_are_configurable(host, clock) -> None:
    monitor = HealthMonitor(host, {"hold": "10s", "cpu": {"degraded": 0.5, "unhealthy": 0.6, "hold": "0s"}}, clock=clock)
    host.feed(HostReading.of(cpu=0.55, memory=0.9))
    assert statuses(monitor)["system.cpu"] == "degraded"  # hold 0: at once
    assert statuses(monitor)["system.memory"] == "healthy"
    clock.advance(10)
    assert statuses(monitor)["system.memory"] == "degraded"
    monitor.set_thresholds(HealthThresholds(cpu=None, memory=None, disk=None, swap=Threshold(degraded=0.1, unhealthy=0.2)))
    assert monitor.report().checks == ()  # swap is only checked on hosts that have swap


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"cpu": {"degraded": 0.9, "unhealthy": 0.8}}, "health.cpu: unhealthy (0.8) must be >= degraded (0.9)"),
        ({"cpux": {"degraded": 0.5, "unhealthy": 0.6}}, "health.cpux: unknown key (did you mean 'cpu'?)"),
        ({"disk": {"degraded": 0.9, "unhealthy": 1.5}}, "health.disk.unhealthy: Input should be less than or equal to 1"),
        ({"hold": "soon"}, "health.hold: not a duration"),
    ],
)
def test_bad_thresholds_name_the_key(thresholds, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        HealthMonitor(FixedReader(), thresholds)


def test_readings_can_be_pushed_instead_of_pulled(clock) -> None:
    monitor = HealthMonitor(clock=clock, thresholds={"hold": 0})
    assert monitor.report().checks == ()
    monitor.observe(HostReading.of(cpu=0.99))
    assert statuses(monitor)["system.cpu"] == "unhealthy"


class BrokenReader:
    def read(self, top_n: int = 0) -> HostReading:
        raise PermissionError("no /proc")


def test_a_broken_host_reader_degrades_with_the_reason(clock) -> None:
    report = HealthMonitor(BrokenReader(), clock=clock).report()
    assert report.status == "degraded"
    (check,) = report.checks
    assert (check.name, check.detail) == ("system.host", "reading host metrics failed: PermissionError: no /proc")


# ------------------------------------------------------------ custom checks


def test_passing_checks_sync_and_async(monitor) -> None:
    async def cache_ok() -> tuple[bool, str]:
        await asyncio.sleep(0.01)
        return True, "3 keys"

    monitor.register_health_check("db", lambda: True)
    monitor.register_health_check("cache", cache_ok)
    report = monitor.report()
    assert report.status == "healthy"
    assert (report.check("db").detail, report.check("cache").detail) == ("ok", "3 keys")
    assert report.check("cache").duration_ms >= 10


@pytest.mark.parametrize(
    ("fn", "reason"),
    [
        (lambda: False, "check returned False"),
        (lambda: (False, "replica lag 40s"), "replica lag 40s"),
        (lambda: 1 / 0, "raised ZeroDivisionError: division by zero"),
        (lambda: None, "check returned None, expected a bool or (bool, detail)"),
    ],
)
def test_a_failing_check_is_unhealthy_with_its_reason(monitor, fn, reason) -> None:
    monitor.register_health_check("dep", fn)
    report = monitor.report()
    assert (report.status, report.check("dep").status, report.check("dep").detail) == ("unhealthy", "unhealthy", reason)


def test_a_failing_async_check_is_unhealthy_with_its_reason(monitor) -> None:
    async def broken() -> bool:
        raise ConnectionRefusedError("db:5432")

    monitor.register_health_check("db", broken)
    assert monitor.report().check("db").detail == "raised ConnectionRefusedError: db:5432"


def test_a_failing_non_critical_check_only_degrades(monitor) -> None:
    monitor.register_health_check("optional", lambda: (False, "slow"), critical=False)
    report = monitor.report()
    assert (report.status, report.check("optional").status) == ("degraded", "degraded")


def test_a_hung_sync_check_times_out_and_report_returns_within_the_time_out(monitor, release) -> None:
    monitor.register_health_check("hangs", lambda: release.wait(60), timeout_s=0.3)
    monitor.register_health_check("fine", lambda: True)
    started = time.perf_counter()
    report = monitor.report()
    elapsed = time.perf_counter() - started
    assert 0.29 <= elapsed < 0.6
    assert (report.status, report.check("hangs").status, report.check("fine").status) == (
        "unhealthy", "unhealthy", "healthy"
    )
    assert report.check("hangs").detail.startswith("timed out after 0.3s")
    # Still hung: the next report does not wait for it again, nor start a second copy.
    threads = threading.active_count()
    started = time.perf_counter()
    again = monitor.report()
    assert time.perf_counter() - started < 0.2
    assert again.check("hangs").status == "unhealthy" and "still running" in again.check("hangs").detail
    assert threading.active_count() == threads
    # Once it returns, it is run again and counts again.
    release.set()
    time.sleep(0.05)
    assert monitor.report().check("hangs").status == "healthy"


def test_a_hung_async_check_is_cancelled_at_its_time_out(monitor) -> None:
    cancelled = threading.Event()

    async def hangs() -> bool:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return True

    monitor.register_health_check("hangs", hangs, timeout_s=0.2)
    started = time.perf_counter()
    report = monitor.report()
    assert time.perf_counter() - started < 0.5
    assert report.check("hangs").detail.startswith("timed out after 0.2s")
    assert cancelled.wait(1.0)


def test_a_timeout_error_raised_by_the_check_is_not_its_time_out(monitor) -> None:
    async def raises() -> bool:
        raise TimeoutError("upstream took too long")

    monitor.register_health_check("upstream", raises)
    assert monitor.report().check("upstream").detail == "raised TimeoutError: upstream took too long"


def test_checks_run_concurrently(monitor) -> None:
    for name in ("a", "b", "c"):
        monitor.register_health_check(name, lambda: time.sleep(0.3) or True, timeout_s=2)
    started = time.perf_counter()
    assert monitor.report().status == "healthy"
    assert time.perf_counter() - started < 0.6


def test_registration_is_validated(monitor) -> None:
    monitor.register_health_check("db", lambda: True, timeout_s="2s")
    with pytest.raises(ConfigError, match="name: a check named 'db' is already registered"):
        monitor.register_health_check("db", lambda: True)
    with pytest.raises(ConfigError, match="host checks"):
        monitor.register_health_check("system.cpu", lambda: True)
    with pytest.raises(ConfigError) as err:
        monitor.register_health_check("", "not callable", timeout_s=0)  # type: ignore[arg-type]
    assert [path for path, _ in err.value.problems] == ["name", "fn", "timeout_s"]
    assert monitor.unregister_health_check("db") and not monitor.unregister_health_check("db")


# -------------------------------------------------------- report and gauge


def test_report_to_dict_is_the_api_shape(monitor, clock) -> None:
    clock.now = 1_800_000_000.25
    monitor.register_health_check("db", lambda: (True, "ping 2 ms"))
    body = monitor.report().to_dict()
    assert body["status"] == "healthy" and body["observed_at"] == "2027-01-15T08:00:00.250Z"
    db = body["checks"][-1]
    assert {k: db[k] for k in ("name", "status", "detail", "observed_at", "critical")} == {
        "name": "db", "status": "healthy", "detail": "ping 2 ms", "observed_at": "2027-01-15T08:00:00.250Z",
        "critical": True,
    }
    assert [c["name"] for c in body["checks"]] == ["system.cpu", "system.memory", "system.disk", "db"]


def test_health_status_gauge_per_check_and_overall(host, clock, release) -> None:
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    monitor = HealthMonitor(host, {"hold": 0}, clock=clock, check_interval_s=3600)
    register_health_instruments(provider, monitor)
    monitor.register_health_check("db", lambda: (False, "down"), critical=False)
    host.feed(HostReading.of(cpu=0.99))

    gauge = metric_points(memory)[0]["trm_otel.health.status"]
    assert gauge == {(): 2, (("check", "system.cpu"),): 2, (("check", "system.memory"),): 0, (("check", "system.disk"),): 0}
    time.sleep(0.05)  # the collection started the check in the background; the next one shows it
    points, units = metric_points(memory)
    assert points["trm_otel.health.status"][(("check", "db"),)] == 1
    assert units["trm_otel.health.status"] == "1"
    provider.shutdown()


def test_a_forked_child_runs_checks_afresh_instead_of_inheriting_hung_runs(monitor, release) -> None:
    parent = os.getpid()
    monitor.register_health_check("hangs-in-parent", lambda: os.getpid() != parent or release.wait(60), timeout_s=0.2)
    assert monitor.report().check("hangs-in-parent").status == "unhealthy"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the hung run's thread does not exist here
        try:
            status = monitor.report().check("hangs-in-parent").status
            os.write(write_end, status.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert os.read(read_end, 100) == b"healthy"
    os.close(read_end)

"""configure(): host and process instruments on the meter provider, health() and custom checks."""

from __future__ import annotations

import time

import psutil
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import trm_otel
from tests.system import metric_points
from trm_otel import ConfigError
from trm_otel.system import HealthReport


def test_system_metrics_are_on_by_default_with_their_units() -> None:
    memory = InMemoryMetricReader()
    with trm_otel.configure(service_name="shop", set_global=False, metric_readers=[memory]):
        points, units = metric_points(memory)
    assert units["system.cpu.utilization"] == "1" and units["process.memory.usage"] == "By"
    used = points["system.memory.utilization"][(("system.memory.state", "used"),)]
    assert used == pytest.approx(psutil.virtual_memory().percent / 100, abs=0.05)
    assert 0.0 <= points["system.cpu.utilization"][()] <= 1.0
    assert points["trm_otel.health.status"][()] in (0, 1, 2)


def test_system_metrics_false_registers_no_host_instruments() -> None:
    memory = InMemoryMetricReader()
    with trm_otel.configure(set_global=False, system_metrics=False, metric_readers=[memory]) as telemetry:
        points, _ = metric_points(memory)
        report = telemetry.health()
    assert not [name for name in points if name.startswith(("system.", "process."))]
    assert (report.status, report.checks) == ("healthy", ())
    assert points["trm_otel.health.status"] == {(): 0}


def test_health_has_the_host_checks_and_registered_ones() -> None:
    with trm_otel.configure(set_global=False) as telemetry:
        telemetry.register_health_check("db", lambda: (True, "ping 1 ms"))
        telemetry.register_health_check("queue", lambda: (False, "12k messages behind"), critical=False)
        report = telemetry.health()
    assert isinstance(report, HealthReport)
    assert [c.name for c in report.checks] == ["system.cpu", "system.memory", "system.disk", "db", "queue"]
    assert report.check("queue").status == "degraded" and report.check("db").detail == "ping 1 ms"
    assert report.status in ("degraded", "unhealthy")  # the host may add its own trouble, never less
    body = report.to_dict()
    assert set(body) == {"status", "observed_at", "checks"}
    assert set(body["checks"][0]) >= {"name", "status", "detail", "observed_at"}


def test_health_returns_within_the_time_out_of_a_hung_check() -> None:
    with trm_otel.configure(set_global=False, system_metrics=False) as telemetry:
        telemetry.register_health_check("hangs", lambda: time.sleep(5), timeout_s=0.2)
        started = time.perf_counter()
        report = telemetry.health()
        assert time.perf_counter() - started < 0.5
    assert report.status == "unhealthy" and report.check("hangs").detail.startswith("timed out after 0.2s")


def test_host_readings_are_shared_and_rate_limited_by_system_interval() -> None:
    memory = InMemoryMetricReader()
    with trm_otel.configure(set_global=False, metric_readers=[memory], system_interval="1h") as telemetry:
        first, _ = metric_points(memory)
        telemetry.health()
        second, _ = metric_points(memory)
        # One reading for the hour: the same CPU figures every time.
        assert first["system.cpu.utilization"] == second["system.cpu.utilization"]


def test_bad_system_interval_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="system_interval: not a duration"):
        trm_otel.configure(set_global=False, system_interval="often")


def test_bad_health_check_registration_is_a_config_error() -> None:
    with trm_otel.configure(set_global=False, system_metrics=False) as telemetry:
        with pytest.raises(ConfigError, match="timeout_s"):
            telemetry.register_health_check("db", lambda: True, timeout_s=-1)

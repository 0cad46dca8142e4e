"""The daemon's hostmetrics receiver and health report, seen through the API."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from .daemon_process import DaemonProcess


def test_host_metrics_are_queryable_and_health_reports_host_and_daemon_checks(tmp_path: Path) -> None:
    config = {
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}},
            "hostmetrics": {"collection_interval": "1s"},
        }
    }
    with DaemonProcess(tmp_path, config) as daemon:
        query = 'last(system.memory.utilization{system.memory.state="used"}[1m])'
        deadline = time.monotonic() + 2 * 1 + 5  # two collection intervals, plus start-up slack
        result: list = []
        while time.monotonic() < deadline and not result:
            result = daemon.get("/api/v1/query", q=query)["data"]["result"]
            time.sleep(0.2)
        assert result, "host memory utilization should be queryable within two collection intervals"
        (sample,) = result
        assert abs(float(sample["value"][1]) - psutil.virtual_memory().percent / 100) < 0.05
        cpu = daemon.get("/api/v1/query", q="avg(system.cpu.utilization[1m])")["data"]["result"]
        assert cpu and 0.0 <= float(cpu[0]["value"][1]) <= 1.0

        health = daemon.get("/api/v1/health")
        names = {check["name"] for check in health["checks"]}
        assert {"system.cpu", "system.memory", "system.disk", "receivers", "pipeline_queue", "data_dir"} <= names
        assert health["status"] in ("healthy", "degraded", "unhealthy")
        assert all({"name", "status", "detail", "observed_at"} <= set(check) for check in health["checks"])
        deadline = time.monotonic() + 5
        checks: set = set()
        while time.monotonic() < deadline and not {"receivers", "data_dir"} <= checks:
            statuses = daemon.get("/api/v1/query", q="last(trm_otel.health.status[1m]) by (check)")["data"]["result"]
            checks = {s["metric"].get("check") for s in statuses}
            time.sleep(0.2)
        assert {"receivers", "data_dir", "system.memory"} <= checks, "health changes are recorded as series"

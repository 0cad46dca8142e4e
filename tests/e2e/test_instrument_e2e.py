"""An unmodified Starlette app, run under ``trm-otel instrument`` and ``opentelemetry-instrument``, reports to the daemon.

The app below has no line of OpenTelemetry or trm-otel in it. Each test
runs it as a real process under the real launcher, sends it real HTTP
requests to many distinct paths, and reads the real daemon's
``/api/v1/latency``: one series per route template, never one per path.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .daemon_process import DaemonProcess, trm_otel_command

APP = textwrap.dedent(
    """
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route


    async def item(request):
        return JSONResponse({"item": request.path_params["item_id"]})


    async def orders(request):
        return JSONResponse({"user": request.path_params["name"], "orders": []})


    app = Starlette(routes=[
        Route("/items/{item_id}", item),
        Mount("/users", routes=[Route("/{name}/orders", orders)]),
    ])

    if __name__ == "__main__":
        uvicorn.run(app, host="127.0.0.1", port=0, log_level="info")
    """
)

_RUNNING = re.compile(r"Uvicorn running on (http://\S+)")

# Quick export so the test need not wait for the 5 s / 60 s defaults.
FAST = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "500", "TRM_OTEL_SYSTEM_METRICS": "false"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with DaemonProcess(tmp_path_factory.mktemp("instrument")) as process:
        yield process


@pytest.fixture(scope="module")
def app_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("app") / "app.py"
    path.write_text(APP)
    return path


class AppProcess:
    """The app under a launcher; ``url`` once uvicorn says where it listens."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.log: list[str] = []
        self.url = ""
        self.process = subprocess.Popen(command, env=env, cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        started = threading.Event()

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.log.append(line.rstrip("\n"))
                found = _RUNNING.search(line)
                if found:
                    self.url = found.group(1)
                    started.set()
            started.set()

        threading.Thread(target=read, daemon=True).start()
        if not started.wait(30) or not self.url:
            self.stop()
            raise RuntimeError("the app did not start:\n" + "\n".join(self.log))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRM_OTEL_"))}
    return {**env, **FAST, "PYTHONUNBUFFERED": "1", **extra}


def _traffic(url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(20):
            assert client.get(f"/items/{i}").status_code == 200
        for name in ("ann", "bob", "cy", "di", "ed"):
            assert client.get(f"/users/{name}/orders").status_code == 200
        for i in range(3):
            assert client.get(f"/no/such/page/{i}").status_code == 404
        assert client.post("/items/7").status_code == 405


EXPECTED = {"GET /items/{item_id}": 20, "GET /users/{name}/orders": 5, "GET": 3, "POST /items/{item_id}": 1}


def _check_views(daemon: DaemonProcess, service: str, app: AppProcess) -> None:
    views = daemon.wait_for_count(sum(EXPECTED.values()), service=service)
    by_endpoint = {v["endpoint"]: v for v in views}
    assert {e: v["count"] for e, v in by_endpoint.items()} == EXPECTED, app.log
    assert all(v["p95_ms"] > 0 for v in views)
    assert by_endpoint["GET /items/{item_id}"]["errors"] == 0


def test_trm_otel_instrument_names_spans_by_route_template(
    daemon: DaemonProcess, app_file: Path
) -> None:
    command = [
        *trm_otel_command(), "instrument", "--service-name", "instrumented-grpc",
        "--otlp-endpoint", f"http://{daemon.grpc_endpoint}", "--", sys.executable, str(app_file),
    ]
    app = AppProcess(command, _environment(), app_file.parent)
    try:
        _traffic(app.url)
        _check_views(daemon, "instrumented-grpc", app)
    finally:
        assert app.stop() in (0, -signal.SIGTERM), app.log  # uvicorn re-raises the signal it handled
    assert not [line for line in app.log if "Traceback" in line or "Failed to auto initialize" in line], app.log


def test_opentelemetry_instrument_picks_trm_otel_with_the_standard_variables(
    daemon: DaemonProcess, app_file: Path
) -> None:
    launcher = Path(sys.executable).with_name("opentelemetry-instrument")
    assert launcher.exists(), "opentelemetry-instrumentation installs the opentelemetry-instrument script"
    env = _environment(
        OTEL_SERVICE_NAME="instrumented-http",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
        OTEL_EXPORTER_OTLP_ENDPOINT=daemon.http_url,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
    )
    app = AppProcess([str(launcher), sys.executable, str(app_file)], env, app_file.parent)
    try:
        _traffic(app.url)
        _check_views(daemon, "instrumented-http", app)
    finally:
        assert app.stop() in (0, -signal.SIGTERM), app.log  # uvicorn re-raises the signal it handled

"""The real daemon as a subprocess, for black-box tests and benchmarks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

_LISTENING = re.compile(r"(OTLP/gRPC receiver|OTLP/HTTP receiver|API and UI) listening on (?:https?://)?(\S+)")
_KEYS = {"OTLP/gRPC receiver": "grpc", "OTLP/HTTP receiver": "http", "API and UI": "api"}


def trm_otel_command() -> list[str]:
    script = Path(sys.executable).with_name("trm-otel")
    return [str(script)] if script.exists() else [sys.executable, "-m", "trm_otel.cli"]


class DaemonProcess:
    """``with DaemonProcess(tmp_path) as d: d.api_url, d.grpc_endpoint, d.http_url``.

    Every port is 0 (the daemon picks free ones and logs them), so tests run
    in parallel without colliding; ``config`` entries are merged over the
    minimal one.
    """

    def __init__(self, directory: Path, config: dict[str, Any] | None = None, args: list[str] | None = None) -> None:
        base: dict[str, Any] = {
            "receivers": {
                "otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}}
            },
            "processors": {"latency": {"window": "1s"}},
            "storage": {"path": str(directory / "data")},
            "api": {"endpoint": "127.0.0.1:0"},
        }
        for key, value in (config or {}).items():
            base[key] = value
        self.config_path = directory / "trm-otel.yaml"
        self.config_path.write_text(yaml.safe_dump(base))
        self.args = args or []
        self.addresses: dict[str, str] = {}
        self.log: list[str] = []
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> DaemonProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [*trm_otel_command(), "serve", "--config", str(self.config_path), *self.args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        ready = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stderr is not None
            for line in self.process.stderr:
                self.log.append(line.rstrip("\n"))
                found = _LISTENING.search(line)
                if found:
                    self.addresses[_KEYS[found.group(1)]] = found.group(2)
                if " ready; data in " in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or "api" not in self.addresses:
            self.stop()
            raise RuntimeError("daemon did not start:\n" + "\n".join(self.log))

    @property
    def api_url(self) -> str:
        return f"http://{self.addresses['api']}"

    @property
    def http_url(self) -> str:
        return f"http://{self.addresses['http']}"

    @property
    def grpc_endpoint(self) -> str:
        return self.addresses["grpc"]

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.api_url}{path}", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def wait_for_count(self, count: int, timeout: float = 30.0, **params: Any) -> list[dict[str, Any]]:
        """Poll /api/v1/latency until the views' counts add up to ``count``."""
        deadline = time.monotonic() + timeout
        views: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            views = self.get("/api/v1/latency", **params)["views"]
            if sum(v["count"] for v in views) >= count:
                return views
            time.sleep(0.1)
        raise AssertionError(f"expected {count} spans, have {sum(v['count'] for v in views)}: {views}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

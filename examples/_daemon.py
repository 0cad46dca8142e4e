"""Helper for the examples (not an example itself): run ``trm-otel serve`` for the length of a ``with``.

    >>> with running_daemon("configs/local.yaml") as daemon:            # doctest: +SKIP
    ...     daemon.grpc_endpoint, daemon.http_url, daemon.api_url

Exactly what you would type in a second terminal, as a subprocess: the
config file's ports are 0, so the daemon picks free ones and logs them, and
this reads them from its log. Data goes to a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunningDaemon", "running_daemon"]

HERE = Path(__file__).resolve().parent
_LISTENING = re.compile(r"(OTLP/gRPC receiver|OTLP/HTTP receiver|API and UI) listening on (?:https?://)?(\S+)")


@dataclass
class RunningDaemon:
    grpc_endpoint: str
    http_url: str
    api_url: str
    log: list[str]


def _command() -> list[str]:
    script = shutil.which("trm-otel", path=str(Path(sys.executable).parent)) or shutil.which("trm-otel")
    return [script] if script else [sys.executable, "-m", "trm_otel.cli"]


@contextlib.contextmanager
def running_daemon(config: str | Path, env: Mapping[str, str] | None = None) -> Iterator[RunningDaemon]:
    """Start the daemon on ``config`` (relative to ``examples/``), yield its addresses, stop it (SIGTERM)."""
    with tempfile.TemporaryDirectory(prefix="trm-otel-example-") as data:
        process = subprocess.Popen(
            [*_command(), "serve", "--config", str(HERE / config), "--data-dir", data],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        )
        log: list[str] = []
        addresses: dict[str, str] = {}
        ready = threading.Event()

        def read() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                log.append(line.rstrip("\n"))
                found = _LISTENING.search(line)
                if found:
                    addresses[found.group(1)] = found.group(2)
                if " ready; data in " in line:
                    ready.set()
            ready.set()  # it exited

        threading.Thread(target=read, daemon=True).start()
        try:
            if not ready.wait(60) or process.poll() is not None:
                raise RuntimeError("the daemon did not start:\n" + "\n".join(log))
            yield RunningDaemon(
                grpc_endpoint=addresses["OTLP/gRPC receiver"],
                http_url=f"http://{addresses['OTLP/HTTP receiver']}",
                api_url=f"http://{addresses['API and UI']}",
                log=log,
            )
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

"""Uvicorn servers embedded in the daemon's own event loop.

    >>> server = EmbeddedServer(app, "127.0.0.1:0", name="api")         # doctest: +SKIP
    >>> port = await server.start()                                    # doctest: +SKIP
    >>> await server.stop()                                            # doctest: +SKIP

The daemon runs several ASGI apps (API, OTLP/HTTP receiver, the demo shop)
in one loop and owns SIGTERM/SIGINT itself, so a server here never installs
signal handlers and reports the port it actually bound (``:0`` picks a free
one, which tests use).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from typing import Any

import uvicorn

__all__ = ["EmbeddedServer", "split_endpoint"]


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` -> ``("127.0.0.1", 8080)``; ``"[::1]:80"`` -> ``("::1", 80)``."""
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass


class EmbeddedServer:
    """One ASGI app on one endpoint, started and stopped from the running loop."""

    def __init__(self, app: Any, endpoint: str, *, name: str, **config: Any) -> None:
        host, port = split_endpoint(endpoint)
        self.name = name
        self.host = host
        self._server = _QuietServer(
            uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False, **config)
        )
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self) -> int:
        """Serve in the background; returns the bound port once listening (raises if it cannot)."""
        self._task = asyncio.create_task(self._server.serve(), name=f"uvicorn-{self.name}")
        while not self._server.started:
            if self._task.done():
                await self._task
                raise OSError(f"{self.name}: could not listen on {self.host}")
            await asyncio.sleep(0.01)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        return self.port

    @property
    def listening(self) -> bool:
        return bool(self._server.started) and not self._server.should_exit

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests, close."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
        self._task = None

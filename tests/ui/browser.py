"""Helpers of the browser tests: the back end handle, polling under CSP, what a panel shows."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

_CHOICE = os.environ.get("TRM_UI_BACKEND", "daemon")
#: The back ends the browser tests run against: the real daemon unless TRM_UI_BACKEND says fake or all.
BACKENDS = ["daemon", "fake"] if _CHOICE == "all" else [_CHOICE]

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def chromium_path() -> str:
    """The Chromium to drive; fails under CI when missing, skips otherwise."""
    path = os.environ.get("TRM_CHROMIUM") or "/usr/bin/chromium"
    if Path(path).exists() or shutil.which(path):
        return path
    message = f"Chromium not found at {path} (apt-get install chromium, or set TRM_CHROMIUM)"
    if in_ci():
        pytest.fail(message + ": browser tests must run in CI")
    pytest.skip(message)


@dataclass
class UiServer:
    """One back end: its base ``url``, and ``send_spans(service)`` to make new data arrive."""

    kind: str
    url: str
    _send: Any = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def send_spans(self, service: str) -> None:
        self._send(service)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", timeout=15, **kwargs)


@dataclass
class PageLog:
    """What the page reported: uncaught exceptions and policy violations fail the test."""

    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def fatal(self) -> list[str]:
        csp = [m for m in self.console if "Content Security Policy" in m or "Refused to" in m]
        return self.errors + csp


def wait_until(page: Any, expression: str, timeout: float = 20.0, arg: Any = None) -> Any:
    """Poll ``expression`` (a JS function or expression) until truthy; its last value on timeout in the error."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = page.evaluate(expression, arg)
        except Exception as err:  # noqa: BLE001 - mid-navigation the document is not there yet
            value = f"<{err}>".splitlines()[0]
        else:
            if value:
                return value
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out after {timeout}s waiting for {expression} (last value {value!r})")


def open_dashboard(page: Any, server: UiServer, uid: str, query: str = "") -> None:
    """Load ``/d/{uid}`` and wait until every panel finished its first load."""
    response = page.goto(f"{server.url}/d/{uid}{'?' + query if query else ''}")
    assert response is not None and response.ok, f"/d/{uid}: {response and response.status} {response and response.text()}"
    wait_until(page, "document.body.dataset.ready === '1'")


def panels(page: Any) -> list[dict[str, Any]]:
    """Each panel as the page shows it: id, state, whether plotly drew, title, error text, traces."""
    return page.evaluate(_PANELS_JS)


def fetches(page: Any) -> dict[int, int]:
    return {int(k): v for k, v in page.evaluate("window.trmOtel.fetches").items()}


_PANELS_JS = """() => [...document.querySelectorAll('[data-panel-id]')].map(el => ({
  id: Number(el.dataset.panelId), state: el.dataset.state, svg: !!el.querySelector('.main-svg'),
  title: el.querySelector('h2').textContent, error: el.querySelector('.panel-error').textContent,
  traces: (el.querySelector('.chart').data || []).map(t => ({name: t.name, type: t.type,
    points: (t.y || t.values || t.z || (t.value !== undefined ? [t.value] : [])).filter(v => v !== null).length})),
}))"""

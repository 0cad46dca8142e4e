"""Browser tests of the web UI: real headless Chromium (playwright) against a real server.

``ui_server`` is the real ``trm-otel serve`` as a subprocess, with span
traffic flowing into it. ``TRM_UI_BACKEND=fake`` runs the same tests against
the in-process test double of the dashboards HTTP contract in
:mod:`tests.ui.fake_api` instead (for working on the front end alone), and
``TRM_UI_BACKEND=all`` against both.

Chromium is Debian's ``/usr/bin/chromium`` (or ``$TRM_CHROMIUM``), never a
download. When it is missing the tests fail under ``CI=true`` and skip
otherwise. Pages run under the UI's real Content Security Policy, so the
tests poll with ``page.evaluate`` (CDP, not ``eval`` inside the page)
instead of ``page.wait_for_function``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ..e2e.daemon_process import DaemonProcess
from ..e2e.traffic import Traffic
from .browser import BACKENDS, CHROMIUM_ARGS, PageLog, UiServer, chromium_path, in_ci
from .fake_api import FakeApiServer



@pytest.fixture(scope="session")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Chromium profile for the session, on disk as a viewer's is: its cache keeps plotly.min.js
    and V8's compiled code, so only the first page pays for them."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if in_ci():
            pytest.fail("playwright is not installed (pip install 'trm-otel[test]')")
        pytest.skip("playwright is not installed")
    with sync_playwright() as playwright:
        ctx = playwright.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"), executable_path=executable, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000}, accept_downloads=True,
        )
        yield ctx
        ctx.close()


@pytest.fixture(scope="session", params=BACKENDS)
def ui_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """The UI's server with data in it; ``send_spans(service)`` makes a new service appear."""
    if request.param not in ("daemon", "fake"):
        pytest.fail(f"TRM_UI_BACKEND={request.param!r}: expected daemon, fake or all")
    if request.param == "fake":
        fake = FakeApiServer(views_every_s=1.0).start()
        try:
            yield UiServer("fake", fake.url, fake.add_service)
        finally:
            fake.stop()
        return
    with DaemonProcess(tmp_path_factory.mktemp("ui-daemon")) as daemon:
        traffic = Traffic(daemon.grpc_endpoint, period_s=0.1)
        try:
            traffic.start("shop", ["GET /", "POST /cart"])
            traffic.start("cart", ["GET /items"])
            daemon.wait_for_count(20)
            for path in ("/d/performance", "/api/v1/dashboards/performance", "/static/app.js"):
                answer = httpx.get(daemon.api_url + path, timeout=10)
                if answer.status_code != 200:
                    pytest.fail(f"the daemon does not serve {path} ({answer.status_code} {answer.text[:200]}): "
                                "wire trm_otel.ui.ui_routes and the dashboards API into it")
            _wait_for_points(daemon.api_url)
            yield UiServer("daemon", daemon.api_url, lambda service: traffic.start(service, ["GET /live"]))
        finally:
            traffic.stop_all()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A fresh page; uncaught exceptions and CSP violations it reports fail the test.

    The context is shared, so what a test leaves in localStorage (the theme,
    a token) is cleared after it.
    """
    page = context.new_page()
    log = PageLog()
    page.on("pageerror", lambda exc: log.errors.append(str(exc)))
    page.on("console", lambda msg: log.console.append(f"{msg.type}: {msg.text}"))
    yield page
    if page.url.startswith("http"):
        page.evaluate("window.localStorage.clear()")
    page.close()
    assert not log.fatal(), "the page reported errors:\n" + "\n".join(log.fatal())


def _wait_for_points(api_url: str, timeout: float = 40.0) -> None:
    """Until the Response time panel has a point: charts show values at multiples of their step (10 s)."""
    deadline = time.monotonic() + timeout
    answer: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{api_url}/api/v1/dashboards/performance/panels/1/data?range=5m", timeout=10).json()
        if any(v is not None for s in answer.get("series", []) for v in s["values"]):
            return
        time.sleep(0.5)
    pytest.fail(f"no data in the Response time panel after {timeout}s of traffic: {answer}")

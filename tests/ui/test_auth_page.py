"""With auth on: the pages load without a token, ask the viewer for one, and then work, live stream included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from trm_otel.api.auth import TokenConfig

from ..e2e.daemon_process import DaemonProcess
from .browser import BACKENDS, UiServer, panels, wait_until
from .fake_api import FakeApiServer

TOKEN = "ui-editor-token-0123456789abcdef"


@pytest.fixture(scope="module", params=BACKENDS)
def auth_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    if request.param == "fake":
        fake = FakeApiServer(tokens=[TokenConfig(token=TOKEN, tenant="default", role="editor", name="ui")]).start()
        try:
            yield UiServer("fake", fake.url)
        finally:
            fake.stop()
        return
    config = {"auth": {"tokens": [{"token": TOKEN, "tenant": "default", "role": "editor", "name": "ui"}]}}
    with DaemonProcess(tmp_path_factory.mktemp("ui-auth"), config=config) as daemon:
        yield UiServer("daemon", daemon.api_url)


def test_the_page_asks_for_a_token_and_then_works(auth_server: UiServer, page: Any) -> None:
    assert auth_server.api("GET", "/api/v1/dashboards").status_code == 401
    response = page.goto(f"{auth_server.url}/d/performance?range=1h")
    assert response is not None and response.ok, (
        f"/d/performance answered {response and response.status}: the UI's pages and /static/ assets must be "
        "public (they hold no data; the script sends the viewer's token)"
    )
    dialog = page.get_by_role("dialog", name="Sign in")
    dialog.wait_for()
    dialog.get_by_label("Token").fill(TOKEN)
    dialog.get_by_role("button", name="Use this token").click()
    wait_until(page, "document.body && document.body.dataset.ready === '1'")
    assert page.evaluate("window.localStorage.getItem('trmOtel.token')") == TOKEN
    assert all(p["state"] == "ready" for p in panels(page)), panels(page)
    # EventSource cannot send a token: the page reads the stream with fetch instead.
    wait_until(page, "() => document.querySelector('#live').dataset.live === 'live'")
    assert page.evaluate("window.trmOtel.events.hello") >= 1

"""The UI's pages and assets: HTML shells under a strict CSP, plotly from the installed package, caching."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import plotly
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import trm_otel.ui
from trm_otel.ui import StreamHub, ui_routes
from trm_otel.api.hardening import CONTENT_SECURITY_POLICY
from trm_otel.ui.routes import PLOTLY_CACHE_CONTROL, plotly_path
from trm_otel.ui.stream import STREAM_PATH

UI_DIR = Path(trm_otel.ui.__file__).parent


@pytest.fixture
def client() -> TestClient:
    return TestClient(Starlette(routes=ui_routes(StreamHub())))


def test_the_public_names() -> None:
    assert trm_otel.ui.__all__ == ["StreamHub", "ui_routes"]


def test_the_routes_with_and_without_a_hub() -> None:
    assert [r.path for r in ui_routes()] == ["/", "/d/{uid}", "/static/{name:path}"]
    assert [r.path for r in ui_routes(StreamHub())][-1] == STREAM_PATH


def test_the_pages_are_html_shells_under_a_strict_content_security_policy(client: TestClient) -> None:
    listing = client.get("/")
    assert listing.status_code == 200 and listing.headers["content-type"].startswith("text/html")
    assert listing.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY and "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert listing.headers["x-content-type-options"] == "nosniff"
    assert '<body data-page="list" data-uid="">' in listing.text
    assert "plotly.min.js" not in listing.text  # the list draws no chart

    page = client.get("/d/performance")
    assert page.status_code == 200
    assert '<body data-page="dashboard" data-uid="performance" data-plotly=' in page.text
    scripts = re.findall(r'<script src="([^"]+)"', page.text)
    plotly_url = f"/static/plotly.min.js?v={plotly.__version__}"
    assert f'<link rel="preload" href="{plotly_url}" as="script">' in page.text
    assert f'data-plotly="{plotly_url}"' in page.text
    assert re.fullmatch(r"/static/app\.js\?v=[0-9a-f]{12}", scripts[1])
    assert client.get("/d/not%20a%20uid").status_code == 404
    assert client.get("/d/" + "x" * 41).status_code == 404


def test_plotly_is_served_from_the_installed_package_gzipped_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = gzip.compress
    monkeypatch.setattr(gzip, "compress", lambda data, **kw: calls.append(len(data)) or real(data, **kw))
    original = plotly_path().read_bytes()
    assert plotly_path() == Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

    zipped = client.get("/static/plotly.min.js", headers={"accept-encoding": "gzip"})
    assert zipped.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(original) / 2
    assert zipped.content == original  # httpx decodes it
    assert zipped.headers["cache-control"] == PLOTLY_CACHE_CONTROL == "public, max-age=86400, immutable"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert zipped.headers["content-type"] == "text/javascript; charset=utf-8"

    plain = client.get("/static/plotly.min.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == original
    assert plain.headers["etag"] != zipped.headers["etag"]
    assert calls.count(len(original)) == 1  # compressed at the first request, then kept

    for etag in (zipped.headers["etag"], plain.headers["etag"]):
        again = client.get("/static/plotly.min.js", headers={"accept-encoding": "gzip", "if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
    assert client.head("/static/plotly.min.js").status_code == 200


def test_our_own_assets_are_revalidated_on_each_load(client: TestClient) -> None:
    for name, media_type in (("app.js", "text/javascript"), ("app.css", "text/css"), ("theme.js", "text/javascript")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(media_type)
        assert response.headers["cache-control"] == "no-cache"
        assert response.content == (UI_DIR / "static" / name).read_bytes()
        assert client.get(f"/static/{name}", headers={"if-none-match": response.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/../routes.py", "/static/%2e%2e/routes.py",
                                  "/static/templates/page.html", "/static/static/app.js"])
def test_only_the_assets_are_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_no_asset_refers_to_another_host() -> None:
    """Everything the pages load comes from the daemon (the CSP would block the rest anyway)."""
    files = [*sorted((UI_DIR / "static").iterdir()), *sorted((UI_DIR / "templates").iterdir())]
    assert {f.name for f in files} >= {"app.js", "app.css", "theme.js", "page.html"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", text) == [], path.name
        assert "@import" not in text and "@font-face" not in text, path.name

"""The web UI's routes: the dashboard list, a dashboard page, and their static assets.

    >>> hub = StreamHub()
    >>> routes = ui_routes(hub)            # add to the API app's routes
    >>> [r.path for r in routes]
    ['/', '/d/{uid}', '/static/{name:path}', '/api/v1/stream']

``GET /`` lists the dashboards and ``GET /d/{uid}`` shows one (``?range=6h``
or ``?from=now-2d&to=now``, ``&var-NAME=value``, ``&refresh=30s|off``); both
are a small HTML shell whose script (``app.js``) reads the dashboards API,
so the pages hold no data and need no token (the script sends the one the
viewer entered). Everything the page loads comes from this server: the
script, the stylesheet and ``plotly.min.js``, which is served from the
installed plotly package (no CDN, no build step), and the pages' Content
Security Policy (the API's own, :data:`trm_otel.api.hardening.CONTENT_SECURITY_POLICY`,
also set here so the pages carry it behind any middleware) forbids anything else.

Assets are read once, on first request, and kept in memory with a gzipped
copy (plotly.min.js is ~4.6 MB, ~1.4 MB gzipped; compressing it takes a
fraction of a second, on a worker thread). Each has a strong ``ETag``
(``If-None-Match`` answers 304); plotly.min.js is ``immutable`` (it changes
only with the installed package), our own assets are revalidated on every
load (``no-cache``), so a daemon upgrade is seen at once.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from trm_otel.api.hardening import CONTENT_SECURITY_POLICY
from trm_otel.api.responses import _accepts_gzip
from trm_otel.ui.stream import StreamHub

__all__ = ["PLOTLY_CACHE_CONTROL", "plotly_path", "ui_routes"]

PLOTLY_CACHE_CONTROL = "public, max-age=86400, immutable"
_OWN_CACHE_CONTROL = "no-cache"
_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def plotly_path() -> Path:
    """``plotly.min.js`` of the installed plotly package (ImportError/FileNotFoundError name the fix)."""
    try:
        import plotly
    except ImportError:
        raise ImportError("the UI needs plotly: install 'plotly>=5.20' (its wheel ships plotly.min.js)") from None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall plotly (pip install --force-reinstall plotly)")
    return path


@dataclass(frozen=True)
class _Loaded:
    body: bytes
    gzipped: bytes
    etag: str  # quoted, identity encoding; the gzipped copy's is etag[:-1] + '-gz"'


class _Asset:
    """A file served from memory: read and gzipped once, on first request, off the event loop."""

    def __init__(self, read: object, media_type: str, cache_control: str) -> None:
        self._read = read  # () -> bytes
        self.media_type = media_type
        self.cache_control = cache_control
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    def load(self) -> _Loaded:
        with self._lock:  # two first requests at once compress once
            if self._loaded is None:
                body: bytes = self._read()  # type: ignore[operator]
                digest = hashlib.sha256(body).hexdigest()[:32]
                self._loaded = _Loaded(body, gzip.compress(body, compresslevel=9, mtime=0), f'"{digest}"')
            return self._loaded

    async def respond(self, request: Request) -> Response:
        loaded = self._loaded or await anyio.to_thread.run_sync(self.load)
        use_gzip = _accepts_gzip(request.headers.get("accept-encoding", ""))
        etag = loaded.etag[:-1] + '-gz"' if use_gzip else loaded.etag
        headers = {"ETag": etag, "Cache-Control": self.cache_control, "Vary": "Accept-Encoding",
                   "X-Content-Type-Options": "nosniff"}
        if _etag_matches(request.headers.get("if-none-match", ""), loaded.etag):
            return Response(status_code=304, headers=headers)
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
            return Response(loaded.gzipped, media_type=self.media_type, headers=headers)
        return Response(loaded.body, media_type=self.media_type, headers=headers)

    def version(self) -> str:
        """A short content hash, to put in the asset's URL."""
        return self.load().etag.strip('"')[:12]


def _plotly_version() -> str:
    import plotly

    return str(getattr(plotly, "__version__", "0"))


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether ``If-None-Match`` names this file in either encoding (or ``*``)."""
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags or etag[:-1] + '-gz"' in tags


class _Ui:
    def __init__(self) -> None:
        package = importlib.resources.files("trm_otel.ui")
        self.assets: dict[str, _Asset] = {}
        static = package / "static"
        for entry in static.iterdir():
            suffix = Path(entry.name).suffix
            if entry.is_file() and suffix in _MEDIA_TYPES:
                self.assets[entry.name] = _Asset(entry.read_bytes, _MEDIA_TYPES[suffix], _OWN_CACHE_CONTROL)
        self.assets["plotly.min.js"] = _Asset(
            lambda: plotly_path().read_bytes(), _MEDIA_TYPES[".js"], PLOTLY_CACHE_CONTROL
        )
        templates = package / "templates"
        sources = {e.name: e.read_text(encoding="utf-8") for e in templates.iterdir() if e.name.endswith(".html")}
        self.env = jinja2.Environment(loader=jinja2.DictLoader(sources), autoescape=True, undefined=jinja2.StrictUndefined)
        self._versions: dict[str, str] | None = None

    def asset_url(self, name: str) -> str:
        if self._versions is None:
            self._versions = {n: a.version() for n, a in self.assets.items() if n != "plotly.min.js"}
        version = self._versions.get(name) or _plotly_version()
        return f"/static/{name}?v={version}"

    def render(self, **context: object) -> HTMLResponse:
        html = self.env.get_template("page.html").render(asset=self.asset_url, **context)
        return HTMLResponse(html, headers=_PAGE_HEADERS)

    async def index(self, request: Request) -> Response:
        return self.render(page="list", uid="", title="Dashboards")

    async def dashboard(self, request: Request) -> Response:
        uid = request.path_params["uid"]
        if not _UID.match(uid):
            raise HTTPException(404, f"not a dashboard uid: {uid!r}")
        return self.render(page="dashboard", uid=uid, title=uid)

    async def static(self, request: Request) -> Response:
        asset = self.assets.get(request.path_params["name"])
        if asset is None:
            raise HTTPException(404)
        return await asset.respond(request)


def ui_routes(hub: StreamHub | None = None) -> list[Route]:
    """``/``, ``/d/{uid}``, ``/static/...`` and, given a hub, ``/api/v1/stream``."""
    ui = _Ui()
    get = ["GET"]  # starlette adds HEAD
    routes = [
        Route("/", ui.index, methods=get),
        Route("/d/{uid}", ui.dashboard, methods=get),
        Route("/static/{name:path}", ui.static, methods=get),
    ]
    if hub is not None:
        routes.append(hub.route())
    return routes

"""What every API answer and request goes through: security headers, a body limit, a rate limit.

* **Headers**: a Content-Security-Policy that lets pages load only the
  daemon's own scripts, styles, images and connections (no CDN, no inline
  script; plotly needs inline *styles*), plus ``nosniff``, no referrer and
  no framing. The API uses bearer tokens, never cookies, so there is no
  session for another site to ride on.
* **Body limit**: requests larger than ``api.max_request_body_size_mib``
  are answered 413 before the handler reads them (by ``Content-Length``;
  a chunked body without one is answered 411).
* **Rate limit**: a token bucket per caller (token name, or client address
  when auth is off): ``api.rate_limit.requests_per_second`` sustained,
  ``burst`` at once; over it the answer is 429 with ``Retry-After``. Probes
  (``/healthz``, ``/readyz``) are never limited.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import orjson

from trm_otel.api.auth import PUBLIC_PATHS
from trm_otel.config_types import StrictModel

__all__ = ["CONTENT_SECURITY_POLICY", "HardeningMiddleware", "RateLimitSettings"]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class RateLimitSettings(StrictModel):
    requests_per_second: float = 50.0
    burst: int = 200


class _Buckets:
    def __init__(self, settings: RateLimitSettings, max_callers: int = 10_000) -> None:
        self.rate = settings.requests_per_second
        self.burst = float(settings.burst)
        self.max_callers = max_callers
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str, now: float) -> float:
        """0 when allowed, else seconds until a request would be."""
        with self._lock:
            tokens, updated = self._state.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - updated) * self.rate)
            if tokens >= 1.0:
                if len(self._state) >= self.max_callers and caller not in self._state:
                    self._state.clear()  # an address storm: start over rather than grow without end
                self._state[caller] = (tokens - 1.0, now)
                return 0.0
            self._state[caller] = (tokens, now)
            return (1.0 - tokens) / self.rate


class HardeningMiddleware:
    """Wraps the API app (inside the auth middleware, which has set ``state.principal``)."""

    def __init__(self, app: Any, *, max_body_bytes: int, rate_limit: RateLimitSettings | None) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.buckets = _Buckets(rate_limit) if rate_limit is not None else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in _HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        path = scope.get("path", "")
        if self.buckets is not None and path not in PUBLIC_PATHS:
            principal = scope.get("state", {}).get("principal")
            client = scope.get("client") or ("?", 0)
            caller = principal.name if principal is not None and principal.name != "anonymous" else client[0]
            wait = self.buckets.take(caller, time.monotonic())
            if wait > 0:
                await _answer(send_with_headers, 429, f"rate limit exceeded for {caller}: retry in {wait:.1f}s",
                              {"retry-after": str(max(1, math.ceil(wait)))})
                return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is None and b"transfer-encoding" in headers:
            # Streamed bodies cannot be checked before the handler reads them; the API's clients all know the size.
            await _answer(send_with_headers, 411, "send the body with a Content-Length (chunked bodies are refused)", {})
            return
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _answer(send_with_headers, 413, f"request body of {int(length)} bytes is over the API's limit of "
                                                  f"{self.max_body} bytes (api.max_request_body_size_mib)", {})
            return
        await self.app(scope, receive, send_with_headers)


async def _answer(send: Any, status: int, message: str, headers: dict[str, str]) -> None:
    body = orjson.dumps({"error": message})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})

"""``GET /api/v1/stream``: server-sent events telling open dashboards that new data is there.

    >>> hub = StreamHub()
    >>> routes = [hub.route()]                           # GET /api/v1/stream
    >>> hub.publish_views("default")                     # a window closed: dashboards refetch
    0
    >>> hub.publish_alerts("default", {"firing": 2, "pending": 0})
    0
    >>> hub.close()                                      # before stopping the server (see below)

(Each call answers how many open streams it reached; none here.)

A stream belongs to its caller's tenant (:func:`trm_otel.api.auth.principal_of`)
and sees only that tenant's events; ``publish(None, ...)`` reaches every
tenant (the daemon's views are not yet split by tenant). Events:

``hello``  first, ``{"tenant", "heartbeat_s"}``
``views``  a latency window closed: ``{"time": unix s, ...}``; the UI refetches (debounced)
``alerts`` the alerting summary changed: what the daemon passed to :meth:`StreamHub.publish_alerts`
``resync`` the client fell behind and events were dropped, or it reconnected
           (``Last-Event-ID``): ``{"dropped": n}``; the UI refetches everything

plus a comment line (``: heartbeat``) after :attr:`StreamHub.heartbeat_s`
without an event, so proxies keep the connection open and a vanished client
is noticed. Every event has an ``id``, increasing per hub.

Publishing never blocks and may happen from any thread: each event is
encoded once, then appended to each subscriber's bounded queue; a client
that reads too slowly loses the oldest events, not the newest, and gets a
``resync`` before what remains. Open streams keep the server's graceful
shutdown waiting forever (uvicorn waits for every response to finish), so
the owner calls :meth:`StreamHub.close` before stopping the server: every
stream then ends and new ones are answered 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from trm_otel.api.auth import principal_of
from trm_otel.api.responses import error_response

__all__ = ["STREAM_PATH", "StreamHub"]

_logger = logging.getLogger(__name__)

#: Where the stream is served.
STREAM_PATH = "/api/v1/stream"

_EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
    "Connection": "keep-alive",
}


class _Subscriber:
    """One open stream: its pending frames, how many were dropped, and how to wake it."""

    __slots__ = ("dropped", "frames", "loop", "tenant", "wake")

    def __init__(self, tenant: str, loop: asyncio.AbstractEventLoop) -> None:
        self.tenant = tenant
        self.loop = loop
        self.frames: deque[bytes] = deque()
        self.dropped = 0
        self.wake = asyncio.Event()


class StreamHub:
    """Per-tenant fan-out of events to server-sent-event streams.

    ``queue_size`` events wait per client before the oldest are dropped;
    ``max_subscribers`` open streams at most (more are answered 503, so a
    reload storm cannot hold every connection); a heartbeat comment goes
    out after ``heartbeat_s`` without an event; ``retry_ms`` is what the
    browser waits before reconnecting.
    """

    def __init__(
        self,
        *,
        queue_size: int = 256,
        heartbeat_s: float = 15.0,
        max_subscribers: int = 1000,
        retry_ms: int = 3000,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"StreamHub: queue_size must be at least 1, got {queue_size}")
        if not heartbeat_s > 0:
            raise ValueError(f"StreamHub: heartbeat_s must be positive, got {heartbeat_s}")
        if max_subscribers < 1:
            raise ValueError(f"StreamHub: max_subscribers must be at least 1, got {max_subscribers}")
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.max_subscribers = max_subscribers
        self.retry_ms = retry_ms
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[_Subscriber]] = {}
        self._next_id = 0
        self._closed = False
        #: Events dropped for slow clients since start (for the daemon's own metrics).
        self.dropped_total = 0

    # ------------------------------------------------------------ publishing

    def publish(self, tenant: str | None, event: str, data: Any) -> int:
        """Queue ``event`` with JSON ``data`` for ``tenant``'s streams (``None``: every tenant's).

        Returns how many streams it was queued for. Never blocks; safe from any thread.
        """
        if not _EVENT_NAME.match(event):
            raise ValueError(f"StreamHub.publish: event must be a letter then letters, digits, '_.-', got {event!r}")
        payload = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        with self._lock:
            if self._closed:
                return 0
            self._next_id += 1
            frame = b"id: %d\nevent: %s\ndata: %s\n\n" % (self._next_id, event.encode(), payload)
            if tenant is None:
                targets = [s for group in self._subscribers.values() for s in group]
            else:
                targets = list(self._subscribers.get(tenant, ()))
            for subscriber in targets:
                if len(subscriber.frames) >= self.queue_size:
                    subscriber.frames.popleft()
                    subscriber.dropped += 1
                    self.dropped_total += 1
                subscriber.frames.append(frame)
        for subscriber in targets:
            _wake(subscriber)
        return len(targets)

    def publish_views(self, tenant: str | None = None, **info: Any) -> int:
        """A latency window closed: open dashboards of ``tenant`` (``None``: all) refetch their panels."""
        return self.publish(tenant, "views", {"time": round(time.time(), 3), **info})

    def publish_alerts(self, tenant: str | None, alerts_summary: Any) -> int:
        """The alerts of ``tenant`` changed; ``alerts_summary`` is sent as is (JSON)."""
        return self.publish(tenant, "alerts", alerts_summary)

    async def publish_views_forever(self, interval_s: float, stop: asyncio.Event | None = None) -> None:
        """Publish ``views`` to every tenant each ``interval_s``, just after each window boundary.

        Costs nothing while no stream is open. Ends when ``stop`` is set or the hub is closed.
        """
        if not interval_s > 0:
            raise ValueError(f"StreamHub.publish_views_forever: interval_s must be positive, got {interval_s}")
        stop = stop or asyncio.Event()
        while not stop.is_set() and not self._closed:
            delay = interval_s - (time.time() % interval_s) + min(0.25, interval_s / 10)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if not stop.is_set() and self.subscribers():
                self.publish_views(None)

    # -------------------------------------------------------------- reading

    def subscribers(self, tenant: str | None = None) -> int:
        """Open streams of ``tenant`` (``None``: all)."""
        with self._lock:
            if tenant is None:
                return sum(len(group) for group in self._subscribers.values())
            return len(self._subscribers.get(tenant, ()))

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """End every open stream and refuse new ones; safe twice."""
        with self._lock:
            self._closed = True
            everyone = [s for group in self._subscribers.values() for s in group]
        for subscriber in everyone:
            _wake(subscriber)

    # ----------------------------------------------------------------- HTTP

    def route(self) -> Route:
        """``GET /api/v1/stream`` over this hub."""
        return Route(STREAM_PATH, self.handle, methods=["GET"])

    async def handle(self, request: Request) -> Response:
        """The stream of the caller's tenant, until the client leaves or the hub closes."""
        tenant = principal_of(request).tenant
        subscriber = _Subscriber(tenant, asyncio.get_running_loop())
        with self._lock:
            if self._closed:
                return error_response(503, "the event stream is shutting down; reconnect later")
            if sum(len(group) for group in self._subscribers.values()) >= self.max_subscribers:
                return error_response(503, f"too many open event streams (at most {self.max_subscribers})")
            self._subscribers.setdefault(tenant, set()).add(subscriber)
        resync = request.headers.get("last-event-id") is not None
        return _EventStreamResponse(self, subscriber, self._frames(subscriber, resync))

    def _unsubscribe(self, subscriber: _Subscriber) -> None:
        with self._lock:
            group = self._subscribers.get(subscriber.tenant)
            if group is not None:
                group.discard(subscriber)
                if not group:
                    del self._subscribers[subscriber.tenant]

    async def _frames(self, subscriber: _Subscriber, resync: bool) -> AsyncIterator[bytes]:
        try:
            hello = {"tenant": subscriber.tenant, "heartbeat_s": self.heartbeat_s}
            yield b"retry: %d\nevent: hello\ndata: %s\n\n" % (self.retry_ms, orjson.dumps(hello))
            if resync:  # a reconnect: whatever happened meanwhile is lost
                yield _resync_frame(0)
            while not self._closed:
                try:
                    await asyncio.wait_for(subscriber.wake.wait(), self.heartbeat_s)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                subscriber.wake.clear()
                with self._lock:
                    frames = list(subscriber.frames)
                    subscriber.frames.clear()
                    dropped, subscriber.dropped = subscriber.dropped, 0
                if self._closed:
                    break
                if dropped:
                    yield _resync_frame(dropped)
                if frames:
                    yield b"".join(frames)
        finally:
            self._unsubscribe(subscriber)


class _EventStreamResponse(StreamingResponse):
    """A streaming response that always unsubscribes, however the stream ends."""

    def __init__(self, hub: StreamHub, subscriber: _Subscriber, frames: AsyncIterator[bytes]) -> None:
        super().__init__(frames, headers=_HEADERS, media_type="text/event-stream")
        self._hub = hub
        self._subscriber = subscriber

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._hub._unsubscribe(self._subscriber)
            closer = getattr(self.body_iterator, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()


def _resync_frame(dropped: int) -> bytes:
    return b"event: resync\ndata: %s\n\n" % orjson.dumps({"dropped": dropped})


def _wake(subscriber: _Subscriber) -> None:
    """Set the subscriber's event on its own loop (publishers may be on other threads)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is subscriber.loop:
        subscriber.wake.set()
        return
    try:
        subscriber.loop.call_soon_threadsafe(subscriber.wake.set)
    except RuntimeError:  # its loop is closed: the stream is gone
        pass

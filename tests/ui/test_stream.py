"""The event stream: per-tenant fan-out, bounded queues with resync, heartbeats, shutdown."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request

from trm_otel.api.auth import OPEN, Authenticator, AuthMiddleware, Principal, TokenConfig
from trm_otel.ui import StreamHub
from trm_otel.ui.stream import STREAM_PATH

SHOP_TOKEN = "shop-token-0123456789"
BANK_TOKEN = "bank-token-0123456789"


def parse(chunk: bytes) -> list[dict[str, Any]]:
    """The events in a chunk of the stream: ``{"event", "id", "data"}`` each (comments as ``{"comment"}``)."""
    events = []
    for block in chunk.decode().split("\n\n"):
        if not block:
            continue
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "":
                event["comment"] = value
            elif field == "data":
                event["data"] = json.loads(value)
            else:
                event[field] = value
        events.append(event)
    return events


async def open_stream(hub: StreamHub, principal: Principal = OPEN, last_event_id: str | None = None) -> AsyncIterator[bytes]:
    headers = [(b"last-event-id", last_event_id.encode())] if last_event_id is not None else []
    scope = {"type": "http", "method": "GET", "path": STREAM_PATH, "headers": headers, "query_string": b"",
             "state": {"principal": principal}}
    response = await hub.handle(Request(scope))
    assert response.status_code == 200 and response.media_type == "text/event-stream"
    frames = response.body_iterator
    hello = parse(await anext(frames))
    assert hello[0]["event"] == "hello" and hello[0]["data"]["tenant"] == principal.tenant
    return frames


def run(coroutine: Any) -> Any:
    """``asyncio.run`` on a thread of its own: playwright's sync API keeps a loop running on this one."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(asyncio.wait_for(coroutine, 10))
        except BaseException as err:  # noqa: BLE001 - re-raised below, on the test's thread
            outcome["error"] = err

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(15)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def test_events_reach_the_streams_of_their_tenant_only() -> None:
    async def scenario() -> None:
        hub = StreamHub()
        shop = await open_stream(hub, Principal("alice", "shop", "viewer"))
        bank = await open_stream(hub, Principal("bob", "bank", "viewer"))
        assert hub.subscribers() == 2 and hub.subscribers("shop") == 1
        assert hub.publish("shop", "views", {"n": 1}) == 1
        assert hub.publish_alerts("bank", {"firing": 2}) == 1
        assert hub.publish(None, "views", {"n": 2}) == 2
        assert [(e["event"], e["data"]) for e in parse(await anext(shop))] == [("views", {"n": 1}), ("views", {"n": 2})]
        assert [(e["event"], e["data"]) for e in parse(await anext(bank))] == [("alerts", {"firing": 2}), ("views", {"n": 2})]
        await shop.aclose()
        assert hub.subscribers() == 1 and hub.publish("shop", "views", {}) == 0

    run(scenario())


def test_a_client_that_falls_behind_loses_the_oldest_events_and_is_told_to_resync() -> None:
    async def scenario() -> None:
        hub = StreamHub(queue_size=3)
        frames = await open_stream(hub)
        for n in range(5):
            hub.publish("default", "views", {"n": n})
        events = parse(await anext(frames)) + parse(await anext(frames))
        assert events[0] == {"event": "resync", "data": {"dropped": 2}}
        assert [e["data"]["n"] for e in events[1:]] == [2, 3, 4]
        assert [int(e["id"]) for e in events[1:]] == [3, 4, 5]
        assert hub.dropped_total == 2

    run(scenario())


def test_a_reconnecting_client_is_told_to_resync_at_once() -> None:
    async def scenario() -> None:
        frames = await open_stream(StreamHub(), last_event_id="41")
        assert parse(await anext(frames)) == [{"event": "resync", "data": {"dropped": 0}}]

    run(scenario())


def test_an_idle_stream_sends_heartbeat_comments() -> None:
    async def scenario() -> None:
        frames = await open_stream(StreamHub(heartbeat_s=0.05))
        started = time.monotonic()
        assert parse(await anext(frames)) == [{"comment": "heartbeat"}]
        assert time.monotonic() - started >= 0.04

    run(scenario())


def test_views_are_published_each_interval_while_someone_listens() -> None:
    async def scenario() -> None:
        hub = StreamHub()
        stop = asyncio.Event()
        ticker = asyncio.create_task(hub.publish_views_forever(0.05, stop))
        frames = await open_stream(hub)
        (event,) = parse(await anext(frames))[:1]
        assert event["event"] == "views" and abs(event["data"]["time"] - time.time()) < 5
        stop.set()
        await ticker

    run(scenario())


def test_closing_ends_every_stream_and_refuses_new_ones() -> None:
    async def scenario() -> None:
        hub = StreamHub()
        frames = await open_stream(hub)
        hub.close()
        hub.close()  # twice is fine
        with pytest.raises(StopAsyncIteration):
            await anext(frames)
        assert hub.subscribers() == 0 and hub.publish(None, "views", {}) == 0
        scope = {"type": "http", "method": "GET", "path": STREAM_PATH, "headers": [], "query_string": b""}
        refused = await hub.handle(Request(scope))
        assert refused.status_code == 503
        assert json.loads(refused.body) == {"error": "the event stream is shutting down; reconnect later"}

    run(scenario())


def test_streams_beyond_the_limit_are_refused() -> None:
    async def scenario() -> None:
        hub = StreamHub(max_subscribers=1)
        await open_stream(hub)
        scope = {"type": "http", "method": "GET", "path": STREAM_PATH, "headers": [], "query_string": b""}
        refused = await hub.handle(Request(scope))
        assert refused.status_code == 503
        assert json.loads(refused.body) == {"error": "too many open event streams (at most 1)"}

    run(scenario())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"queue_size": 0}, "StreamHub: queue_size must be at least 1, got 0"),
        ({"heartbeat_s": 0}, "StreamHub: heartbeat_s must be positive, got 0"),
        ({"max_subscribers": 0}, "StreamHub: max_subscribers must be at least 1, got 0"),
    ],
)
def test_bad_settings_are_refused_with_the_rule(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        StreamHub(**kwargs)
    assert str(raised.value) == message


def test_an_event_name_that_would_break_the_stream_is_refused() -> None:
    with pytest.raises(ValueError) as raised:
        StreamHub().publish("default", "views\ndata: x", {})
    assert str(raised.value) == (
        "StreamHub.publish: event must be a letter then letters, digits, '_.-', got 'views\\ndata: x'"
    )


# ------------------------------------------------------------------ over HTTP, behind the auth middleware


class _Server:
    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def hub_server() -> Iterator[tuple[StreamHub, str, _Server]]:
    hub = StreamHub()
    tokens = [TokenConfig(token=SHOP_TOKEN, tenant="shop", role="viewer"),
              TokenConfig(token=BANK_TOKEN, tenant="bank", role="viewer")]
    app = AuthMiddleware(Starlette(routes=[hub.route()]), Authenticator(tokens))
    server = _Server(app)
    with server as url:
        yield hub, url, server
        hub.close()


class _Events:
    """Reads events off a streamed response, a few at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_raw()
        self._buffer = b""

    def take(self, want: int) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while len(events) < want:
            while b"\n\n" in self._buffer and len(events) < want:
                block, self._buffer = self._buffer.split(b"\n\n", 1)
                events.extend(parse(block + b"\n\n"))
            if len(events) >= want:
                break
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        return events


def test_the_stream_over_http_belongs_to_the_tokens_tenant(hub_server: tuple[StreamHub, str, _Server]) -> None:
    hub, url, _server = hub_server
    headers = {"Authorization": f"Bearer {SHOP_TOKEN}"}
    with httpx.stream("GET", url + STREAM_PATH, headers=headers, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache, no-transform"
        events = _Events(response)
        (hello,) = events.take(1)
        assert hello["data"]["tenant"] == "shop" and hello["retry"] == "3000"
        deadline = time.monotonic() + 5
        while hub.subscribers("shop") == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # published from this thread, not the server's loop
        assert hub.publish("bank", "views", {"who": "bank"}) == 0
        assert hub.publish_views("shop", window="10s") == 1
        (views,) = events.take(1)
        assert views["event"] == "views" and views["data"]["window"] == "10s"
    assert httpx.get(url + STREAM_PATH, timeout=5).status_code == 401


def test_closing_the_hub_lets_the_server_stop_with_streams_open(hub_server: tuple[StreamHub, str, _Server]) -> None:
    hub, url, server = hub_server
    with httpx.stream("GET", url + STREAM_PATH, headers={"Authorization": f"Bearer {BANK_TOKEN}"}, timeout=10) as response:
        events = _Events(response)
        assert events.take(1)[0]["event"] == "hello"
        hub.close()
        assert events.take(1) == []  # the stream ended
    started = time.monotonic()
    server.server.should_exit = True
    server.thread.join(10)
    assert not server.thread.is_alive() and time.monotonic() - started < 5

"""Silences: Alertmanager's API v2 JSON, validation, and the per-tenant SQLite store."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trm_otel.alerting import silences as module
from trm_otel.alerting.silences import Silence, SilenceStore, parse_time
from trm_otel.errors import ConfigError

# 2026-11-30T04:00:00Z and friends.
T0 = 1796011200.0
HOUR = 3600.0


def body(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "matchers": [
            {"name": "service.name", "value": "checkout", "isRegex": False},
            {"name": "severity", "value": "warning|info", "isRegex": True, "isEqual": True},
        ],
        "startsAt": "2026-11-30T04:00:00Z",
        "endsAt": "2026-11-30T06:00:00.250Z",
        "createdBy": "ana@example.com",
        "comment": "deploying 4.2",
    }
    data.update(overrides)
    return data


def problems(data: Any) -> tuple[tuple[str, str], ...]:
    with pytest.raises(ConfigError) as info:
        Silence.parse(data)
    return info.value.problems


@pytest.fixture
def store() -> Iterator[SilenceStore]:
    s = SilenceStore(sqlite3.connect(":memory:", check_same_thread=False))
    yield s
    s.close()


def test_exported_names() -> None:
    assert sorted(module.__all__) == [
        "DEFAULT_RETENTION",
        "Silence",
        "SilenceMatcher",
        "SilenceState",
        "SilenceStore",
        "parse_time",
    ]


def test_api_json_round_trip() -> None:
    silence = Silence.parse(body())
    assert (silence.starts_at, silence.ends_at) == (T0, T0 + 2 * HOUR + 0.25)
    out = silence.model_copy(update={"id": "5c1e8f5e-0000-4000-8000-000000000000", "updated_at": T0 - 60}).to_api_json(
        now=T0 + HOUR
    )
    assert out == {
        "id": "5c1e8f5e-0000-4000-8000-000000000000",
        "matchers": [
            {"name": "service.name", "value": "checkout", "isRegex": False, "isEqual": True},
            {"name": "severity", "value": "warning|info", "isRegex": True, "isEqual": True},
        ],
        "startsAt": "2026-11-30T04:00:00.000Z",
        "endsAt": "2026-11-30T06:00:00.250Z",
        "createdBy": "ana@example.com",
        "comment": "deploying 4.2",
        "status": {"state": "active"},
        "updatedAt": "2026-11-30T03:59:00.000Z",
    }
    # What the API returns can be edited and POSTed back: status and updatedAt are ignored.
    again = Silence.parse(out)
    assert again.id == out["id"] and again.matchers == silence.matchers and again.updated_at is None


def test_times_in_other_offsets_and_precisions() -> None:
    assert parse_time("2026-11-30T05:00:00+01:00") == T0
    assert parse_time("2026-11-29T23:30:00-04:30") == T0
    assert parse_time("2026-11-30T04:00:00.123456789Z") == pytest.approx(T0 + 0.123456789)
    assert parse_time(T0) == T0
    for bad, message in [
        ("2026-11-30 04:00", "not an RFC 3339 time: '2026-11-30 04:00'"),
        ("2026-11-30T04:00:00", "not an RFC 3339 time"),  # no offset
        ("2026-02-30T04:00:00Z", "day is out of range for month"),
        ("0001-01-01T00:00:00Z", "not the zero time"),
        (True, "not an RFC 3339 time: True"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_time(bad)


def test_state_follows_time() -> None:
    silence = Silence.parse(body())
    assert silence.state(T0 - 1) == "pending"
    assert silence.state(T0) == "active"
    assert silence.state(T0 + 2 * HOUR) == "active"
    assert silence.state(T0 + 2 * HOUR + 0.25) == "expired"  # endsAt is exclusive


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {},
            (
                ("matchers", "Field required"),
                ("startsAt", "Field required"),
                ("endsAt", "Field required"),
                ("createdBy", "Field required"),
                ("comment", "Field required"),
            ),
        ),
        (body(matchers=[]), (("matchers", "at least one matcher is required"),)),
        (
            body(
                matchers=[{"name": "a", "value": "", "isRegex": False}, {"name": "b", "value": ".*", "isRegex": True}]
            ),
            (("matchers", "at least one matcher must not match the empty string (it would silence every alert)"),),
        ),
        (body(endsAt="2026-11-30T04:00:00Z"), (("endsAt", "endsAt must be after startsAt"),)),
        (body(endsAt="2026-11-30T03:00:00Z"), (("endsAt", "endsAt must be after startsAt"),)),
        (
            body(matchers=[{"name": "a", "value": "x(", "isRegex": True}]),
            (("matchers[0]", "invalid regular expression 'x(': missing ), unterminated subpattern at position 1"),),
        ),
        (body(matchers=[{"name": "a", "value": "x"}]), (("matchers[0].isRegex", "Field required"),)),
        (
            body(matchers=[{"name": "", "value": "x", "isRegex": False}]),
            (("matchers[0].name", "String should have at least 1 character"),),
        ),
        (
            body(matchers=[{"name": "a", "value": "x", "isRegex": "yes"}]),
            (("matchers[0].isRegex", "Input should be a valid boolean"),),
        ),
        (
            body(startsAt="yesterday"),
            (("startsAt", "not an RFC 3339 time: 'yesterday' (use e.g. 2026-11-30T04:20:00Z)"),),
        ),
        (body(endAt="2026-11-30T05:00:00Z"), (("endAt", "unknown key (did you mean 'endsAt'?)"),)),
        ([1, 2], (("", "Input should be a valid dictionary or instance of Silence"),)),
    ],
)
def test_validation_messages_carry_the_field_path(data: Any, expected: tuple[tuple[str, str], ...]) -> None:
    assert problems(data) == expected


def test_negative_matchers_are_accepted_alone_as_in_alertmanager() -> None:
    silence = Silence.parse(body(matchers=[{"name": "team", "value": "db", "isRegex": False, "isEqual": False}]))
    assert silence.matches({"team": "web"}) and silence.matches({}) and not silence.matches({"team": "db"})


def test_create_get_list_and_silenced_by(store: SilenceStore) -> None:
    sid = store.create_or_update("acme", Silence.parse(body()), now=T0 - HOUR)
    assert uuid.UUID(sid).version == 4
    stored = store.get("acme", sid)
    assert stored.id == sid and stored.updated_at == T0 - HOUR and stored.starts_at == T0
    labels = {"service.name": "checkout", "severity": "warning", "alertname": "SlowCheckout"}
    assert store.silenced_by("acme", labels, T0 - 1) == []  # pending
    assert store.silenced_by("acme", labels, T0) == [sid]
    assert store.silenced_by("acme", {**labels, "severity": "critical"}, T0) == []
    assert store.silenced_by("acme", labels, T0 + 2 * HOUR + 0.25) == []  # expired
    assert [s.id for s in store.list("acme", "pending", now=T0 - 1)] == [sid]
    assert store.list("acme", "active", now=T0 - 1) == []
    with pytest.raises(ValueError, match="unknown silence state 'live'"):
        store.list("acme", "live")  # type: ignore[arg-type]


def test_a_silence_starting_in_the_past_starts_now(store: SilenceStore) -> None:
    sid = store.create_or_update("acme", Silence.parse(body()), now=T0 + 600)
    assert store.get("acme", sid).starts_at == T0 + 600
    with pytest.raises(ValueError, match="endsAt 2026-11-30T06:00:00.250Z is not in the future"):
        store.create_or_update("acme", Silence.parse(body()), now=T0 + 3 * HOUR)


def test_tenants_are_separate(store: SilenceStore) -> None:
    sid = store.create_or_update("acme", Silence.parse(body()), now=T0)
    labels = {"service.name": "checkout", "severity": "info"}
    assert store.silenced_by("acme", labels, T0 + 1) == [sid]
    assert store.silenced_by("globex", labels, T0 + 1) == []
    assert store.list("globex") == []
    with pytest.raises(KeyError, match=f"silence '{sid}' not found"):
        store.get("globex", sid)
    with pytest.raises(KeyError):
        store.expire("globex", sid, now=T0 + 1)
    with pytest.raises(KeyError):
        store.create_or_update("globex", Silence.parse(body(id=sid)), now=T0 + 1)
    assert store.get("acme", sid).state(T0 + 1) == "active"


def test_expire_active_and_pending(store: SilenceStore) -> None:
    active = store.create_or_update("acme", Silence.parse(body()), now=T0)
    pending = store.create_or_update("acme", Silence.parse(body(startsAt="2026-11-30T05:00:00Z")), now=T0)
    now = T0 + 600
    expired = store.expire("acme", active, now=now)
    assert (expired.starts_at, expired.ends_at, expired.updated_at) == (T0, now, now)
    assert store.get("acme", active).state(now) == "expired"  # at once, even at the same instant
    expired_pending = store.expire("acme", pending, now=now)
    assert (expired_pending.starts_at, expired_pending.ends_at) == (now, now)
    assert store.get("acme", pending).state(now) == "expired"
    # Idempotent: expiring again changes nothing.
    assert store.expire("acme", active, now=now + 60) == store.get("acme", active)
    assert store.get("acme", active).ends_at == now
    with pytest.raises(KeyError, match="silence 'nope' not found"):
        store.expire("acme", "nope")


def test_list_order_is_alertmanagers(store: SilenceStore) -> None:
    def make(start: str, end: str) -> str:
        return store.create_or_update("acme", Silence.parse(body(startsAt=start, endsAt=end)), now=T0)

    active_late = make("2026-11-30T04:00:00Z", "2026-11-30T09:00:00Z")
    active_soon = make("2026-11-30T04:00:00Z", "2026-11-30T05:00:00Z")
    pending_late = make("2026-11-30T08:00:00Z", "2026-11-30T09:00:00Z")
    pending_soon = make("2026-11-30T06:00:00Z", "2026-11-30T09:00:00Z")
    expired_old = make("2026-11-30T04:00:00Z", "2026-11-30T04:10:00Z")
    expired_new = make("2026-11-30T04:00:00Z", "2026-11-30T04:20:00Z")
    order = [s.id for s in store.list("acme", now=T0 + HOUR / 2)]
    assert order == [active_soon, active_late, pending_soon, pending_late, expired_new, expired_old]


def test_update_in_place_when_history_is_kept(store: SilenceStore) -> None:
    sid = store.create_or_update("acme", Silence.parse(body()), now=T0)
    # Active, same matchers and start, later end: same id, new end.
    posted = store.get("acme", sid).to_api_json(now=T0 + 60)
    posted["endsAt"] = "2026-11-30T08:00:00Z"
    posted["comment"] = "takes longer"
    assert store.create_or_update("acme", Silence.parse(posted), now=T0 + 60) == sid
    updated = store.get("acme", sid)
    assert (updated.ends_at, updated.comment, updated.updated_at) == (T0 + 4 * HOUR, "takes longer", T0 + 60)
    assert len(store.list("acme")) == 1

    # A pending silence may move, as long as it still starts in the future.
    tomorrow = body(startsAt="2026-11-30T10:00:00Z", endsAt="2026-11-30T11:00:00Z")
    later = store.create_or_update("acme", Silence.parse(tomorrow), now=T0)
    moved = Silence.parse(body(id=later, startsAt="2026-11-30T09:00:00Z", endsAt="2026-11-30T11:00:00Z"))
    assert store.create_or_update("acme", moved, now=T0) == later
    assert store.get("acme", later).starts_at == T0 + 5 * HOUR


def test_changes_that_rewrite_history_replace_the_silence(store: SilenceStore) -> None:
    sid = store.create_or_update("acme", Silence.parse(body()), now=T0)
    changed = body(id=sid, matchers=[{"name": "service.name", "value": "cart", "isRegex": False}])
    new_id = store.create_or_update("acme", Silence.parse(changed), now=T0 + 60)
    assert new_id != sid
    old = store.get("acme", sid)
    assert old.ends_at == T0 + 60 and old.state(T0 + 60) == "expired"
    assert store.silenced_by("acme", {"service.name": "cart"}, T0 + 61) == [new_id]
    assert store.silenced_by("acme", {"service.name": "checkout", "severity": "info"}, T0 + 61) == []

    # Moving the start of an active silence also replaces it.
    moved = body(id=new_id, matchers=changed["matchers"], startsAt="2026-11-30T04:30:00Z")
    newer = store.create_or_update("acme", Silence.parse(moved), now=T0 + 120)
    assert newer not in (sid, new_id) and store.get("acme", new_id).state(T0 + 120) == "expired"

    # An expired silence is never revived: POSTing it again creates a new one.
    revived = store.create_or_update("acme", Silence.parse(body(id=sid, endsAt="2026-11-30T07:00:00Z")), now=T0 + 180)
    assert revived != sid and store.get("acme", sid).ends_at == T0 + 60


def test_garbage_collection_after_retention(store: SilenceStore) -> None:
    sid = store.create_or_update("acme", Silence.parse(body()), now=T0)
    other = store.create_or_update("globex", Silence.parse(body(endsAt="2026-12-10T00:00:00Z")), now=T0)
    ends = store.get("acme", sid).ends_at
    assert store.gc(now=ends + 5 * 86400) == 0
    assert store.gc(now=ends + 5 * 86400 + 1) == 1
    with pytest.raises(KeyError):
        store.get("acme", sid)
    assert store.get("globex", other).id == other
    with sqlite3.connect(":memory:") as conn:
        short = SilenceStore(conn, retention=60)
        kept = short.create_or_update("acme", Silence.parse(body()), now=T0)
        assert short.gc(now=T0 + 2 * HOUR + 30) == 0 and short.get("acme", kept)
        assert short.gc(now=T0 + 2 * HOUR + 61) == 1
    conn.close()


def test_persistence_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "silences.db"
    first = SilenceStore(path)
    sid = first.create_or_update("acme", Silence.parse(body()), now=T0)
    first.close()
    first.close()  # safe twice
    reopened = SilenceStore(path, clock=lambda: T0 + 60)
    assert reopened.get("acme", sid).to_api_json(now=T0 + 60) == {
        **Silence.parse(body()).to_api_json(now=T0 + 60),
        "id": sid,
        "updatedAt": "2026-11-30T04:00:00.000Z",
    }
    assert reopened.silenced_by("acme", {"service.name": "checkout", "severity": "info"}, T0 + 60) == [sid]
    reopened.expire("acme", sid)  # the clock says T0 + 60
    reopened.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT tenant, id, ends_at FROM silences").fetchall() == [("acme", sid, T0 + 60)]


def test_shared_by_threads(tmp_path: Path) -> None:
    store = SilenceStore(tmp_path / "s.db")
    ids: list[str] = []
    lock = threading.Lock()

    def work(tenant: str) -> None:
        for _ in range(10):
            sid = store.create_or_update(tenant, Silence.parse(body()), now=T0)
            store.silenced_by(tenant, {"service.name": "checkout", "severity": "info"}, T0 + 1)
            with lock:
                ids.append(sid)

    threads = [threading.Thread(target=work, args=(f"t{i % 2}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 40
    assert len(store.list("t0")) == 20 and len(store.list("t1")) == 20
    store.close()


def test_python_style_keys_get_the_json_name_suggested() -> None:
    data = body(matchers=[{"name": "a", "value": "b", "is_regex": False}])
    data["starts_at"] = data.pop("startsAt")
    assert problems(data) == (
        ("matchers[0].isRegex", "Field required"),
        ("matchers[0].is_regex", "unknown key (did you mean 'isRegex'?)"),
        ("startsAt", "Field required"),
        ("starts_at", "unknown key (did you mean 'startsAt'?)"),
    )

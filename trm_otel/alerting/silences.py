"""Silences as Alertmanager's API v2 has them, kept per tenant in SQLite.

    >>> store = SilenceStore(sqlite3.connect(":memory:", check_same_thread=False))
    >>> sid = store.create_or_update("acme", Silence.parse({
    ...     "matchers": [{"name": "service.name", "value": "shop", "isRegex": False}],
    ...     "startsAt": "2026-11-30T04:00:00Z", "endsAt": "2026-11-30T06:00:00Z",
    ...     "createdBy": "ana", "comment": "deploy"}), now=1796007600.0)
    >>> store.silenced_by("acme", {"service.name": "shop", "alertname": "SlowCheckout"}, 1796014800.0) == [sid]
    True
    >>> store.get("acme", sid).to_api_json(now=1796014800.0)["status"]
    {'state': 'active'}

What is Alertmanager's here, so its UI, ``amtool`` and scripts work:

* the JSON shape (``matchers: [{name, value, isRegex, isEqual}]``,
  ``startsAt``/``endsAt`` in RFC 3339, ``status.state``, ``updatedAt``);
* validation: at least one matcher, regexes compile, ``endsAt`` after
  ``startsAt`` and not in the past, and not every ``=``/``=~`` matcher may
  match the empty string (``!=``/``!~`` matchers never count as matching it,
  exactly as in Alertmanager, so ``team!="db"`` alone is accepted);
* POST with an ``id`` *updates in place* when the matchers are unchanged and
  history is not rewritten (an active silence keeps its start and may get
  a new end; a pending one may move as long as it starts in the future);
  otherwise the old silence is expired and a new one with a new id
  replaces it. POST with an unknown id is a ``KeyError`` (404);
* a new silence starting in the past starts now; expiring is idempotent;
  expired silences are deleted after a retention of 5 days.

One deliberate difference: ``endsAt`` is exclusive (Alertmanager counts the
exact end instant as active), so after :meth:`SilenceStore.expire` the
silence is expired at once, even at the same ``now``.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BeforeValidator, Field, StrictBool, ValidationInfo, field_validator, model_validator

from trm_otel.alerting.matchers import Matcher
from trm_otel.alerting.model import ZERO_TIME, rfc3339
from trm_otel.config_types import StrictModel
from trm_otel.errors import ConfigError

__all__ = ["DEFAULT_RETENTION", "Silence", "SilenceMatcher", "SilenceState", "SilenceStore", "parse_time"]

SilenceState = Literal["pending", "active", "expired"]
_STATES = ("pending", "active", "expired")
#: How long expired silences are kept (Alertmanager's ``--data.retention``).
DEFAULT_RETENTION = 5 * 86400.0

_RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?(?:([Zz])|([+-])(\d\d):(\d\d))$"
)


def parse_time(value: Any) -> float:
    """Unix seconds from an RFC 3339 string (``2026-11-30T04:20:00.123Z``) or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {value!r} (use e.g. 2026-11-30T04:20:00Z)")
    if value == ZERO_TIME:
        raise ValueError(f"must be a real time, not the zero time {ZERO_TIME}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    offset = timedelta(0)
    if match.group(9):
        sign = 1 if match.group(9) == "+" else -1
        offset = sign * timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 time: {value!r} ({exc})") from None
    return moment.timestamp() + float(match.group(7) or 0)


Timestamp = Annotated[float, BeforeValidator(parse_time)]


class SilenceMatcher(StrictModel):
    """``{name, value, isRegex, isEqual}``; ``isEqual: false`` negates (``!=`` / ``!~``)."""

    name: str = Field(min_length=1)
    value: str
    is_regex: StrictBool = Field(alias="isRegex")
    is_equal: StrictBool = Field(True, alias="isEqual")

    @model_validator(mode="after")
    def _regex_compiles(self) -> SilenceMatcher:
        self.to_matcher()
        return self

    def to_matcher(self) -> Matcher:
        op = ("=~" if self.is_equal else "!~") if self.is_regex else ("=" if self.is_equal else "!=")
        return Matcher(self.name, op, self.value)

    def to_api_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}


class Silence(StrictModel):
    """One silence. Build it from API JSON with :meth:`parse`; the store sets ``id`` and ``updated_at``."""

    id: str | None = None
    matchers: tuple[SilenceMatcher, ...]
    starts_at: Timestamp = Field(alias="startsAt")
    ends_at: Timestamp = Field(alias="endsAt")
    created_by: str = Field(alias="createdBy")
    comment: str
    updated_at: Timestamp | None = Field(None, alias="updatedAt")

    @field_validator("matchers")
    @classmethod
    def _selective(cls, matchers: tuple[SilenceMatcher, ...]) -> tuple[SilenceMatcher, ...]:
        if not matchers:
            raise ValueError("at least one matcher is required")
        # Alertmanager's rule: only positive matchers can "match the empty string".
        if all(m.is_equal and m.to_matcher().matches_value("") for m in matchers):
            raise ValueError("at least one matcher must not match the empty string (it would silence every alert)")
        return matchers

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, ends_at: float, info: ValidationInfo) -> float:
        starts_at = info.data.get("starts_at")
        if starts_at is None:
            return ends_at
        # A stored, expired-while-pending silence has endsAt == startsAt; a new one may not.
        if ends_at < starts_at or (ends_at == starts_at and (info.context or {}).get("api")):
            raise ValueError("endsAt must be after startsAt")
        return ends_at

    @classmethod
    def parse(cls, data: Any) -> Silence:
        """A silence from POSTed JSON (a decoded object).

        ``status`` and ``updatedAt`` are the server's and are ignored, so a
        silence read from the API can be edited and sent back. Raises
        :class:`~trm_otel.errors.ConfigError` (a ``ValueError``) whose
        ``problems`` are ``(field path, message)`` pairs such as
        ``("matchers[0].isRegex", "Field required")``.
        """
        if isinstance(data, Mapping):
            data = {k: v for k, v in data.items() if k not in ("status", "updatedAt")}
        try:
            return cls.model_validate(data, context={"api": True})
        except pydantic.ValidationError as err:
            raise ConfigError.from_validation_error(err, known_keys_hint=_api_keys) from None

    def state(self, now: float) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.to_matcher().matches(labels) for m in self.matchers)

    def to_api_json(self, now: float | None = None) -> dict[str, Any]:
        """Alertmanager's ``gettableSilence``; the state is computed at ``now`` (default: the current time)."""
        return {
            "id": self.id or "",
            "matchers": [m.to_api_json() for m in self.matchers],
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "createdBy": self.created_by,
            "comment": self.comment,
            "status": {"state": self.state(time.time() if now is None else now)},
            "updatedAt": rfc3339(self.updated_at if self.updated_at is not None else self.starts_at),
        }


def _api_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The JSON keys at ``loc``, for "did you mean" (the Python field names are not offered)."""
    model: type[StrictModel] = SilenceMatcher if loc[:1] == ("matchers",) else Silence
    return [str(field.alias or name) for name, field in model.model_fields.items()]


def _can_update(prev: Silence, new: Silence, now: float) -> bool:
    """Whether the change keeps what the silence already did (else: expire it, create another)."""
    if prev.matchers != new.matchers:
        return False
    state = prev.state(now)
    if state == "active":
        # Whole seconds, as Alertmanager compares: clients may send startsAt back less precisely.
        return int(new.starts_at) == int(prev.starts_at)
    if state == "pending":
        return new.starts_at >= now
    return False


@functools.lru_cache(maxsize=4096)
def _compiled(matchers_json: str) -> tuple[Matcher, ...]:
    return tuple(SilenceMatcher.model_validate(m).to_matcher() for m in json.loads(matchers_json))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS silences (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    matchers TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS silences_tenant_ends ON silences (tenant, ends_at);
"""
_COLUMNS = "id, matchers, starts_at, ends_at, created_by, comment, updated_at"


class SilenceStore:
    """Silences of every tenant in one SQLite database, shared by the API and the dispatcher.

    Every call takes a lock, so one store can be used from several threads
    (a connection passed in must then allow it: ``check_same_thread=False``).
    ``now`` arguments default to ``clock()``; tests pass them explicitly.
    """

    def __init__(
        self,
        path: Path | str | sqlite3.Connection,
        *,
        retention: float = DEFAULT_RETENTION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(path, sqlite3.Connection):
            self._conn, self._owned = path, False
        else:
            self._conn, self._owned = sqlite3.connect(str(path), check_same_thread=False), True
        self.retention = retention
        self._clock = clock
        self._lock = threading.RLock()
        with self._lock, self._conn:
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database if this store opened it; safe to call twice."""
        with self._lock:
            if self._owned:
                self._conn.close()
                self._owned = False

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    # --- writes -----------------------------------------------------------------

    def create_or_update(self, tenant: str, silence: Silence, *, now: float | None = None) -> str:
        """Store a POSTed silence and return its id (new, unless updated in place).

        ``KeyError`` if ``silence.id`` is set but unknown for this tenant;
        ``ValueError`` if it already ended.
        """
        now = self._now(now)
        if silence.ends_at <= now:
            ends = rfc3339(silence.ends_at)
            raise ValueError(f"endsAt {ends} is not in the future; a silence must end later than now")
        with self._lock, self._conn:
            prev = self._get(tenant, silence.id) if silence.id else None
            if prev is not None and _can_update(prev, silence, now):
                starts = prev.starts_at if prev.state(now) == "active" else silence.starts_at
                self._put(tenant, silence.model_copy(update={"id": prev.id, "starts_at": starts, "updated_at": now}))
                return str(prev.id)
            if prev is not None:
                self._expire(tenant, prev, now)
            new_id = str(uuid.uuid4())
            starts = max(silence.starts_at, now)
            self._put(tenant, silence.model_copy(update={"id": new_id, "starts_at": starts, "updated_at": now}))
            return new_id

    def expire(self, tenant: str, silence_id: str, *, now: float | None = None) -> Silence:
        """End the silence now (a pending one never starts) and return it; ``KeyError`` if unknown.

        Expiring an expired silence changes nothing, so a repeated DELETE is harmless.
        """
        now = self._now(now)
        with self._lock, self._conn:
            return self._expire(tenant, self._get(tenant, silence_id), now)

    def _expire(self, tenant: str, silence: Silence, now: float) -> Silence:
        state = silence.state(now)
        if state == "expired":
            return silence
        update: dict[str, Any] = {"ends_at": now, "updated_at": now}
        if state == "pending":
            update["starts_at"] = now
        return self._put(tenant, silence.model_copy(update=update))

    def gc(self, now: float | None = None) -> int:
        """Delete silences expired for longer than the retention, in all tenants; returns how many."""
        now = self._now(now)
        with self._lock, self._conn:
            return self._conn.execute("DELETE FROM silences WHERE ends_at < ?", (now - self.retention,)).rowcount

    def _put(self, tenant: str, s: Silence) -> Silence:
        """Write, with times at the API's millisecond precision so what is read back equals what was sent."""
        s = s.model_copy(update={k: round(getattr(s, k), 3) for k in ("starts_at", "ends_at", "updated_at")})
        matchers = json.dumps([m.to_api_json() for m in s.matchers], separators=(",", ":"))
        self._conn.execute(
            f"INSERT OR REPLACE INTO silences (tenant, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (tenant, s.id, matchers, s.starts_at, s.ends_at, s.created_by, s.comment, s.updated_at),
        )
        return s

    # --- reads ------------------------------------------------------------------

    def get(self, tenant: str, silence_id: str) -> Silence:
        """The silence with this id in this tenant; ``KeyError`` otherwise (ids never leak across tenants)."""
        with self._lock:
            return self._get(tenant, silence_id)

    def _get(self, tenant: str, silence_id: str | None) -> Silence:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM silences WHERE tenant = ? AND id = ?", (tenant, silence_id)
        ).fetchone()
        if row is None:
            raise KeyError(f"silence {silence_id!r} not found")
        return _from_row(row)

    def list(self, tenant: str, state: SilenceState | None = None, *, now: float | None = None) -> list[Silence]:
        """The tenant's silences in Alertmanager's order: active (ending soonest first),
        pending (starting soonest first), then expired (most recent first)."""
        if state is not None and state not in _STATES:
            raise ValueError(f"unknown silence state {state!r} (use one of {', '.join(_STATES)})")
        now = self._now(now)
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM silences WHERE tenant = ?", (tenant,)).fetchall()
        silences = [s for s in map(_from_row, rows) if state is None or s.state(now) == state]
        order = {"active": 0, "pending": 1, "expired": 2}

        def key(s: Silence) -> tuple[int, float]:
            st = s.state(now)
            when = s.ends_at if st == "active" else s.starts_at if st == "pending" else -s.ends_at
            return (order[st], when)

        return sorted(silences, key=key)

    def silenced_by(self, tenant: str, labels: Mapping[str, str], now: float) -> list[str]:
        """Ids of the tenant's active silences whose matchers all accept ``labels`` (sorted)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, matchers FROM silences WHERE tenant = ? AND starts_at <= ? AND ends_at > ?",
                (tenant, now, now),
            ).fetchall()
        return sorted(sid for sid, matchers in rows if all(m.matches(labels) for m in _compiled(matchers)))


def _from_row(row: tuple[Any, ...]) -> Silence:
    sid, matchers, starts_at, ends_at, created_by, comment, updated_at = row
    return Silence.model_validate(
        {
            "id": sid,
            "matchers": json.loads(matchers),
            "startsAt": starts_at,
            "endsAt": ends_at,
            "createdBy": created_by,
            "comment": comment,
            "updatedAt": updated_at,
        }
    )

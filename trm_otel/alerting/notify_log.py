"""The notification log: what was notified per group, and every delivery and attempt, in SQLite.

Three tables, one purpose each:

* ``nflog`` — per (tenant, receiver, group key): the fingerprints of the
  firing and resolved alerts last notified and when. It is Alertmanager's
  deduplication: a group is notified again only when its set of firing
  alerts grows, something newly resolved, or ``repeat_interval`` passed.
  It is written in the same transaction that queues the deliveries, so a
  crash leaves either both or neither.
* ``deliveries`` — one row per notification per integration: ``pending``
  until sent, ``held`` while a receiver's rate limit folds it into a coming
  digest, ``folded`` once it did, ``sent``, or ``failed`` (not retryable,
  or retries exhausted). Pending rows survive restarts and are sent then;
  ``sent`` rows are never sent again.
* ``attempts`` — every try with its outcome and (secret-free) error.

Plus ``escalations``: per group, when escalation started and how many steps
went out, so a restart neither repeats nor skips a step.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trm_otel.alerting.model import Alert, Notification

__all__ = ["Delivery", "NotificationLog", "NflogEntry", "notification_from_json", "notification_to_json"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS nflog (tenant TEXT NOT NULL, receiver TEXT NOT NULL, group_key TEXT NOT NULL,"
    " firing TEXT NOT NULL, resolved TEXT NOT NULL, sent_at REAL NOT NULL,"
    " PRIMARY KEY (tenant, receiver, group_key))",
    "CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL,"
    " receiver TEXT NOT NULL, integration TEXT NOT NULL, notification TEXT NOT NULL, status TEXT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, next_attempt_at REAL NOT NULL,"
    " finished_at REAL, last_error TEXT)",
    "CREATE INDEX IF NOT EXISTS deliveries_status ON deliveries (status, next_attempt_at)",
    "CREATE TABLE IF NOT EXISTS attempts (delivery_id INTEGER NOT NULL, at REAL NOT NULL, outcome TEXT NOT NULL,"
    " error TEXT)",
    "CREATE TABLE IF NOT EXISTS escalations (tenant TEXT NOT NULL, group_key TEXT NOT NULL, anchor REAL NOT NULL,"
    " done INTEGER NOT NULL, PRIMARY KEY (tenant, group_key))",
)


def notification_to_json(notification: Notification) -> str:
    return json.dumps(
        {
            "receiver": notification.receiver,
            "group_key": notification.group_key,
            "group_labels": dict(notification.group_labels),
            "external_url": notification.external_url,
            "folded": notification.folded,
            "escalation_step": notification.escalation_step,
            "alerts": [
                {
                    "labels": dict(a.labels),
                    "annotations": dict(a.annotations),
                    "starts_at": a.starts_at,
                    "ends_at": a.ends_at,
                    "generator_url": a.generator_url,
                    "value": a.value,
                    "fingerprint": a.fingerprint,
                }
                for a in notification.alerts
            ],
        }
    )


def notification_from_json(text: str) -> Notification:
    data = json.loads(text)
    return Notification(
        receiver=data["receiver"],
        group_key=data["group_key"],
        group_labels=data["group_labels"],
        external_url=data["external_url"],
        folded=data["folded"],
        escalation_step=data["escalation_step"],
        alerts=tuple(Alert(**a) for a in data["alerts"]),
    )


@dataclass(frozen=True, slots=True)
class NflogEntry:
    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    tenant: str
    receiver: str
    integration: str
    notification: Notification
    status: str
    attempts: int
    created_at: float
    next_attempt_at: float
    last_error: str | None


class NotificationLog:
    """All of the above over one SQLite file; thread-safe (one connection, one lock)."""

    def __init__(self, path: Path, *, clock: Any = time.time) -> None:
        self.path = path
        self.clock = clock
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- nflog

    def entry(self, tenant: str, receiver: str, group_key: str) -> NflogEntry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT firing, resolved, sent_at FROM nflog WHERE tenant = ? AND receiver = ? AND group_key = ?",
                (tenant, receiver, group_key),
            ).fetchone()
        if row is None:
            return None
        return NflogEntry(frozenset(json.loads(row[0])), frozenset(json.loads(row[1])), float(row[2]))

    def record(
        self,
        tenant: str,
        notification: Notification,
        integrations: Iterable[str],
        *,
        status: str = "pending",
        nflog: bool = True,
        now: float | None = None,
    ) -> list[int]:
        """Queue ``notification`` once per integration and (unless ``nflog=False``) note it as notified at ``now``."""
        now = self.clock() if now is None else now
        payload = notification_to_json(notification)
        firing = sorted(a.fingerprint for a in notification.firing)
        resolved = sorted(a.fingerprint for a in notification.resolved)
        ids = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for integration in integrations:
                    cursor = self._db.execute(
                        "INSERT INTO deliveries (tenant, receiver, integration, notification, status, created_at,"
                        " next_attempt_at) VALUES (?,?,?,?,?,?,?)",
                        (tenant, notification.receiver, integration, payload, status, now, now),
                    )
                    ids.append(int(cursor.lastrowid or 0))
                if nflog:
                    self._db.execute(
                        "INSERT OR REPLACE INTO nflog VALUES (?,?,?,?,?,?)",
                        (tenant, notification.receiver, notification.group_key, json.dumps(firing),
                         json.dumps(resolved), now),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ids

    def forget_group(self, tenant: str, receiver: str, group_key: str) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM nflog WHERE tenant = ? AND receiver = ? AND group_key = ?", (tenant, receiver, group_key)
            )

    # ----------------------------------------------------------- deliveries

    def due(self, now: float, limit: int = 100, *, tenant: str | None = None) -> list[Delivery]:
        where, args = (" AND tenant = ?", (tenant,)) if tenant is not None else ("", ())
        with self._lock:
            rows = self._db.execute(
                "SELECT id, tenant, receiver, integration, notification, status, attempts, created_at,"
                " next_attempt_at, last_error FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?"
                f"{where} ORDER BY next_attempt_at, id LIMIT ?",
                (now, *args, limit),
            ).fetchall()
        return [self._delivery(row) for row in rows]

    def next_due_at(self, tenant: str | None = None) -> float | None:
        where, args = (" AND tenant = ?", (tenant,)) if tenant is not None else ("", ())
        with self._lock:
            row = self._db.execute(
                f"SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'{where}", args
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def held(self, tenant: str, receiver: str) -> list[Delivery]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, tenant, receiver, integration, notification, status, attempts, created_at,"
                " next_attempt_at, last_error FROM deliveries WHERE status = 'held' AND tenant = ? AND receiver = ?"
                " ORDER BY id",
                (tenant, receiver),
            ).fetchall()
        return [self._delivery(row) for row in rows]

    def held_receivers(self) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT tenant, receiver FROM deliveries WHERE status = 'held'").fetchall()
        return [(str(t), str(r)) for t, r in rows]

    def fold(
        self, held_ids: Iterable[int], digest: Notification, tenant: str, integrations: Iterable[str],
        *, now: float | None = None,
    ) -> list[int]:
        """Replace held deliveries by one pending digest, atomically."""
        now = self.clock() if now is None else now
        payload = notification_to_json(digest)
        ids = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "UPDATE deliveries SET status = 'folded', finished_at = ? WHERE id = ? AND status = 'held'",
                    [(now, i) for i in held_ids],
                )
                for integration in integrations:
                    cursor = self._db.execute(
                        "INSERT INTO deliveries (tenant, receiver, integration, notification, status, created_at,"
                        " next_attempt_at) VALUES (?,?,?,?,'pending',?,?)",
                        (tenant, digest.receiver, integration, payload, now, now),
                    )
                    ids.append(int(cursor.lastrowid or 0))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ids

    def attempt(self, delivery_id: int, outcome: str, error: str | None, *, next_attempt_at: float | None) -> None:
        """Record one try: ``sent``, ``retry`` (then due again at ``next_attempt_at``) or ``failed``."""
        now = self.clock()
        status = {"sent": "sent", "retry": "pending", "failed": "failed", "skipped": "sent"}[outcome]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO attempts VALUES (?,?,?,?)", (delivery_id, now, outcome, error))
                self._db.execute(
                    "UPDATE deliveries SET status = ?, attempts = attempts + 1, last_error = ?,"
                    " next_attempt_at = COALESCE(?, next_attempt_at),"
                    " finished_at = CASE WHEN ? = 'pending' THEN NULL ELSE ? END WHERE id = ?",
                    (status, error, next_attempt_at, status, now, delivery_id),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def deliveries(self, tenant: str | None = None, *, limit: int = 100) -> list[Delivery]:
        """Most recent first, for the API and tests."""
        where, args = ("WHERE tenant = ?", (tenant,)) if tenant is not None else ("", ())
        with self._lock:
            rows = self._db.execute(
                "SELECT id, tenant, receiver, integration, notification, status, attempts, created_at,"
                f" next_attempt_at, last_error FROM deliveries {where} ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [self._delivery(row) for row in rows]

    def attempts_of(self, delivery_id: int) -> list[tuple[float, str, str | None]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT at, outcome, error FROM attempts WHERE delivery_id = ? ORDER BY at", (delivery_id,)
            ).fetchall()
        return [(float(at), str(outcome), error) for at, outcome, error in rows]

    # ---------------------------------------------------------- escalations

    def escalation(self, tenant: str, group_key: str) -> tuple[float, int] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT anchor, done FROM escalations WHERE tenant = ? AND group_key = ?", (tenant, group_key)
            ).fetchone()
        return None if row is None else (float(row[0]), int(row[1]))

    def set_escalation(self, tenant: str, group_key: str, state: tuple[float, int] | None) -> None:
        with self._lock:
            if state is None:
                self._db.execute("DELETE FROM escalations WHERE tenant = ? AND group_key = ?", (tenant, group_key))
            else:
                self._db.execute("INSERT OR REPLACE INTO escalations VALUES (?,?,?,?)", (tenant, group_key, *state))

    # ------------------------------------------------------------------ misc

    def prune(self, older_than_s: float) -> None:
        """Forget finished deliveries (and their attempts) older than the retention."""
        cutoff = self.clock() - older_than_s
        with self._lock:
            self._db.execute(
                "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE finished_at < ?)",
                (cutoff,),
            )
            self._db.execute("DELETE FROM deliveries WHERE finished_at < ?", (cutoff,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _delivery(row: Mapping[int, Any] | tuple[Any, ...]) -> Delivery:
        return Delivery(
            id=int(row[0]), tenant=str(row[1]), receiver=str(row[2]), integration=str(row[3]),
            notification=notification_from_json(str(row[4])), status=str(row[5]), attempts=int(row[6]),
            created_at=float(row[7]), next_attempt_at=float(row[8]), last_error=row[9],
        )

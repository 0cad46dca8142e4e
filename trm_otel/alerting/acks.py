"""Acknowledgements: "someone is on it" — what Alertmanager lacks between silence and nothing.

An ack is per alert (fingerprint), by someone, with a comment and an
expiry. While it holds, the alert's group is not *repeated* and no
escalation step fires for it; a new alert in the group still notifies (it
is not acked), and the ack ends by itself when it expires or the alert
resolves (:meth:`AckStore.clear`), so a relapse starts clean. Unlike a
silence it never hides the alert from notifications that are sent anyway.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Ack", "AckStore"]


@dataclass(frozen=True, slots=True)
class Ack:
    fingerprint: str
    by: str
    comment: str
    created_at: float
    expires_at: float

    def active(self, now: float) -> bool:
        return self.created_at <= now < self.expires_at

    def to_json(self) -> dict[str, object]:
        from trm_otel.alerting.model import rfc3339

        return {"by": self.by, "comment": self.comment, "createdAt": rfc3339(self.created_at),
                "expiresAt": rfc3339(self.expires_at)}


class AckStore:
    """The ``acks`` table, one row per (tenant, fingerprint); thread-safe."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS acks (tenant TEXT NOT NULL, fingerprint TEXT NOT NULL, by TEXT NOT NULL,"
            " comment TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,"
            " PRIMARY KEY (tenant, fingerprint))"
        )
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, Ack]] = {}
        for row in self._db.execute("SELECT tenant, fingerprint, by, comment, created_at, expires_at FROM acks"):
            self._cache.setdefault(row[0], {})[row[1]] = Ack(row[1], row[2], row[3], row[4], row[5])

    def ack(self, tenant: str, ack: Ack) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO acks VALUES (?,?,?,?,?,?)",
                (tenant, ack.fingerprint, ack.by, ack.comment, ack.created_at, ack.expires_at),
            )
            self._cache.setdefault(tenant, {})[ack.fingerprint] = ack

    def get(self, tenant: str, fingerprint: str, now: float) -> Ack | None:
        """The ack holding now, if any (an expired one reads as none)."""
        with self._lock:
            found = self._cache.get(tenant, {}).get(fingerprint)
        return found if found is not None and found.active(now) else None

    def clear(self, tenant: str, fingerprint: str) -> None:
        with self._lock:
            if self._cache.get(tenant, {}).pop(fingerprint, None) is not None:
                self._db.execute("DELETE FROM acks WHERE tenant = ? AND fingerprint = ?", (tenant, fingerprint))

    def close(self) -> None:
        with self._lock:
            self._db.close()

"""The audit trail: who changed what, and who was refused, per tenant, append-only.

    >>> log = AuditLog(Path("audit.db"))                                          # doctest: +SKIP
    >>> log.record(AuditEntry(time_s, "alice", "shop", "PUT /api/v1/rules/{group}",
    ...                       "group=latency", "ok", 200))                        # doctest: +SKIP

An entry names the actor by its token *name* (``alice``, ``ci``; or
``anonymous`` when auth is off or the token was not recognised), never by
the token. Rows are only ever inserted; the one deletion is retention
(``audit.retention``, 90 days by default), oldest first. Reads are per
tenant: a tenant's admins see their tenant's trail, nothing else.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["AuditEntry", "AuditLog"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    time_s: float
    actor: str
    tenant: str
    action: str  # "POST /api/v1/silences", "rules.reload", ...
    target: str  # path parameters, then what a success made ("silenceID=…", "uid=…, version=2")
    outcome: str  # "ok", "refused", "failed"
    status: int = 0  # the HTTP status, when there is one

    def to_json(self) -> dict[str, Any]:
        from trm_otel.alerting.model import rfc3339

        out = asdict(self)
        out["time"] = rfc3339(out.pop("time_s"))
        return out


class AuditLog:
    """The ``audit`` table in its own SQLite file; thread-safe."""

    def __init__(self, path: Path, *, retention_s: float = 90 * 86400.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.retention_s = retention_s
        self.clock = clock
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL,"
            " actor TEXT NOT NULL, tenant TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,"
            " outcome TEXT NOT NULL, status INTEGER NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS audit_tenant_time ON audit (tenant, time)")
        self._lock = threading.Lock()
        self._last_prune = 0.0

    def record(self, entry: AuditEntry) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO audit (time, actor, tenant, action, target, outcome, status) VALUES (?,?,?,?,?,?,?)",
                (entry.time_s, entry.actor, entry.tenant, entry.action, entry.target, entry.outcome, entry.status),
            )
            if entry.time_s - self._last_prune > 3600:
                self._last_prune = entry.time_s
                self._db.execute("DELETE FROM audit WHERE time < ?", (entry.time_s - self.retention_s,))

    def query(
        self,
        tenant: str,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        action: str | None = None,
        limit: int = 500,
    ) -> list[AuditEntry]:
        """Newest first; ``action`` matches a prefix (``POST /api/v1/silences``, ``auth.``)."""
        where = ["tenant = ?"]
        args: list[Any] = [tenant]
        if start_s is not None:
            where.append("time >= ?")
            args.append(start_s)
        if end_s is not None:
            where.append("time < ?")
            args.append(end_s)
        if action:
            where.append("substr(action, 1, ?) = ?")
            args += [len(action), action]
        with self._lock:
            rows = self._db.execute(
                "SELECT time, actor, tenant, action, target, outcome, status FROM audit WHERE "
                + " AND ".join(where) + " ORDER BY time DESC, id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [AuditEntry(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

"""Dashboards kept in SQLite, per tenant, with optimistic versioning.

    >>> store = DashboardStore(Path("data") / DATABASE_NAME)                        # doctest: +SKIP
    >>> store.create("shop", performance(), by="alice")                            # doctest: +SKIP
    1
    >>> store.update("shop", "performance", edited, expected_version=1, by="bob")  # doctest: +SKIP
    2
    >>> store.update("shop", "performance", other, expected_version=1, by="carol")  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    trm_otel.dashboards.store.VersionConflict: dashboard 'performance' was changed since version 1 (now 2): ...

One row per ``(tenant, uid)``: title and tags as columns (so a listing
never parses documents), the native JSON document as ``body``, and the
``version`` counter. Two people editing one dashboard both start from the
version they loaded; the first save wins, the second gets a
:class:`VersionConflict` carrying the current version instead of silently
undoing the first (the UI then offers to reload). The version lives in its
column only: a stored body has none, so it cannot disagree.

Bodies are written by :func:`~trm_otel.dashboards.model.dump_dashboard` and
read back through :func:`~trm_otel.dashboards.model.load_dashboard`, so a
document stored by an older trm-otel is migrated when it is read.

Errors (each also a :class:`~trm_otel.errors.TrmOtelError`)::

    DashboardNotFound   (LookupError)  no such uid in the tenant
    DashboardExists     (ValueError)   create() of a uid the tenant has; .current_version
    VersionConflict     (ValueError)   update() from a stale version; .current_version

One connection in WAL mode shared by the API's worker threads behind a
lock, as :mod:`trm_otel.alerting.state` does; every call is one short
transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trm_otel.dashboards.model import Dashboard, dump_dashboard, load_dashboard
from trm_otel.errors import TrmOtelError

__all__ = [
    "DATABASE_NAME",
    "DashboardExists",
    "DashboardNotFound",
    "DashboardStore",
    "StoredDashboard",
    "Summary",
    "VersionConflict",
]

#: The file in the daemon's data directory.
DATABASE_NAME = "dashboards.db"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dashboards (tenant TEXT NOT NULL, uid TEXT NOT NULL, title TEXT NOT NULL,"
    " tags TEXT NOT NULL, body TEXT NOT NULL, version INTEGER NOT NULL, updated_at REAL NOT NULL,"
    " updated_by TEXT NOT NULL, PRIMARY KEY (tenant, uid))",
    # Which default dashboards a tenant was given once: a default the tenant deleted stays deleted.
    "CREATE TABLE IF NOT EXISTS dashboard_defaults (tenant TEXT NOT NULL, uid TEXT NOT NULL,"
    " seeded_at REAL NOT NULL, PRIMARY KEY (tenant, uid))",
)


class DashboardNotFound(TrmOtelError, LookupError):
    """No dashboard with this uid in the tenant (another tenant's uid reads the same)."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        super().__init__(f"no dashboard with uid {uid!r}")


class DashboardExists(TrmOtelError, ValueError):
    """A new dashboard's uid is taken; ``current_version`` is the stored one's."""

    def __init__(self, uid: str, current_version: int) -> None:
        self.uid, self.current_version = uid, current_version
        super().__init__(
            f"a dashboard with uid {uid!r} already exists (version {current_version}); "
            "change the uid, or update it with PUT (import: ?overwrite=true)"
        )


class VersionConflict(TrmOtelError, ValueError):
    """An update based on a version that is no longer the stored one."""

    def __init__(self, uid: str, expected_version: int, current_version: int) -> None:
        self.uid, self.expected_version, self.current_version = uid, expected_version, current_version
        super().__init__(
            f"dashboard {uid!r} was changed since version {expected_version} (now {current_version}): "
            "reload it, reapply your change and save again"
        )


@dataclass(frozen=True, slots=True)
class Summary:
    """A dashboard as a listing shows it."""

    uid: str
    title: str
    tags: tuple[str, ...]
    version: int
    updated_at: float
    updated_by: str


@dataclass(frozen=True, slots=True)
class StoredDashboard:
    """A stored document, its ``version`` set, and who saved it when."""

    dashboard: Dashboard
    summary: Summary


class DashboardStore:
    """The ``dashboards`` table of one SQLite file; thread-safe."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._lock = threading.Lock()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -------------------------------------------------------------- reads

    def list(self, tenant: str) -> list[Summary]:
        """The tenant's dashboards, by title (case-insensitive), then uid."""
        with self._lock:
            rows = self._db.execute(
                "SELECT uid, title, tags, version, updated_at, updated_by FROM dashboards WHERE tenant = ?"
                " ORDER BY lower(title), uid",
                (tenant,),
            ).fetchall()
        return [_summary(row) for row in rows]

    def get(self, tenant: str, uid: str) -> StoredDashboard:
        """The dashboard, migrated and validated; :class:`DashboardNotFound` if the tenant has none."""
        with self._lock:
            row = self._db.execute(
                "SELECT uid, title, tags, version, updated_at, updated_by, body FROM dashboards"
                " WHERE tenant = ? AND uid = ?",
                (tenant, uid),
            ).fetchone()
        if row is None:
            raise DashboardNotFound(uid)
        summary = _summary(row[:6])
        dashboard = load_dashboard(json.loads(row[6])).model_copy(update={"version": summary.version})
        return StoredDashboard(dashboard, summary)

    def version(self, tenant: str, uid: str) -> int | None:
        """The stored version, ``None`` when absent."""
        with self._lock:
            row = self._db.execute(
                "SELECT version FROM dashboards WHERE tenant = ? AND uid = ?", (tenant, uid)
            ).fetchone()
        return None if row is None else int(row[0])

    def tenants(self) -> list[str]:
        """Every tenant that has dashboards or was given the defaults."""
        with self._lock:
            rows = self._db.execute(
                "SELECT tenant FROM dashboards UNION SELECT tenant FROM dashboard_defaults ORDER BY 1"
            ).fetchall()
        return [str(row[0]) for row in rows]

    # ------------------------------------------------------------- writes

    def create(self, tenant: str, dashboard: Dashboard, by: str) -> int:
        """Store a new dashboard as version 1; :class:`DashboardExists` if its uid is taken."""
        with self._transaction() as db:
            current = _version(db, tenant, dashboard.uid)
            if current is not None:
                raise DashboardExists(dashboard.uid, current)
            db.execute("INSERT INTO dashboards VALUES (?,?,?,?,?,?,?,?)", self._row(tenant, dashboard, 1, by))
        return 1

    def update(self, tenant: str, uid: str, dashboard: Dashboard, expected_version: int, by: str) -> int:
        """Replace the dashboard if it is still at ``expected_version``; returns the new version.

        :class:`DashboardNotFound` if absent, :class:`VersionConflict` if
        someone saved in between. ``dashboard.uid`` must be ``uid``.
        """
        if dashboard.uid != uid:
            raise ValueError(f"uid: the document's uid {dashboard.uid!r} differs from {uid!r}")
        with self._transaction() as db:
            current = _version(db, tenant, uid)
            if current is None:
                raise DashboardNotFound(uid)
            if current != expected_version:
                raise VersionConflict(uid, expected_version, current)
            self._replace(db, tenant, dashboard, current + 1, by)
        return current + 1

    def put(self, tenant: str, dashboard: Dashboard, by: str) -> tuple[int, bool]:
        """Create or overwrite whatever version is stored: ``(version, changed)``.

        For provisioning and forced imports, where the file or the import
        is the truth. Storing a document equal to the stored one (and by the
        same writer) changes nothing, so re-provisioning the same files at
        every start does not bump versions under the UI's feet.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT version, body, updated_by FROM dashboards WHERE tenant = ? AND uid = ?",
                (tenant, dashboard.uid),
            ).fetchone()
            if row is None:
                db.execute("INSERT INTO dashboards VALUES (?,?,?,?,?,?,?,?)", self._row(tenant, dashboard, 1, by))
                return 1, True
            current, body, updated_by = int(row[0]), row[1], row[2]
            if updated_by == by and json.loads(body) == _body(dashboard):
                return current, False
            self._replace(db, tenant, dashboard, current + 1, by)
        return current + 1, True

    def delete(self, tenant: str, uid: str) -> bool:
        """Remove the dashboard; ``False`` when the tenant had none with this uid."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM dashboards WHERE tenant = ? AND uid = ?", (tenant, uid))
            return cursor.rowcount > 0

    def seed(self, tenant: str, defaults: tuple[Dashboard, ...], by: str) -> list[str]:
        """Create each of ``defaults`` the tenant was never given; the uids created.

        A default is offered once per tenant: one the tenant already has (a
        provisioned or hand-made one with that uid) is left as it is, and
        one the tenant deleted is not brought back.
        """
        created = []
        with self._transaction() as db:
            for dashboard in defaults:
                seeded = db.execute(
                    "SELECT 1 FROM dashboard_defaults WHERE tenant = ? AND uid = ?", (tenant, dashboard.uid)
                ).fetchone()
                if seeded is not None:
                    continue
                if _version(db, tenant, dashboard.uid) is None:
                    db.execute("INSERT INTO dashboards VALUES (?,?,?,?,?,?,?,?)", self._row(tenant, dashboard, 1, by))
                    created.append(dashboard.uid)
                db.execute("INSERT INTO dashboard_defaults VALUES (?,?,?)", (tenant, dashboard.uid, self.clock()))
        return created

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------ helpers

    def _row(self, tenant: str, dashboard: Dashboard, version: int, by: str) -> tuple[object, ...]:
        return (
            tenant, dashboard.uid, dashboard.title, json.dumps(list(dashboard.tags)),
            json.dumps(_body(dashboard), separators=(",", ":")), version, self.clock(), by,
        )

    def _replace(self, db: sqlite3.Connection, tenant: str, dashboard: Dashboard, version: int, by: str) -> None:
        _, uid, title, tags, body, _, updated_at, _ = self._row(tenant, dashboard, version, by)
        db.execute(
            "UPDATE dashboards SET title = ?, tags = ?, body = ?, version = ?, updated_at = ?, updated_by = ?"
            " WHERE tenant = ? AND uid = ?",
            (title, tags, body, version, updated_at, by, tenant, uid),
        )


def _body(dashboard: Dashboard) -> dict[str, object]:
    body = dump_dashboard(dashboard)
    body.pop("version", None)  # the column is the truth
    return body


def _version(db: sqlite3.Connection, tenant: str, uid: str) -> int | None:
    row = db.execute("SELECT version FROM dashboards WHERE tenant = ? AND uid = ?", (tenant, uid)).fetchone()
    return None if row is None else int(row[0])


def _summary(row: tuple[object, ...]) -> Summary:
    uid, title, tags, version, updated_at, updated_by = row
    return Summary(
        uid=str(uid),
        title=str(title),
        tags=tuple(json.loads(str(tags))),
        version=int(version),  # type: ignore[call-overload]
        updated_at=float(updated_at),  # type: ignore[arg-type]
        updated_by=str(updated_by),
    )

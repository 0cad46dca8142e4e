"""Alert state: inactive -> pending -> firing -> resolved, per label set, surviving restarts.

    >>> book = AlertBook(tenant="default", store=None)
    >>> book.update("shop/SlowCheckout", [Observed({"alertname": "SlowCheckout"}, {}, 412.0)],
    ...             now=100.0, for_s=60.0, keep_firing_for_s=0.0)
    >>> [a.state for a in book.alerts()]
    ['pending']
    >>> book.update("shop/SlowCheckout", [Observed({"alertname": "SlowCheckout"}, {}, 415.0)],
    ...             now=161.0, for_s=60.0, keep_firing_for_s=0.0)
    >>> [a.state for a in book.alerts()]
    ['firing']

Semantics follow Prometheus: a condition true for less than ``for`` is
*pending* and never notified; after ``for`` it is *firing*; when the
condition stops being true a pending alert is forgotten, a firing one is
*resolved* (after ``keep_firing_for`` more, if set) and kept for
:data:`RESOLVED_RETENTION_S` so the dispatcher can send "resolved" even if
the daemon restarts in between. An alert that fires again after resolving
is a new alert (new ``active_at``).

Every change is written to SQLite (``alert_state``) at once, so after a
restart a firing alert is still firing (the dispatcher's notification log
then knows it was notified: no duplicate "firing") and a resolution that
was not yet notified still is.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from trm_otel.alerting.model import Alert, fingerprint

__all__ = ["RESOLVED_RETENTION_S", "ActiveAlert", "AlertBook", "AlertStateStore", "Observed"]

#: How long a resolved alert is kept (and re-offered to the dispatcher), as Prometheus does.
RESOLVED_RETENTION_S = 15 * 60.0

State = Literal["pending", "firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Observed:
    """One instance of a rule's condition that is true now, labels and annotations rendered."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    value: float | None


@dataclass(slots=True)
class ActiveAlert:
    """What the book keeps per alert; ``rule`` is ``group/alert`` of the rule that made it."""

    rule: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: State
    active_at: float
    last_true_at: float
    value: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    receiver: str | None = None
    fingerprint: str = field(default="")

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.labels)

    def to_alert(self, generator_url: str = "") -> Alert:
        """As notifications carry it: starts when it began firing (or pending), ends when resolved."""
        return Alert(
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            starts_at=self.fired_at if self.fired_at is not None else self.active_at,
            ends_at=self.resolved_at,
            generator_url=generator_url,
            value=self.value,
            fingerprint=self.fingerprint,
        )

    def to_row(self) -> tuple[object, ...]:
        return (
            self.fingerprint, self.rule, json.dumps(self.labels), json.dumps(self.annotations), self.state,
            self.active_at, self.last_true_at, self.value, self.fired_at, self.resolved_at, self.receiver,
        )

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> ActiveAlert:
        fp, rule, labels, annotations, state, active_at, last_true_at, value, fired_at, resolved_at, receiver = row
        return cls(
            rule=str(rule), labels=json.loads(str(labels)), annotations=json.loads(str(annotations)),
            state=state,  # type: ignore[arg-type]
            active_at=float(active_at), last_true_at=float(last_true_at),  # type: ignore[arg-type]
            value=None if value is None else float(value),  # type: ignore[arg-type]
            fired_at=None if fired_at is None else float(fired_at),  # type: ignore[arg-type]
            resolved_at=None if resolved_at is None else float(resolved_at),  # type: ignore[arg-type]
            receiver=None if receiver is None else str(receiver), fingerprint=str(fp),
        )


class AlertStateStore:
    """The ``alert_state`` table: one row per (tenant, fingerprint), rewritten on change."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS alert_state (tenant TEXT NOT NULL, fingerprint TEXT NOT NULL,"
            " rule TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL, state TEXT NOT NULL,"
            " active_at REAL NOT NULL, last_true_at REAL NOT NULL, value REAL, fired_at REAL, resolved_at REAL,"
            " receiver TEXT, PRIMARY KEY (tenant, fingerprint))"
        )
        self._lock = threading.Lock()

    def save(self, tenant: str, changed: Iterable[ActiveAlert], removed: Iterable[str]) -> None:
        rows = [(tenant, *alert.to_row()) for alert in changed]
        gone = [(tenant, fp) for fp in removed]
        if not rows and not gone:
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO alert_state VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
                self._db.executemany("DELETE FROM alert_state WHERE tenant = ? AND fingerprint = ?", gone)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def load(self, tenant: str) -> list[ActiveAlert]:
        with self._lock:
            rows = self._db.execute(
                "SELECT fingerprint, rule, labels, annotations, state, active_at, last_true_at, value, fired_at,"
                " resolved_at, receiver FROM alert_state WHERE tenant = ?",
                (tenant,),
            ).fetchall()
        return [ActiveAlert.from_row(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class AlertBook:
    """The alerts of one tenant, by rule and fingerprint; thread-safe."""

    def __init__(self, tenant: str, store: AlertStateStore | None) -> None:
        self.tenant = tenant
        self.store = store
        self._by_rule: dict[str, dict[str, ActiveAlert]] = {}
        self._lock = threading.Lock()
        if store is not None:
            for alert in store.load(tenant):
                self._by_rule.setdefault(alert.rule, {})[alert.fingerprint] = alert

    def update(
        self,
        rule: str,
        observed: Iterable[Observed],
        *,
        now: float,
        for_s: float,
        keep_firing_for_s: float,
        receiver: str | None = None,
    ) -> None:
        """Apply one evaluation of ``rule``: ``observed`` is every instance true at ``now``."""
        changed: list[ActiveAlert] = []
        removed: list[str] = []
        with self._lock:
            known = self._by_rule.setdefault(rule, {})
            seen: set[str] = set()
            for item in observed:
                fp = fingerprint(item.labels)
                seen.add(fp)
                alert = known.get(fp)
                if alert is None or alert.state == "resolved":
                    alert = known[fp] = ActiveAlert(
                        rule, dict(item.labels), dict(item.annotations), "pending", now, now, item.value,
                        receiver=receiver, fingerprint=fp,
                    )
                alert.value, alert.annotations, alert.last_true_at = item.value, dict(item.annotations), now
                alert.receiver = receiver
                if alert.state == "pending" and now - alert.active_at >= for_s:
                    alert.state, alert.fired_at = "firing", now
                changed.append(alert)
            for fp, alert in list(known.items()):
                if fp in seen:
                    continue
                if alert.state == "pending":
                    del known[fp]
                    removed.append(fp)
                elif alert.state == "firing" and now - alert.last_true_at >= keep_firing_for_s:
                    alert.state, alert.resolved_at = "resolved", now
                    changed.append(alert)
                elif alert.state == "resolved" and now - (alert.resolved_at or now) > RESOLVED_RETENTION_S:
                    del known[fp]
                    removed.append(fp)
        if self.store is not None:
            self.store.save(self.tenant, changed, removed)

    def retire_rules(self, keep: set[str], now: float) -> None:
        """Rules that no longer exist: their firing alerts resolve, pending ones vanish."""
        with self._lock:
            gone = [rule for rule in self._by_rule if rule not in keep]
        for rule in gone:
            self.update(rule, (), now=now, for_s=0.0, keep_firing_for_s=0.0)

    def alerts(self, rule: str | None = None) -> list[ActiveAlert]:
        with self._lock:
            rules = [self._by_rule.get(rule, {})] if rule is not None else list(self._by_rule.values())
            return [alert for per_rule in rules for alert in per_rule.values()]

    def find(self, fp: str) -> ActiveAlert | None:
        with self._lock:
            for per_rule in self._by_rule.values():
                if fp in per_rule:
                    return per_rule[fp]
        return None

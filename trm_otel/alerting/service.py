"""The alerting subsystem as the daemon runs it: evaluate rules, keep state, dispatch, deliver.

    >>> service = AlertingService(config.alerting, data_dir=Path("data"), source=query_source,
    ...                           slo=policy, scalars=series_store, base_dir=Path("."))   # doctest: +SKIP
    >>> await service.start(); ...; await service.stop()                                  # doctest: +SKIP

One evaluation per rule group every group interval (default
``alerting.evaluation_interval``), on a worker thread since it reads
histograms; then the whole set of alerts is synced to the dispatcher and
written as the ``ALERTS`` series (``ALERTS{alertname, alertstate, ...} 1``
for pending and firing alerts, as Prometheus does) so dashboards and
queries can count them. The dispatcher ticks every 100 ms; the delivery
worker sends as soon as something is queued.

When an evaluation changes which alerts are pending, firing or silenced,
the tenant's summary (:meth:`AlertingService.alerts_summary`) is handed to
``on_change(tenant, summary)`` (the daemon publishes it on the UI's event
stream, to that tenant's streams only).

Rules come from ``rule_files`` (read-only through the API; reload with
:meth:`reload` / SIGHUP) and from the API (stored in SQLite). A reload or
an API change that does not validate is refused whole with its problems,
and evaluation continues on the rules that were in place.

Everything lives in ``<data dir>/alerting.db``: alert state, silences,
acks, the notification log and API-made rule groups.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from trm_otel.alerting.acks import Ack, AckStore
from trm_otel.alerting.config import NULL_RECEIVER, AlertingConfig
from trm_otel.alerting.delivery import DeliveryRetry, DeliveryWorker
from trm_otel.alerting.dispatcher import Dispatcher, ReceiverInfo
from trm_otel.alerting.inhibit import Inhibitor
from trm_otel.alerting.model import Alert, Notifier, rfc3339
from trm_otel.alerting.notify_log import NotificationLog
from trm_otel.alerting.receivers import build_notifiers
from trm_otel.alerting.routing import Route
from trm_otel.alerting.rules import AlertRule, LoadedRules, RuleGroup, load_rule_files, parse_rule_group
from trm_otel.alerting.silences import SilenceStore
from trm_otel.alerting.state import ActiveAlert, AlertBook, AlertStateStore, Observed
from trm_otel.alerting.time_intervals import TimeIntervals
from trm_otel.errors import ConfigError
from trm_otel.query import Evaluator
from trm_otel.series_source import SeriesSource
from trm_otel.slo import SloPolicy

__all__ = ["ALERTS_METRIC", "MAX_SUMMARY_ALERTS", "AlertingService", "AlertingTenants", "DATABASE_NAME", "OnChange",
           "RuleHealth"]

_logger = logging.getLogger("trm_otel.alerting")

DATABASE_NAME = "alerting.db"
ALERTS_METRIC = "ALERTS"
DEFAULT_TENANT = "default"
_TICK_S = 0.1
_GC_INTERVAL_S = 600.0
_DELIVERY_RETENTION_S = 7 * 86400.0
#: Alerts listed in a summary at most (the counts are always whole).
MAX_SUMMARY_ALERTS = 200
_SUMMARY_STATES = ("firing", "pending", "suppressed")

#: ``on_change(tenant, summary)``: called on the evaluating worker thread; must not block.
OnChange = Callable[[str, dict[str, Any]], Any]


@dataclass
class RuleHealth:
    health: str = "unknown"  # ok | err | unknown
    last_error: str = ""
    last_evaluation: float | None = None
    evaluation_time_s: float = 0.0


@dataclass
class _GroupRun:
    group: RuleGroup
    source: str
    interval_s: float
    next_at: float = 0.0
    health: dict[str, RuleHealth] = field(default_factory=dict)


class _ApiRuleStore:
    """Rule groups made through the API: ``rule_groups`` table, the group's JSON per (tenant, name)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS rule_groups (tenant TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,"
            " updated_at REAL NOT NULL, PRIMARY KEY (tenant, name))"
        )
        self._lock = threading.Lock()

    def all(self, tenant: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM rule_groups WHERE tenant = ? ORDER BY name", (tenant,)).fetchall()
        return [json.loads(row[0]) for row in rows]

    def put(self, tenant: str, name: str, body: Mapping[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO rule_groups VALUES (?,?,?,?)",
                             (tenant, name, json.dumps(body), time.time()))

    def delete(self, tenant: str, name: str) -> bool:
        with self._lock:
            cursor = self._db.execute("DELETE FROM rule_groups WHERE tenant = ? AND name = ?", (tenant, name))
        return cursor.rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._db.close()


class AlertingService:
    """One tenant's rules, alert state, silences, acks, dispatch and delivery.

    Rule files belong to tenant ``default`` (the operator's); other tenants
    have the rule groups they create through the API. Receivers, routes and
    policies are the daemon's, shared by every tenant.
    """

    def __init__(
        self,
        config: AlertingConfig,
        *,
        data_dir: Path,
        source: SeriesSource,
        slo: SloPolicy | None = None,
        scalars: Any = None,
        base_dir: Path | None = None,
        external_url: str = "",
        clock: Any = time.time,
        tenant: str = DEFAULT_TENANT,
        on_change: OnChange | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.on_change = on_change
        self._published: tuple[Any, ...] | None = None  # what on_change was last told
        self.slo = slo
        self.scalars = scalars
        self.base_dir = base_dir
        self.clock = clock
        self.external_url = (config.external_url or external_url).rstrip("/")
        self.tenant = tenant
        self.rule_files = config.rule_files if tenant == DEFAULT_TENANT else ()
        self.file_rules = load_rule_files(self.rule_files, base_dir=base_dir)  # ConfigError: refuse to start
        path = data_dir / DATABASE_NAME
        self.state_store = AlertStateStore(path)
        self.silences = SilenceStore(path)
        self.acks = AckStore(path)
        self.log = NotificationLog(path, clock=clock)
        self.api_rules = _ApiRuleStore(path)
        self.book = AlertBook(self.tenant, self.state_store)
        self.notifiers, receiver_infos = self._build_receivers()
        retry = config.notification
        self.worker = DeliveryWorker(
            self.log,
            self.notifiers,
            retry=DeliveryRetry(retry.initial_interval, retry.max_interval, retry.max_elapsed_time, retry.timeout),
            clock=clock,
            tenant=tenant,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dispatcher = Dispatcher(
            tenant=self.tenant,
            route=Route(config.root_route()),
            receivers=receiver_infos,
            log=self.log,
            silences=self.silences,
            inhibitor=Inhibitor(config.inhibit_rules),
            acks=self.acks,
            time_intervals=TimeIntervals((*config.time_intervals, *config.mute_time_intervals)),
            escalation_policies={p.name: p for p in config.escalation_policies},
            external_url=self.external_url,
            on_queued=self._wake_worker,
        )
        self._rules_lock = threading.RLock()
        self._runs: dict[str, _GroupRun] = {}
        self._rules_changed = False  # a rule may be gone: retire its alerts even if no group is due
        self._install(self._combined_rules())
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()

    # ------------------------------------------------------------- building

    def _build_receivers(self) -> tuple[dict[tuple[str, str], Notifier], dict[str, ReceiverInfo]]:
        notifiers: dict[tuple[str, str], Notifier] = {}
        infos: dict[str, ReceiverInfo] = {NULL_RECEIVER: ReceiverInfo(NULL_RECEIVER)}
        for receiver in self.config.receivers:
            built = build_notifiers(receiver, external_url=self.external_url)
            ids = []
            counts: dict[str, int] = {}
            for notifier in built:
                index = counts.get(notifier.kind, 0)
                counts[notifier.kind] = index + 1
                integration = f"{notifier.kind}[{index}]"
                notifiers[(receiver.name, integration)] = notifier
                ids.append(integration)
            resend = [getattr(n, "resend_interval_s", None) for n in built]
            resend_values = [r for r in resend if r]
            limit = receiver.rate_limit
            infos[receiver.name] = ReceiverInfo(
                receiver.name,
                tuple(ids),
                send_resolved=any(n.send_resolved for n in built),
                rate_limit=(limit.max_notifications, limit.per) if limit is not None else None,
                resend_interval_s=min(resend_values) if resend_values else None,
            )
        return notifiers, infos

    def _combined_rules(self, api_groups: list[RuleGroup] | None = None) -> LoadedRules:
        groups = list(self.file_rules.groups)
        sources = dict(self.file_rules.sources)
        if api_groups is None:
            api_groups = []
            for body in self.api_rules.all(self.tenant):
                try:
                    api_groups.append(parse_rule_group(body, source=f"api group {body.get('name')!r}"))
                except ConfigError as err:  # stored by an older version with other rules: keep running
                    _logger.error("stored rule group no longer valid, skipped: %s", err)
        for group in api_groups:
            if group.name in sources:
                continue
            groups.append(group)
            sources[group.name] = "api"
        return LoadedRules(tuple(groups), sources)

    def _install(self, rules: LoadedRules) -> None:
        problems = self._receiver_problems(rules)
        if problems:
            raise ConfigError(problems)
        now = self.clock()
        with self._rules_lock:
            runs = {}
            for group in rules.groups:
                interval = group.interval or self.config.evaluation_interval
                previous = self._runs.get(group.name)
                run = _GroupRun(group, rules.sources[group.name], interval, next_at=now)
                if previous is not None:
                    run.health = previous.health
                    run.next_at = min(previous.next_at, now + interval)
                runs[group.name] = run
            self._runs = runs
            self.rules = rules
            self._rules_changed = True

    def _receiver_problems(self, rules: LoadedRules) -> list[tuple[str, str]]:
        from trm_otel.alerting.rules import reference_problems

        return reference_problems(rules, self.config.receiver_names())

    # -------------------------------------------------------------- rule edits

    def reload(self) -> LoadedRules:
        """Re-read the rule files; on any problem keep the current rules and raise ConfigError."""
        files = load_rule_files(self.rule_files, base_dir=self.base_dir)
        with self._rules_lock:
            previous = self.file_rules
            self.file_rules = files
            try:
                self._install(self._combined_rules())
            except ConfigError:
                self.file_rules = previous
                raise
        _logger.info("rules reloaded: %d groups", len(self.rules.groups))
        return self.rules

    def put_rule_group(self, body: Mapping[str, Any]) -> RuleGroup:
        """Create or replace an API rule group; ConfigError (nothing changes) when invalid."""
        group = parse_rule_group(body)
        with self._rules_lock:
            source = self.rules.sources.get(group.name)
            if source is not None and source != "api":
                raise ConfigError([(f"groups[{group.name}]", f"defined in {source}; edit that file and reload")])
            others = [g for g, s in ((g, self.rules.sources[g.name]) for g in self.rules.groups)
                      if s == "api" and g.name != group.name]
            self._install(self._combined_rules([*others, group]))
            self.api_rules.put(self.tenant, group.name, group.model_dump(mode="json", by_alias=True,
                                                                         exclude_defaults=True))
        return group

    def delete_rule_group(self, name: str) -> bool:
        with self._rules_lock:
            source = self.rules.sources.get(name)
            if source is None:
                return False
            if source != "api":
                raise ConfigError([(f"groups[{name}]", f"defined in {source}; edit that file and reload")])
            self.api_rules.delete(self.tenant, name)
            self._install(self._combined_rules())
        return True

    # ------------------------------------------------------------ evaluation

    def evaluate_due(self, now: float | None = None) -> int:
        """Evaluate every group whose time has come; returns how many ran. Runs on a worker thread."""
        now = self.clock() if now is None else now
        with self._rules_lock:
            due = [run for run in self._runs.values() if run.next_at <= now]
            for run in due:
                run.next_at = max(run.next_at + run.interval_s, now + run.interval_s * 0.5)
            keys = {_rule_key(run.group, rule) for run in self._runs.values() for rule in run.group.rules}
            changed, self._rules_changed = self._rules_changed, False
        evaluator = Evaluator(self.source, slo=self.slo, tenant=self.tenant)
        for run in due:
            for rule in run.group.rules:
                self._evaluate_rule(run, rule, evaluator, now)
        if due or changed:  # the last group deleted: no group is due, but its alerts must resolve
            self.book.retire_rules(keys, now)
            self._after_evaluation(now)
        return len(due)

    def _evaluate_rule(self, run: _GroupRun, rule: AlertRule, evaluator: Evaluator, now: float) -> None:
        key = _rule_key(run.group, rule)
        health = run.health.setdefault(key, RuleHealth())
        started = time.perf_counter()
        try:
            instances = rule.condition.evaluate(evaluator, now)
        except Exception as err:  # noqa: BLE001 - one bad rule must not stop the others
            health.health, health.last_error = "err", str(err)
            health.last_evaluation, health.evaluation_time_s = now, time.perf_counter() - started
            _logger.warning("rule %s failed: %s", key, err)
            return  # its alerts keep their state: no data is not "resolved"
        observed = []
        for instance in instances:
            base = {k: v for k, v in instance.labels.items()}
            labels = dict(base)
            for name in rule.labels:
                labels[name] = rule.template("labels", name).render(base, instance.value, self.external_url)
            labels["alertname"] = rule.alert
            annotations = {
                name: rule.template("annotations", name).render(labels, instance.value, self.external_url)
                for name in rule.annotations
            }
            observed.append(Observed(labels, annotations, instance.value))
        self.book.update(key, observed, now=now, for_s=rule.for_, keep_firing_for_s=rule.keep_firing_for,
                         receiver=rule.receiver)
        health.health, health.last_error = "ok", ""
        health.last_evaluation, health.evaluation_time_s = now, time.perf_counter() - started

    def _after_evaluation(self, now: float) -> None:
        alerts = self.book.alerts()
        for alert in alerts:
            if alert.state == "resolved":
                self.acks.clear(self.tenant, alert.fingerprint)
        self._record_alerts_series(alerts, now)
        self.dispatcher.sync(
            [(self._as_alert(a), a.receiver) for a in alerts if a.state != "pending"], now
        )
        self._publish_summary(now)

    def _publish_summary(self, now: float) -> None:
        """Tell ``on_change`` the summary when the set of alerts or their states differ from last time."""
        if self.on_change is None:
            return
        try:
            alerts = self.alerts_json(now)
            signature = tuple(sorted((a["fingerprint"], a["state"]) for a in alerts if a["state"] in _SUMMARY_STATES))
            if signature == self._published:
                return
            self._published = signature
            self.on_change(self.tenant, _summary(alerts, now))
        except Exception:  # noqa: BLE001 - the UI's summary must never stop alerting
            _logger.exception("publishing the alert summary of tenant %r failed", self.tenant)

    def _as_alert(self, alert: ActiveAlert) -> Alert:
        return alert.to_alert(self._generator_url(alert.rule))

    def _generator_url(self, rule_key: str) -> str:
        return f"{self.external_url}/api/v1/alerts?rule={quote(rule_key, safe='')}" if self.external_url else ""

    def _record_alerts_series(self, alerts: list[ActiveAlert], now: float) -> None:
        if self.scalars is None:
            return
        end_ns = int(now * 1e9)
        for alert in alerts:
            if alert.state == "resolved":
                continue
            labels = {**alert.labels, "alertstate": alert.state}
            service = labels.pop("service.name", "")
            key = (ALERTS_METRIC, service, tuple(sorted(labels.items())))
            self.scalars.record_gauge(key, end_ns, 1.0)

    def default_external_url(self, url: str) -> None:
        """The API's own address, for links in notifications, unless ``external_url`` is configured."""
        if not self.external_url:
            self.external_url = self.dispatcher.external_url = url.rstrip("/")

    # -------------------------------------------------------------- running

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._evaluate_forever(), name="alerting-evaluate"),
            asyncio.create_task(self._tick_forever(), name="alerting-dispatch"),
            asyncio.create_task(self.worker.run(self._stopping), name="alerting-deliver"),
        ]
        _logger.info("alerting: %d rule groups, %d receivers", len(self.rules.groups), len(self.config.receivers))

    async def _evaluate_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(self.evaluate_due)
            except Exception:  # noqa: BLE001 - keep evaluating; the log has it
                _logger.exception("rule evaluation failed")
            await asyncio.sleep(_TICK_S)

    async def _tick_forever(self) -> None:
        last_gc = time.monotonic()
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(self.dispatcher.tick, self.clock())
                if time.monotonic() - last_gc > _GC_INTERVAL_S:
                    last_gc = time.monotonic()
                    await asyncio.to_thread(self._collect_garbage)
            except Exception:  # noqa: BLE001 - keep dispatching; the log has it
                _logger.exception("dispatching failed")
            await asyncio.sleep(_TICK_S)

    def _collect_garbage(self) -> None:
        """Silences expired past their retention and finished deliveries older than a week."""
        self.silences.gc()
        self.log.prune(_DELIVERY_RETENTION_S)

    def _wake_worker(self) -> None:
        if self._loop is not None:
            self.worker.wake_threadsafe(self._loop)

    async def stop(self, grace_s: float = 5.0) -> None:
        self._stopping.set()
        for task in self._tasks:
            if task.get_name() != "alerting-deliver":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.worker.drain(grace_s)
        for closable in (self.state_store, self.silences, self.acks, self.log, self.api_rules):
            closable.close()

    # ------------------------------------------------------------- API views

    def ack(self, fingerprint: str, *, by: str, comment: str, expires_at: float) -> Ack:
        """Acknowledge a firing alert; KeyError if there is none with that fingerprint."""
        alert = self.book.find(fingerprint)
        if alert is None or alert.state != "firing":
            raise KeyError(fingerprint)
        now = self.clock()
        if not expires_at > now:
            raise ValueError("expiresAt must be in the future")
        ack = Ack(fingerprint, by, comment, now, expires_at)
        self.acks.ack(self.tenant, ack)
        return ack

    def alerts_json(self, now: float | None = None) -> list[dict[str, Any]]:
        now = self.clock() if now is None else now
        out = []
        for active in sorted(self.book.alerts(), key=lambda a: (a.rule, a.active_at)):
            alert = self._as_alert(active)
            mute = self.dispatcher.mute_info(alert, now)
            ack = self.acks.get(self.tenant, active.fingerprint, now)
            state = active.state if not (active.state == "firing" and mute.muted) else "suppressed"
            out.append({
                "fingerprint": active.fingerprint,
                "rule": active.rule,
                "labels": dict(active.labels),
                "annotations": dict(active.annotations),
                "state": state,
                "activeAt": rfc3339(active.active_at),
                "firedAt": rfc3339(active.fired_at) if active.fired_at is not None else None,
                "resolvedAt": rfc3339(active.resolved_at) if active.resolved_at is not None else None,
                "value": active.value,
                "silencedBy": list(mute.silenced_by),
                "inhibitedBy": list(mute.inhibited_by),
                "ackedBy": ack.to_json() if ack is not None else None,
                "receiver": active.receiver,
                "generatorURL": alert.generator_url,
            })
        return out

    def alerts_summary(self, now: float | None = None) -> dict[str, Any]:
        """The alerts to show at a glance: counts per state, and each active one (firing first, then oldest).

        ``{"firing": n, "pending": n, "suppressed": n, "alerts": [{"fingerprint", "alertname", "rule",
        "labels", "state", "since"}], "truncated": n, "time"}``; ``since`` is when it began firing (pending:
        when it became pending), RFC 3339. Resolved alerts are left out; ``suppressed`` are firing
        alerts a silence or an inhibition mutes. At most :data:`MAX_SUMMARY_ALERTS` are listed;
        ``truncated`` says how many more there are.
        """
        now = self.clock() if now is None else now
        return _summary(self.alerts_json(now), now)

    def rules_json(self) -> list[dict[str, Any]]:
        with self._rules_lock:
            runs = list(self._runs.values())
        groups = []
        for run in runs:
            rules = []
            for rule in run.group.rules:
                key = _rule_key(run.group, rule)
                health = run.health.get(key, RuleHealth())
                alerts = self.book.alerts(key)
                states = {a.state for a in alerts}
                state = "firing" if "firing" in states else "pending" if "pending" in states else "inactive"
                rules.append({
                    "name": rule.alert, "query": rule.expr, "duration": rule.for_,
                    "keepFiringFor": rule.keep_firing_for, "labels": dict(rule.labels),
                    "annotations": dict(rule.annotations), "receiver": rule.receiver, "state": state,
                    "health": health.health, "lastError": health.last_error,
                    "lastEvaluation": rfc3339(health.last_evaluation) if health.last_evaluation else None,
                    "evaluationTime": health.evaluation_time_s, "type": "alerting",
                    "alerts": [a.fingerprint for a in alerts if a.state != "resolved"],
                })
            groups.append({"name": run.group.name, "file": run.source, "interval": run.interval_s, "rules": rules})
        return groups


def _rule_key(group: RuleGroup, rule: AlertRule) -> str:
    return f"{group.name}/{rule.alert}"


def _summary(alerts: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """:meth:`AlertingService.alerts_summary` of the alerts as ``alerts_json`` lists them."""
    active = [a for a in alerts if a["state"] in _SUMMARY_STATES]
    order = {state: i for i, state in enumerate(_SUMMARY_STATES)}
    active.sort(key=lambda a: (order[a["state"]], a["firedAt"] or a["activeAt"], sorted(a["labels"].items())))
    listed = [
        {
            "fingerprint": a["fingerprint"],
            "alertname": a["labels"].get("alertname", ""),
            "rule": a["rule"],
            "labels": a["labels"],
            "state": a["state"],
            "since": a["activeAt"] if a["state"] == "pending" else (a["firedAt"] or a["activeAt"]),
        }
        for a in active[:MAX_SUMMARY_ALERTS]
    ]
    counts = {state: sum(a["state"] == state for a in active) for state in _SUMMARY_STATES}
    return {**counts, "alerts": listed, "truncated": max(len(active) - MAX_SUMMARY_ALERTS, 0), "time": rfc3339(now)}


class AlertingTenants:
    """Every tenant's :class:`AlertingService`, over the shared config and database; call it with a tenant.

    ``on_change(tenant, summary)`` is given to each tenant's service: it is
    called with that tenant's name and alerts only.
    """

    def __init__(
        self,
        config: AlertingConfig,
        *,
        data_dir: Path,
        source: SeriesSource,
        scalars_of: Any,
        slo: SloPolicy | None = None,
        tenants: tuple[str, ...] = (DEFAULT_TENANT,),
        on_change: OnChange | None = None,
    ) -> None:
        self.config = config
        self.on_change = on_change
        self.data_dir = data_dir
        self.source = source
        self.scalars_of = scalars_of
        self.slo = slo
        self.external_url = ""
        self._services: dict[str, AlertingService] = {}
        self._lock = threading.Lock()
        self._running = False
        for tenant in sorted(set(tenants) | {DEFAULT_TENANT}):
            self(tenant)

    @property
    def default(self) -> AlertingService:
        return self(DEFAULT_TENANT)

    def __call__(self, tenant: str) -> AlertingService:
        found = self._services.get(tenant)
        if found is not None:
            return found
        with self._lock:
            found = self._services.get(tenant)
            if found is None:
                found = AlertingService(
                    self.config, data_dir=self.data_dir, source=self.source, slo=self.slo,
                    scalars=self.scalars_of(tenant), tenant=tenant, external_url=self.external_url,
                    on_change=self.on_change,
                )
                self._services[tenant] = found
                if self._running:  # created by a request on the running loop
                    asyncio.get_running_loop().create_task(found.start())
        return found

    def default_external_url(self, url: str) -> None:
        self.external_url = url
        for service in list(self._services.values()):
            service.default_external_url(url)

    def reload(self) -> LoadedRules:
        """Re-read the rule files (tenant ``default``'s)."""
        return self.default.reload()

    async def start(self) -> None:
        self._running = True
        for service in list(self._services.values()):
            await service.start()

    async def stop(self) -> None:
        self._running = False
        for service in list(self._services.values()):
            await service.stop()

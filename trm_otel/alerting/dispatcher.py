"""From alerts to notifications, Alertmanager's way, in small stages, plus acks, escalation and rate limits.

    >>> dispatcher.sync(current_alerts, now)   # every evaluation: the whole current set   # doctest: +SKIP
    >>> dispatcher.tick(now)                   # often (the daemon: every 100 ms)          # doctest: +SKIP

Stages, in the order an alert meets them:

1. **Route**: the routing tree picks the routes (``continue`` may give
   several); a rule with its own ``receiver`` skips the tree and uses the
   root's timings.
2. **Group**: per route, alerts with the same ``group_by`` labels share a
   group. A new group waits ``group_wait`` before its first notification,
   then is looked at every ``group_interval``.
3. **Mute**: a route's ``mute_time_intervals`` (or being outside its
   ``active_time_intervals``) holds the whole group; silenced and inhibited
   alerts are left out of the notification.
4. **Dedup** against the persistent notification log: notify when a firing
   alert is new to the group, when a notified one resolved (if some
   integration of the receiver wants resolved), and otherwise again only
   after ``repeat_interval`` — unless every firing alert of the group is
   acked (a forwarding ``alertmanager`` integration is re-sent anyway, so
   Alertmanager does not expire the alerts).
5. **Rate limit** per receiver (token bucket): over the limit, the
   notification is held and later folded into one digest.
6. **Queue**: one delivery per integration in the notification log, in the
   same transaction as the dedup record; :mod:`.delivery` sends and retries.

Escalation runs beside stage 4 on every tick (:mod:`.escalation`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from trm_otel.alerting.acks import AckStore
from trm_otel.alerting.escalation import EscalationPolicy
from trm_otel.alerting.inhibit import Inhibitor
from trm_otel.alerting.model import Alert, Notification
from trm_otel.alerting.notify_log import NflogEntry, NotificationLog
from trm_otel.alerting.ratelimit import TokenBucket
from trm_otel.alerting.routing import MatchedRoute, Route, group_key, group_labels
from trm_otel.alerting.silences import SilenceStore
from trm_otel.alerting.time_intervals import TimeIntervals

__all__ = ["Dispatcher", "MuteInfo", "ReceiverInfo"]

_logger = logging.getLogger("trm_otel.alerting")

#: The integration id a held (rate-limited) notification is stored under until folded.
HELD = "*"


@dataclass(frozen=True, slots=True)
class ReceiverInfo:
    """What the dispatcher needs to know of a receiver (the notifiers themselves live in delivery)."""

    name: str
    integrations: tuple[str, ...] = ()
    send_resolved: bool = False
    rate_limit: tuple[int, float] | None = None  # (max notifications, per seconds)
    resend_interval_s: float | None = None  # an alertmanager integration's resend_delay


@dataclass(frozen=True, slots=True)
class MuteInfo:
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()

    @property
    def muted(self) -> bool:
        return bool(self.silenced_by or self.inhibited_by)


@dataclass(slots=True)
class _Group:
    key: str
    route: MatchedRoute
    labels: dict[str, str]
    next_flush_at: float
    alerts: dict[str, Alert] = field(default_factory=dict)


class _Clock(Protocol):
    def __call__(self) -> float: ...


class Dispatcher:
    """One tenant's groups; ``sync`` and ``tick`` may be called from different threads."""

    def __init__(
        self,
        *,
        tenant: str,
        route: Route,
        receivers: Mapping[str, ReceiverInfo],
        log: NotificationLog,
        silences: SilenceStore | None = None,
        inhibitor: Inhibitor | None = None,
        acks: AckStore | None = None,
        time_intervals: TimeIntervals | None = None,
        escalation_policies: Mapping[str, EscalationPolicy] | None = None,
        external_url: str = "",
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.tenant = tenant
        self.route = route
        self.receivers = dict(receivers)
        self.log = log
        self.silences = silences
        self.inhibitor = inhibitor
        self.acks = acks
        self.time_intervals = time_intervals
        self.policies = dict(escalation_policies or {})
        self.external_url = external_url
        self.on_queued = on_queued
        self._groups: dict[str, _Group] = {}
        self._firing: dict[str, Alert] = {}
        self._settled: dict[str, float | None] = {}  # resolved alerts already handed over
        self._buckets = {
            name: TokenBucket(info.rate_limit[0], info.rate_limit[1])
            for name, info in self.receivers.items()
            if info.rate_limit is not None
        }
        self._holding = {receiver for tenant_, receiver in log.held_receivers() if tenant_ == tenant}
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- input

    def sync(self, alerts: Iterable[tuple[Alert, str | None]], now: float) -> None:
        """Take the complete current set: firing and recently resolved alerts, each with its pinned receiver."""
        with self._lock:
            current: set[str] = set()
            self._firing = {}
            for alert, pinned in alerts:
                current.add(alert.fingerprint)
                if alert.status == "firing":
                    self._firing[alert.fingerprint] = alert
                    self._settled.pop(alert.fingerprint, None)
                elif self._settled.get(alert.fingerprint, -1.0) == alert.ends_at:
                    continue
                for matched in self._routes(alert, pinned):
                    key = group_key(matched, alert.labels)
                    group = self._groups.get(key)
                    if group is None:
                        group = self._groups[key] = _Group(
                            key, matched, group_labels(matched, alert.labels), now + matched.group_wait
                        )
                    group.alerts[alert.fingerprint] = alert
            for fp in [fp for fp in self._settled if fp not in current]:
                del self._settled[fp]
            for key, group in list(self._groups.items()):
                for fp in [fp for fp in group.alerts if fp not in current]:
                    del group.alerts[fp]  # gone without a resolution (retention passed): nothing to tell
                if not group.alerts:
                    self._drop(key)

    def _routes(self, alert: Alert, pinned: str | None) -> list[MatchedRoute]:
        if pinned is None:
            return list(self.route.match(alert.labels))
        root = self.route.match_root()
        return [replace(root, receiver=pinned, route_key=f"{{}}/receiver={pinned}")]

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> None:
        """Flush due groups, run escalations, release digests."""
        with self._lock:
            for key, group in list(self._groups.items()):
                if group.next_flush_at <= now:
                    group.next_flush_at = now + group.route.group_interval
                    self._flush(group, now)
                if key in self._groups:
                    self._escalate(group, now)
            for receiver in sorted(self._holding):
                self._release(receiver, now)

    def next_due_at(self) -> float | None:
        with self._lock:
            return min((g.next_flush_at for g in self._groups.values()), default=None)

    # ---------------------------------------------------------------- stages

    def mute_info(self, alert: Alert, now: float) -> MuteInfo:
        silenced = tuple(self.silences.silenced_by(self.tenant, alert.labels, now)) if self.silences else ()
        inhibitor = None
        if self.inhibitor is not None and alert.status == "firing":
            inhibitor = self.inhibitor.inhibited_by(alert.labels, self._firing.values())
        return MuteInfo(silenced, (inhibitor,) if inhibitor else ())

    def _time_muted(self, route: MatchedRoute, now: float) -> bool:
        if self.time_intervals is None:
            return False
        return self.time_intervals.muted(route.mute_time_intervals, route.active_time_intervals, now)

    def _acked(self, alert: Alert, now: float) -> bool:
        return self.acks is not None and self.acks.get(self.tenant, alert.fingerprint, now) is not None

    def _flush(self, group: _Group, now: float) -> None:
        route = group.route
        if self._time_muted(route, now):
            return
        firing = [a for a in group.alerts.values() if a.status == "firing" and not self.mute_info(a, now).muted]
        resolved = [a for a in group.alerts.values() if a.status == "resolved"]
        if not firing and not resolved:
            return  # everything muted: nothing to say, and the log stays as it was
        info = self.receivers.get(route.receiver, ReceiverInfo(route.receiver))
        entry = self.log.entry(self.tenant, route.receiver, group.key)
        if self._needs_notification(entry, firing, resolved, info, route, now):
            alerts = tuple(sorted(firing + resolved, key=lambda a: (a.starts_at, a.fingerprint)))
            self._send(Notification(route.receiver, group.key, group.labels, alerts, self.external_url), info, now)
            if firing and route.escalation_policy and self.log.escalation(self.tenant, group.key) is None:
                self.log.set_escalation(self.tenant, group.key, (now, 0))
        for alert in resolved:
            del group.alerts[alert.fingerprint]
            self._settled[alert.fingerprint] = alert.ends_at
        if not group.alerts:
            self._drop(group.key)

    def _needs_notification(
        self,
        entry: NflogEntry | None,
        firing: list[Alert],
        resolved: list[Alert],
        info: ReceiverInfo,
        route: MatchedRoute,
        now: float,
    ) -> bool:
        firing_fps = {a.fingerprint for a in firing}
        if entry is None:
            return bool(firing_fps)
        if not firing_fps:
            return bool(entry.firing)  # everything notified has resolved (or is muted now): say so once
        if not firing_fps <= entry.firing:
            return True
        newly_resolved = {a.fingerprint for a in resolved} & entry.firing
        if info.send_resolved and newly_resolved - entry.resolved:
            return True
        repeat = route.repeat_interval
        forwarding = info.resend_interval_s is not None
        if forwarding:
            repeat = min(repeat, info.resend_interval_s or repeat)
        elif all(self._acked(a, now) for a in firing):
            return False
        return now - entry.sent_at >= repeat

    def _send(self, notification: Notification, info: ReceiverInfo, now: float, *, nflog: bool = True) -> None:
        bucket = self._buckets.get(info.name)
        if info.name in self._holding or (bucket is not None and not bucket.take(now)):
            self.log.record(self.tenant, notification, (HELD,), status="held", nflog=nflog, now=now)
            self._holding.add(info.name)
            _logger.info("receiver %s is over its rate limit: notification held for the next digest", info.name)
            return
        self.log.record(self.tenant, notification, info.integrations, nflog=nflog, now=now)
        if self.on_queued is not None and info.integrations:
            self.on_queued()

    def _release(self, receiver: str, now: float) -> None:
        bucket = self._buckets.get(receiver)
        if bucket is not None and not bucket.available(now):
            return
        held = self.log.held(self.tenant, receiver)
        if not held:
            self._holding.discard(receiver)
            return
        if bucket is not None:
            bucket.take(now)
        latest: dict[str, Alert] = {}
        for delivery in held:
            for alert in delivery.notification.alerts:
                latest[alert.fingerprint] = alert
        first = held[0].notification
        if len(held) == 1:
            digest = first
        else:
            digest = Notification(
                receiver, f"{{}}/digest/{receiver}", {}, tuple(sorted(latest.values(), key=lambda a: a.starts_at)),
                self.external_url, folded=len(held),
            )
        info = self.receivers.get(receiver, ReceiverInfo(receiver))
        self.log.fold([d.id for d in held], digest, self.tenant, info.integrations, now=now)
        self._holding.discard(receiver)
        if self.on_queued is not None:
            self.on_queued()

    def _escalate(self, group: _Group, now: float) -> None:
        name = group.route.escalation_policy
        policy = self.policies.get(name) if name else None
        if policy is None:
            return
        state = self.log.escalation(self.tenant, group.key)
        unacked = [
            a for a in group.alerts.values()
            if a.status == "firing" and not self._acked(a, now) and not self.mute_info(a, now).muted
        ]
        if not unacked:
            if state is not None:
                self.log.set_escalation(self.tenant, group.key, None)
            return
        if state is None:
            # Started by the first notification; restarted here when an ack expired.
            if self.log.entry(self.tenant, group.route.receiver, group.key) is None:
                return
            state = (now, 0)
        anchor, done = state
        while done < policy.total_steps:
            due, step, number = policy.due_at(anchor, done)
            if now < due:
                break
            alerts = tuple(sorted(unacked, key=lambda a: (a.starts_at, a.fingerprint)))
            for receiver in step.receivers:
                info = self.receivers.get(receiver, ReceiverInfo(receiver))
                notification = Notification(
                    receiver, f"{group.key}/escalation", group.labels, alerts, self.external_url,
                    escalation_step=number,
                )
                self._send(notification, info, now, nflog=False)
            _logger.info("escalated %s to step %d (%s)", group.key, number, ", ".join(step.receivers))
            done += 1
        self.log.set_escalation(self.tenant, group.key, (anchor, done))

    def _drop(self, key: str) -> None:
        self._groups.pop(key, None)
        self.log.set_escalation(self.tenant, key, None)

    # ------------------------------------------------------------------ info

    def groups(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"groupKey": g.key, "receiver": g.route.receiver, "labels": dict(g.labels),
                 "alerts": sorted(g.alerts)}
                for g in self._groups.values()
            ]

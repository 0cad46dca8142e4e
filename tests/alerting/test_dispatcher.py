"""The dispatcher's stages on an explicit clock: what lands in the notification log, and when."""

from __future__ import annotations

from pathlib import Path

import pytest

from trm_otel.alerting.acks import Ack, AckStore
from trm_otel.alerting.dispatcher import HELD, Dispatcher, ReceiverInfo
from trm_otel.alerting.escalation import EscalationPolicy
from trm_otel.alerting.inhibit import Inhibitor, InhibitRule
from trm_otel.alerting.model import Alert
from trm_otel.alerting.notify_log import NotificationLog
from trm_otel.alerting.routing import RootRouteConfig, Route
from trm_otel.alerting.silences import Silence, SilenceStore
from trm_otel.alerting.time_intervals import TimeIntervals

T0 = 1_800_000_000.0


def firing(name: str, t: float = T0, **labels: str) -> Alert:
    return Alert.firing({"alertname": name, **labels}, {"summary": name}, t)


def route(**settings: object) -> Route:
    base = {"receiver": "team", "group_by": ["alertname"], "group_wait": "10s", "group_interval": "30s",
            "repeat_interval": "4h"}
    base.update(settings)
    return Route(RootRouteConfig.model_validate(base))


@pytest.fixture
def log(tmp_path: Path) -> NotificationLog:
    return NotificationLog(tmp_path / "alerting.db")


def make(log: NotificationLog, tmp_path: Path, **kwargs: object) -> Dispatcher:
    receivers = kwargs.pop("receivers", None) or {
        "team": ReceiverInfo("team", ("webhook[0]",), send_resolved=True),
        "lead": ReceiverInfo("lead", ("webhook[0]",), send_resolved=True),
        "boss": ReceiverInfo("boss", ("webhook[0]",), send_resolved=True),
    }
    return Dispatcher(tenant="default", route=kwargs.pop("route", route()), receivers=receivers,  # type: ignore[arg-type]
                      log=log, **kwargs)  # type: ignore[arg-type]


def sent(log: NotificationLog, receiver: str | None = None) -> list[tuple[str, str, list[str]]]:
    """(receiver, status of the notification, alert names) oldest first."""
    out = []
    for d in reversed(log.deliveries()):
        if receiver is None or d.receiver == receiver:
            n = d.notification
            out.append((d.receiver, n.status, sorted(a.labels["alertname"] + ":" + a.status for a in n.alerts)))
    return out


def test_group_wait_then_one_notification_for_the_batch(log: NotificationLog, tmp_path: Path) -> None:
    d = make(log, tmp_path, route=route(group_by=["service"]))
    d.sync([(firing("A", service="shop"), None)], T0)
    d.tick(T0 + 5)
    assert sent(log) == []
    d.sync([(firing("A", service="shop"), None), (firing("B", service="shop"), None)], T0 + 6)
    d.tick(T0 + 10)
    assert sent(log) == [("team", "firing", ["A:firing", "B:firing"])]


def test_repeat_interval_and_dedup(log: NotificationLog, tmp_path: Path) -> None:
    d = make(log, tmp_path, route=route(repeat_interval="1m"))
    a = firing("A")
    for t in range(0, 200, 5):
        d.sync([(a, None)], T0 + t)
        d.tick(T0 + t)
    # at 10 s (group_wait), then the first group_interval tick after each minute: 70, 130, 190
    assert len(sent(log)) == 4


def test_new_alert_in_group_notifies_at_next_group_interval(log: NotificationLog, tmp_path: Path) -> None:
    d = make(log, tmp_path, route=route(group_by=[]))
    d.sync([(firing("A"), None)], T0)
    d.tick(T0 + 10)
    d.sync([(firing("A"), None), (firing("B"), None)], T0 + 15)
    d.tick(T0 + 20)
    assert len(sent(log)) == 1  # not before group_interval
    d.tick(T0 + 40)
    assert sent(log)[-1] == ("team", "firing", ["A:firing", "B:firing"])


def test_resolved_is_sent_once(log: NotificationLog, tmp_path: Path) -> None:
    d = make(log, tmp_path)
    a = firing("A")
    d.sync([(a, None)], T0)
    d.tick(T0 + 10)
    done = a.resolved_at(T0 + 20)
    for t in (20, 40, 70, 100, 400):
        d.sync([(done, None)], T0 + t)
        d.tick(T0 + t)
    assert sent(log) == [("team", "firing", ["A:firing"]), ("team", "resolved", ["A:resolved"])]


def test_silenced_alert_is_left_out(log: NotificationLog, tmp_path: Path) -> None:
    silences = SilenceStore(tmp_path / "alerting.db")
    silence = Silence.parse({
        "matchers": [{"name": "alertname", "value": "A", "isRegex": False}],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z", "createdBy": "me", "comment": "x",
    })
    silences.create_or_update("default", silence, now=T0)
    d = make(log, tmp_path, silences=silences, route=route(group_by=[]))
    d.sync([(firing("A"), None), (firing("B"), None)], T0)
    d.tick(T0 + 10)
    assert sent(log) == [("team", "firing", ["B:firing"])]
    assert d.mute_info(firing("A"), T0).silenced_by


def test_inhibition(log: NotificationLog, tmp_path: Path) -> None:
    rule = InhibitRule.model_validate({"source_matchers": ['severity="critical"'],
                                       "target_matchers": ['severity="warning"'], "equal": ["service"]})
    d = make(log, tmp_path, inhibitor=Inhibitor([rule]), route=route(group_by=[]))
    crit = firing("Down", severity="critical", service="shop")
    warn = firing("Slow", severity="warning", service="shop")
    other = firing("Slow", severity="warning", service="cart")
    d.sync([(crit, None), (warn, None), (other, None)], T0)
    d.tick(T0 + 10)
    assert sent(log) == [("team", "firing", ["Down:firing", "Slow:firing"])]
    assert d.mute_info(warn, T0).inhibited_by == (crit.fingerprint,)


def test_ack_stops_repeats_until_it_expires(log: NotificationLog, tmp_path: Path) -> None:
    acks = AckStore(tmp_path / "alerting.db")
    d = make(log, tmp_path, acks=acks, route=route(repeat_interval="1m"))
    a = firing("A")
    d.sync([(a, None)], T0)
    d.tick(T0 + 10)
    acks.ack("default", Ack(a.fingerprint, "alice", "on it", T0 + 11, T0 + 300))
    for t in range(15, 300, 5):
        d.sync([(a, None)], T0 + t)
        d.tick(T0 + t)
    assert len(sent(log)) == 1
    for t in range(300, 360, 5):
        d.sync([(a, None)], T0 + t)
        d.tick(T0 + t)
    assert len(sent(log)) == 2


def test_escalation_steps_without_ack_and_ack_stops_them(log: NotificationLog, tmp_path: Path) -> None:
    acks = AckStore(tmp_path / "alerting.db")
    policy = EscalationPolicy.model_validate(
        {"name": "p", "steps": [{"after": "1m", "receivers": ["lead"]}, {"after": "2m", "receivers": ["boss"]}]}
    )
    d = make(log, tmp_path, acks=acks, escalation_policies={"p": policy},
             route=route(escalation_policy="p"))
    a = firing("A")
    for t in range(0, 100, 5):
        d.sync([(a, None)], T0 + t)
        d.tick(T0 + t)
    assert [r for r, _, _ in sent(log)] == ["team", "lead"]  # first at 10 s, lead at 70 s
    lead = log.deliveries()[0].notification
    assert lead.escalation_step == 1
    acks.ack("default", Ack(a.fingerprint, "alice", "", T0 + 100, T0 + 10_000))
    for t in range(100, 400, 5):
        d.sync([(a, None)], T0 + t)
        d.tick(T0 + t)
    assert [r for r, _, _ in sent(log)] == ["team", "lead"]


def test_escalation_reaches_second_step(log: NotificationLog, tmp_path: Path) -> None:
    policy = EscalationPolicy.model_validate(
        {"name": "p", "steps": [{"after": "1m", "receivers": ["lead"]}, {"after": "2m", "receivers": ["boss"]}],
         "repeat": 1}
    )
    d = make(log, tmp_path, escalation_policies={"p": policy}, route=route(escalation_policy="p"))
    a = firing("A")
    for t in range(0, 400, 5):
        d.sync([(a, None)], T0 + t)
        d.tick(T0 + t)
    # anchor 10 s: lead 70, boss 130, repeat cycle of 120 s: lead 190, boss 250, then done
    assert [r for r, _, _ in sent(log) if r != "team"] == ["lead", "boss", "lead", "boss"]


def test_rate_limit_folds_the_excess_into_one_digest(log: NotificationLog, tmp_path: Path) -> None:
    receivers = {"team": ReceiverInfo("team", ("webhook[0]",), rate_limit=(2, 60.0))}
    d = make(log, tmp_path, receivers=receivers, route=route(group_by=["alertname"], group_wait="0s"))
    alerts = [firing(f"A{i}") for i in range(6)]
    d.sync([(a, None) for a in alerts], T0)
    d.tick(T0)
    statuses = [x.status for x in log.deliveries()]
    assert statuses.count("pending") == 2 and statuses.count("held") == 4
    d.tick(T0 + 29)
    assert [x.status for x in log.deliveries()].count("held") == 4  # no token yet
    d.tick(T0 + 31)  # one token back: one digest for the four held
    digest = log.deliveries()[0]
    assert digest.status == "pending" and digest.integration == "webhook[0]"
    assert digest.notification.folded == 4
    assert sorted(a.labels["alertname"] for a in digest.notification.alerts) == ["A2", "A3", "A4", "A5"]
    assert [x.status for x in log.deliveries()].count("folded") == 4
    assert HELD == "*"


def test_mute_time_interval_holds_the_group(log: NotificationLog, tmp_path: Path) -> None:
    intervals = TimeIntervals([{"name": "always", "time_intervals": [{"weekdays": ["sunday:saturday"]}]}])
    r = Route(RootRouteConfig.model_validate({
        "receiver": "team", "group_wait": "0s",
        "routes": [{"matchers": ['alertname="A"'], "mute_time_intervals": ["always"]}],
    }))
    d = make(log, tmp_path, route=r, time_intervals=intervals)
    d.sync([(firing("A"), None), (firing("B"), None)], T0)
    d.tick(T0)
    assert sent(log) == [("team", "firing", ["B:firing"])]


def test_pinned_receiver_skips_the_tree(log: NotificationLog, tmp_path: Path) -> None:
    d = make(log, tmp_path)
    d.sync([(firing("A"), "lead")], T0)
    d.tick(T0 + 10)
    assert sent(log) == [("lead", "firing", ["A:firing"])]


def test_restart_neither_repeats_firing_nor_loses_resolved(tmp_path: Path) -> None:
    log = NotificationLog(tmp_path / "alerting.db")
    a = firing("A")
    d = make(log, tmp_path)
    d.sync([(a, None)], T0)
    d.tick(T0 + 10)
    log.close()
    log = NotificationLog(tmp_path / "alerting.db")  # "restart"
    d = make(log, tmp_path)
    d.sync([(a, None)], T0 + 20)
    d.tick(T0 + 30)
    d.tick(T0 + 60)
    assert sent(log) == [("team", "firing", ["A:firing"])]
    d.sync([(a.resolved_at(T0 + 70), None)], T0 + 70)
    d.tick(T0 + 90)
    assert sent(log)[-1] == ("team", "resolved", ["A:resolved"])

"""Alerting acceptance tests, Alertmanager-style: the real daemon, real receivers, and *when* things arrive.

One daemon serves every scenario at once: each scenario has its own service
(the ``service.name`` label routes it to its own receiver path), its traffic
starts together, and each test then checks its own receiver's recordings
against the configured timings (1 s evaluation, ``group_wait`` 1 s unless
said otherwise) with a tolerance of about one evaluation plus one tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.alerting.notifiers.servers import RecordingHttpServer, SmtpServer
from tests.alerting.notifiers.test_alertmanager import real_alertmanager  # noqa: F401 - a fixture

from .daemon_process import DaemonProcess
from .traffic import Traffic

RULES = {
    "groups": [
        {
            "name": "e2e",
            "interval": "1s",
            "rules": [
                {
                    "alert": "Traffic",
                    "expr": 'count(traces.span.metrics.duration{service.name!="ratelimit"}[3s]) by (service.name) > 0',
                    "labels": {"severity": "warning"},
                    "annotations": {"summary": "{{ $labels.service.name }} sends {{ $value }} spans"},
                },
                {
                    "alert": "TrafficCritical",
                    "expr": 'count(traces.span.metrics.duration{service.name=~"inhibit|batch"}[3s]) by (service.name) > 0',
                    "labels": {"severity": "critical"},
                },
                {
                    "alert": "PerEndpoint",
                    "expr": 'count(traces.span.metrics.duration{service.name="ratelimit"}[3s]) by (service.name, span.name) > 0',
                },
            ],
        }
    ]
}

SCENARIOS = ["wait", "batch", "repeat", "resolve", "silenced", "inhibit", "ack", "escalate", "ratelimit", "retry", "mail"]


def webhook(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "webhook_configs": [{"url": f"{url}/{name}", "send_resolved": True}], **extra}


def route(service: str, receiver: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"matchers": [f'service.name="{service}"'], "receiver": receiver or service, **extra}


@pytest.fixture(scope="module")
def hooks() -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer() as server:
        yield server


@pytest.fixture(scope="module")
def failing_hook() -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer() as server:
        for _ in range(3):
            server.respond(500, b"not now")
        yield server


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, hooks: RecordingHttpServer, failing_hook: RecordingHttpServer,
           smtp: SmtpServer) -> Iterator[DaemonProcess]:
    directory = tmp_path_factory.mktemp("alerting")
    (directory / "rules.yaml").write_text(yaml.safe_dump(RULES))
    url = hooks.url
    alerting = {
        "evaluation_interval": "1s",
        "rule_files": ["rules.yaml"],
        "notification": {"initial_interval": "200ms", "max_interval": "1s"},
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "service.name"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [
                route("wait", group_wait="3s"),
                route("batch", group_by=["service.name"]),
                route("repeat", repeat_interval="3s"),
                route("resolve"),
                route("silenced"),
                route("inhibit"),
                route("ack", escalation_policy="esc"),
                route("escalate", escalation_policy="esc"),
                route("ratelimit", group_by=["span.name"]),
                route("retry"),
                route("mail"),
            ],
        },
        "receivers": [
            webhook("default", url),
            *(webhook(name, url) for name in ("wait", "batch", "repeat", "resolve", "silenced", "inhibit", "ack",
                                              "escalate", "lead", "boss")),
            webhook("ratelimit", url, rate_limit={"max_notifications": 1, "per": "4s"}),
            {"name": "retry", "webhook_configs": [{"url": f"{failing_hook.url}/retry"}]},
            {"name": "mail", "email_configs": [{"to": "oncall@example.com", "from": "trm@example.com",
                                                "smarthost": smtp.smarthost, "require_tls": False}]},
        ],
        "inhibit_rules": [
            {"source_matchers": ['severity="critical"', 'service.name="inhibit"'],
             "target_matchers": ['severity="warning"'],
             "equal": ["service.name"]}
        ],
        "escalation_policies": [
            {"name": "esc", "steps": [{"after": "2s", "receivers": ["lead"]}, {"after": "4s", "receivers": ["boss"]}]}
        ],
    }
    with DaemonProcess(directory, {"alerting": alerting}) as process:
        silence = {
            "matchers": [{"name": "service.name", "value": "silenced", "isRegex": False}],
            "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "e2e", "comment": "maintenance",
        }
        httpx.post(f"{process.api_url}/api/v1/silences", json=silence, timeout=10).raise_for_status()
        traffic = Traffic(process.grpc_endpoint)
        process.traffic = traffic  # type: ignore[attr-defined]
        process.traffic_started = time.time()  # type: ignore[attr-defined]
        for service in SCENARIOS:
            if service == "ack":
                continue  # started by its test, which must answer within the escalation delay
            names = ["GET /a", "GET /b", "GET /c", "GET /d"] if service == "ratelimit" else None
            traffic.start(service, names)
        try:
            yield process
        finally:
            traffic.stop_all()


def received(hooks: RecordingHttpServer, path: str, service: str | None = None) -> list[tuple[float, dict[str, Any]]]:
    out = []
    for record in list(hooks.requests):
        if record.path != f"/{path}":
            continue
        body = record.json()
        if service is None or body["commonLabels"].get("service.name") == service:
            out.append((record.at, body))
    return out


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def alerts(daemon: DaemonProcess, service: str) -> list[dict[str, Any]]:
    return [a for a in daemon.get("/api/v1/alerts")["alerts"] if a["labels"].get("service.name") == service]


def fired_at(alert: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(alert["firedAt"].replace("Z", "+00:00")).timestamp()


def test_first_notification_after_group_wait_in_alertmanager_shape(daemon: DaemonProcess,
                                                                    hooks: RecordingHttpServer) -> None:
    at, body = wait_for(lambda: received(hooks, "wait"), what="the wait receiver")[0]
    alert = wait_for(lambda: alerts(daemon, "wait"))[0]
    delay = at - fired_at(alert)
    assert 2.5 <= delay <= 4.5, f"first notification {delay:.2f}s after firing; group_wait is 3s"
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "wait"
    assert body["groupLabels"] == {"alertname": "Traffic", "service.name": "wait"}
    assert body["commonLabels"]["severity"] == "warning"
    assert body["externalURL"].startswith("http://127.0.0.1:")
    assert body["truncatedAlerts"] == 0 and body["groupKey"]
    (only,) = body["alerts"]
    assert only["status"] == "firing" and only["endsAt"] == "0001-01-01T00:00:00Z"
    assert only["annotations"]["summary"].startswith("wait sends ")
    assert only["fingerprint"] == alert["fingerprint"] and only["generatorURL"].startswith("http://")


def test_alerts_of_a_group_are_batched(daemon: DaemonProcess, hooks: RecordingHttpServer) -> None:
    def both() -> Any:
        return [b for _, b in received(hooks, "batch") if len(b["alerts"]) == 2]

    body = wait_for(both, what="one notification with both alerts")[0]
    assert sorted(a["labels"]["alertname"] for a in body["alerts"]) == ["Traffic", "TrafficCritical"]
    assert body["groupLabels"] == {"service.name": "batch"}


def test_repeat_interval(daemon: DaemonProcess, hooks: RecordingHttpServer) -> None:
    notes = wait_for(lambda: (r := received(hooks, "repeat")) and len(r) >= 3 and r, timeout=30, what="3 repeats")
    gaps = [b[0] - a[0] for a, b in zip(notes, notes[1:])]
    assert all(2.8 <= gap <= 4.6 for gap in gaps[:2]), gaps


def test_resolved_notification(daemon: DaemonProcess, hooks: RecordingHttpServer) -> None:
    wait_for(lambda: received(hooks, "resolve"), what="firing")
    daemon.traffic.stop("resolve")  # type: ignore[attr-defined]
    stopped = time.time()
    at, body = wait_for(lambda: [r for r in received(hooks, "resolve") if r[1]["status"] == "resolved"],
                        what="resolved")[0]
    assert at - stopped <= 8.0  # the 3 s range empties, one evaluation, group_interval
    assert body["alerts"][0]["status"] == "resolved" and body["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    firing = [r for r in received(hooks, "resolve") if r[1]["status"] == "firing"]
    assert len(firing) == 1


def test_silenced_alert_is_not_notified(daemon: DaemonProcess, hooks: RecordingHttpServer) -> None:
    alert = wait_for(lambda: [a for a in alerts(daemon, "silenced") if a["state"] == "suppressed"])[0]
    assert alert["silencedBy"]
    time.sleep(max(0.0, daemon.traffic_started + 6 - time.time()))  # type: ignore[attr-defined]
    assert received(hooks, "silenced") == []


def test_inhibited_alert_is_left_out(daemon: DaemonProcess, hooks: RecordingHttpServer) -> None:
    wait_for(lambda: received(hooks, "inhibit"), what="the critical alert")
    time.sleep(max(0.0, daemon.traffic_started + 6 - time.time()))  # type: ignore[attr-defined]
    names = {a["labels"]["alertname"] for _, b in received(hooks, "inhibit") for a in b["alerts"]}
    assert names == {"TrafficCritical"}
    warning = [a for a in alerts(daemon, "inhibit") if a["labels"]["alertname"] == "Traffic"][0]
    assert warning["inhibitedBy"] and warning["state"] == "suppressed"


def test_ack_stops_escalation(daemon: DaemonProcess, hooks: RecordingHttpServer) -> None:
    daemon.traffic.start("ack")  # type: ignore[attr-defined]
    at, body = wait_for(lambda: received(hooks, "ack"), what="first notification")[0]
    fingerprint = body["alerts"][0]["fingerprint"]
    answer = httpx.post(f"{daemon.api_url}/api/v1/alerts/{fingerprint}/ack",
                        json={"by": "alice", "comment": "looking", "duration": "1h"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert time.time() - at < 1.5, "the ack must land before the first escalation step (2 s)"
    acked = [a for a in alerts(daemon, "ack") if a["fingerprint"] == fingerprint][0]
    assert acked["ackedBy"]["by"] == "alice"
    time.sleep(max(0.0, at + 6.5 - time.time()))
    assert received(hooks, "lead", "ack") == [] and received(hooks, "boss", "ack") == []


def test_escalation_without_ack_reaches_the_second_step(daemon: DaemonProcess, hooks: RecordingHttpServer) -> None:
    first, _ = wait_for(lambda: received(hooks, "escalate"), what="first notification")[0]
    lead, _ = wait_for(lambda: received(hooks, "lead", "escalate"), what="step 1")[0]
    boss, body = wait_for(lambda: received(hooks, "boss", "escalate"), what="step 2")[0]
    assert 1.5 <= lead - first <= 3.5 and 3.5 <= boss - first <= 5.5, (lead - first, boss - first)
    assert body["alerts"][0]["labels"]["service.name"] == "escalate"


def test_rate_limit_folds_the_rest_into_one_digest(daemon: DaemonProcess, hooks: RecordingHttpServer) -> None:
    def digest() -> Any:
        return [r for r in received(hooks, "ratelimit") if len(r[1]["alerts"]) >= 3]

    wait_for(digest, timeout=20, what="a digest")
    notes = received(hooks, "ratelimit")
    assert len(notes) == 2, [len(b["alerts"]) for _, b in notes]
    first, second = notes
    assert len(first[1]["alerts"]) == 1 and len(second[1]["alerts"]) == 3
    assert 3.0 <= second[0] - first[0] <= 5.5
    rows = daemon.get("/api/v1/notifications", limit=1000)["notifications"]
    assert any(n["receiver"] == "ratelimit" and n["folded"] == 3 for n in rows)


def test_webhook_500_three_times_is_retried_until_delivered(daemon: DaemonProcess,
                                                           failing_hook: RecordingHttpServer) -> None:
    wait_for(lambda: len(failing_hook.requests) >= 4, what="the fourth attempt")
    attempts = [r.at for r in failing_hook.requests[:4]]
    assert all(b - a >= 0.1 for a, b in zip(attempts, attempts[1:]))
    rows = wait_for(lambda: [n for n in daemon.get("/api/v1/notifications")["notifications"]
                             if n["receiver"] == "retry" and n["status"] == "sent"])
    assert rows[0]["attempts"] == 4


def test_email_reaches_a_real_smtp_server(daemon: DaemonProcess, smtp: SmtpServer) -> None:
    message = wait_for(lambda: smtp.received, what="an email")[0]
    assert message.rcpt_tos == ["oncall@example.com"]
    assert "Traffic" in message.message["Subject"]


def test_restart_between_firing_and_resolving(tmp_path: Path, hooks: RecordingHttpServer) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(RULES))
    alerting = {
        "evaluation_interval": "1s",
        "rule_files": ["rules.yaml"],
        "route": {"receiver": "default", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "1s",
                  "repeat_interval": "1h",
                  "routes": [route("restart", "restart")]},
        "receivers": [webhook("default", hooks.url), webhook("restart", hooks.url)],
    }
    process = DaemonProcess(tmp_path, {"alerting": alerting})
    process.start()
    traffic = Traffic(process.grpc_endpoint)
    try:
        traffic.start("restart")
        wait_for(lambda: received(hooks, "restart", "restart"), what="firing")
        process.stop()
        traffic.stop("restart")
        process.start()  # the same data directory
        wait_for(lambda: [r for r in received(hooks, "restart", "restart") if r[1]["status"] == "resolved"],
                 timeout=30, what="resolved after restart")
        time.sleep(2)
        statuses = [b["status"] for _, b in received(hooks, "restart", "restart")]
        assert statuses == ["firing", "resolved"]
    finally:
        traffic.stop_all()
        process.stop()


def cli(daemon: DaemonProcess, *args: str) -> tuple[int, str, str]:
    import subprocess

    from .daemon_process import trm_otel_command

    done = subprocess.run([*trm_otel_command(), *args, "--api", daemon.api_url], capture_output=True, text=True,
                          timeout=30)
    return done.returncode, done.stdout, done.stderr


def test_cli_lists_alerts_and_rules_and_manages_silences(daemon: DaemonProcess) -> None:
    wait_for(lambda: alerts(daemon, "wait"))
    code, out, _ = cli(daemon, "alerts", "list", "--state", "firing")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["FINGERPRINT", "STATE", "ACTIVE"]
    assert 'service.name="wait"' in out
    code, out, _ = cli(daemon, "rules", "list")
    assert code == 0 and "Traffic" in out and "ok" in out
    code, out, err = cli(daemon, "silences", "add", 'service.name="nothing-here"', "--duration", "10m",
                         "--by", "cli", "--comment", "test")
    assert code == 0, err
    silence_id = out.strip()
    code, out, _ = cli(daemon, "silences", "list")
    assert silence_id in out and "active" in out
    assert cli(daemon, "silences", "expire", silence_id)[0] == 0
    listed = {s["id"]: s for s in daemon.get("/api/v1/silences")}
    assert listed[silence_id]["status"]["state"] == "expired"
    code, _, err = cli(daemon, "silences", "expire", "no-such-id")
    assert code == 1 and "404" in err
    code, _, err = cli(daemon, "silences", "add", "bad matcher", "--by", "x", "--comment", "y")
    assert code == 1 and err
    code, out, _ = cli(daemon, "rules", "reload", "--json")
    assert code == 0 and '"groups": 1' in out


def test_cli_reports_an_unreachable_daemon(tmp_path: Path) -> None:
    import subprocess

    from .daemon_process import trm_otel_command

    done = subprocess.run([*trm_otel_command(), "alerts", "list", "--api", "http://127.0.0.1:9"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "cannot reach the daemon" in done.stderr


def test_the_daemon_forwards_to_a_real_alertmanager(tmp_path: Path, real_alertmanager: str) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(RULES))
    alerting = {
        "evaluation_interval": "1s",
        "rule_files": ["rules.yaml"],
        "route": {"receiver": "am", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "1s"},
        "receivers": [{"name": "am", "alertmanager_configs": [{"url": real_alertmanager, "resend_delay": "2s"}]}],
    }
    with DaemonProcess(tmp_path, {"alerting": alerting}) as process:
        traffic = Traffic(process.grpc_endpoint)
        traffic.start("forwarded")
        try:
            def held() -> Any:
                found = httpx.get(f"{real_alertmanager}/api/v2/alerts", timeout=5).json()
                return [a for a in found if a["labels"].get("service_name") == "forwarded"]

            (alert,) = wait_for(held, what="the alert in Alertmanager")
            assert alert["labels"]["alertname"] == "Traffic" and alert["status"]["state"] == "active"
            assert alert["annotations"]["summary"].startswith("forwarded sends")
            assert alert["generatorURL"].startswith("http://127.0.0.1:")
            first_ends = alert["endsAt"]
            # re-sent while firing: Alertmanager sees endsAt move forward
            wait_for(lambda: held() and held()[0]["endsAt"] != first_ends, timeout=10, what="a re-send")
        finally:
            traffic.stop_all()

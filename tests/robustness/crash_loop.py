"""A crash loop: the real daemon started, fed, SIGKILLed at a random moment and restarted, again and again.

    >>> result = run_crash_loop(20)             # doctest: +SKIP
    >>> result.problems                         # doctest: +SKIP
    []

One data directory, one config, the real daemon started again and again:
1 s windows, storage flushed every second, and alerting evaluated every
second with a rule that fires on the traffic (``count(...[30s]) > 0``,
grouped by ``alertname``, ``repeat_interval: 1h``) and a webhook receiver
on loopback that outlives every daemon. Each cycle sends 200-span
requests over gRPC (about 20k spans/s) for a random 1-4 s and SIGKILLs the
daemon at that moment, in the middle of receiving, aggregating, flushing
and notifying.

Checked after every kill, on the files while no daemon runs:

- ``PRAGMA integrity_check`` is ``ok`` for the span store and ``alerting.db``;
- the alert that was firing is still ``firing`` in ``alert_state``;
- the notification log has no two ``sent`` firing notifications of the same
  group within ``repeat_interval`` (the restart must not notify again);

and after every restart, through the API: the count of all spans over the
whole history never goes below the previous restart's (what was written
stays written), and the firing alert is listed as firing with the
``activeAt`` it had. What the kills cost is reported by
:func:`kill_losses` (spans acknowledged but never written: the open
window, the grace window and the flush interval at each kill).
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import yaml

from tests.alerting.notifiers.servers import RecordingHttpServer
from tests.e2e.daemon_process import DaemonProcess
from tests.robustness.daemon_tools import EXPORT_PATHS, span_request, wait_until

__all__ = ["ALERT", "REPEAT_INTERVAL_S", "CrashLoopResult", "Cycle", "kill_losses", "run_crash_loop"]

SERVICE = "crash"
ALERT = "CrashLoopTraffic"
REPEAT_INTERVAL_S = 3600.0
SPANS_PER_REQUEST = 200
#: Between requests: about 20k spans/s, steady traffic rather than a flood (the overload benchmark floods).
PAUSE_S = 0.01
COUNT_QUERY = f'count(traces.span.metrics.duration{{service.name="{SERVICE}"}}[24h])'
RULES = {"groups": [{"name": "crash", "interval": "1s", "rules": [{
    "alert": ALERT,
    "expr": f'count(traces.span.metrics.duration{{service.name="{SERVICE}"}}[30s]) > 0',
    "labels": {"severity": "warning"},
}]}]}


@dataclass
class Cycle:
    """What one cycle saw."""

    ingest_s: float
    acked: int = 0
    count_after_restart: int | None = None
    alert_before_kill: dict[str, Any] | None = None
    alert_after_restart: dict[str, Any] | None = None
    integrity: dict[str, str] = field(default_factory=dict)
    stored_alert_state: str | None = None
    restart_s: float = 0.0


@dataclass
class CrashLoopResult:
    cycles: list[Cycle] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    final_count: int = 0
    acked: int = 0
    sent_firing: int = 0
    log_duplicates: int = 0
    webhook_firing: int = 0
    webhook_duplicates: int = 0


def daemon_config(directory: Path, webhook_url: str) -> dict[str, Any]:
    (directory / "rules.yaml").write_text(yaml.safe_dump(RULES))
    return {
        "processors": {"latency": {"window": "1s"}},
        "storage": {"path": str(directory / "data"), "flush_interval": "1s"},
        "alerting": {
            "evaluation_interval": "1s",
            "rule_files": ["rules.yaml"],
            "notification": {"initial_interval": "200ms", "max_interval": "1s"},
            "route": {"receiver": "hook", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "1s",
                      "repeat_interval": f"{REPEAT_INTERVAL_S:.0f}s"},
            "receivers": [{"name": "hook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
        },
    }


def _count(daemon: DaemonProcess) -> int:
    response = httpx.get(f"{daemon.api_url}/api/v1/query", params={"q": COUNT_QUERY}, timeout=30)
    response.raise_for_status()
    return int(sum(float(item["value"][1]) for item in response.json()["data"]["result"]))


def _alert(daemon: DaemonProcess) -> dict[str, Any] | None:
    alerts = httpx.get(f"{daemon.api_url}/api/v1/alerts", timeout=30).json()["alerts"]
    return next((a for a in alerts if a["labels"].get("alertname") == ALERT), None)


class _Sender:
    """Sends 200-span requests, one every :data:`PAUSE_S` or so, until stopped; counts the spans acknowledged."""

    def __init__(self, endpoint: str, first_seed: int) -> None:
        self.endpoint = endpoint
        self.seed = first_seed
        self.acked = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with grpc.insecure_channel(self.endpoint) as channel:
            export = channel.unary_unary(EXPORT_PATHS["traces"], request_serializer=None, response_deserializer=None)
            while not self.stop.is_set():
                self.seed += 1
                try:
                    export(span_request(SERVICE, SPANS_PER_REQUEST, seed=self.seed, names=5), timeout=5)
                    self.acked += SPANS_PER_REQUEST
                except grpc.RpcError:
                    if self.stop.is_set():
                        return
                    time.sleep(0.05)  # killed under us, or overloaded: the loop ends soon either way
                self.stop.wait(PAUSE_S)

    def __enter__(self) -> _Sender:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def _integrity(data_dir: Path) -> dict[str, str]:
    found = {}
    for name in ("trm-otel.sqlite3", "alerting.db"):
        path = data_dir / name
        if not path.exists():
            found[name] = "missing"
            continue
        with sqlite3.connect(path) as db:
            found[name] = ";".join(row[0] for row in db.execute("PRAGMA integrity_check"))
    return found


def _stored_alert_state(data_dir: Path) -> str | None:
    with sqlite3.connect(data_dir / "alerting.db") as db:
        rows = db.execute("SELECT labels, state FROM alert_state").fetchall()
    return next((state for labels, state in rows if json.loads(labels).get("alertname") == ALERT), None)


def _sent_firing(data_dir: Path) -> list[tuple[str, str, frozenset[str], float]]:
    """(receiver, group key, firing fingerprints, when) of every sent notification whose alerts all fire."""
    with sqlite3.connect(data_dir / "alerting.db") as db:
        rows = db.execute(
            "SELECT receiver, notification, finished_at FROM deliveries WHERE status = 'sent' ORDER BY id"
        ).fetchall()
    out = []
    for receiver, text, finished_at in rows:
        notification = json.loads(text)
        alerts = notification["alerts"]
        if alerts and all(a["ends_at"] is None for a in alerts):
            out.append((receiver, notification["group_key"], frozenset(a["fingerprint"] for a in alerts),
                        float(finished_at or 0.0)))
    return out


def _duplicates(sent: list[tuple[str, str, frozenset[str], float]]) -> int:
    """Sent firing notifications repeating the group's previous one (same alerts) within repeat_interval."""
    last: dict[tuple[str, str], tuple[frozenset[str], float]] = {}
    found = 0
    for receiver, group, firing, at in sorted(sent, key=lambda s: s[3]):
        previous = last.get((receiver, group))
        if previous is not None and previous[0] == firing and at - previous[1] < REPEAT_INTERVAL_S:
            found += 1
        last[(receiver, group)] = (firing, at)
    return found


def run_crash_loop(cycles: int = 20, *, seed: int = 9, log: Callable[[str], None] = lambda _: None) -> CrashLoopResult:
    rng = random.Random(seed)
    result = CrashLoopResult()
    with tempfile.TemporaryDirectory() as tmp, RecordingHttpServer() as hook:
        directory = Path(tmp)
        data_dir = directory / "data"
        daemon = DaemonProcess(directory, daemon_config(directory, f"{hook.url}/alerts"))
        previous_count = 0
        next_seed = 1_000
        try:
            for number in range(cycles + 1):
                started = time.monotonic()
                daemon.start()
                cycle = Cycle(ingest_s=rng.uniform(1.0, 4.0))
                cycle.restart_s = time.monotonic() - started
                if number:
                    before = result.cycles[-1]
                    cycle.count_after_restart = _count(daemon)
                    if cycle.count_after_restart < previous_count:
                        result.problems.append(f"restart {number}: count went back from {previous_count} "
                                               f"to {cycle.count_after_restart}")
                    previous_count = cycle.count_after_restart
                    if before.alert_before_kill is not None and before.alert_before_kill["state"] == "firing":
                        wait_until(lambda: _alert(daemon) is not None, 5.0)
                        cycle.alert_after_restart = after = _alert(daemon)
                        if after is None or after["state"] != "firing":
                            result.problems.append(f"restart {number}: the firing alert is now {after}")
                        elif after["activeAt"] != before.alert_before_kill["activeAt"]:
                            result.problems.append(f"restart {number}: the alert restarted: activeAt "
                                                   f"{before.alert_before_kill['activeAt']} -> {after['activeAt']}")
                if number == cycles:  # the last start only checks what the last kill left
                    result.cycles.append(cycle)
                    break
                with _Sender(daemon.grpc_endpoint, next_seed) as sender:
                    time.sleep(cycle.ingest_s * 0.8)
                    cycle.alert_before_kill = _alert(daemon)
                    time.sleep(cycle.ingest_s * 0.2)
                    daemon.stop(signal.SIGKILL)
                cycle.acked = sender.acked
                next_seed = sender.seed + 1
                result.acked += sender.acked
                cycle.integrity = _integrity(data_dir)
                if any(state != "ok" for state in cycle.integrity.values()):
                    result.problems.append(f"kill {number + 1}: integrity_check {cycle.integrity}")
                cycle.stored_alert_state = _stored_alert_state(data_dir)
                if cycle.alert_before_kill is not None and cycle.alert_before_kill["state"] == "firing" \
                        and cycle.stored_alert_state != "firing":
                    result.problems.append(f"kill {number + 1}: alert_state holds {cycle.stored_alert_state!r}")
                duplicates = _duplicates(_sent_firing(data_dir))
                if duplicates:
                    result.problems.append(f"kill {number + 1}: {duplicates} duplicate sent firing notifications")
                result.cycles.append(cycle)
                log(f"cycle {number + 1}: ingest {cycle.ingest_s:.1f} s, acked {cycle.acked}, restart "
                    f"{cycle.restart_s:.1f} s, count after previous restart {cycle.count_after_restart}, "
                    f"alert {(cycle.alert_before_kill or {}).get('state')}, integrity {cycle.integrity}")
            result.final_count = _count(daemon)
        finally:
            daemon.stop(signal.SIGTERM)
        sent = _sent_firing(data_dir)
        result.sent_firing = len(sent)
        result.log_duplicates = _duplicates(sent)
        arrivals = []
        for request in hook.requests:
            body = json.loads(request.body)
            if body.get("status") == "firing":
                fingerprints = frozenset(a.get("fingerprint", "") for a in body["alerts"])
                arrivals.append(("hook", body.get("groupKey", ""), fingerprints, request.at))
        result.webhook_firing = len(arrivals)
        result.webhook_duplicates = _duplicates(arrivals)
    return result


def kill_losses(result: CrashLoopResult) -> list[tuple[int, float]]:
    """Per kill: spans acknowledged in its cycle that the next restart does not count, and that in seconds."""
    losses = []
    for cycle, after in zip(result.cycles, result.cycles[1:]):
        lost = (cycle.count_after_restart or 0) + cycle.acked - (after.count_after_restart or 0)
        rate = cycle.acked / cycle.ingest_s if cycle.acked else float("inf")
        losses.append((lost, lost / rate))
    return losses

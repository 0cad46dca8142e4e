"""The audit trail on the real daemon: every changing route, SIGHUP, the CLI, refusals, filters, no token in it.

The changing routes are read from the daemon's own route table (built the
way the daemon builds its app), so a changing route added later without a
row in :data:`CASES` fails :func:`test_every_changing_route_has_a_case`;
likewise a new ``trm-otel`` subcommand that is neither a known read nor a
row in :data:`CLI_CASES` fails :func:`test_every_cli_command_is_classified`.
One daemon serves the whole module; each row makes the objects it needs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

from .daemon_process import DaemonProcess, trm_otel_command
from .test_tenants_e2e import send

#: name -> (token, tenant, role); the tokens are random so that finding one anywhere is never a coincidence.
TOKENS = {
    "root": (secrets.token_hex(20), "default", "admin"),
    "eddie": (secrets.token_hex(20), "default", "editor"),
    "vic": (secrets.token_hex(20), "default", "viewer"),
    "cli": (secrets.token_hex(20), "default", "editor"),
    "olga": (secrets.token_hex(20), "other", "admin"),
}
BAD_TOKEN = secrets.token_hex(20)  # well-formed, configured nowhere
EVERY_SECRET = [t for t, _, _ in TOKENS.values()] + [BAD_TOKEN]

BUSY = "count(traces.span.metrics.duration[5m]) by (service.name) > 0"
RULE_FILE = {"groups": [{"name": "file-rules", "interval": "1s", "rules": [{"alert": "Busy", "expr": BUSY}]}]}
GROUP = {"interval": "1s", "rules": [{"alert": "ApiBusy", "expr": BUSY}]}
SILENCE = {"matchers": [{"name": "service.name", "value": "audited", "isRegex": False}],
           "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z", "createdBy": "e2e", "comment": "c"}


def dashboard(uid: str) -> dict[str, Any]:
    return {"uid": uid, "title": f"dashboard {uid}", "schemaVersion": 2, "panels": [
        {"id": 1, "title": "p95", "type": "line", "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
         "targets": [{"expr": "p95(traces.span.metrics.duration[5m])", "legend": "p95"}]}]}


@dataclass
class Daemon:
    process: DaemonProcess
    directory: Path
    fingerprint: str  # a firing alert of tenant default
    kept: dict[str, str] = field(default_factory=dict)  # default's objects another tenant aims at


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    directory = tmp_path_factory.mktemp("audit")
    (directory / "rules.yaml").write_text(yaml.safe_dump(RULE_FILE))
    tokens = [{"name": n, "token": t, "tenant": tenant, "role": r} for n, (t, tenant, r) in TOKENS.items()]
    config = {"auth": {"tokens": tokens},
              "alerting": {"evaluation_interval": "1s", "rule_files": ["rules.yaml"]}}
    with DaemonProcess(directory, config) as process:
        headers = {"authorization": f"Bearer {TOKENS['eddie'][0]}"}
        send(OTLPSpanExporter(endpoint=process.grpc_endpoint, insecure=True, headers=headers), "audited", 3)
        deadline = time.monotonic() + 20
        firing: list[dict[str, Any]] = []
        while not firing and time.monotonic() < deadline:
            alerts = call(process, "GET", "/api/v1/alerts", "eddie", params={"state": "firing"}).json()["alerts"]
            firing = [a for a in alerts if a["labels"].get("alertname") == "Busy"]
            time.sleep(0.1)
        assert firing, "the file rule should fire on the spans sent"
        found = Daemon(process, directory, firing[0]["fingerprint"])
        found.kept["silence"] = call(process, "POST", "/api/v1/silences", "eddie", json=SILENCE).json()["silenceID"]
        call(process, "POST", "/api/v1/dashboards", "eddie", json=dashboard("kept")).raise_for_status()
        found.kept["dashboard"] = "kept"
        yield found


def call(process: DaemonProcess, method: str, path: str, who: str | None = None, *, token: str | None = None,
         **kwargs: Any) -> httpx.Response:
    secret = token or (TOKENS[who][0] if who else None)
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    return httpx.request(method, f"{process.api_url}{path}", headers=headers, timeout=10, **kwargs)


def trail(d: Daemon, who: str = "root", **params: Any) -> list[dict[str, Any]]:
    answer = call(d.process, "GET", "/api/v1/audit", who, params={"limit": "10000", **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["entries"]


def fields(target: str) -> dict[str, str]:
    """``"uid=x, version=2"`` -> ``{"uid": "x", "version": "2"}``."""
    return dict(part.split("=", 1) for part in target.split(", ") if "=" in part)


def unix(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def the_entry(entries: list[dict[str, Any]], **want: Any) -> dict[str, Any]:
    found = [e for e in entries if all(e[k] == v for k, v in want.items())]
    assert len(found) == 1, f"expected one entry with {want}, found {len(found)} in:\n" + "\n".join(map(str, entries))
    return found[0]


# ------------------------------------------------------------ the changing routes


def changing_routes() -> set[tuple[str, str]]:
    """``(method, route template)`` of every API route that changes something, from the daemon's own table."""
    from starlette.routing import Route

    from trm_otel.api import ApiContext, build_api_app
    from trm_otel.processors.aggregation import LatencyAggregator
    from trm_otel.slo import SloPolicy
    from trm_otel.ui.stream import StreamHub

    context = ApiContext(aggregator=LatencyAggregator(), slo=SloPolicy(), ready=lambda: True, health=dict,
                         self_metrics=list, version="audit", alerting=lambda tenant: None, audit=object(),
                         dashboards=object(), stream=StreamHub())
    found = set()
    for route in build_api_app(context).routes:
        assert isinstance(route, Route), f"{route!r}: walk mounts and other route kinds too"
        for method in (route.methods or set()) - {"GET", "HEAD", "OPTIONS"}:
            found.add((method, route.path))
    return found


Case = Callable[[DaemonProcess, Daemon], tuple[httpx.Response, dict[str, str]]]


def put_rules(p: DaemonProcess, d: Daemon) -> tuple[httpx.Response, dict[str, str]]:
    return call(p, "PUT", "/api/v1/rules/api-rules", "eddie", json=GROUP), {"group": "api-rules", "rules": "1"}


def delete_rules(p: DaemonProcess, d: Daemon) -> tuple[httpx.Response, dict[str, str]]:
    call(p, "PUT", "/api/v1/rules/doomed-rules", "eddie", json=GROUP).raise_for_status()
    return call(p, "DELETE", "/api/v1/rules/doomed-rules", "eddie"), {"group": "doomed-rules"}


def reload_rules(p: DaemonProcess, d: Daemon) -> tuple[httpx.Response, dict[str, str]]:
    answer = call(p, "POST", "/api/v1/rules/reload", "eddie")
    assert answer.json()["groups"] >= 1  # rules.yaml's, and those made through the API so far
    return answer, {"groups": str(answer.json()["groups"])}


def ack(p: DaemonProcess, d: Daemon) -> tuple[httpx.Response, dict[str, str]]:
    answer = call(p, "POST", f"/api/v1/alerts/{d.fingerprint}/ack", "eddie", json={"by": "eddie", "comment": "on it"})
    return answer, {"fingerprint": d.fingerprint}


def post_silence(p: DaemonProcess, d: Daemon) -> tuple[httpx.Response, dict[str, str]]:
    answer = call(p, "POST", "/api/v1/silences", "eddie", json=SILENCE)
    made = answer.json()["silenceID"]
    assert call(p, "GET", f"/api/v1/silences/{made}", "eddie").status_code == 200
    return answer, {"silenceID": made}


def delete_silence(p: DaemonProcess, d: Daemon) -> tuple[httpx.Response, dict[str, str]]:
    made = call(p, "POST", "/api/v1/silences", "eddie", json=SILENCE).json()["silenceID"]
    return call(p, "DELETE", f"/api/v1/silences/{made}", "eddie"), {"id": made}


def post_dashboard(p: DaemonProcess, d: Daemon) -> tuple[httpx.Response, dict[str, str]]:
    return call(p, "POST", "/api/v1/dashboards", "eddie", json=dashboard("posted")), {"uid": "posted", "version": "1"}


def put_dashboard(p: DaemonProcess, d: Daemon) -> tuple[httpx.Response, dict[str, str]]:
    call(p, "POST", "/api/v1/dashboards", "eddie", json=dashboard("edited")).raise_for_status()
    changed = {**dashboard("edited"), "title": "edited again", "version": 1}
    return call(p, "PUT", "/api/v1/dashboards/edited", "eddie", json=changed), {"uid": "edited", "version": "2"}


def delete_dashboard(p: DaemonProcess, d: Daemon) -> tuple[httpx.Response, dict[str, str]]:
    call(p, "POST", "/api/v1/dashboards", "eddie", json=dashboard("doomed")).raise_for_status()
    return call(p, "DELETE", "/api/v1/dashboards/doomed", "eddie"), {"uid": "doomed"}


def import_dashboard(p: DaemonProcess, d: Daemon) -> tuple[httpx.Response, dict[str, str]]:
    grafana = call(p, "GET", "/api/v1/dashboards/kept/export", "eddie", params={"format": "grafana"}).json()
    grafana["uid"] = "imported"
    return call(p, "POST", "/api/v1/dashboards/import", "eddie", json=grafana), {"uid": "imported", "version": "1"}


#: One successful change per changing route, and what its audit target must say.
CASES: dict[tuple[str, str], Case] = {
    ("PUT", "/api/v1/rules/{group}"): put_rules,
    ("DELETE", "/api/v1/rules/{group}"): delete_rules,
    ("POST", "/api/v1/rules/reload"): reload_rules,
    ("POST", "/api/v1/alerts/{fingerprint}/ack"): ack,
    ("POST", "/api/v1/silences"): post_silence,
    ("DELETE", "/api/v1/silences/{id}"): delete_silence,
    ("POST", "/api/v1/dashboards"): post_dashboard,
    ("PUT", "/api/v1/dashboards/{uid}"): put_dashboard,
    ("DELETE", "/api/v1/dashboards/{uid}"): delete_dashboard,
    ("POST", "/api/v1/dashboards/import"): import_dashboard,
}


def test_every_changing_route_has_a_case() -> None:
    routes = changing_routes()
    assert not routes - set(CASES), f"changing routes without an audit case: {sorted(routes - set(CASES))}"
    assert not set(CASES) - routes, f"cases for routes the daemon no longer serves: {sorted(set(CASES) - routes)}"


@pytest.mark.parametrize(("method", "path"), sorted(CASES))
def test_every_change_is_audited(daemon: Daemon, method: str, path: str) -> None:
    before = time.time()
    answer, target = CASES[(method, path)](daemon.process, daemon)
    after = time.time()
    assert answer.status_code < 300, answer.text
    action = f"{method} {path}"
    entry = the_entry([e for e in trail(daemon, action=action, start=str(before)) if e["action"] == action],
                      actor="eddie")
    assert entry["tenant"] == "default" and entry["outcome"] == "ok" and entry["status"] == answer.status_code
    assert before - 0.002 <= unix(entry["time"]) <= after + 0.002
    assert fields(entry["target"]).items() >= target.items(), entry


# ---------------------------------------------------------------------- the CLI


CliCase = Callable[[Daemon, Path], tuple[list[str], str, dict[str, str]]]


def cli_silences_add(d: Daemon, tmp: Path) -> tuple[list[str], str, dict[str, str]]:
    argv = ["silences", "add", 'service.name="from-cli"', "--by", "cli", "--comment", "deploy"]
    return argv, "POST /api/v1/silences", {}


def cli_silences_expire(d: Daemon, tmp: Path) -> tuple[list[str], str, dict[str, str]]:
    made = call(d.process, "POST", "/api/v1/silences", "eddie", json=SILENCE).json()["silenceID"]
    return ["silences", "expire", made], "DELETE /api/v1/silences/{id}", {"id": made}


def cli_rules_reload(d: Daemon, tmp: Path) -> tuple[list[str], str, dict[str, str]]:
    return ["rules", "reload"], "POST /api/v1/rules/reload", {}  # groups: from the answer


def cli_alerts_ack(d: Daemon, tmp: Path) -> tuple[list[str], str, dict[str, str]]:
    argv = ["alerts", "ack", d.fingerprint, "--by", "cli", "--duration", "10m"]
    return argv, "POST /api/v1/alerts/{fingerprint}/ack", {"fingerprint": d.fingerprint}


def cli_dashboards_import(d: Daemon, tmp: Path) -> tuple[list[str], str, dict[str, str]]:
    (tmp / "from-cli.json").write_text(json.dumps(dashboard("from-cli")))
    return ["dashboards", "import", str(tmp / "from-cli.json")], "POST /api/v1/dashboards/import", {"uid": "from-cli"}


def cli_dashboards_delete(d: Daemon, tmp: Path) -> tuple[list[str], str, dict[str, str]]:
    call(d.process, "POST", "/api/v1/dashboards", "eddie", json=dashboard("cli-doomed")).raise_for_status()
    return ["dashboards", "delete", "cli-doomed"], "DELETE /api/v1/dashboards/{uid}", {"uid": "cli-doomed"}


#: Every ``trm-otel`` subcommand that changes something, run as the real command with its own token.
CLI_CASES: dict[tuple[str, str], CliCase] = {
    ("silences", "add"): cli_silences_add,
    ("silences", "expire"): cli_silences_expire,
    ("rules", "reload"): cli_rules_reload,
    ("alerts", "ack"): cli_alerts_ack,
    ("dashboards", "import"): cli_dashboards_import,
    ("dashboards", "delete"): cli_dashboards_delete,
}
CLI_READS = {("alerts", "list"), ("silences", "list"), ("rules", "list"), ("dashboards", "list"),
             ("dashboards", "get"), ("dashboards", "export")}
CLI_LOCAL = {"version", "serve", "demo", "check-config", "instrument"}  # no API call


def cli_commands() -> set[tuple[str, ...]]:
    from trm_otel.cli import _parser

    def choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(found[0].choices) if found else {}

    out: set[tuple[str, ...]] = set()
    for name, sub in choices(_parser()).items():
        actions = choices(sub)
        out |= {(name, action) for action in actions} if actions else {(name,)}
    return out


def test_every_cli_command_is_classified() -> None:
    known = set(CLI_CASES) | CLI_READS | {(name,) for name in CLI_LOCAL}
    commands = cli_commands()
    assert commands == known, f"unclassified: {sorted(commands - known)}; gone: {sorted(known - commands)}"


@pytest.mark.parametrize("command", sorted(CLI_CASES), ids=" ".join)
def test_cli_changes_are_audited_with_the_cli_tokens_name(daemon: Daemon, tmp_path: Path,
                                                        command: tuple[str, str]) -> None:
    argv, action, target = CLI_CASES[command](daemon, tmp_path)
    before = time.time()
    env = {**os.environ, "TRM_OTEL_TOKEN": TOKENS["cli"][0]}
    env.pop("TRM_OTEL_API", None)
    ran = subprocess.run([*trm_otel_command(), *argv, "--api", daemon.process.api_url, "--json"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    if action == "POST /api/v1/silences":
        target = {"silenceID": answer["silenceID"]}
    if action == "POST /api/v1/rules/reload":
        target = {"groups": str(answer["groups"])}
    entry = the_entry([e for e in trail(daemon, action=action, start=str(before)) if e["action"] == action],
                      actor="cli")
    assert entry["tenant"] == "default" and entry["outcome"] == "ok" and entry["status"] in (200, 201)
    assert fields(entry["target"]).items() >= target.items(), entry
    assert TOKENS["cli"][0] not in ran.stdout + ran.stderr


# --------------------------------------------------------------------- SIGHUP


@pytest.mark.parametrize(("rules", "outcome"), [(None, "ok"), ("groups: [{name: bad, rules: [{alert: Bad, expr: 'p95('}]}]\n",
                                                              "failed")], ids=["valid", "broken"])
def test_a_sighup_reload_is_audited(daemon: Daemon, rules: str | None, outcome: str) -> None:
    path = daemon.directory / "rules.yaml"
    original = path.read_text()
    before = time.time()
    try:
        if rules is not None:
            path.write_text(rules)
        assert daemon.process.process is not None
        daemon.process.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        entries: list[dict[str, Any]] = []
        while not entries and time.monotonic() < deadline:
            entries = trail(daemon, action="rules.reload", start=str(before))
            time.sleep(0.05)
    finally:
        path.write_text(original)
    entry = the_entry(entries, actor="SIGHUP")
    assert entry == {**entry, "tenant": "default", "action": "rules.reload", "target": "rule_files",
                     "outcome": outcome, "status": 0}
    assert unix(entry["time"]) >= before - 0.002
    if outcome == "failed":  # the old rules stay
        groups = call(daemon.process, "GET", "/api/v1/rules", "root").json()["groups"]
        assert "file-rules" in {g["name"] for g in groups}


# ------------------------------------------------------------------- refusals

#: (id, caller or a raw token, method, path (``{silence}``, ``{dashboard}``, ``{fingerprint}`` filled in),
#:  status, who the trail names, the tenant whose trail has it, action, target fields)
REFUSALS = [
    ("no token", None, "POST", "/api/v1/silences", 401, "anonymous", "default", "POST /api/v1/silences", {}),
    ("bad token", BAD_TOKEN, "GET", "/api/v1/alerts", 401, "anonymous", "default", "GET /api/v1/alerts", {}),
    ("bad token change", BAD_TOKEN, "DELETE", "/api/v1/dashboards/{dashboard}", 401, "anonymous", "default",
     "DELETE /api/v1/dashboards/{uid}", {"uid": "kept"}),
    ("viewer changes", "vic", "POST", "/api/v1/silences", 403, "vic", "default", "POST /api/v1/silences", {}),
    ("viewer puts rules", "vic", "PUT", "/api/v1/rules/vic-rules", 403, "vic", "default", "PUT /api/v1/rules/{group}",
     {"group": "vic-rules"}),
    ("viewer acks", "vic", "POST", "/api/v1/alerts/{fingerprint}/ack", 403, "vic", "default",
     "POST /api/v1/alerts/{fingerprint}/ack", {}),
    ("viewer reads audit", "vic", "GET", "/api/v1/audit", 403, "vic", "default", "GET /api/v1/audit", {}),
    ("editor reads audit", "eddie", "GET", "/api/v1/audit", 403, "eddie", "default", "GET /api/v1/audit", {}),
    ("other tenant deletes", "olga", "DELETE", "/api/v1/dashboards/{dashboard}", 404, "olga", "other",
     "DELETE /api/v1/dashboards/{uid}", {"uid": "kept"}),
    ("other tenant expires", "olga", "DELETE", "/api/v1/silences/{silence}", 404, "olga", "other",
     "DELETE /api/v1/silences/{id}", {}),
    ("other tenant reads", "olga", "GET", "/api/v1/silences/{silence}", 404, "olga", "other",
     "GET /api/v1/silences/{id}", {}),
    ("other tenant acks", "olga", "POST", "/api/v1/alerts/{fingerprint}/ack", 404, "olga", "other",
     "POST /api/v1/alerts/{fingerprint}/ack", {}),
]


@pytest.mark.parametrize(("who", "method", "path", "status", "actor", "tenant", "action", "target"),
                         [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refused_requests_are_audited(daemon: Daemon, who: str | None, method: str, path: str, status: int,
                                      actor: str, tenant: str, action: str, target: dict[str, str]) -> None:
    objects = {**daemon.kept, "fingerprint": daemon.fingerprint}
    url = path.format(**objects)
    body = {"json": {"by": "x"} if "ack" in path else GROUP if "rules" in path else SILENCE} \
        if method in ("POST", "PUT") else {}
    before = time.time()
    if who in TOKENS:
        answer = call(daemon.process, method, url, who, **body)
    else:
        answer = call(daemon.process, method, url, token=who, **body)
    assert answer.status_code == status, answer.text
    admin = "root" if tenant == "default" else "olga"
    mine = [e for e in trail(daemon, admin, start=str(before)) if e["action"] == action]
    entry = the_entry(mine, actor=actor)
    assert entry["outcome"] == "refused" and entry["status"] == status and entry["tenant"] == tenant
    assert fields(entry["target"]).items() >= target.items(), entry
    placeholders = re.findall(r"\{(\w+)\}", path)
    for name in placeholders:  # the target names what was aimed at
        assert objects[name] in entry["target"], entry
    others = [e for e in trail(daemon, "olga" if admin == "root" else "root", start=str(before))
              if e["action"] == action and e["actor"] == actor]
    assert others == [], f"another tenant's trail shows it: {others}"


def test_only_an_admin_reads_the_trail_and_only_its_tenants(daemon: Daemon) -> None:
    for who in ("vic", "eddie"):
        refused = call(daemon.process, "GET", "/api/v1/audit", who)
        assert refused.status_code == 403 and "entries" not in refused.json(), refused.text
        assert "needs admin" in refused.json()["error"]
    assert {e["tenant"] for e in trail(daemon, "root")} == {"default"}
    assert {e["tenant"] for e in trail(daemon, "olga")} <= {"other"}
    kept = call(daemon.process, "GET", "/api/v1/dashboards/kept", "root")
    assert kept.status_code == 200, "another tenant's refused delete changed nothing"


# -------------------------------------------------------------------- filters


def test_filters_by_action_time_and_limit(daemon: Daemon) -> None:
    start = time.time()
    first = call(daemon.process, "POST", "/api/v1/silences", "eddie", json=SILENCE).json()["silenceID"]
    time.sleep(0.05)
    middle = time.time()
    time.sleep(0.05)
    call(daemon.process, "DELETE", f"/api/v1/silences/{first}", "eddie").raise_for_status()
    early = trail(daemon, start=str(start), end=str(middle))
    late = trail(daemon, start=datetime.fromtimestamp(middle).astimezone().isoformat())  # RFC 3339 works too
    assert [(e["action"], e["target"]) for e in early] == [("POST /api/v1/silences", f"silenceID={first}")]
    assert [(e["action"], e["target"]) for e in late] == [("DELETE /api/v1/silences/{id}", f"id={first}")]
    assert all(start - 0.002 <= unix(e["time"]) < middle for e in early)
    assert all(unix(e["time"]) >= middle - 0.002 for e in late)

    deletes = trail(daemon, action="DELETE ")
    assert deletes and all(e["action"].startswith("DELETE ") for e in deletes)
    exact = trail(daemon, action="DELETE /api/v1/silences/{id}")
    assert exact and {e["action"] for e in exact} == {"DELETE /api/v1/silences/{id}"}

    everything = trail(daemon)
    times = [unix(e["time"]) for e in everything]
    assert times == sorted(times, reverse=True), "newest first"
    assert trail(daemon, limit="1") == everything[:1]

    for params, message in (({"start": "soon"}, "start:"), ({"limit": "0"}, "limit:"), ({"who": "x"}, "who")):
        bad = call(daemon.process, "GET", "/api/v1/audit", "root", params=params)
        assert bad.status_code == 400 and message in bad.json()["error"], bad.text


# ---------------------------------------------------------------- no token in it


def test_no_token_value_is_in_the_trail(daemon: Daemon) -> None:
    p = daemon.process
    # requests that carry a token somewhere other than a good Authorization header are refused and audited
    probe = call(p, "POST", "/api/v1/dashboards", "eddie", params={"token": TOKENS["eddie"][0]},
                 json=dashboard("probe"))
    assert probe.status_code == 400, probe.text  # an unknown parameter
    call(p, "GET", "/api/v1/alerts", token=BAD_TOKEN)
    httpx.get(f"{p.api_url}/api/v1/alerts", headers={"authorization": f"Token {TOKENS['root'][0]}"}, timeout=10)
    httpx.post(f"{p.api_url}/api/v1/silences", json=SILENCE, timeout=10,
               headers={"authorization": f"Bearer {TOKENS['vic'][0]}"})  # 403
    failed = [e for e in trail(daemon, action="POST /api/v1/dashboards") if e["outcome"] == "failed"]
    assert failed and failed[0]["status"] == 400 and failed[0]["target"] == "/api/v1/dashboards"

    answers = call(p, "GET", "/api/v1/audit", "root", params={"limit": "10000"}).text
    answers += call(p, "GET", "/api/v1/audit", "olga", params={"limit": "10000"}).text
    stored = b"".join(f.read_bytes() for f in sorted((daemon.directory / "data").glob("audit.db*")))
    assert b"eddie" in stored and "eddie" in answers  # the names are there, so the search is real
    for secret in EVERY_SECRET:
        for piece in (secret, secret[:12], secret[-12:]):
            assert piece.encode() not in stored, "a token is in audit.db"
            assert piece not in answers, "a token is in the audit API's answer"
            assert piece not in "\n".join(p.log), "a token is in the daemon's log"
    actors = {e["actor"] for e in json.loads(call(p, "GET", "/api/v1/audit", "root").text)["entries"]}
    assert actors <= {*TOKENS, "anonymous", "SIGHUP"}, actors

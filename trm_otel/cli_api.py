"""``trm-otel alerts|silences|rules ...``: the alerting API from a terminal.

    $ trm-otel alerts list [--state firing]
    $ trm-otel alerts ack FINGERPRINT --by alice --comment "on it" [--duration 2h]
    $ trm-otel silences list
    $ trm-otel silences add 'service.name="shop"' 'severity=~"warning|info"' --duration 2h --by alice --comment deploy
    $ trm-otel silences expire ID
    $ trm-otel rules list
    $ trm-otel rules reload

Every command talks to a running daemon (``--api``, default
``http://127.0.0.1:8080``, or ``TRM_OTEL_API``) and sends ``TRM_OTEL_TOKEN``
as a bearer token when set. Output is a table for people, or the API's JSON
with ``--json``; the exit status is 0 on success, 1 when the daemon refused
(its message is printed), 2 when it could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from typing import Any

import httpx

from trm_otel.alerting.matchers import parse_matchers
from trm_otel.config_types import parse_duration

__all__ = ["add_api_commands"]


class _Failed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _client(args: argparse.Namespace) -> httpx.Client:
    headers = {}
    token = os.environ.get("TRM_OTEL_TOKEN")
    if token:
        headers["authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=args.api.rstrip("/"), headers=headers, timeout=10.0)


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    try:
        with _client(args) as client:
            response = client.request(method, path, json=body)
    except httpx.HTTPError as err:
        raise _Failed(2, f"cannot reach the daemon at {args.api}: {err}") from None
    try:
        data = response.json()
    except ValueError:
        data = {"error": response.text}
    if response.status_code >= 400:
        message = data.get("error", response.text) if isinstance(data, dict) else response.text
        raise _Failed(1, f"{response.status_code}: {message}")
    return data


def _run(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            result = handler(args)
        except _Failed as failed:
            print(f"trm-otel: {failed}", file=sys.stderr)
            return failed.status
        if args.json:
            print(json.dumps(result, indent=2, sort_keys=True))
        return 0

    return run


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def _labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


# ------------------------------------------------------------------ alerts


def _alerts_list(args: argparse.Namespace) -> Any:
    data = _call(args, "GET", "/api/v1/alerts" + (f"?state={args.state}" if args.state else ""))
    if not args.json:
        _table(
            [[a["fingerprint"], a["state"], a["activeAt"], (a.get("ackedBy") or {}).get("by", ""), _labels(a["labels"])]
             for a in data["alerts"]],
            ["FINGERPRINT", "STATE", "ACTIVE SINCE", "ACKED BY", "LABELS"],
        )
    return data


def _alerts_ack(args: argparse.Namespace) -> Any:
    body = {"by": args.by, "comment": args.comment, "duration": args.duration}
    data = _call(args, "POST", f"/api/v1/alerts/{args.fingerprint}/ack", body)
    if not args.json:
        print(f"acknowledged {args.fingerprint} until {data['ack']['expiresAt']}")
    return data


# ---------------------------------------------------------------- silences


def _silences_list(args: argparse.Namespace) -> Any:
    data = _call(args, "GET", "/api/v1/silences")
    if not args.json:
        rows = []
        for s in data:
            matchers = ", ".join(
                f"{m['name']}{'=' if m.get('isEqual', True) else '!'}{'~' if m['isRegex'] else ''}"
                f"{'' if m.get('isEqual', True) or m['isRegex'] else '='}\"{m['value']}\""
                for m in s["matchers"]
            )
            rows.append([s["id"], s["status"]["state"], s["endsAt"], s["createdBy"], matchers, s["comment"]])
        _table(rows, ["ID", "STATE", "ENDS", "BY", "MATCHERS", "COMMENT"])
    return data


def _silences_add(args: argparse.Namespace) -> Any:
    try:
        matchers = [m for text in args.matchers for m in parse_matchers(text)]
        duration = parse_duration(args.duration)
    except ValueError as err:
        raise _Failed(1, str(err)) from None
    now = time.time()
    body = {
        "matchers": [
            {"name": m.name, "value": m.value, "isRegex": m.op in ("=~", "!~"), "isEqual": m.op in ("=", "=~")}
            for m in matchers
        ],
        "startsAt": _rfc3339(now),
        "endsAt": _rfc3339(now + duration),
        "createdBy": args.by,
        "comment": args.comment,
    }
    data = _call(args, "POST", "/api/v1/silences", body)
    if not args.json:
        print(data["silenceID"])
    return data


def _silences_expire(args: argparse.Namespace) -> Any:
    data = _call(args, "DELETE", f"/api/v1/silences/{args.id}")
    if not args.json:
        print(f"expired {args.id}")
    return data


def _rfc3339(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ------------------------------------------------------------------- rules


def _rules_list(args: argparse.Namespace) -> Any:
    data = _call(args, "GET", "/api/v1/rules")
    if not args.json:
        _table(
            [[g["name"], r["name"], r["state"], r["health"], r["query"]] for g in data["groups"] for r in g["rules"]],
            ["GROUP", "ALERT", "STATE", "HEALTH", "EXPR"],
        )
    return data


def _rules_reload(args: argparse.Namespace) -> Any:
    data = _call(args, "POST", "/api/v1/rules/reload")
    if not args.json:
        print(f"reloaded: {data['groups']} rule groups")
    return data


# ----------------------------------------------------------------- parsers


def add_api_commands(commands: Any) -> None:
    """Add ``alerts``, ``silences`` and ``rules`` to the ``trm-otel`` subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", default=os.environ.get("TRM_OTEL_API", "http://127.0.0.1:8080"),
                        help="the daemon's API (default $TRM_OTEL_API or http://127.0.0.1:8080)")
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")

    alerts = commands.add_parser("alerts", help="list and acknowledge alerts").add_subparsers(
        dest="alerts_command", metavar="ACTION", required=True)
    listing = alerts.add_parser("list", parents=[common], help="alerts with state, ack and labels")
    listing.add_argument("--state", choices=["firing", "pending", "resolved", "suppressed"])
    listing.set_defaults(run=_run(_alerts_list))
    ack = alerts.add_parser("ack", parents=[common], help="acknowledge a firing alert")
    ack.add_argument("fingerprint")
    ack.add_argument("--by", required=True, help="who takes it")
    ack.add_argument("--comment", default="")
    ack.add_argument("--duration", default="1h", help="how long the ack holds (default 1h)")
    ack.set_defaults(run=_run(_alerts_ack))

    silences = commands.add_parser("silences", help="list, add and expire silences").add_subparsers(
        dest="silences_command", metavar="ACTION", required=True)
    silences.add_parser("list", parents=[common], help="every silence").set_defaults(run=_run(_silences_list))
    add = silences.add_parser("add", parents=[common], help="silence alerts matching every MATCHER")
    add.add_argument("matchers", nargs="+", metavar="MATCHER", help='e.g. service.name="shop" or severity=~"warn.*"')
    add.add_argument("--duration", default="1h")
    add.add_argument("--by", required=True)
    add.add_argument("--comment", required=True)
    add.set_defaults(run=_run(_silences_add))
    expire = silences.add_parser("expire", parents=[common], help="end a silence now")
    expire.add_argument("id")
    expire.set_defaults(run=_run(_silences_expire))

    rules = commands.add_parser("rules", help="list and reload alert rules").add_subparsers(
        dest="rules_command", metavar="ACTION", required=True)
    rules.add_parser("list", parents=[common], help="rule groups with state and health").set_defaults(
        run=_run(_rules_list))
    rules.add_parser("reload", parents=[common], help="re-read the rule files").set_defaults(run=_run(_rules_reload))

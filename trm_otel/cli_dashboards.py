"""``trm-otel dashboards ...``: the dashboards API from a terminal.

    $ trm-otel dashboards list
    $ trm-otel dashboards get performance                      # native JSON on stdout
    $ trm-otel dashboards export performance --format grafana -o performance.grafana.json
    $ trm-otel dashboards import shop.json [--overwrite]       # native or Grafana JSON; - reads stdin
    $ trm-otel dashboards delete old-shop

Like the alerting commands (:mod:`trm_otel.cli_api`, whose client helpers
these reuse): ``--api`` (default ``$TRM_OTEL_API`` or
``http://127.0.0.1:8080``), ``TRM_OTEL_TOKEN`` as the bearer token; exit
status 0 on success, 1 when the daemon refused (its message is printed,
with every problem of an invalid document), 2 when it could not be
reached. ``get`` and ``export`` always print JSON (or write it to
``--output``); the other commands print a table or a line, or the API's
JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from trm_otel.cli_api import _call, _Failed, _run, _table

__all__ = ["add_dashboard_commands"]

_BASE = "/api/v1/dashboards"


def _path(uid: str) -> str:
    return f"{_BASE}/{quote(uid, safe='')}"


def _list(args: argparse.Namespace) -> Any:
    data = _call(args, "GET", _BASE)
    if not args.json:
        _table(
            [[d["uid"], d["title"], str(d["version"]), d["updatedAt"], d["updatedBy"], ",".join(d["tags"])]
             for d in data["dashboards"]],
            ["UID", "TITLE", "VERSION", "UPDATED", "BY", "TAGS"],
        )
    return data


def _write_json(args: argparse.Namespace, data: Any) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as err:
        raise _Failed(1, f"cannot write {args.output}: {err.strerror or err}") from None
    print(f"wrote {args.output}", file=sys.stderr)


def _get(args: argparse.Namespace) -> Any:
    data = _call(args, "GET", _path(args.uid))
    _write_json(args, data)
    return data


def _export(args: argparse.Namespace) -> Any:
    data = _call(args, "GET", f"{_path(args.uid)}/export?format={args.format}")
    _write_json(args, data)
    return data


def _import(args: argparse.Namespace) -> Any:
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except OSError as err:
        raise _Failed(1, f"cannot read {args.file}: {err.strerror or err}") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as err:
        raise _Failed(1, f"{args.file} is not valid JSON: {err}") from None
    query = "?overwrite=true" if args.overwrite else ""
    data = _call(args, "POST", f"{_BASE}/import{query}", body)
    if not args.json:
        print(f"imported {data['uid']} (version {data['version']})")
        for note in data.get("unmapped", []):
            print(f"  not carried over: {note}")
    return data


def _delete(args: argparse.Namespace) -> Any:
    data = _call(args, "DELETE", _path(args.uid))
    if not args.json:
        print(f"deleted {args.uid}")
    return data


def add_dashboard_commands(commands: Any) -> None:
    """Add ``dashboards list|get|export|import|delete`` to the ``trm-otel`` subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", default=os.environ.get("TRM_OTEL_API", "http://127.0.0.1:8080"),
                        help="the daemon's API (default $TRM_OTEL_API or http://127.0.0.1:8080)")
    printed = argparse.ArgumentParser(add_help=False, parents=[common])
    printed.add_argument("--json", action="store_true", help="print the API's JSON answer")
    document = argparse.ArgumentParser(add_help=False, parents=[common])
    document.add_argument("-o", "--output", metavar="FILE", help="write the JSON to FILE (default stdout)")
    document.set_defaults(json=False)

    dashboards = commands.add_parser("dashboards", help="list, export, import and delete dashboards").add_subparsers(
        dest="dashboards_command", metavar="ACTION", required=True)
    dashboards.add_parser("list", parents=[printed], help="the tenant's dashboards").set_defaults(run=_run(_list))
    get = dashboards.add_parser("get", parents=[document], help="a dashboard's native JSON")
    get.add_argument("uid")
    get.set_defaults(run=_run(_get))
    export = dashboards.add_parser("export", parents=[document], help="a dashboard as native or Grafana JSON")
    export.add_argument("uid")
    export.add_argument("--format", choices=["native", "grafana"], default="native")
    export.set_defaults(run=_run(_export))
    load = dashboards.add_parser("import", parents=[printed], help="store a native or Grafana JSON file")
    load.add_argument("file", metavar="FILE", help="the JSON file, or - for stdin")
    load.add_argument("--overwrite", action="store_true", help="replace a dashboard with the same uid")
    load.set_defaults(run=_run(_import))
    delete = dashboards.add_parser("delete", parents=[printed], help="delete a dashboard")
    delete.add_argument("uid")
    delete.set_defaults(run=_run(_delete))

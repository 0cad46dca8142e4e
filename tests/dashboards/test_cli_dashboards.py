"""``trm-otel dashboards ...`` against a real HTTP server running the dashboard routes."""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from trm_otel.api.dashboards import dashboard_routes
from trm_otel.asgi_server import EmbeddedServer
from trm_otel.cli_dashboards import add_dashboard_commands
from trm_otel.dashboards import dump_dashboard, to_grafana
from trm_otel.dashboards.defaults import performance

from .data import every_type, make_service


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    service = make_service(tmp_path_factory.mktemp("cli"))
    server = EmbeddedServer(Starlette(routes=dashboard_routes(service)), "127.0.0.1:0", name="test-api")
    loop = asyncio.new_event_loop()
    started = threading.Event()
    ports: list[int] = []

    async def serve() -> None:
        ports.append(await server.start())
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop)
    assert started.wait(10)
    yield f"http://127.0.0.1:{ports[0]}"
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def run(api_url: str, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="trm-otel")
    add_dashboard_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dashboards", *argv[:1], "--api", api_url, *argv[1:]])
    return int(args.run(args))


def test_import_list_export_get_delete(api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grafana = tmp_path / "perf.grafana.json"
    grafana.write_text(json.dumps(to_grafana(performance().model_copy(update={"uid": "cli-perf"}))))
    assert run(api_url, "import", str(grafana)) == 0
    assert capsys.readouterr().out == "imported cli-perf (version 1)\n"
    assert run(api_url, "import", str(grafana)) == 1
    assert "409: a dashboard with uid 'cli-perf' already exists" in capsys.readouterr().err
    assert run(api_url, "import", str(grafana), "--overwrite", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"uid": "cli-perf", "version": 1, "unmapped": []}  # identical
    grafana.write_text(json.dumps(to_grafana(performance().model_copy(update={"uid": "cli-perf", "title": "P2"}))))
    assert run(api_url, "import", str(grafana), "--overwrite") == 0
    assert capsys.readouterr().out == "imported cli-perf (version 2)\n"

    assert run(api_url, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["UID", "TITLE", "VERSION", "UPDATED", "BY", "TAGS"]
    assert any(line.startswith("cli-perf ") and " 2 " in line for line in lines)

    out = tmp_path / "out.json"
    assert run(api_url, "export", "cli-perf", "--format", "grafana", "-o", str(out)) == 0
    assert json.loads(out.read_text())["panels"][0]["type"] == "timeseries"
    assert run(api_url, "get", "cli-perf") == 0
    got = json.loads(capsys.readouterr().out)
    assert got["version"] == 2 and {k: v for k, v in got.items() if k != "version"} == {
        k: v for k, v in dump_dashboard(performance()).items() if k != "version"} | {"uid": "cli-perf", "title": "P2"}

    assert run(api_url, "delete", "cli-perf") == 0
    assert capsys.readouterr().out == "deleted cli-perf\n"
    assert run(api_url, "get", "cli-perf") == 1
    assert capsys.readouterr().err == "trm-otel: 404: no dashboard with uid 'cli-perf'\n"


def test_an_invalid_file_prints_every_problem(api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = every_type()
    doc["panels"][1]["grid"] = {"x": 0, "y": 0, "w": 6, "h": 8}
    doc["panels"][2]["targets"][0]["expr"] = "p95(x"
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(doc))
    assert run(api_url, "import", str(file)) == 1
    err = capsys.readouterr().err
    assert "400: panels[1].grid: overlaps panels[0]\npanels[2].targets[0].expr: " in err
    file.write_text("{")
    assert run(api_url, "import", str(file)) == 1
    assert capsys.readouterr().err.startswith(f"trm-otel: {file} is not valid JSON")


def test_an_unreachable_daemon_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("http://127.0.0.1:9", "list") == 2
    assert "cannot reach the daemon at http://127.0.0.1:9" in capsys.readouterr().err

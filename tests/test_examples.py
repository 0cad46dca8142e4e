"""Every example runs, as a user would run it, and prints what it promises.

Each example is run once (``python examples/NAME.py``, a real subprocess
starting the real daemon where it needs one) with short intervals set
through the environment variables the example configs read; the checks
below read that one run's output. ``forwarding.py`` is pointed at a real
OTLP/gRPC server standing in for the upstream Collector.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trm_otel.config import check_config
from trm_otel.histogram import ExponentialHistogram

from .otlp_sink import OtlpSink

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
FAST = {"TRM_EXAMPLE_WINDOW": "1s", "TRM_EXAMPLE_EVALUATION_INTERVAL": "1s", "TRM_EXAMPLE_GROUP_WAIT": "1s"}

Run = Callable[[str], "subprocess.CompletedProcess[str]"]


def test_there_are_the_examples_the_docs_promise() -> None:
    assert [p.stem for p in EXAMPLES] == [
        "alerting", "dashboard_as_code", "forwarding", "health_check", "quickstart", "starlette_app",
    ]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_each_example_says_what_it_shows_and_how_to_run_it(example: Path) -> None:
    docstring = ast.get_docstring(ast.parse(example.read_text()))
    assert docstring and "Run it with" in docstring and f"examples/{example.name}" in docstring


@pytest.fixture(scope="module")
def upstream() -> Iterator[OtlpSink]:
    with OtlpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def run(upstream: OtlpSink) -> Iterator[Run]:
    """``run("alerting")``: the example's one run. All start at once (most of their time is waiting)."""
    processes = {}
    for example in EXAMPLES:
        env = {**os.environ, **FAST}
        if example.stem == "forwarding":
            env["UPSTREAM_ENDPOINT"] = upstream.endpoint
        processes[example.stem] = subprocess.Popen(
            [sys.executable, str(example)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
        )
    done: dict[str, subprocess.CompletedProcess[str]] = {}

    def run(name: str) -> subprocess.CompletedProcess[str]:
        if name not in done:
            process = processes[name]
            try:
                out, err = process.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
            done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        return done[name]

    yield run
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path, run: Run) -> None:
    result = run(example.stem)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "an example should show its result"


def test_quickstart_prints_a_table_of_endpoints(run: Run) -> None:
    lines = run("quickstart").stdout.splitlines()
    assert lines[0].split()[:5] == ["endpoint", "count", "p50", "p95", "p99"]
    endpoints = {line.split()[0] + " " + line.split()[1] for line in lines[1:4]}
    assert endpoints == {"GET /products", "GET /cart", "POST /checkout"}
    assert sum(int(line.split()[2]) for line in lines[1:4]) == 5000
    assert any(line.startswith("bottleneck [") for line in lines[4:])


def test_starlette_app_reports_route_templates_from_the_daemon(run: Run) -> None:
    lines = run("starlette_app").stdout.splitlines()
    assert lines[0] == "150 requests to 90 distinct URLs -> 3 endpoints at the daemon:"
    rows = {" ".join(line.split()[:2]): line.split() for line in lines[2:]}
    assert {name: int(row[2]) for name, row in rows.items()} == {
        "GET /items/{item_id}": 100, "GET /search": 30, "POST /users/{user}/cart": 20,
    }
    assert float(rows["GET /search"][4]) >= 10.0, "search sleeps 10-30 ms: its P95 is at least 10 ms"


def test_alerting_shows_the_firing_alert_at_the_webhook(run: Run) -> None:
    out = run("alerting").stdout
    assert re.search(r"notification after [\d.]+ s: status=firing receiver=on-call\n", out), out
    assert "  firing: alertname=SlowCheckout, service.name=checkout, severity=warning, span.name=POST /checkout\n" in out
    assert re.search(r"  summary: POST /checkout on checkout: P95 \d+(\.\d+)? ms \(SLO 250 ms\)\n", out), out
    assert out.endswith("GET /api/v1/alerts?state=firing: ['SlowCheckout']\n")


def test_dashboard_as_code_uploads_and_reads_back(run: Run) -> None:
    result = run("dashboard_as_code")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "validated 'checkout-latency': 4 panels, " + lines[0].split(", ")[1]
    assert lines[1] == "POST /api/v1/dashboards -> 201 {'uid': 'checkout-latency', 'version': 1}"
    assert lines[2:7] == [
        "GET /api/v1/dashboards/checkout-latency -> version 1, panels:",
        "  1. Response time by endpoint (line, 8x8)",
        "  2. Error rate (stat, 4x4)",
        "  3. Apdex (stat, 4x4)",
        "  4. Requests per second (bar, 12x6)",
    ]
    assert re.fullmatch(r"open http://127\.0\.0\.1:\d+/d/checkout-latency to see it", lines[7])


def test_health_check_shows_custom_checks_failing_by_kind(run: Run) -> None:
    """Host checks vary with the machine; the custom ones do not."""
    sections: dict[str, dict[str, tuple[str, str]]] = {}
    for line in run("health_check").stdout.splitlines():
        title = re.fullmatch(r"(\w[\w ]+): (healthy|degraded|unhealthy)", line)
        check = re.match(r"  (\S+) +(healthy|degraded|unhealthy) +(critical|optional) ", line)
        if title:
            current = sections.setdefault(title.group(1), {})
        elif check:
            current[check.group(1)] = (check.group(2), check.group(3))
    assert {title: sorted(checks) for title, checks in sections.items()} == {
        title: sorted({"system.cpu", "system.memory", "system.disk", *names})
        for title, names in (
            ("database and cache", ["database", "cache"]),
            ("plus a hung optional dependency", ["database", "cache", "recommendations"]),
            ("database closed", ["database", "cache", "recommendations"]),
        )
    }
    custom = {title: {k: v for k, v in checks.items() if not k.startswith("system.")} for title, checks in sections.items()}
    assert custom["database and cache"] == {"database": ("healthy", "critical"), "cache": ("healthy", "critical")}
    assert custom["plus a hung optional dependency"]["recommendations"] == ("degraded", "optional")
    assert custom["database closed"]["database"] == ("unhealthy", "critical")
    assert "database closed: unhealthy\n" in run("health_check").stdout


def test_forwarding_reaches_the_upstream_collector(run: Run, upstream: OtlpSink) -> None:
    out = run("forwarding").stdout
    assert "daemon view: GET /stock/{sku}: 150 spans" in out
    assert "daemon view: PUT /stock/{sku}: 50 spans" in out
    with upstream.lock:
        spans = [s for r in upstream.traces for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert len(spans) == 200
    latest: dict[tuple[str, str], object] = {}
    for resource, point in upstream.metric_points("traces.span.metrics.duration"):
        if resource.get("service.name") == "inventory":  # cumulative: the last point of a series has it all
            labels = {kv.key: kv.value.string_value for kv in point.attributes}
            latest[(labels["span.name"], labels["status.code"])] = point
    merged = ExponentialHistogram.merged(ExponentialHistogram.from_proto(p) for p in latest.values())
    assert merged.count == 200


def test_example_configs_pass_check_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "http://127.0.0.1:9000/alerts")
    monkeypatch.setenv("UPSTREAM_ENDPOINT", "collector:4317")
    configs = sorted((ROOT / "examples" / "configs").glob("*.yaml"))
    daemon_configs = [c for c in configs if not c.name.endswith("-rules.yaml")]
    assert [c.name for c in daemon_configs] == ["alerting.yaml", "forwarding.yaml", "local.yaml"]
    for config in daemon_configs:
        assert check_config(config) == [], config

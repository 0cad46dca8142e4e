"""A dashboard defined as code, validated locally, then uploaded to the daemon.

Shows ``trm_otel.dashboards.model``: the dashboard is built from the same
typed models the daemon loads (``Dashboard``, ``Panel``, ``Target``,
``Grid``, ``Variable``), ``validate_dashboard`` checks what only the whole
document shows (overlapping panels, duplicate ids, every target against the
query parser and the variables) before anything is sent, and
``dump_dashboard`` gives the native JSON that ``POST /api/v1/dashboards``
takes (``201 {"uid", "version"}``). Keep such a file in your repository and
run it from CI: the dashboard is reviewed like code.

Run it with ``python examples/dashboard_as_code.py``: it starts a daemon,
uploads the dashboard, reads it back and prints where the UI shows it.
"""

from __future__ import annotations

import json

import httpx

from _daemon import running_daemon
from trm_otel.dashboards.model import (
    Dashboard,
    Grid,
    Panel,
    Target,
    TimeRange,
    Variable,
    dump_dashboard,
    validate_dashboard,
)
from trm_otel.dashboards.variables import ALL

DURATION = 'traces.span.metrics.duration{service.name=~"$service"}'


def checkout_dashboard() -> Dashboard:
    """Latency percentiles, error rate and throughput of the chosen services."""
    return Dashboard(
        uid="checkout-latency",
        title="Checkout latency",
        tags=("checkout", "slo"),
        time=TimeRange(from_="now-1h"),
        refresh="30s",
        variables=(
            Variable(name="service", label="Service", query="label_values(service.name)",
                     multi=True, include_all=True, current=ALL),
        ),
        panels=(
            Panel(id=1, title="Response time by endpoint", type="line", grid=Grid(x=0, y=0, w=8, h=8),
                  targets=(Target(expr=f"p95({DURATION}[5m]) by (span.name)", legend="P95 {{span.name}}"),
                           Target(expr=f"p99({DURATION}[5m]) by (span.name)", legend="P99 {{span.name}}")),
                  options={"unit": "ms", "min": 0}),
            Panel(id=2, title="Error rate", type="stat", grid=Grid(x=8, y=0, w=4, h=4),
                  targets=(Target(expr=f"error_rate({DURATION}[5m])"),),
                  options={"unit": "percentunit", "thresholds": [0.01, 0.05]}),
            Panel(id=3, title="Apdex", type="stat", grid=Grid(x=8, y=4, w=4, h=4),
                  targets=(Target(expr=f"apdex({DURATION}[5m])"),)),
            Panel(id=4, title="Requests per second", type="bar", grid=Grid(x=0, y=8, w=12, h=6),
                  targets=(Target(expr=f"rate({DURATION}[1m]) by (service.name)", legend="{{service.name}}"),),
                  options={"unit": "reqps", "stacked": True}),
        ),
    )  # fmt: skip


def main() -> None:
    dashboard = validate_dashboard(checkout_dashboard())  # raises DashboardError listing every problem
    document = dump_dashboard(dashboard)
    print(f"validated {dashboard.uid!r}: {len(dashboard.panels)} panels, {len(json.dumps(document))} bytes of JSON")
    with running_daemon("configs/local.yaml") as daemon:
        created = httpx.post(f"{daemon.api_url}/api/v1/dashboards", json=document)
        if created.status_code != 201:
            raise SystemExit(f"upload refused: {created.status_code} {created.text}")
        answer = created.json()
        print(f"POST /api/v1/dashboards -> {created.status_code} {answer}")
        stored = httpx.get(f"{daemon.api_url}/api/v1/dashboards/{answer['uid']}").json()
        print(f"GET /api/v1/dashboards/{answer['uid']} -> version {stored['version']}, panels:")
        for panel in stored["panels"]:
            print(f"  {panel['id']}. {panel['title']} ({panel['type']}, {panel['grid']['w']}x{panel['grid']['h']})")
        print(f"open {daemon.api_url}/d/{answer['uid']} to see it")


if __name__ == "__main__":
    main()

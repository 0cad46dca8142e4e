"""Dashboard load time in a real browser: until every panel has drawn, and each panel's data request.

    python benchmarks/ui_bench.py http://127.0.0.1:8080 --uid performance --range 24h --runs 7

    >>> result = measure_dashboard_load("http://127.0.0.1:8080")      # doctest: +SKIP
    >>> result["ready_ms_median"], result["panel_request_ms_median"]   # doctest: +SKIP
    (412.0, 38.5)

Measured as a viewer sees it: headless Chromium (Debian's, never a
download) loads ``/d/{uid}?range=...``; "ready" is the moment the page sets
``document.body.dataset.ready = "1"``, once every panel finished its first
load, in milliseconds from the start of navigation (``performance.now()``).
The first load is reported apart (``cold_ready_ms``: plotly.min.js comes
over the wire and is compiled); the ``runs`` after it share the browser's
cache, as a returning viewer's do. Each panel's data request duration is
the browser's Resource Timing entry for it (request start to last byte),
first loads only; refetches triggered by the live stream are left out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

__all__ = ["measure_dashboard_load"]

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]

_PANEL_ENTRIES = """ready => performance.getEntriesByType('resource')
  .filter(e => e.name.includes('/panels/') && new URL(e.name).pathname.endsWith('/data') && e.startTime <= ready)
  .map(e => ({url: e.name, ms: e.responseEnd - e.startTime}))"""


def _wait_ready(page: Any, timeout_s: float) -> float:
    """``window.trmOtel.readyAt`` once the page is ready (polled over CDP: the page's CSP forbids eval)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready = page.evaluate("document.body && document.body.dataset.ready === '1' && window.trmOtel.readyAt")
        if ready:
            return float(ready)
        page.wait_for_timeout(10)
    raise TimeoutError(f"{page.url} was not ready after {timeout_s}s")


def _load(context: Any, url: str, timeout_s: float) -> tuple[float, list[dict[str, Any]], int]:
    page = context.new_page()
    try:
        response = page.goto(url)
        if response is None or not response.ok:
            raise RuntimeError(f"{url}: {response and response.status} {response and response.text()[:200]}")
        ready = _wait_ready(page, timeout_s)
        failed = page.evaluate("[...document.querySelectorAll('[data-panel-id]')].filter(e => e.dataset.state === 'error').length")
        if failed:
            errors = page.evaluate("[...document.querySelectorAll('.panel-error')].map(e => e.textContent).filter(Boolean)")
            raise RuntimeError(f"{url}: {failed} panel(s) failed: {errors}")
        entries = page.evaluate(_PANEL_ENTRIES, ready)
        plotly_bytes = page.evaluate(
            "performance.getEntriesByType('resource').filter(e => e.name.includes('/static/plotly.min.js'))"
            ".reduce((n, e) => n + e.transferSize, 0)"
        )
        return ready, entries, int(plotly_bytes)
    finally:
        page.close()


def _runs(
    context: Any, url: str, runs: int, token: str | None, timeout_s: float
) -> tuple[list[float], dict[str, list[float]], float, int]:
    if token:
        context.add_init_script(f"window.localStorage.setItem('trmOtel.token', {json.dumps(token)})")
    cold_ms, _entries, plotly_bytes = _load(context, url, timeout_s)
    ready: list[float] = []
    per_panel: dict[str, list[float]] = {}
    for _ in itertools.repeat(None, runs):
        ready_ms, entries, _bytes = _load(context, url, timeout_s)
        ready.append(round(ready_ms, 1))
        for entry in entries:
            panel = urlsplit(entry["url"]).path.rstrip("/").split("/")[-2]
            per_panel.setdefault(panel, []).append(round(entry["ms"], 1))
    return ready, per_panel, cold_ms, plotly_bytes


def measure_dashboard_load(
    api_url: str,
    uid: str = "performance",
    range: str = "24h",  # noqa: A002 - the API's parameter name
    runs: int = 7,
    *,
    chromium: str | None = None,
    token: str | None = None,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Median time until ``/d/{uid}`` is ready over ``runs`` warm loads, plus per-panel request times (ms).

    ``token`` is sent as the viewer's bearer token when the daemon has auth on.
    """
    if runs < 1:
        raise ValueError(f"measure_dashboard_load: runs must be at least 1, got {runs}")
    from playwright.sync_api import sync_playwright

    executable = chromium or os.environ.get("TRM_CHROMIUM") or "/usr/bin/chromium"
    url = f"{api_url.rstrip('/')}/d/{uid}?range={range}&refresh=off"
    with sync_playwright() as playwright:
        with tempfile.TemporaryDirectory(prefix="trm-ui-bench-") as profile:
            # A profile on disk, as a viewer's: its cache keeps plotly.min.js and V8's compiled code.
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1600, "height": 1000},
            )
            try:
                ready, per_panel, cold_ms, plotly_bytes = _runs(context, url, runs, token, timeout_s)
            finally:
                context.close()
    every = [ms for samples in per_panel.values() for ms in samples]
    return {
        "uid": uid,
        "range": range,
        "runs": runs,
        "ready_ms": ready,
        "ready_ms_median": statistics.median(ready),
        "cold_ready_ms": round(cold_ms, 1),
        "plotly_transfer_bytes": plotly_bytes,
        "panels": {
            panel: {"median_ms": statistics.median(samples), "max_ms": max(samples), "samples": samples}
            for panel, samples in sorted(per_panel.items(), key=lambda kv: int(kv[0]))
        },
        "panel_request_ms_median": statistics.median(every) if every else None,
        "panel_request_ms_max": max(every) if every else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("api_url", help="the daemon's API and UI address, e.g. http://127.0.0.1:8080")
    parser.add_argument("--uid", default="performance")
    parser.add_argument("--range", default="24h")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--token", default=os.environ.get("TRM_TOKEN"))
    args = parser.parse_args()
    result = measure_dashboard_load(args.api_url, args.uid, args.range, args.runs, token=args.token)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

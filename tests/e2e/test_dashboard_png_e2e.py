"""PNG rendering from a running daemon: every chart type, both themes, with the daemon's own data."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import matplotlib.image
import numpy as np
import pytest

from .daemon_process import DaemonProcess
from .traffic import Traffic

D = "traces.span.metrics.duration"
TYPES = {
    "line": f"p95({D}[1m]) by (span.name)",
    "bar": f"count({D}[1m]) by (span.name)",
    "pie": f"count({D}[5m]) by (span.name)",
    "scatter": f"avg({D}[1m]) by (span.name)",
    "heatmap": D,
    "stat": f"p99({D}[5m])",
    "table": f"p95({D}[5m]) by (span.name)",
}
DASHBOARD = {
    "uid": "every-type", "title": "Every type", "schemaVersion": 2,
    "panels": [
        {"id": i + 1, "title": kind, "type": kind, "targets": [{"expr": expr, "legend": "{{span.name}}"}],
         "grid": {"x": (i % 3) * 4, "y": (i // 3) * 4, "w": 4, "h": 4}, "options": {"unit": "ms"}}
        for i, (kind, expr) in enumerate(TYPES.items())
    ],
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with DaemonProcess(tmp_path_factory.mktemp("png")) as process:
        traffic = Traffic(process.grpc_endpoint, period_s=0.05)
        traffic.start("shop", ["GET /a", "GET /b", "POST /c"])
        time.sleep(4)
        traffic.stop_all()
        httpx.post(f"{process.api_url}/api/v1/dashboards", json=DASHBOARD, timeout=10).raise_for_status()
        yield process


def pixels(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(io.BytesIO(png), format="png")


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("panel", range(1, len(TYPES) + 1))
def test_each_chart_type_renders_with_data(daemon: DaemonProcess, panel: int, theme: str) -> None:
    base = f"{daemon.api_url}/api/v1/dashboards/every-type/panels/{panel}"
    data = httpx.get(f"{base}/data", params={"range": "5m", "step": "1s"}, timeout=30).json()
    if data["type"] == "heatmap":
        assert sum(map(sum, data["counts"])) > 0 and data["buckets"] == sorted(data["buckets"])
    else:
        assert data["series"], f"panel {panel} ({data['type']}) has no data"
    answer = httpx.get(f"{base}/render.png", params={"range": "5m", "theme": theme, "width": 600, "height": 300},
                       timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    image = pixels(answer.content)
    assert image.shape[:2] == (300, 600)
    assert image[..., :3].std() > 0.02  # something is drawn, not a blank canvas
    corner = image[2, 2, :3].mean()
    assert corner < 0.3 if theme == "dark" else corner > 0.7


def test_the_whole_dashboard_renders_on_its_grid(daemon: DaemonProcess) -> None:
    answer = httpx.get(f"{daemon.api_url}/api/v1/dashboards/every-type/render.png",
                       params={"range": "5m", "theme": "dark", "width": 1200}, timeout=60)
    assert answer.status_code == 200
    image = pixels(answer.content)
    assert image.shape[1] == 1200 and image.shape[0] > 300

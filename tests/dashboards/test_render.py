"""PNG renders: every panel type in both themes from real panel data, whole dashboards, sizes and units."""

from __future__ import annotations

import io
import threading
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from trm_otel.dashboards import load_dashboard
from trm_otel.dashboards.panel_data import PanelReader, TimeWindow, bind_variables
from trm_otel.dashboards.render import PNG_SIGNATURE, format_value, render_dashboard, render_panel

from .data import NOW, every_type, memory_source

WINDOW = TimeWindow(NOW - 3600, NOW, 60.0)


@pytest.fixture(scope="module")
def dashboard() -> Any:
    return load_dashboard(every_type())


@pytest.fixture(scope="module")
def panels(dashboard: Any) -> dict[int, dict[str, Any]]:
    reader = PanelReader(memory_source())
    return {p.id: reader.panel(dashboard, p.id, WINDOW, bind_variables(dashboard, {})) for p in dashboard.panels}


def pixels(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_SIGNATURE)
    return np.asarray(imread(io.BytesIO(png), format="png"))[..., :3]


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("panel_id", range(1, 8))
def test_every_panel_type_renders_in_both_themes(panels: dict[int, dict[str, Any]], panel_id: int, theme: str) -> None:
    image = pixels(render_panel(panels[panel_id], theme=theme, width=640, height=320))
    assert image.shape == (320, 640, 3)
    assert image.std() > 0.02  # something is drawn
    corner = image[-3:, :3].mean()
    assert corner < 0.2 if theme == "dark" else corner > 0.9
    rgb = (image.reshape(-1, 3) * 255).astype(np.uint32)
    assert len(np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])) > 8


def test_dark_background_is_dark_and_light_is_light(panels: dict[int, dict[str, Any]]) -> None:
    dark = pixels(render_panel(panels[1], theme="dark"))
    light = pixels(render_panel(panels[1], theme="light"))
    assert dark.mean() < 0.25 < 0.85 < light.mean()


def test_heatmap_draws_colour_where_requests_are(panels: dict[int, dict[str, Any]]) -> None:
    image = pixels(render_panel(panels[7], theme="light", width=800, height=400))
    plot = image[60:340, 100:780]
    saturated = (plot.max(axis=2) - plot.min(axis=2)) > 0.3
    assert saturated.mean() > 0.1  # the viridis cells, not just axes and text


@pytest.mark.parametrize("kind", ["line", "bar", "scatter", "pie", "stat", "table", "heatmap"])
def test_no_data_still_renders(kind: str) -> None:
    data = {"uid": "x", "panel": 1, "type": kind, "title": "Empty", "start": NOW - 60, "end": NOW, "step": 10.0,
            "unit": "", "series": []}
    if kind == "heatmap":
        data.update(buckets=[], times=[NOW - 60], counts=[[]])
    assert pixels(render_panel(data, theme="dark")).std() > 0


def test_a_dashboard_lays_out_panels_and_shows_errors(dashboard: Any, panels: dict[int, dict[str, Any]]) -> None:
    data: dict[int, Any] = dict(panels)
    data[4] = "1:1: count does not apply to 'ALERTS', a gauge (use avg, min, max or last)"
    image = pixels(render_dashboard(dashboard, data, theme="dark", width=1000))
    rows = max(p.grid.y + p.grid.h for p in dashboard.panels)
    assert image.shape == (44 + rows * 30 + 8, 1000, 3)
    assert image.std() > 0.02
    red = (image[..., 0] > 0.8) & (image[..., 1] < 0.6)
    assert red.any()  # the error text


def test_sizes_and_themes_are_checked(panels: dict[int, dict[str, Any]], dashboard: Any) -> None:
    with pytest.raises(ValueError, match="width: must be a whole number of pixels from 100 to 4000, got 50"):
        render_panel(panels[1], width=50)
    with pytest.raises(ValueError, match="height"):
        render_panel(panels[1], height=5000)
    with pytest.raises(ValueError, match="theme: expected light or dark, got 'blue'"):
        render_dashboard(dashboard, panels, theme="blue")


def test_renders_from_several_threads(panels: dict[int, dict[str, Any]]) -> None:
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda i=i: results.append(render_panel(panels[1 + i % 7], width=300, height=200)))
               for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and all(r.startswith(PNG_SIGNATURE) for r in results)


def test_dollar_signs_are_text_not_math(panels: dict[int, dict[str, Any]]) -> None:
    data = dict(panels[5], title="Cost in $ per $service")
    assert render_panel(data).startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (None, "ms", "n/a"),
        (12.345, "ms", "12.3 ms"),
        (1534.0, "ms", "1.53 s"),
        (0.25, "ms", "250 µs"),
        (0.4567, "percentunit", "45.7%"),
        (2048.0, "Bps", "2 KiB/s"),
        (35.5, "reqps", "35.5 req/s"),
        (1_500_000.0, "", "1.5M"),
        (0.0, "", "0"),
        (7.0, "widgets", "7 widgets"),
    ],
)
def test_units(value: float | None, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


@pytest.mark.parametrize("panel_id", [1, 7])  # p95 line, heatmap
def test_exemplars_are_drawn_as_points_in_the_error_colour(panel_id: int, dashboard: Any) -> None:
    source = memory_source()
    lookup = lambda tenant, matchers, start, end, limit: source.aggregator.exemplars(matchers, start, end, limit=limit)  # noqa: E731
    data = PanelReader(source, exemplars=lookup).panel(dashboard, panel_id, WINDOW, bind_variables(dashboard, {}))
    assert data["exemplars"]
    with_points = pixels(render_panel(data, theme="light", width=800, height=400))
    without = pixels(render_panel({**data, "exemplars": []}, theme="light", width=800, height=400))

    def reddish(image: np.ndarray) -> int:  # neither viridis nor the first series colours have red in them
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        return int(((r > g + 0.25) & (r > b + 0.25)).sum())

    assert reddish(with_points) >= reddish(without) + 5 * len(data["exemplars"])

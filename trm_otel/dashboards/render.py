"""Panels and whole dashboards as PNG images, drawn by matplotlib's Agg backend (no browser).

    >>> png = render_panel(reader.panel(dashboard, 1, window, bound), theme="dark")   # doctest: +SKIP
    >>> png[:8] == PNG_SIGNATURE                                                      # doctest: +SKIP
    True
    >>> render_dashboard(dashboard, {1: data, 2: "1:5: unknown statistic"}, width=1200)  # doctest: +SKIP

Input is exactly the panel data the UI gets (:mod:`~trm_otel.dashboards.panel_data`),
so an image shows what the page shows: lines, stacked bars and points over
time, a pie with a legend, a stat as big numbers, a table sorted by value
(largest first), and a heatmap of latency buckets over time on a log axis.

A dashboard image lays the panels out on the 12-column grid, each grid row
:data:`ROW_PX` pixels high (Grafana's row height, so an exported dashboard
looks the same there), under a header with the title and the time range.
A panel whose query failed shows the error in its place, so one broken
panel does not cost the whole picture.

Every render builds its own :class:`~matplotlib.figure.Figure` on its own
Agg canvas: nothing goes through ``pyplot`` and its global figure list, and
no ``rcParams`` are changed. matplotlib's font and text-layout caches are
not documented as thread-safe, so renders take a lock; drawing is
Python-bound anyway, so the API's worker threads lose nothing by queueing.
Text is drawn as given (``$`` does not start math).
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator

from trm_otel.dashboards.model import Dashboard

__all__ = [
    "MAX_PX",
    "MIN_PX",
    "PNG_SIGNATURE",
    "ROW_PX",
    "THEMES",
    "Theme",
    "format_value",
    "render_dashboard",
    "render_panel",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Smallest and largest width or height of an image, in pixels.
MIN_PX, MAX_PX = 100, 4000
#: Height of one grid row in a dashboard image.
ROW_PX = 30
_HEADER_PX = 44
_GAP_PX = 8
_DPI = 100
_UTC = timezone.utc
_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Theme:
    """Colours of one theme; ``palette`` colours series in order."""

    background: str
    panel: str
    border: str
    text: str
    muted: str
    grid: str
    error: str
    colormap: str
    palette: tuple[str, ...]


_PALETTE = ("#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
            "#508642", "#CCA300", "#447EBC", "#C15C17")
THEMES: dict[str, Theme] = {
    "light": Theme("#f4f5f5", "#ffffff", "#d8d9dc", "#24292e", "#6e7781", "#e9ebee", "#c4162a", "viridis",
                   ("#37872D", "#E0B400", "#1F78C1", "#FA6400", "#C4162A", "#8F3BB8", "#0A437C", "#56A64B",
                    "#FF9830", "#73BF69", "#5794F2", "#B877D9")),
    "dark": Theme("#111217", "#181b1f", "#2c3235", "#d8d9da", "#8e8e8e", "#2a2e33", "#ff7383", "viridis", _PALETTE),
}


def render_panel(
    data: Mapping[str, Any],
    theme: str = "light",
    width: int = 800,
    height: int = 400,
    *,
    options: Mapping[str, Any] | None = None,
) -> bytes:
    """One panel's data as a PNG of ``width`` x ``height`` pixels.

    ``options`` are the panel's display options (``min``/``max`` fix the
    value axis). Raises ``ValueError`` for an unknown theme or a size out
    of [:data:`MIN_PX`, :data:`MAX_PX`].
    """
    colors = _theme(theme)
    _check_size("width", width)
    _check_size("height", height)
    with _LOCK:
        canvas = _Canvas(width, height, colors)
        _panel(canvas, (0.0, 0.0, float(width), float(height)), data.get("title", ""), data, options or {})
        return canvas.png()


def render_dashboard(
    dashboard: Dashboard,
    data_by_panel: Mapping[int, Mapping[str, Any] | str],
    theme: str = "light",
    width: int = 1200,
) -> bytes:
    """Every panel at its grid place; ``data_by_panel`` maps a panel id to its data or an error message.

    The height follows the grid (:data:`ROW_PX` per row), rows shrinking
    if the image would pass :data:`MAX_PX`.
    """
    colors = _theme(theme)
    _check_size("width", width)
    rows = max((p.grid.y + p.grid.h for p in dashboard.panels), default=4)
    row_px = min(float(ROW_PX), (MAX_PX - _HEADER_PX - _GAP_PX) / rows)
    height = int(_HEADER_PX + rows * row_px + _GAP_PX)
    column_px = (width - _GAP_PX) / 12
    with _LOCK:
        canvas = _Canvas(width, height, colors)
        canvas.text(_GAP_PX + 4, 14, dashboard.title, size=13, weight="bold")
        canvas.text(width - _GAP_PX - 4, 16, _range_text(data_by_panel), size=8, color=colors.muted, ha="right")
        for panel in dashboard.panels:
            g = panel.grid
            box = (
                _GAP_PX + g.x * column_px,
                _HEADER_PX + g.y * row_px,
                g.w * column_px - _GAP_PX,
                g.h * row_px - _GAP_PX,
            )
            _panel(canvas, box, panel.title, data_by_panel.get(panel.id), panel.options)
        return canvas.png()


def format_value(value: float | None, unit: str = "") -> str:
    """A value as a person reads it, in the panel's unit (Grafana unit ids: ``ms``, ``percentunit``, ...)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit == "percentunit":
        return f"{_number(value * 100)}%"
    if unit == "percent":
        return f"{_number(value)}%"
    if unit in ("ms", "s"):
        seconds = value / 1000 if unit == "ms" else value
        if seconds != 0 and abs(seconds) < 1e-3:
            return f"{_number(seconds * 1e6)} µs"
        if abs(seconds) < 1:
            return f"{_number(seconds * 1000)} ms"
        if abs(seconds) < 120:
            return f"{_number(seconds)} s"
        return f"{_number(seconds / 60)} min"
    if unit in ("bytes", "decbytes", "Bps", "binBps"):
        text = _binary(value)
        return f"{text}/s" if unit.endswith("ps") else text
    if unit == "reqps":
        return f"{_si(value)} req/s"
    if unit in ("", "short", "none"):
        return _si(value)
    return f"{_si(value)} {unit}"


# --------------------------------------------------------------- drawing


class _Canvas:
    """A figure measured in pixels from the top-left corner."""

    def __init__(self, width: int, height: int, colors: Theme) -> None:
        self.width, self.height, self.colors = width, height, colors
        self.figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI, facecolor=colors.background)
        FigureCanvasAgg(self.figure)

    def _fraction(self, x: float, y: float, w: float, h: float) -> list[float]:
        return [x / self.width, 1 - (y + h) / self.height, max(w, 1) / self.width, max(h, 1) / self.height]

    def axes(self, x: float, y: float, w: float, h: float) -> Axes:
        ax = self.figure.add_axes(self._fraction(x, y, w, h))
        ax.set_facecolor(self.colors.panel)
        return ax

    def box(self, x: float, y: float, w: float, h: float) -> None:
        left, bottom, width, height = self._fraction(x, y, w, h)
        self.figure.add_artist(Rectangle(
            (left, bottom), width, height, transform=self.figure.transFigure,
            facecolor=self.colors.panel, edgecolor=self.colors.border, linewidth=1, zorder=-2,
        ))

    def text(self, x: float, y: float, text: str, *, size: float = 9, color: str | None = None, **kw: Any) -> None:
        kw.setdefault("va", "center")
        self.figure.text(x / self.width, 1 - y / self.height, text, fontsize=size, color=color or self.colors.text,
                         parse_math=False, **kw)

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=_DPI, facecolor=self.colors.background)
        return buffer.getvalue()


_Box = tuple[float, float, float, float]


def _panel(
    canvas: _Canvas, box: _Box, title: str, data: Mapping[str, Any] | str | None, options: Mapping[str, Any]
) -> None:
    x, y, w, h = box
    canvas.box(x, y, w, h)
    canvas.text(x + 10, y + 14, _clip(title, w - 20, 9), size=9, weight="bold", clip_on=False)
    content = (x + 8, y + 28, w - 16, h - 36)
    if content[2] < 20 or content[3] < 16:
        return
    if data is None:
        _message(canvas, content, "No data", canvas.colors.muted)
        return
    if isinstance(data, str):
        _message(canvas, content, _wrap(f"error: {data}", content[2], 8), canvas.colors.error)
        return
    kind = data.get("type")
    if kind == "heatmap":
        if not data.get("buckets"):
            _message(canvas, content, "No data", canvas.colors.muted)
        else:
            _heatmap(canvas, content, data)
        return
    series = [s for s in data.get("series", ()) if _has_data(s)]
    if not series:
        _message(canvas, content, "No data", canvas.colors.muted)
    elif kind in ("line", "bar", "scatter"):
        _over_time(canvas, content, data, series, options)
    elif kind == "pie":
        _pie(canvas, content, data, series)
    elif kind == "stat":
        _stat(canvas, content, data, series)
    elif kind == "table":
        _table(canvas, content, data, series)
    else:
        _message(canvas, content, f"cannot draw a {kind!r} panel", canvas.colors.error)


def _over_time(
    canvas: _Canvas, box: _Box, data: Mapping[str, Any], series: Sequence[Mapping[str, Any]], options: Mapping[str, Any]
) -> None:
    x, y, w, h = box
    ax = canvas.axes(x + 50, y + 2, w - 56, h - 22)
    _style(ax, canvas.colors)
    unit = str(data.get("unit") or "")
    palette = canvas.colors.palette
    step_days = float(data.get("step") or 60) / 86400
    bottoms: np.ndarray | None = None
    for i, item in enumerate(series[: 4 * len(palette)]):
        times = _dates(item["times"])
        values = np.array([np.nan if v is None else v for v in item["values"]], dtype=np.float64)
        color, label = palette[i % len(palette)], _legend_label(item.get("name", ""))
        if data["type"] == "line":
            ax.plot(times, values, color=color, linewidth=1.4, label=label)
            if len(times) < 60:
                ax.plot(times, values, linestyle="none", marker="o", markersize=2.5, color=color)
        elif data["type"] == "scatter":
            ax.scatter(times, values, s=7, color=color, label=label, linewidths=0)
        else:
            stacked = np.nan_to_num(values)
            bottoms = np.zeros_like(stacked) if bottoms is None or len(bottoms) != len(stacked) else bottoms
            ax.bar(times - step_days / 2, stacked, width=step_days * 0.85, bottom=bottoms, color=color, label=label,
                   linewidth=0)
            bottoms = bottoms + stacked
    if data["type"] == "line":
        _exemplars(ax, data, canvas.colors)
    ax.set_xlim(_dates([data["start"]])[0], _dates([data["end"]])[0])
    low, high = options.get("min"), options.get("max")
    if isinstance(low, (int, float)) or isinstance(high, (int, float)):
        ax.set_ylim(bottom=low if isinstance(low, (int, float)) else None,
                    top=high if isinstance(high, (int, float)) else None)
    elif data["type"] == "bar":
        ax.set_ylim(bottom=0)
    _time_axis(ax, canvas.colors)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=max(2, int(h // 40)), min_n_ticks=2))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
    if 1 < len(series) <= 12 or (len(series) == 1 and series[0].get("name")):
        legend = ax.legend(loc="upper left", fontsize=7, ncol=max(1, min(len(series), int(w // 180))), frameon=True,
                           facecolor=canvas.colors.panel, edgecolor=canvas.colors.border, labelcolor=canvas.colors.text,
                           framealpha=0.8, handlelength=1.2, borderpad=0.3, labelspacing=0.2)
        legend.get_frame().set_linewidth(0.5)


def _pie(canvas: _Canvas, box: _Box, data: Mapping[str, Any], series: Sequence[Mapping[str, Any]]) -> None:
    x, y, w, h = box
    kept = [s for s in series if s["value"] > 0]
    if not kept:
        _message(canvas, box, "No data", canvas.colors.muted)
        return
    side = min(h, w * 0.55)
    ax = canvas.axes(x, y + (h - side) / 2, side, side)
    ax.set_axis_off()
    palette = canvas.colors.palette
    colors = [palette[i % len(palette)] for i in range(len(kept))]
    ax.pie([s["value"] for s in kept], colors=colors, startangle=90, counterclock=False,
           wedgeprops={"width": 0.5, "edgecolor": canvas.colors.panel, "linewidth": 1})
    unit = str(data.get("unit") or "")
    fits = max(1, int(h // 16))
    for i, item in enumerate(kept[:fits]):
        top = y + (h - min(len(kept), fits) * 16) / 2 + i * 16 + 8
        canvas.text(x + side + 12, top, "\u25a0", size=10, color=colors[i])
        label = f"{item.get('name', '')}: {format_value(item['value'], unit)}"
        canvas.text(x + side + 26, top, _clip(label, w - side - 30, 8), size=8)


def _stat(canvas: _Canvas, box: _Box, data: Mapping[str, Any], series: Sequence[Mapping[str, Any]]) -> None:
    x, y, w, h = box
    shown = list(series[:6])
    unit = str(data.get("unit") or "")
    cell = w / len(shown)
    for i, item in enumerate(shown):
        text = format_value(item["value"], unit)
        named = len(shown) > 1
        size_px = min(h * (0.5 if named else 0.6), cell / max(len(text), 3) * 1.6)
        center = x + cell * i + cell / 2
        canvas.text(center, y + h * (0.42 if named else 0.5), text, size=max(size_px * 72 / _DPI, 6),
                    color=canvas.colors.palette[0], ha="center", weight="bold")
        if named:
            canvas.text(center, y + h * 0.85, _clip(str(item.get("name", "")), cell - 8, 8), size=8,
                        color=canvas.colors.muted, ha="center")


def _table(canvas: _Canvas, box: _Box, data: Mapping[str, Any], series: Sequence[Mapping[str, Any]]) -> None:
    x, y, w, h = box
    names: list[str] = []
    for item in series:
        names.extend(n for n in item.get("labels", {}) if n not in names)
    if not names:
        names = ["name"]
    ordered = sorted(series, key=lambda s: -s["value"] if s["value"] is not None else math.inf)
    unit = str(data.get("unit") or "")
    rows = [
        [(item.get("labels") or {"name": item.get("name", "")}).get(n, "") for n in names]
        + [format_value(item["value"], unit)]
        for item in ordered
    ]
    header = [*names, "Value"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) + 2 for i in range(len(header))]
    scale = w / max(sum(widths), 1)
    row_px = 18
    fits = max(int((h - row_px) // row_px), 0)
    colors = canvas.colors
    left = x
    for i, column in enumerate(header):
        column_px = widths[i] * scale
        canvas.text(left + 4, y + row_px / 2, _clip(column, column_px - 6, 8), size=8, weight="bold", color=colors.muted)
        for r, row in enumerate(rows[:fits]):
            top = y + row_px * (r + 1)
            if i == 0 and r % 2 == 0:
                canvas.figure.add_artist(Rectangle(
                    (x / canvas.width, 1 - (top + row_px) / canvas.height), w / canvas.width, row_px / canvas.height,
                    transform=canvas.figure.transFigure, facecolor=colors.grid, edgecolor="none", alpha=0.6,
                    zorder=-1,
                ))
            canvas.text(left + 4, top + row_px / 2, _clip(str(row[i]), column_px - 6, 8), size=8)
        left += column_px
    if len(rows) > fits and fits > 0:
        canvas.text(x + w - 4, y + row_px / 2, f"{fits} of {len(rows)} rows", size=7, color=colors.muted, ha="right")


def _heatmap(canvas: _Canvas, box: _Box, data: Mapping[str, Any]) -> None:
    x, y, w, h = box
    bounds = np.asarray(data["buckets"], dtype=np.float64)
    counts = np.asarray(data["counts"], dtype=np.float64)
    times = np.asarray(data["times"], dtype=np.float64)
    step = float(data.get("step") or 60)
    if bounds[0] <= 0:  # only zero latencies were seen: one band below a nominal 1
        bounds = np.array([1.0])
    ratio = bounds[1] / bounds[0] if len(bounds) > 1 else 2.0
    y_edges = np.concatenate(([bounds[0] / ratio], bounds))
    x_edges = _dates(np.append(times, times[-1] + step))
    ax = canvas.axes(x + 50, y + 2, w - 56, h - 22)
    _style(ax, canvas.colors)
    ax.grid(False)
    shown = np.ma.masked_less_equal(counts.T, 0)
    top = float(counts.max()) if counts.size else 1.0
    ax.pcolormesh(x_edges, y_edges, shown, cmap=canvas.colors.colormap, norm=PowerNorm(0.5, vmin=0, vmax=max(top, 1)),
                  shading="flat", edgecolors="none")
    ax.set_yscale("log")
    _exemplars(ax, data, canvas.colors)
    ax.set_ylim(y_edges[0], y_edges[-1])
    ax.set_xlim(_dates([data["start"]])[0], _dates([data["end"]])[0])
    unit = str(data.get("unit") or "ms")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    _time_axis(ax, canvas.colors)


def _exemplars(ax: Axes, data: Mapping[str, Any], colors: Theme) -> None:
    """The spans behind a latency chart (``data["exemplars"]``) as small diamonds, as the web page draws them."""
    found = data.get("exemplars") or []
    if found:
        ax.scatter(_dates([e["time"] for e in found]), [e["duration_ms"] for e in found], marker="D", s=14,
                   color=colors.error, alpha=0.85, linewidths=0, zorder=6)  # above the legend box


def _message(canvas: _Canvas, box: _Box, text: str, color: str) -> None:
    x, y, w, h = box
    canvas.text(x + w / 2, y + h / 2, text, size=9, color=color, ha="center")


# --------------------------------------------------------------- helpers


def _style(ax: Axes, colors: Theme) -> None:
    for spine in ax.spines.values():
        spine.set_color(colors.border)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.tick_params(colors=colors.muted, labelsize=7, length=3)
    ax.grid(True, color=colors.grid, linewidth=0.6)
    ax.set_axisbelow(True)


def _time_axis(ax: Axes, colors: Theme) -> None:
    locator = mdates.AutoDateLocator(tz=_UTC, minticks=3, maxticks=8)
    formatter = mdates.ConciseDateFormatter(locator, tz=_UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(formatter)
    ax.xaxis.get_offset_text().set_fontsize(7)
    ax.xaxis.get_offset_text().set_color(colors.muted)


def _dates(times: Sequence[float] | np.ndarray) -> np.ndarray:
    """Unix seconds as matplotlib date numbers (days since matplotlib's epoch)."""
    epoch = mdates.date2num(datetime(1970, 1, 1, tzinfo=_UTC))
    return np.asarray(times, dtype=np.float64) / 86400.0 + epoch


def _has_data(item: Mapping[str, Any]) -> bool:
    if "value" in item:
        return item["value"] is not None
    return any(v is not None for v in item.get("values", ()))


def _theme(name: str) -> Theme:
    if name not in THEMES:
        raise ValueError(f"theme: expected {' or '.join(THEMES)}, got {name!r}")
    return THEMES[name]


def _check_size(name: str, value: int) -> None:
    if not (isinstance(value, int) and MIN_PX <= value <= MAX_PX):
        raise ValueError(f"{name}: must be a whole number of pixels from {MIN_PX} to {MAX_PX}, got {value!r}")


def _range_text(data_by_panel: Mapping[int, Mapping[str, Any] | str]) -> str:
    for data in data_by_panel.values():
        if isinstance(data, Mapping) and "start" in data:
            start, end = (datetime.fromtimestamp(data[k], tz=_UTC) for k in ("start", "end"))
            return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    return ""


def _legend_label(name: str) -> str:
    return " " + name if name.startswith("_") else name  # matplotlib hides labels starting with "_"


def _clip(text: str, width_px: float, size: float) -> str:
    """``text`` cut with an ellipsis to about ``width_px`` at ``size`` points (average glyph width)."""
    fits = int(width_px / (size * 0.62 * _DPI / 72))
    if len(text) <= fits:
        return text
    return text[: max(fits - 1, 0)] + "…" if fits > 1 else ""


def _wrap(text: str, width_px: float, size: float) -> str:
    per_line = max(int(width_px / (size * 0.62 * _DPI / 72)), 8)
    lines = []
    for paragraph in text.splitlines() or [""]:
        while len(paragraph) > per_line:
            lines.append(paragraph[:per_line])
            paragraph = paragraph[per_line:]
        lines.append(paragraph)
    return "\n".join(lines[:8])


def _number(value: float) -> str:
    """Three significant digits without an exponent for everyday magnitudes."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    if magnitude >= 0.01:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.2g}"


def _si(value: float) -> str:
    magnitude = abs(value)
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= factor:
            return f"{_number(value / factor)}{suffix}"
    return _number(value)


def _binary(value: float) -> str:
    magnitude = abs(value)
    for power, suffix in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if magnitude >= 1024**power:
            return f"{_number(value / 1024**power)} {suffix}"
    return f"{_number(value)} B"

"""Panel data: what one panel shows for a time range and a choice of variables, as JSON.

    >>> reader = PanelReader(source, slo=policy, tenant="shop")                         # doctest: +SKIP
    >>> window = time_window(dashboard.time, now, range_="6h", min_step_s=source.window_s)  # doctest: +SKIP
    >>> reader.panel(dashboard, 1, window, bind_variables(dashboard, {"service": ["shop"]}))  # doctest: +SKIP
    {'uid': 'performance', 'panel': 1, 'type': 'line', 'title': 'Response time', 'start': ..., 'series': [...]}

The contract the web UI and the PNG renderer draw from.

Request: ``GET /api/v1/dashboards/{uid}/panels/{id}/data`` with
``range=6h`` (the last 6 hours) or ``from=now-2d&to=now`` (relative as in
:mod:`~trm_otel.dashboards.time_range`, or ISO-8601), neither meaning the
dashboard's ``time``; ``step=`` (a duration; default
:func:`~trm_otel.dashboards.time_range.auto_step`, at most 300 points);
variables as ``var-NAME=value``, repeated for several values
(``var-service=shop&var-service=cart``; ``$__all`` for all), the
variable's ``current`` when not given.

Answer, every type::

    {"uid", "panel": id, "type", "title", "start": s, "end": s, "step": s,
     "unit": options.unit or "", "series": [...]}

``start``/``end`` are the resolved range in unix seconds, ``step`` in seconds.

* ``line``, ``bar``, ``scatter``: each series is ``{"target": i, "name",
  "labels": {...}, "times": [unix s, ...], "values": [float | null, ...]}``.
  Every series has the same ``times``: the multiples of ``step`` within
  ``[start, end]`` (round times, so panels and refreshes line up); a value
  is the target's statistic over the windows starting in ``[t - r, t)``,
  ``r`` being the target's ``[range]`` or ``step``, whichever is longer
  (as Grafana's ``$__rate_interval``: over a day at a 5 m step,
  ``rate(...[1m])`` is each 5 minutes' rate, so no request falls between
  two points and no spike is skipped); ``null`` where the series had no
  data. Bars are the same values; the UI stacks them by time.
* ``pie``, ``stat``, ``table``: each series is ``{"target", "name",
  "labels", "value": float | null}``: the statistic at ``end`` over the
  target's ``[range]``, or over the whole ``[start, end)`` without one.
* ``heatmap`` (targets are histogram selectors without a statistic, e.g.
  ``traces.span.metrics.duration{service.name="shop"}``): ``"series": []``
  plus ``"buckets": [upper bound in ms, ...]`` (ascending, log-spaced from
  the smallest to the largest latency observed, at most
  :data:`HEATMAP_BUCKETS`), ``"times": [column start, ...]`` and
  ``"counts": [[count per bucket] per column]``: every request recorded in
  the stored windows starting in ``[t, t + step)``, all targets together.
  A column ends where a line chart's point stands (``t + step`` is one of
  the multiples of ``step`` in ``[start, end]``), so both read the same
  windows for the same moment; the counts add up to the number of
  requests. A selector's ``[range]`` plays no part: each column is its
  own step.

Line panels whose targets are latency statistics in ms (``pNN``, ``avg``,
``min``, ``max``) of the span series, and heatmaps over them, also carry
``"exemplars": [{"time", "duration_ms", "trace_id", "span_id", "labels",
"attributes"}]`` when the reader has an exemplar lookup: the spans the
windows of ``[start, end)`` kept (see :mod:`trm_otel.processors.exemplars`),
slowest first, at most :data:`MAX_PANEL_EXEMPLARS`. Drawn as points on the
chart, each leads from a slow moment to the trace behind it.

``name`` is the target's ``legend`` with each ``{{label}}`` replaced by the
series' label value, else the label set (``{span.name="GET /cart"}``), else
the expression itself.

Errors: an unknown panel is :class:`UnknownPanel` (404); a bad ``range``,
``from``, ``to``, ``step`` or ``var-NAME`` is :class:`PanelParameterError`
whose message starts with the parameter (400); a target that cannot be
resolved or answered is a :class:`~trm_otel.dashboards.errors.DashboardError`
at its key path (``panels[2].targets[0].expr: 1:5: ...``, 400).

Cost. A panel's targets usually read the same series over the same range
(P50, P95 and P99 of one selector), so a :class:`PanelReader` remembers
what it fetched from the source for as long as it lives: one request, or
one dashboard render. The heatmap re-bins the stored windows' exponential
buckets with numpy in one pass, whatever the number of windows.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trm_otel.config_types import parse_duration
from trm_otel.dashboards.errors import DashboardError
from trm_otel.dashboards.expressions import Selector, check_expr
from trm_otel.dashboards.model import Dashboard, Panel, TimeRange
from trm_otel.dashboards.time_range import auto_step, resolve_range, resolve_time
from trm_otel.dashboards.variables import bind, substitute_expr
from trm_otel.errors import TrmOtelError
from trm_otel.histogram import ExponentialHistogram
from trm_otel.query import Evaluator, Limits, QueryError, parse_query
from trm_otel.query.evaluator import HistogramSumSource
from trm_otel.series_source import CALLS_METRIC, DURATION_METRIC, Matcher, SeriesRef, SeriesSource
from trm_otel.slo import SloPolicy
from trm_otel.views import view_to_dict

__all__ = [
    "ExemplarLookup",
    "HEATMAP_BUCKETS",
    "MAX_PANEL_EXEMPLARS",
    "MAX_POINTS",
    "PanelParameterError",
    "PanelReader",
    "TimeWindow",
    "UnknownPanel",
    "bind_variables",
    "exemplar_matchers",
    "legend_name",
    "rebin",
    "time_window",
]

#: Most points (steps) one series of a panel may have, as the query API allows.
MAX_POINTS = 11000
#: Most latency buckets of a heatmap.
HEATMAP_BUCKETS = 36
_INSTANT_TYPES = ("pie", "stat", "table")
#: Most exemplars one panel answer carries (the slowest).
MAX_PANEL_EXEMPLARS = 50
#: Statistics whose values are span durations in ms: exemplars belong on their axis.
_DURATION_STATS = ("avg", "min", "max")

ExemplarLookup = Callable[[str, Sequence[Matcher], float, float, int], list[tuple[Mapping[str, str], Any]]]
"""``(tenant, matchers, start s, end s, limit)`` -> ``[(series labels, exemplar)]``, slowest first."""
_LEGEND = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


class PanelParameterError(TrmOtelError, ValueError):
    """A request parameter a panel cannot use; the message starts with the parameter's name."""


class UnknownPanel(TrmOtelError, LookupError):
    """The dashboard has no panel with this id."""

    def __init__(self, uid: str, panel_id: int) -> None:
        self.uid, self.panel_id = uid, panel_id
        super().__init__(f"dashboard {uid!r} has no panel with id {panel_id}")


# ------------------------------------------------------------------ time


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The resolved range ``[start, end]`` of a request and its ``step``, in seconds."""

    start: float
    end: float
    step: float

    def eval_times(self) -> np.ndarray:
        """Where range queries are evaluated: multiples of ``step`` in ``[start, end]`` (``[end]`` if none)."""
        first = math.ceil(self.start / self.step - 1e-9)
        last = math.floor(self.end / self.step + 1e-9)
        if first > last:
            return np.array([self.end])
        return np.arange(first, last + 1, dtype=np.float64) * self.step

    def step_starts(self) -> np.ndarray:
        """Heatmap columns ``[t, t + step)``: the ones ending at the :meth:`eval_times`."""
        return self.eval_times() - self.step


def time_window(
    default: TimeRange,
    now_s: float,
    *,
    range_: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    step: str | None = None,
    min_step_s: float = 10.0,
) -> TimeWindow:
    """The window a request asks for; :class:`PanelParameterError` naming the parameter.

    ``range`` (the last ``6h``) and ``from``/``to`` exclude each other;
    without either the dashboard's ``default`` applies, and a lone
    ``from`` runs to now.
    """
    if range_ is not None and (from_ is not None or to is not None):
        raise PanelParameterError("range: give either range or from and to, not both")
    if range_ is not None:
        try:
            start, end = resolve_range(range_, now_s)
        except ValueError as err:
            raise PanelParameterError(f"range: {err}") from None
    else:
        if from_ is None and to is None:
            from_, to = default.from_, default.to
        from_text, to_text = from_ or default.from_, to or "now"
        try:
            start = resolve_time(from_text, now_s)
        except ValueError as err:
            raise PanelParameterError(f"from: {err}") from None
        try:
            end = resolve_time(to_text, now_s, round_up=True)
        except ValueError as err:
            raise PanelParameterError(f"to: {err}") from None
        if not start < end:
            raise PanelParameterError(f"from: {from_text!r} must be before to {to_text!r}")
    if step is None:
        return TimeWindow(start, end, auto_step(start, end, min_step_s=min_step_s))
    try:
        step_s = parse_duration(step)
    except ValueError as err:
        raise PanelParameterError(f"step: {err}") from None
    if step_s < 1.0:
        raise PanelParameterError(f"step: must be at least 1s, got {step!r}")
    points = math.floor((end - start) / step_s) + 1
    if points > MAX_POINTS:
        raise PanelParameterError(
            f"step: {step} gives {points} points over the range, over the limit of {MAX_POINTS}; "
            "use a larger step or a shorter range"
        )
    return TimeWindow(start, end, step_s)


# ------------------------------------------------------------- variables


def bind_variables(dashboard: Dashboard, chosen: Mapping[str, Sequence[str]]) -> dict[str, list[str] | None]:
    """Each variable's values from the ``var-NAME`` parameters, else its ``current``.

    ``None`` stands for "all values" (a regex ``.*``). A parameter naming
    no variable, or a choice a variable cannot take, is a
    :class:`PanelParameterError` naming ``var-NAME``.
    """
    known = [v.name for v in dashboard.variables]
    for name in chosen:
        if name not in known:
            listing = f"its variables: {', '.join(known)}" if known else "it has no variables"
            raise PanelParameterError(f"var-{name}: the dashboard has no variable {name!r} ({listing})")
    bound: dict[str, list[str] | None] = {}
    for variable in dashboard.variables:
        alone = dashboard.model_copy(update={"variables": (variable,)})  # so an error names one variable
        values = {variable.name: list(chosen[variable.name])} if chosen.get(variable.name) else {}
        try:
            bound.update(bind(alone, values))
        except ValueError as err:
            raise PanelParameterError(f"var-{variable.name}: {err}") from None
    return bound


def legend_name(legend: str, labels: Mapping[str, str], expr: str) -> str:
    """A series' display name: ``legend`` with ``{{label}}`` filled in, else the label set, else ``expr``."""
    if legend:
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), legend)
    if labels:
        return "{" + ", ".join(f'{name}="{value}"' for name, value in sorted(labels.items())) + "}"
    return expr


# ---------------------------------------------------------------- reader


class PanelReader:
    """Answers panel data over one source for one tenant; fetches are shared while it lives.

    Make one per request (or per dashboard render): what it remembers is
    the source's answer at that moment.
    """

    def __init__(
        self,
        source: SeriesSource,
        *,
        slo: SloPolicy | None = None,
        tenant: str = "default",
        limits: Limits | None = None,
        exemplars: ExemplarLookup | None = None,
    ) -> None:
        self.source = _remembering(source)
        self.exemplars = exemplars
        self.tenant = tenant
        self.limits = limits if limits is not None else Limits()
        self.evaluator = Evaluator(self.source, slo=slo, limits=self.limits, tenant=tenant)

    def panel(
        self, dashboard: Dashboard, panel_id: int, window: TimeWindow, variables: Mapping[str, list[str] | None]
    ) -> dict[str, Any]:
        """The panel's data (see the module docstring); raises as documented there."""
        for index, panel in enumerate(dashboard.panels):
            if panel.id == panel_id:
                break
        else:
            raise UnknownPanel(dashboard.uid, panel_id)
        exprs = _resolved(panel, index, variables)
        out: dict[str, Any] = {
            "uid": dashboard.uid,
            "panel": panel.id,
            "type": panel.type,
            "title": panel.title,
            "start": window.start,
            "end": window.end,
            "step": window.step,
            "unit": str(panel.options.get("unit") or ""),
            "series": [],
        }
        if panel.type == "heatmap":
            out.update(self._heatmap(index, exprs, window))
        elif panel.type in _INSTANT_TYPES:
            out["series"] = self._instant(panel, index, exprs, window)
        else:
            out["series"] = self._range(panel, index, exprs, window)
        if self.exemplars is not None and panel.type in ("line", "heatmap"):
            selectors = [exemplar_matchers(expr, heatmap=panel.type == "heatmap") for expr in exprs]
            out["exemplars"] = self._exemplars([s for s in selectors if s is not None], window)
        return out

    def _exemplars(self, selectors: list[tuple[Matcher, ...]], window: TimeWindow) -> list[dict[str, Any]]:
        """The slowest exemplars of every selector's span series in the window, each span once."""
        assert self.exemplars is not None
        found: dict[str, dict[str, Any]] = {}
        for matchers in dict.fromkeys(selectors):  # P50, P95 and P99 of one selector: one lookup
            for labels, exemplar in self.exemplars(self.tenant, matchers, window.start, window.end,
                                                   MAX_PANEL_EXEMPLARS):
                item = view_to_dict(exemplar)
                found.setdefault(item["span_id"], {"labels": dict(labels), **item})
        slowest = sorted(found.values(), key=lambda e: -e["duration_ms"])
        return slowest[:MAX_PANEL_EXEMPLARS]

    def _range(self, panel: Panel, index: int, exprs: list[str], window: TimeWindow) -> list[dict[str, Any]]:
        times = window.eval_times()
        time_list = times.tolist()
        series = []
        for j, expr in enumerate(exprs):
            with _at(index, j):
                query = parse_query(expr)
                if query.range_s is None or query.range_s < window.step:
                    query = dataclasses.replace(query, range_s=window.step)
                found = self.evaluator.range(query, float(times[0]), float(times[-1]), window.step)
            for item in found:
                values = np.full(len(times), math.nan)
                at = np.rint((np.asarray(item.times_s) - times[0]) / window.step).astype(np.int64)
                values[at] = item.values
                series.append({
                    "target": j,
                    "name": legend_name(panel.targets[j].legend, item.labels, expr),
                    "labels": item.labels,
                    "times": time_list,
                    "values": [v if math.isfinite(v) else None for v in values.tolist()],
                })
        return series

    def _instant(self, panel: Panel, index: int, exprs: list[str], window: TimeWindow) -> list[dict[str, Any]]:
        series = []
        for j, expr in enumerate(exprs):
            with _at(index, j):
                query = parse_query(expr)
                if query.range_s is None:
                    query = dataclasses.replace(query, range_s=window.end - window.start)
                found = self.evaluator.instant(query, window.end)
            for sample in found:
                series.append({
                    "target": j,
                    "name": legend_name(panel.targets[j].legend, sample.labels, expr),
                    "labels": sample.labels,
                    "value": sample.value if math.isfinite(sample.value) else None,
                })
        return series

    def _heatmap(self, index: int, exprs: list[str], window: TimeWindow) -> dict[str, Any]:
        starts = window.step_starts()
        refs: dict[Hashable, SeriesRef] = {}
        for j, expr in enumerate(exprs):
            with _at(index, j):
                selector = check_expr(expr, heatmap=True)
                assert isinstance(selector, Selector)
                for ref in self._histogram_refs(selector):
                    refs.setdefault(ref.key, ref)
        if len(refs) > self.limits.max_series:
            raise DashboardError([(
                f"panels[{index}].targets",
                f"the selectors match {len(refs)} series, over the limit of {self.limits.max_series} per query; "
                'narrow them with label matchers such as {service.name="..."}',
            )])
        found = self.source.latency_windows(
            list(refs.values()), float(starts[0]), float(starts[-1]) + window.step, step_s=window.step
        )
        windows = [(start, h) for items in found.values() for start, h in items]
        step_of = np.floor((np.fromiter((s for s, _ in windows), np.float64, len(windows)) - starts[0]) / window.step)
        bounds, counts = rebin(
            [h for _, h in windows], np.clip(step_of, 0, len(starts) - 1).astype(np.int64), len(starts)
        )
        return {"buckets": bounds.tolist(), "times": starts.tolist(), "counts": counts.tolist()}

    def _histogram_refs(self, selector: Selector) -> list[SeriesRef]:
        refs = self.source.select(selector.metric, selector.matchers, self.tenant)
        other = sorted({ref.kind for ref in refs if ref.kind != "latency"})
        if other:
            raise QueryError(
                f"{selector.metric} selects {' and '.join(other)} series, which keep no latency buckets; a heatmap "
                "needs latency histograms such as traces.span.metrics.duration or http.server.request.duration",
                1,
            )
        return refs


def exemplar_matchers(expr: str, *, heatmap: bool) -> tuple[Matcher, ...] | None:
    """The matchers of a target whose chart has span durations on its axis (exemplars fit it), else None."""
    try:
        parsed = check_expr(expr, heatmap=heatmap)
    except QueryError:
        return None  # the target's own error is reported with its data
    if parsed.metric not in (DURATION_METRIC, CALLS_METRIC):
        return None
    if isinstance(parsed, Selector):
        return tuple(parsed.matchers)
    if parsed.quantile is None and parsed.stat not in _DURATION_STATS:
        return None  # a rate, count or ratio: durations do not belong on its axis
    return tuple(parsed.matchers)


def rebin(
    histograms: Sequence[ExponentialHistogram], step_of: np.ndarray, steps: int, max_buckets: int = HEATMAP_BUCKETS
) -> tuple[np.ndarray, np.ndarray]:
    """``(upper bounds, counts[step][bucket])``: every histogram's counts in log-spaced buckets.

    The buckets run from the smallest to the largest value observed, no
    finer than the histograms' own buckets. Each exponential bucket goes
    whole to the bucket holding its reported value (its log-midpoint,
    clamped to the histogram's min and max, as its quantiles are), values
    of zero to the first: counts are integers and add up to the
    histograms' total count.
    """
    used = [i for i, h in enumerate(histograms) if h.count]
    if not used:
        return np.zeros(0), np.zeros((steps, 0), dtype=np.int64)
    hs = [histograms[i] for i in used]
    step_of = np.asarray(step_of, dtype=np.int64)[used]
    positive_mins = [h.min for h in hs if h.min > 0]
    high = max(h.max for h in hs)
    low = min(positive_mins) if positive_mins else high
    if not high > 0:
        bounds = np.array([0.0])
    elif not low < high:
        bounds = np.array([high])
    else:
        finest = min(h.scale for h in hs)
        n = int(min(max(math.floor(math.log2(high / low) * 2.0**finest), 1), max_buckets))
        bounds = np.geomspace(low, high, n + 1)[1:]
        bounds[-1] = high
    n = len(bounds)
    grid = np.bincount(step_of * n, weights=[float(h.zero_count) for h in hs], minlength=steps * n)
    lengths = np.fromiter((h.counts.size for h in hs), np.int64, len(hs))
    if lengths.sum():
        counts = np.concatenate([h.counts for h in hs]).astype(np.float64)
        firsts = np.cumsum(lengths) - lengths
        index = np.repeat(np.fromiter((h.offset for h in hs), np.int64, len(hs)) - firsts, lengths)
        index += np.arange(counts.size)
        scales = np.fromiter((h.scale for h in hs), np.int64, len(hs))
        bucket = _target_buckets(index, scales, lengths, bounds)
        # The clamp to [min, max] can only move a histogram's first or last bucket: redo those exactly.
        owners = np.tile(np.flatnonzero(lengths), 2)
        edges = np.concatenate((firsts, firsts + lengths - 1))[np.tile(lengths > 0, 2)]
        mids = np.exp2((index[edges] + 0.5) * np.exp2(-scales[owners].astype(np.float64)))
        lows = np.fromiter((h.min for h in hs), np.float64, len(hs))[owners]
        highs = np.fromiter((h.max for h in hs), np.float64, len(hs))[owners]
        bucket[edges] = np.minimum(np.searchsorted(bounds, np.clip(mids, lows, highs), side="left"), n - 1)
        grid += np.bincount(np.repeat(step_of, lengths) * n + bucket, weights=counts, minlength=steps * n)
    return bounds, np.rint(grid).astype(np.int64).reshape(steps, n)


def _target_buckets(index: np.ndarray, scales: np.ndarray, lengths: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The log bucket of each exponential bucket's log-midpoint: one lookup table per scale in use.

    ``index`` holds every histogram's bucket indexes in turn, ``scales``
    and ``lengths`` each histogram's scale and number of buckets.
    """
    out = np.empty(index.size, dtype=np.int64)
    distinct = np.unique(scales).tolist()
    for s in distinct:
        chosen = slice(None) if len(distinct) == 1 else np.repeat(scales == s, lengths)
        own = index[chosen]
        low = int(own.min())
        table = np.exp2((np.arange(low, int(own.max()) + 1, dtype=np.float64) + 0.5) * 2.0**-s)
        lookup = np.minimum(np.searchsorted(bounds, table, side="left"), len(bounds) - 1)
        out[chosen] = lookup[own - low]
    return out


# --------------------------------------------------------------- helpers


class _at:
    """Turns a query error into a DashboardError at ``panels[i].targets[j].expr``."""

    def __init__(self, index: int, target: int) -> None:
        self.path = f"panels[{index}].targets[{target}].expr"

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if isinstance(error, QueryError):
            raise DashboardError([(self.path, str(error))]) from None


def _resolved(panel: Panel, index: int, variables: Mapping[str, list[str] | None]) -> list[str]:
    exprs, problems = [], []
    for j, target in enumerate(panel.targets):
        try:
            exprs.append(substitute_expr(target.expr, variables))
        except ValueError as err:
            problems.append((f"panels[{index}].targets[{j}].expr", str(err)))
    if problems:
        raise DashboardError(problems)
    return exprs


class _Remembering:
    """A source that answers each distinct question once: targets of a panel share their fetches."""

    def __init__(self, source: SeriesSource) -> None:
        self.inner = source
        self.window_s = source.window_s
        self._answers: dict[Hashable, Any] = {}

    def _once(self, key: Hashable, ask: Any) -> Any:
        if key not in self._answers:
            self._answers[key] = ask()
        return self._answers[key]

    def select(self, metric: str, matchers: Sequence[Matcher], tenant: str = "default") -> list[SeriesRef]:
        return list(self._once(("select", metric, tuple(matchers), tenant),
                               lambda: self.inner.select(metric, matchers, tenant)))

    def latency_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float, *, step_s: float | None = None
    ) -> dict[Hashable, list[tuple[float, ExponentialHistogram]]]:
        key = ("latency", tuple(ref.key for ref in refs), start_s, end_s, step_s)
        return self._once(key, lambda: self.inner.latency_windows(refs, start_s, end_s, step_s=step_s))  # type: ignore[no-any-return]

    def scalar_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float
    ) -> dict[Hashable, list[tuple[float, float]]]:
        key = ("scalar", tuple(ref.key for ref in refs), start_s, end_s)
        return self._once(key, lambda: self.inner.scalar_windows(refs, start_s, end_s))  # type: ignore[no-any-return]


class _RememberingWithSums(_Remembering):
    """Also the optional histogram sums, only when the wrapped source has them (the evaluator checks)."""

    def histogram_sum_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float
    ) -> dict[Hashable, list[tuple[float, float]]]:
        inner: Any = self.inner
        key = ("sums", tuple(ref.key for ref in refs), start_s, end_s)
        return self._once(key, lambda: inner.histogram_sum_windows(refs, start_s, end_s))  # type: ignore[no-any-return]


def _remembering(source: SeriesSource) -> _Remembering:
    return _RememberingWithSums(source) if isinstance(source, HistogramSumSource) else _Remembering(source)

"""Levels, Apdex, bottlenecks and trends: pure functions from histograms to views.

    >>> from trm_otel.slo import SloTarget
    >>> performance_level(p95_ms=240.0, error_rate=0.002, slo=SloTarget(p95_ms=300))
    'good'
    >>> round(student_t_two_sided_p(2.228, 10), 3)
    0.05

Everything here takes numbers or histograms and returns views; nothing reads
clocks, storage or config, so the SDK, the daemon and the tests compute the
same answers from the same inputs. Statistics are done by hand (least squares
and a Student t-test via the regularized incomplete beta function) to keep
numpy the only numeric dependency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from trm_otel.slo import SloTarget
from trm_otel.views import Bottleneck, LatencyView, Level, Trend, TrendLine

if TYPE_CHECKING:
    from trm_otel.histogram import ExponentialHistogram

__all__ = [
    "DOMINANT_CHILD_SHARE",
    "ERROR_LEVEL_CUTOFFS",
    "LATENCY_LEVEL_CUTOFFS",
    "ChildTime",
    "apdex",
    "bottlenecks",
    "latency_view",
    "performance_level",
    "regularized_incomplete_beta",
    "student_t_two_sided_p",
    "trend",
    "trends",
]

# --- levels ------------------------------------------------------------------

#: ``(largest P95 / SLO P95 ratio, level)``, checked in order; above the last
#: ratio the level is ``critical``. Within half the objective is excellent,
#: within it good, up to twice fair, up to four times poor.
LATENCY_LEVEL_CUTOFFS: tuple[tuple[float, Level], ...] = (
    (0.5, "excellent"),
    (1.0, "good"),
    (2.0, "fair"),
    (4.0, "poor"),
)

#: ``(largest error rate / SLO error rate ratio, level)``, as above. Errors
#: get more room before critical (5x) because rates over small counts jump.
ERROR_LEVEL_CUTOFFS: tuple[tuple[float, Level], ...] = (
    (0.1, "excellent"),
    (1.0, "good"),
    (2.0, "fair"),
    (5.0, "poor"),
)

#: A child operation taking at least this share of its parent's time makes
#: the parent "mostly one child" (a ``dominant_child`` bottleneck).
DOMINANT_CHILD_SHARE = 0.5

_LEVEL_RANK: dict[str, int] = {"excellent": 0, "good": 1, "fair": 2, "poor": 3, "critical": 4}


def _level_for(ratio: float, cutoffs: tuple[tuple[float, Level], ...]) -> Level:
    for limit, level in cutoffs:
        if ratio <= limit:
            return level
    return "critical"


def performance_level(p95_ms: float, error_rate: float, slo: SloTarget) -> Level:
    """The worse of the latency level and the error level.

    Judging both and keeping the worse means a fast endpoint that fails a lot
    is not reported healthy. A NaN P95 (no successful data) is judged by
    errors alone; a NaN error rate counts as no errors.
    """
    error_ratio = error_rate / slo.error_rate if math.isfinite(error_rate) else 0.0
    level = _level_for(error_ratio, ERROR_LEVEL_CUTOFFS)
    if not math.isnan(p95_ms):
        latency = _level_for(p95_ms / slo.p95_ms, LATENCY_LEVEL_CUTOFFS)
        if _LEVEL_RANK[latency] > _LEVEL_RANK[level]:
            level = latency
    return level


# --- Apdex and latency views -------------------------------------------------


def apdex(satisfied_hist: ExponentialHistogram, errors: int, threshold_ms: float) -> float:
    """Apdex of the successful requests in ``satisfied_hist`` plus ``errors`` failed ones.

    ``(satisfied + tolerating / 2) / total`` with satisfied ``<= T`` and
    tolerating ``<= 4T``; failed requests count as frustrated however fast
    they failed, since a quick error is not a satisfied user. NaN when there
    are no requests at all.
    """
    total = satisfied_hist.count + errors
    if total <= 0:
        return math.nan
    if satisfied_hist.count == 0:
        return 0.0
    satisfied = satisfied_hist.count_at_most(threshold_ms)
    tolerating = max(0.0, satisfied_hist.count_at_most(4.0 * threshold_ms) - satisfied)
    return min(1.0, max(0.0, (satisfied + tolerating / 2.0) / total))


def latency_view(
    service: str,
    endpoint: str,
    ok: ExponentialHistogram,
    errors: ExponentialHistogram,
    seconds: float,
    slo: SloTarget,
) -> LatencyView:
    """One endpoint's view from its successful and failed latency histograms (ms).

    Percentiles cover all requests (a slow timeout is still slow) by merging
    the two histograms; Apdex treats failures as frustrated. Milliseconds are
    rounded to 3 decimals and rates to 4, well inside the sketch's error, so
    JSON stays short.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    merged = type(ok).merged([ok, errors])
    count = int(ok.count + errors.count)
    n_errors = int(errors.count)
    if count:
        p50, p95, p99 = (float(q) for q in merged.quantiles([0.5, 0.95, 0.99]))
        max_ms = float(merged.max)
        error_rate = n_errors / count
    else:
        p50 = p95 = p99 = max_ms = math.nan
        error_rate = 0.0
    return LatencyView(
        service=service,
        endpoint=endpoint,
        count=count,
        errors=n_errors,
        rps=round(count / seconds, 4),
        error_rate=round(error_rate, 4),
        p50_ms=round(p50, 3),
        p95_ms=round(p95, 3),
        p99_ms=round(p99, 3),
        max_ms=round(max_ms, 3),
        apdex=round(apdex(ok, n_errors, slo.apdex_threshold_ms), 4),
        level=performance_level(p95, error_rate, slo),
        approximate=bool(ok.approximate or errors.approximate),
    )


# --- bottlenecks -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildTime:
    """How a parent endpoint's time splits with one child endpoint.

    Produced by the aggregation over matched parent/child span pairs in the
    range: the sum of parent durations, of that child's durations, of the
    parent's self time (time in no child), and the number of parent spans.
    """

    service: str
    parent_endpoint: str
    child_endpoint: str
    parent_total_ms: float
    child_total_ms: float
    parent_self_ms: float
    parents: int


_KIND_ORDER = {"slo_breach": 0, "error_hotspot": 1, "dominant_child": 2, "time_share": 3}


def bottlenecks(
    views: Sequence[LatencyView],
    slos: Callable[[str, str], SloTarget],
    child_time: Sequence[ChildTime] = (),
    *,
    total_ms: Mapping[tuple[str, str], float] | None = None,
    limit: int = 10,
    min_share: float = 0.05,
) -> list[Bottleneck]:
    """The endpoints most worth a look, worst first (at most ``limit``).

    Shares are of the total time over ``views``: ``total_ms[(service,
    endpoint)]`` when given (the exact sum of durations), else ``count *
    p50_ms`` (a view has no mean). Scores, all in ``[0, 1]`` so kinds rank
    against each other:

    - ``time_share``: the share itself, reported from ``min_share`` up;
    - ``slo_breach``: ``min(1, p95/slo - 1) * sqrt(max(request share, 0.01))``,
      so how far over the objective counts, and a breach most requests see
      outranks an equal breach on a rarely called endpoint;
    - ``error_hotspot``: ``min(1, (rate/slo - 1) / 4) * sqrt(max(share of
      all errors, 0.01))``, saturating where the error level turns critical;
    - ``dominant_child``: ``min(1, child share) * parent's time share`` (1 when
      no views are given to compare against).
    """
    totals = [_view_total_ms(v, total_ms) for v in views]
    grand_total = float(sum(totals))
    total_count = sum(v.count for v in views)
    total_errors = sum(v.errors for v in views)
    time_by_key: dict[tuple[str, str], float] = {}
    found: list[Bottleneck] = []

    for view, spent in zip(views, totals):
        key = (view.service, view.endpoint)
        time_by_key[key] = time_by_key.get(key, 0.0) + spent
        share = spent / grand_total if grand_total > 0 else 0.0
        if spent > 0 and share >= min_share:
            found.append(_time_share(view, spent, share))
        slo = slos(view.service, view.endpoint)
        if math.isfinite(view.p95_ms) and view.p95_ms > slo.p95_ms:
            request_share = view.count / total_count if total_count else 0.0
            found.append(_slo_breach(view, slo, request_share))
        if view.errors >= 1 and view.error_rate > slo.error_rate:
            found.append(_error_hotspot(view, slo, view.errors / total_errors))

    for child in child_time:
        if child.parent_total_ms <= 0:
            continue
        child_share = child.child_total_ms / child.parent_total_ms
        if child_share < DOMINANT_CHILD_SHARE:
            continue
        parent_total = time_by_key.get((child.service, child.parent_endpoint), child.parent_total_ms)
        parent_share = min(1.0, parent_total / grand_total) if grand_total > 0 else 1.0
        found.append(_dominant_child(child, child_share, parent_share))

    found.sort(key=lambda b: (-b.score, _KIND_ORDER[b.kind], b.service, b.endpoint))
    return found[: max(0, limit)]


def _view_total_ms(view: LatencyView, total_ms: Mapping[tuple[str, str], float] | None) -> float:
    if total_ms is not None:
        given = total_ms.get((view.service, view.endpoint))
        if given is not None and math.isfinite(given):
            return max(0.0, float(given))
    if view.count and math.isfinite(view.p50_ms):
        return view.count * view.p50_ms
    return 0.0


def _time_share(view: LatencyView, spent: float, share: float) -> Bottleneck:
    mean = spent / view.count if view.count else math.nan
    return Bottleneck(
        kind="time_share",
        service=view.service,
        endpoint=view.endpoint,
        score=round(share, 4),
        summary=(
            f"{view.endpoint} takes {_pct(share)} of all serving time "
            f"({view.count:,} requests, mean {_ms(mean)})"
        ),
        evidence={"share": round(share, 4), "total_ms": round(spent, 3), "count": view.count, "mean_ms": round(mean, 3)},
    )


def _slo_breach(view: LatencyView, slo: SloTarget, request_share: float) -> Bottleneck:
    ratio = view.p95_ms / slo.p95_ms
    score = min(1.0, ratio - 1.0) * math.sqrt(max(request_share, 0.01))
    return Bottleneck(
        kind="slo_breach",
        service=view.service,
        endpoint=view.endpoint,
        score=round(score, 4),
        summary=(
            f"{view.endpoint} P95 is {_ms(view.p95_ms)}, {ratio:.1f}x its {_ms(slo.p95_ms)} SLO "
            f"({view.count:,} requests)"
        ),
        evidence={
            "p95_ms": view.p95_ms,
            "slo_p95_ms": slo.p95_ms,
            "ratio": round(ratio, 4),
            "count": view.count,
            "request_share": round(request_share, 4),
        },
    )


def _error_hotspot(view: LatencyView, slo: SloTarget, share_of_errors: float) -> Bottleneck:
    critical_ratio = ERROR_LEVEL_CUTOFFS[-1][0]
    excess = (view.error_rate / slo.error_rate - 1.0) / (critical_ratio - 1.0)
    score = min(1.0, excess) * math.sqrt(max(share_of_errors, 0.01))
    return Bottleneck(
        kind="error_hotspot",
        service=view.service,
        endpoint=view.endpoint,
        score=round(score, 4),
        summary=(
            f"{view.endpoint} fails {_pct(view.error_rate)} of requests against a {_pct(slo.error_rate)} SLO "
            f"({view.errors:,} errors, {_pct(share_of_errors)} of all errors)"
        ),
        evidence={
            "errors": view.errors,
            "error_rate": view.error_rate,
            "share_of_errors": round(share_of_errors, 4),
            "slo_error_rate": slo.error_rate,
        },
    )


def _dominant_child(child: ChildTime, child_share: float, parent_share: float) -> Bottleneck:
    calls = max(child.parents, 1)
    return Bottleneck(
        kind="dominant_child",
        service=child.service,
        endpoint=child.child_endpoint,
        score=round(min(1.0, child_share) * parent_share, 4),
        summary=(
            f"{child.parent_endpoint} spends {_pct(child_share)} of its time in {child.child_endpoint} "
            f"({_ms(child.child_total_ms / calls)} of {_ms(child.parent_total_ms / calls)} per call "
            f"over {child.parents:,} calls)"
        ),
        evidence={
            "parent_endpoint": child.parent_endpoint,
            "child_share": round(child_share, 4),
            "parent_total_ms": round(child.parent_total_ms, 3),
            "child_total_ms": round(child.child_total_ms, 3),
            "parent_self_ms": round(child.parent_self_ms, 3),
            "traces": child.parents,
        },
    )


def _pct(fraction: float) -> str:
    """82%, 2.5%, 0.05%: whole percent from 10% up, two significant digits below."""
    percent = fraction * 100.0
    return f"{percent:.0f}%" if percent >= 10 else f"{percent:.2g}%"


def _ms(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


# --- the Student t distribution ------------------------------------------------


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)``, the CDF of the Beta(a, b) distribution at ``x``.

    Evaluated by its continued fraction (modified Lentz), on whichever side
    of the mean converges fast; the only special function needed is
    ``math.lgamma``. Accurate to about 1e-12 for the ``a, b`` a t-test uses.
    """
    if not (a > 0 and b > 0):
        raise ValueError("a and b must be positive")
    if math.isnan(x):
        return math.nan
    return _betainc(a, b, x, 1.0 - x)


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """``I_x(a, b)`` with ``y = 1 - x`` passed in, so callers keep its precision."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = a * math.log(x) + b * math.log(y) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def _beta_fraction(a: float, b: float, x: float, *, eps: float = 1e-15, max_terms: int = 100_000) -> float:
    """``1 / (1 + d1 / (1 + d2 / (1 + ...)))``, the incomplete beta continued fraction.

    ``d(2m+1) = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1))`` and
    ``d(2m) = m(b-m)x / ((a+2m-1)(a+2m))``; terms converge in about
    ``sqrt(max(a, b))`` steps, hence the generous ``max_terms``.
    """
    tiny = 1e-300
    f = 1.0
    c = 1.0
    d = 0.0
    for j in range(1, max_terms + 1):
        m, odd = divmod(j, 2)
        if odd:
            coef = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:
            coef = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + coef * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + coef / c
        if abs(c) < tiny:
            c = tiny
        delta = c * d
        f *= delta
        if abs(delta - 1.0) < eps:
            break
    return 1.0 / f


def student_t_two_sided_p(t: float, df: float) -> float:
    """``P(|T| >= |t|)`` for Student's t with ``df`` degrees of freedom.

    Uses ``I_{df/(df+t^2)}(df/2, 1/2)``; the complement ``t^2/(df+t^2)`` is
    computed directly, not as ``1 - x``, so tiny p-values keep their digits.
    Infinite ``df`` is the normal distribution.
    """
    if math.isnan(t) or math.isnan(df) or df <= 0:
        return math.nan
    t = abs(t)
    if math.isinf(t):
        return 0.0
    if math.isinf(df):
        return math.erfc(t / math.sqrt(2.0))
    t2 = t * t
    return min(1.0, _betainc(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2)))


# --- trends ------------------------------------------------------------------


def _fit_line(x: np.ndarray, y: np.ndarray, at: float, alpha: float) -> TrendLine:
    """Least squares ``y = intercept + slope * x`` with a t-test of ``slope == 0``.

    Degenerate inputs get defined answers instead of numpy warnings: no
    spread in ``x`` gives a flat line through the mean (p = 1); fewer than
    three points cannot be tested (p = 1); an exact fit is significant iff
    the slope is non-zero. ``r_squared`` is 0 when ``y`` has no variance.
    """
    n = int(x.size)
    y_mean = float(y.mean()) if n else math.nan
    x_mean = float(x.mean()) if n else math.nan
    dx = x - x_mean
    dy = y - y_mean
    sxx = float(dx @ dx)
    if n < 2 or not sxx > 0:
        return TrendLine(slope=0.0, intercept=y_mean, r_squared=0.0, p_value=1.0, significant=False, forecast=y_mean)
    slope = float(dx @ dy) / sxx
    resid = dy - slope * dx
    sse = float(resid @ resid)
    syy = float(dy @ dy)
    r_squared = min(1.0, max(0.0, 1.0 - sse / syy)) if syy > 0 else 0.0
    df = n - 2
    if df < 1:
        p_value = 1.0
    elif sse <= 1e-20 * syy:
        p_value = 0.0 if slope != 0.0 else 1.0
    else:
        p_value = student_t_two_sided_p(slope / math.sqrt(sse / df / sxx), df)
    return TrendLine(
        slope=slope,
        intercept=y_mean - slope * x_mean,
        r_squared=r_squared,
        p_value=p_value,
        significant=bool(p_value < alpha),
        forecast=y_mean + slope * (at - x_mean),
    )


def trend(
    service: str,
    endpoint: str,
    window_starts_s: np.ndarray,
    p95_ms: np.ndarray,
    counts: np.ndarray,
    window_s: float,
    slo: SloTarget,
    *,
    alpha: float = 0.05,
    min_windows: int = 4,
) -> Trend | None:
    """Where one endpoint's P95 and throughput are heading, or None without enough data.

    Each window's statistic is placed at the window's midpoint, so the lines
    read as "value at time t" (seconds, same clock as ``window_starts_s``)
    and ``forecast`` is the value at the end of the window after the last
    one. Windows with a NaN P95 (no requests) are left out of the P95 fit
    only; ``None`` when fewer than ``min_windows`` remain. A direction needs
    a slope whose two-sided t-test has ``p < alpha``: a line through noise
    must not page anyone. ``slo_breach_in_s`` is 0 when the fitted P95 at
    the latest window is already at or over the SLO, else (when degrading)
    the time from the end of the last window until the line reaches it.
    """
    if not window_s > 0:
        raise ValueError(f"window_s must be positive, got {window_s!r}")
    starts = np.asarray(window_starts_s, dtype=np.float64).ravel()
    p95 = np.asarray(p95_ms, dtype=np.float64).ravel()
    n = np.asarray(counts, dtype=np.float64).ravel()
    if not starts.size == p95.size == n.size:
        raise ValueError(f"series lengths differ: {starts.size}, {p95.size}, {n.size}")
    ok = np.isfinite(starts)
    usable = ok & np.isfinite(p95)
    if int(usable.sum()) < max(min_windows, 1):
        return None

    mid = starts + window_s / 2.0
    last_start = float(starts[ok].max())
    last_end = last_start + window_s
    at = last_end + window_s
    p95_line = _fit_line(mid[usable], p95[usable], at, alpha)
    rate_ok = ok & np.isfinite(n)
    rps_line = _fit_line(mid[rate_ok], n[rate_ok] / window_s, at, alpha)

    direction: Literal["improving", "degrading", "stable"] = "stable"
    if p95_line.significant and p95_line.slope > 0:
        direction = "degrading"
    elif p95_line.significant and p95_line.slope < 0:
        direction = "improving"
    throughput: Literal["rising", "falling", "stable"] = "stable"
    if rps_line.significant and rps_line.slope > 0:
        throughput = "rising"
    elif rps_line.significant and rps_line.slope < 0:
        throughput = "falling"

    latest = p95_line.intercept + p95_line.slope * (last_start + window_s / 2.0)
    breach_in: float | None = None
    if latest >= slo.p95_ms:
        breach_in = 0.0
    elif direction == "degrading":
        crossing = float(mid[usable].mean()) + (slo.p95_ms - float(p95[usable].mean())) / p95_line.slope
        breach_in = max(0.0, crossing - last_end)

    return Trend(
        service=service,
        endpoint=endpoint,
        windows=int(starts.size),
        window_s=float(window_s),
        direction=direction,
        throughput_direction=throughput,
        p95_ms=p95_line,
        rps=rps_line,
        slo_p95_ms=slo.p95_ms,
        slo_breach_in_s=breach_in,
    )


def trends(
    series: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]],
    window_s: float,
    slos: Callable[[str, str], SloTarget],
    *,
    alpha: float = 0.05,
    min_windows: int = 4,
) -> list[Trend]:
    """:func:`trend` for every ``(service, endpoint)`` with enough data.

    Degrading endpoints come first (they are the ones to act on), then all
    by P95 slope, steepest rise first.
    """
    out: list[Trend] = []
    for (service, endpoint), (starts, p95, counts) in series.items():
        found = trend(
            service, endpoint, starts, p95, counts, window_s, slos(service, endpoint),
            alpha=alpha, min_windows=min_windows,
        )
        if found is not None:
            out.append(found)
    out.sort(key=lambda t: (t.direction != "degrading", -t.p95_ms.slope, t.service, t.endpoint))
    return out

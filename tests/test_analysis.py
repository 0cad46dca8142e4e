"""Levels, Apdex, latency views, bottlenecks, the t distribution and trends."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from trm_otel.analysis import (
    ERROR_LEVEL_CUTOFFS,
    LATENCY_LEVEL_CUTOFFS,
    ChildTime,
    apdex,
    bottlenecks,
    latency_view,
    performance_level,
    regularized_incomplete_beta,
    student_t_two_sided_p,
    trend,
    trends,
)
from trm_otel.histogram import ExponentialHistogram
from trm_otel.slo import SloPolicy, SloTarget
from trm_otel.views import LatencyView

SLO = SloTarget(p95_ms=100.0, error_rate=0.01)


def hist(*values: float | np.ndarray) -> ExponentialHistogram:
    h = ExponentialHistogram()
    data = np.concatenate([np.atleast_1d(np.asarray(v, dtype=float)) for v in values]) if values else np.empty(0)
    if data.size:
        h.record(data)
    return h


# --- levels ------------------------------------------------------------------


def test_cutoffs_are_the_documented_ones() -> None:
    assert LATENCY_LEVEL_CUTOFFS == ((0.5, "excellent"), (1.0, "good"), (2.0, "fair"), (4.0, "poor"))
    assert ERROR_LEVEL_CUTOFFS == ((0.1, "excellent"), (1.0, "good"), (2.0, "fair"), (5.0, "poor"))


@pytest.mark.parametrize(
    ("p95", "level"),
    [
        (0.0, "excellent"),
        (50.0, "excellent"),
        (50.001, "good"),
        (100.0, "good"),
        (100.001, "fair"),
        (200.0, "fair"),
        (200.001, "poor"),
        (400.0, "poor"),
        (400.001, "critical"),
        (math.inf, "critical"),
    ],
)
def test_latency_level_boundaries(p95: float, level: str) -> None:
    assert performance_level(p95, 0.0, SLO) == level


@pytest.mark.parametrize(
    ("rate", "level"),
    [
        (0.0, "excellent"),
        (0.001, "excellent"),
        (0.0011, "good"),
        (0.01, "good"),
        (0.0101, "fair"),
        (0.02, "fair"),
        (0.0201, "poor"),
        (0.05, "poor"),
        (0.0501, "critical"),
        (1.0, "critical"),
    ],
)
def test_error_level_boundaries(rate: float, level: str) -> None:
    assert performance_level(10.0, rate, SLO) == level


def test_level_is_the_worse_of_both() -> None:
    assert performance_level(30.0, 0.5, SLO) == "critical"
    assert performance_level(350.0, 0.0, SLO) == "poor"
    assert performance_level(150.0, 0.015, SLO) == "fair"


def test_no_latency_data_is_judged_by_errors() -> None:
    assert performance_level(math.nan, 0.0, SLO) == "excellent"
    assert performance_level(math.nan, 1.0, SLO) == "critical"
    assert performance_level(math.nan, math.nan, SLO) == "excellent"


# --- Apdex -------------------------------------------------------------------


def test_apdex_hand_computed() -> None:
    # T = 100 ms: 60 satisfied (<= 100), 20 tolerating (<= 400), 10 frustrated,
    # 10 failed -> (60 + 20 / 2) / 100.
    ok = hist(np.full(30, 20.0), np.full(30, 80.0), np.full(20, 300.0), np.full(10, 1500.0))
    assert ok.count == 90
    assert apdex(ok, 10, 100.0) == pytest.approx(0.70, abs=1e-9)
    assert apdex(ok, 0, 100.0) == pytest.approx(70 / 90, abs=1e-9)
    assert apdex(ok, 0, 2000.0) == pytest.approx(1.0)


def test_apdex_without_requests() -> None:
    assert math.isnan(apdex(hist(), 0, 100.0))
    assert apdex(hist(), 5, 100.0) == 0.0


# --- latency views -----------------------------------------------------------


def test_latency_view_numbers() -> None:
    rng = np.random.default_rng(7)
    ok_values = rng.lognormal(mean=math.log(40.0), sigma=0.5, size=980)
    err_values = rng.uniform(500.0, 1000.0, size=20)
    view = latency_view("checkout", "POST /pay", hist(ok_values), hist(err_values), 10.0, SLO)
    everything = np.concatenate([ok_values, err_values])

    assert (view.service, view.endpoint) == ("checkout", "POST /pay")
    assert (view.count, view.errors) == (1000, 20)
    assert view.rps == 100.0
    assert view.error_rate == 0.02
    for got, q in [(view.p50_ms, 50), (view.p95_ms, 95), (view.p99_ms, 99)]:
        assert got == pytest.approx(np.percentile(everything, q), rel=0.03)
    assert view.max_ms == pytest.approx(everything.max(), rel=0.01)
    satisfied = np.sum(ok_values <= 100.0)
    tolerating = np.sum((ok_values > 100.0) & (ok_values <= 400.0))
    assert view.apdex == pytest.approx((satisfied + tolerating / 2) / 1000, abs=0.005)
    assert view.level == "fair"  # latency good, errors 2x the SLO
    assert view.approximate is False
    assert view.p95_ms == round(view.p95_ms, 3)
    assert view.apdex == round(view.apdex, 4)


def test_latency_view_without_requests() -> None:
    view = latency_view("s", "e", hist(), hist(), 10.0, SLO)
    assert (view.count, view.errors, view.rps, view.error_rate) == (0, 0, 0.0, 0.0)
    assert all(math.isnan(x) for x in (view.p50_ms, view.p95_ms, view.p99_ms, view.max_ms, view.apdex))
    assert view.level == "excellent"


def test_latency_view_only_errors() -> None:
    view = latency_view("s", "e", hist(), hist([5.0, 6.0]), 2.0, SLO)
    assert (view.count, view.errors, view.rps, view.error_rate, view.apdex) == (2, 2, 1.0, 1.0, 0.0)
    assert view.level == "critical"


def test_latency_view_uses_the_apdex_threshold() -> None:
    ok = hist(np.full(10, 150.0))
    loose = latency_view("s", "e", ok, hist(), 1.0, SloTarget(p95_ms=100.0, apdex_t_ms=200.0))
    strict = latency_view("s", "e", ok, hist(), 1.0, SloTarget(p95_ms=100.0))
    assert (loose.apdex, strict.apdex) == (1.0, 0.5)


# --- bottlenecks -------------------------------------------------------------


def view(endpoint: str, count: int, p50: float, p95: float, errors: int = 0, service: str = "shop") -> LatencyView:
    return LatencyView(
        service=service,
        endpoint=endpoint,
        count=count,
        errors=errors,
        rps=count / 60,
        error_rate=errors / count if count else 0.0,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p95,
        max_ms=p95,
        apdex=1.0,
        level="good",
    )


def slos(service: str, endpoint: str) -> SloTarget:
    return SloTarget(p95_ms=300.0, error_rate=0.01)


def by_kind(found: list, kind: str) -> list:
    return [b for b in found if b.kind == kind]


def test_time_share_culprit() -> None:
    views = [view("GET /search", 1000, 80.0, 150.0), view("GET /home", 1000, 10.0, 20.0), view("GET /ping", 10, 1.0, 2.0)]
    found = bottlenecks(views, slos)
    shares = by_kind(found, "time_share")
    assert [b.endpoint for b in shares] == ["GET /search", "GET /home"]  # /ping is under min_share
    top = shares[0]
    total = 80_000 + 10_000 + 10
    assert top.score == round(80_000 / total, 4)
    assert top.evidence == {"share": round(80_000 / total, 4), "total_ms": 80_000.0, "count": 1000, "mean_ms": 80.0}
    assert top.summary == "GET /search takes 89% of all serving time (1,000 requests, mean 80.0 ms)"
    assert found[0] is top


def test_time_share_prefers_exact_totals() -> None:
    views = [view("A", 100, 10.0, 20.0), view("B", 100, 10.0, 20.0)]
    found = bottlenecks(views, slos, total_ms={("shop", "A"): 9000.0}, min_share=0.5)
    assert [(b.endpoint, b.evidence["total_ms"], b.evidence["mean_ms"]) for b in found] == [("A", 9000.0, 90.0)]
    assert found[0].score == 0.9


def test_slo_breach_ranks_heavy_traffic_first() -> None:
    views = [view("GET /rare", 10, 100.0, 900.0), view("GET /busy", 5000, 50.0, 450.0), view("GET /fine", 5000, 50.0, 250.0)]
    breaches = by_kind(bottlenecks(views, slos, min_share=1.0), "slo_breach")
    assert [b.endpoint for b in breaches] == ["GET /busy", "GET /rare"]
    busy, rare = breaches
    assert busy.score == round(0.5 * math.sqrt(5000 / 10010), 4)
    assert rare.score == round(1.0 * math.sqrt(0.01), 4)
    assert busy.evidence == {"p95_ms": 450.0, "slo_p95_ms": 300.0, "ratio": 1.5, "count": 5000, "request_share": 0.4995}
    assert busy.summary == "GET /busy P95 is 450 ms, 1.5x its 300 ms SLO (5,000 requests)"


def test_error_hotspot() -> None:
    views = [view("POST /pay", 1000, 50.0, 100.0, errors=300), view("GET /cart", 1000, 50.0, 100.0, errors=5), view("GET /x", 100, 1.0, 2.0, errors=2)]
    hot = by_kind(bottlenecks(views, slos, min_share=1.0), "error_hotspot")
    assert [b.endpoint for b in hot] == ["POST /pay", "GET /x"]  # /cart is within its 1% SLO
    pay = hot[0]
    assert pay.evidence == {"errors": 300, "error_rate": 0.3, "share_of_errors": round(300 / 307, 4), "slo_error_rate": 0.01}
    assert pay.score == round(math.sqrt(300 / 307), 4)
    assert pay.summary == "POST /pay fails 30% of requests against a 1% SLO (300 errors, 98% of all errors)"
    # 2% against 1%: excess (2 - 1) / 4; a share of errors under 1% counts as 1%.
    assert hot[1].score == round(0.25 * math.sqrt(0.01), 4)


def test_dominant_child() -> None:
    views = [view("POST /checkout", 1000, 500.0, 290.0), view("GET /home", 1000, 100.0, 200.0)]
    children = [
        ChildTime("shop", "POST /checkout", "SELECT orders", 500_000.0, 410_000.0, 40_000.0, 1000),
        ChildTime("shop", "POST /checkout", "GET cache", 500_000.0, 50_000.0, 40_000.0, 1000),
    ]
    found = bottlenecks(views, slos, children, min_share=1.0)
    assert [b.kind for b in found] == ["dominant_child"]
    child = found[0]
    assert (child.service, child.endpoint) == ("shop", "SELECT orders")
    assert child.score == round(0.82 * 500 / 600, 4)
    assert child.evidence == {
        "parent_endpoint": "POST /checkout",
        "child_share": 0.82,
        "parent_total_ms": 500_000.0,
        "child_total_ms": 410_000.0,
        "parent_self_ms": 40_000.0,
        "traces": 1000,
    }
    assert child.summary == "POST /checkout spends 82% of its time in SELECT orders (410 ms of 500 ms per call over 1,000 calls)"


def test_dominant_child_without_views() -> None:
    found = bottlenecks([], slos, [ChildTime("s", "GET /a", "db", 100.0, 60.0, 40.0, 4)])
    assert [(b.kind, b.score) for b in found] == [("dominant_child", 0.6)]
    assert found[0].summary == "GET /a spends 60% of its time in db (15.0 ms of 25.0 ms per call over 4 calls)"


def test_ranking_across_kinds_and_limit() -> None:
    views = [
        view("POST /pay", 2000, 400.0, 1200.0, errors=1000),  # breach + hotspot + time share
        view("GET /home", 2000, 50.0, 80.0),
        view("GET /rare", 5, 10.0, 900.0),
    ]
    found = bottlenecks(views, slos)
    assert [(b.kind, b.endpoint, b.score) for b in found] == [
        ("error_hotspot", "POST /pay", 1.0),
        ("time_share", "POST /pay", round(800_000 / 900_050, 4)),
        ("slo_breach", "POST /pay", round(math.sqrt(2000 / 4005), 4)),
        ("time_share", "GET /home", round(100_000 / 900_050, 4)),
        ("slo_breach", "GET /rare", 0.1),
    ]
    assert [b.score for b in found] == sorted((b.score for b in found), reverse=True)
    assert len(bottlenecks(views, slos, limit=2)) == 2
    assert bottlenecks(views, slos, limit=0) == []


def test_views_without_data_are_ignored() -> None:
    empty = view("GET /none", 0, math.nan, math.nan)
    assert bottlenecks([empty], slos) == []


def test_per_endpoint_slos_are_used() -> None:
    policy = SloPolicy.model_validate({"services": {"shop": {"endpoints": {"GET /slow": {"p95_ms": 1000}}}}})
    views = [view("GET /slow", 100, 300.0, 800.0), view("GET /fast", 100, 300.0, 800.0)]
    breaches = by_kind(bottlenecks(views, policy.for_endpoint), "slo_breach")
    assert [b.endpoint for b in breaches] == ["GET /fast"]


# --- the t distribution --------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [
        (2.228, 10, 0.05),
        (3.169, 10, 0.01),
        (12.706, 1, 0.05),
        (4.303, 2, 0.05),
        (2.042, 30, 0.05),
        (2.750, 30, 0.01),
        (1.96, 1e6, 0.05),
        (2.576, 1e6, 0.01),
        (1.812, 10, 0.10),
    ],
)
def test_t_table_values(t: float, df: float, p: float) -> None:
    assert student_t_two_sided_p(t, df) == pytest.approx(p, rel=2e-3)
    assert student_t_two_sided_p(-t, df) == student_t_two_sided_p(t, df)


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0, 3.0, 30.0])
def test_t_closed_forms(t: float) -> None:
    assert student_t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-10)
    assert student_t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)


def test_t_edges() -> None:
    assert student_t_two_sided_p(0.0, 5) == 1.0
    assert student_t_two_sided_p(math.inf, 5) == 0.0
    assert student_t_two_sided_p(1.96, math.inf) == pytest.approx(0.05, rel=1e-3)
    assert math.isnan(student_t_two_sided_p(1.0, 0))
    assert 0 < student_t_two_sided_p(60.0, 8) < 1e-10


@pytest.mark.parametrize(("a", "b", "x"), [(2.0, 3.0, 0.4), (0.5, 7.0, 0.2), (30.0, 0.5, 0.97), (5.0, 5.0, 0.8)])
def test_incomplete_beta_identities(a: float, b: float, x: float) -> None:
    assert regularized_incomplete_beta(a, b, x) + regularized_incomplete_beta(b, a, 1 - x) == pytest.approx(1.0, abs=1e-12)
    assert regularized_incomplete_beta(a, 1.0, x) == pytest.approx(x**a, rel=1e-12)
    assert regularized_incomplete_beta(1.0, b, x) == pytest.approx(1 - (1 - x) ** b, rel=1e-12)
    assert regularized_incomplete_beta(a, a, 0.5) == pytest.approx(0.5, abs=1e-12)
    assert regularized_incomplete_beta(a, b, 0.0) == 0.0
    assert regularized_incomplete_beta(a, b, 1.0) == 1.0


def test_incomplete_beta_polynomial_case() -> None:
    # I_x(2, 3) = 6x^2 - 8x^3 + 3x^4
    x = 0.4
    assert regularized_incomplete_beta(2, 3, x) == pytest.approx(6 * x**2 - 8 * x**3 + 3 * x**4, rel=1e-12)


# --- trends ------------------------------------------------------------------

WINDOW = 10.0
STARTS = 1_700_000_000.0 + np.arange(60) * WINDOW  # epoch seconds, 10 minutes of windows
MIDS = STARTS + WINDOW / 2


def noise(seed: int, scale: float) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, STARTS.size)


def test_rising_p95_is_degrading_with_breach_eta() -> None:
    t = MIDS - MIDS[0]
    p95 = 100.0 + 0.5 * t + noise(1, 5.0)
    counts = np.full(STARTS.size, 500.0)
    found = trend("shop", "GET /a", STARTS, p95, counts, WINDOW, SloTarget(p95_ms=700.0))
    assert found is not None
    assert found.direction == "degrading"
    assert found.throughput_direction == "stable"
    assert found.p95_ms.slope == pytest.approx(0.5, rel=0.05)
    assert found.p95_ms.significant and found.p95_ms.p_value < 1e-10
    assert found.p95_ms.r_squared > 0.95
    # 100 + 0.5 t = 700 at t = 1200 s after the first midpoint; the last window ends at t = 595.
    last_end = STARTS[-1] + WINDOW - MIDS[0]
    assert found.slo_breach_in_s == pytest.approx(1200.0 - last_end, rel=0.10)
    next_end = STARTS[-1] + 2 * WINDOW - MIDS[0]
    assert found.p95_ms.forecast == pytest.approx(100 + 0.5 * next_end, rel=0.02)
    assert found.p95_ms.forecast == pytest.approx(found.p95_ms.intercept + found.p95_ms.slope * (STARTS[-1] + 2 * WINDOW))
    assert (found.windows, found.window_s, found.slo_p95_ms) == (60, 10.0, 700.0)


def test_falling_p95_is_improving() -> None:
    t = MIDS - MIDS[0]
    found = trend("shop", "GET /b", STARTS, 400.0 - 0.3 * t + noise(2, 8.0), np.full(60, 50.0), WINDOW, SloTarget(p95_ms=500.0))
    assert found is not None
    assert found.direction == "improving"
    assert found.p95_ms.slope == pytest.approx(-0.3, rel=0.1)
    assert found.slo_breach_in_s is None


def test_flat_noise_is_stable() -> None:
    found = trend("shop", "GET /c", STARTS, 200.0 + noise(3, 20.0), 100.0 + noise(4, 5.0), WINDOW, SloTarget())
    assert found is not None
    assert found.direction == "stable" and found.throughput_direction == "stable"
    assert not found.p95_ms.significant and found.p95_ms.p_value >= 0.05
    assert found.slo_breach_in_s is None


def test_already_over_the_slo_is_zero() -> None:
    found = trend("shop", "GET /d", STARTS, 500.0 + noise(5, 10.0), np.full(60, 10.0), WINDOW, SloTarget(p95_ms=300.0))
    assert found is not None and found.slo_breach_in_s == 0.0


def test_throughput_direction() -> None:
    t = MIDS - MIDS[0]
    rising = trend("s", "e", STARTS, np.full(60, 50.0), 100.0 + 0.5 * t + noise(6, 10.0), WINDOW, SloTarget())
    falling = trend("s", "e", STARTS, np.full(60, 50.0), 400.0 - 0.5 * t + noise(7, 10.0), WINDOW, SloTarget())
    assert rising is not None and falling is not None
    assert (rising.throughput_direction, falling.throughput_direction) == ("rising", "falling")
    assert rising.rps.slope == pytest.approx(0.05, rel=0.1)  # rps = counts / 10 s


def test_empty_windows_are_left_out_of_the_p95_fit() -> None:
    p95 = 100.0 + 0.2 * (MIDS - MIDS[0])
    p95[::3] = np.nan
    counts = np.where(np.isnan(p95), 0.0, 20.0)
    found = trend("s", "e", STARTS, p95, counts, WINDOW, SloTarget(p95_ms=1000.0))
    assert found is not None
    assert found.p95_ms.slope == pytest.approx(0.2)
    assert found.windows == 60


def test_too_few_windows() -> None:
    p95 = np.array([10.0, np.nan, 12.0, np.nan, 13.0])
    assert trend("s", "e", STARTS[:5], p95, np.ones(5), WINDOW, SloTarget()) is None
    assert trend("s", "e", STARTS[:5], p95, np.ones(5), WINDOW, SloTarget(), min_windows=3) is not None
    assert trend("s", "e", STARTS[:0], STARTS[:0], STARTS[:0], WINDOW, SloTarget()) is None


def test_degenerate_series_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = trend("s", "e", STARTS[:10], np.full(10, 50.0), np.full(10, 3.0), WINDOW, SloTarget())
        assert flat is not None
        assert (flat.p95_ms.slope, flat.p95_ms.p_value, flat.p95_ms.significant) == (0.0, 1.0, False)
        assert flat.direction == "stable" and flat.p95_ms.forecast == 50.0

        exact = trend("s", "e", STARTS[:10], 10.0 + np.arange(10.0), np.full(10, 3.0), WINDOW, SloTarget(p95_ms=100.0))
        assert exact is not None
        assert exact.p95_ms.p_value == pytest.approx(0.0, abs=1e-12) and exact.direction == "degrading"
        assert exact.p95_ms.r_squared == pytest.approx(1.0)
        # 10 + i reaches 100 at i = 90, i.e. 900 s after the first midpoint.
        assert exact.slo_breach_in_s == pytest.approx(900.0 + 5.0 - 100.0)

        same_x = trend("s", "e", np.full(6, STARTS[0]), np.arange(6.0), np.ones(6), WINDOW, SloTarget())
        assert same_x is not None
        assert (same_x.p95_ms.slope, same_x.p95_ms.p_value, same_x.direction) == (0.0, 1.0, "stable")
        assert same_x.p95_ms.forecast == 2.5


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        trend("s", "e", STARTS, STARTS[:3], STARTS, WINDOW, SloTarget())
    with pytest.raises(ValueError):
        trend("s", "e", STARTS, STARTS, STARTS, 0.0, SloTarget())


def test_trends_orders_degrading_first() -> None:
    t = MIDS - MIDS[0]
    counts = np.full(60, 100.0)
    series = {
        ("s", "flat"): (STARTS, 100.0 + noise(8, 5.0), counts),
        ("s", "down"): (STARTS, 300.0 - 0.2 * t + noise(9, 5.0), counts),
        ("s", "slow-up"): (STARTS, 100.0 + 0.1 * t + noise(10, 5.0), counts),
        ("s", "fast-up"): (STARTS, 100.0 + 0.4 * t + noise(11, 5.0), counts),
        ("s", "sparse"): (STARTS[:3], np.array([1.0, 2.0, 3.0]), counts[:3]),
    }
    found = trends(series, WINDOW, SloPolicy().for_endpoint)
    assert [(f.endpoint, f.direction) for f in found] == [
        ("fast-up", "degrading"),
        ("slow-up", "degrading"),
        ("flat", "stable"),
        ("down", "improving"),
    ]

"""The evaluator over a source of known windows, over the daemon's memory, and stitched by time."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pytest

from trm_otel.analysis import apdex
from trm_otel.histogram import ExponentialHistogram
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.latency_report import latency_views
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.processors.span_batch import SpanBatch
from trm_otel.query import CombinedSource, Evaluator, Limits, MemorySource, QueryError, RangeSeries, Sample
from trm_otel.query.memory_source import METER_LATENCY_METRIC
from trm_otel.series_source import CALLS_METRIC, DURATION_METRIC, Matcher, SeriesKind, SeriesRef
from trm_otel.slo import slo_policy

T = 1_800_000_000.0  # a window boundary (10 s windows)
OK, ERROR = "STATUS_CODE_UNSET", "STATUS_CODE_ERROR"


def histogram(values: Sequence[float]) -> ExponentialHistogram:
    h = ExponentialHistogram()
    h.record(np.asarray(values, dtype=np.float64))
    return h


class FixedSource:
    """A SeriesSource over windows given explicitly, that records every read.

    What the evaluator must answer is then known by construction: the tests
    recompute it from the same values with the histogram and analysis code.
    """

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._series: list[tuple[SeriesRef, dict[float, object]]] = []
        self.reads: list[tuple[str, float, float]] = []

    def add(self, kind: SeriesKind, metric: str, labels: Mapping[str, str], windows: Mapping[float, object]) -> None:
        key = len(self._series)
        self._series.append((SeriesRef(key, metric, dict(labels), kind), dict(windows)))

    def latency(
        self, labels: Mapping[str, str], windows: Mapping[float, Sequence[float]], metric: str = DURATION_METRIC
    ) -> None:
        self.add("latency", metric, labels, {start: histogram(values) for start, values in windows.items()})

    def select(self, metric: str, matchers: Sequence[Matcher], tenant: str = "default") -> list[SeriesRef]:
        if tenant != "default":
            return []
        names = (DURATION_METRIC, CALLS_METRIC) if metric in (DURATION_METRIC, CALLS_METRIC) else (metric,)
        return [ref for ref, _ in self._series if ref.metric in names and all(m.matches(ref.labels) for m in matchers)]

    def _windows(self, what: str, refs: Sequence[SeriesRef], start_s: float, end_s: float) -> dict[Hashable, list]:
        self.reads.append((what, start_s, end_s))
        by_key = {ref.key: windows for ref, windows in self._series}
        return {
            ref.key: sorted((s, v) for s, v in by_key[ref.key].items() if start_s <= s < end_s)  # type: ignore[misc]
            for ref in refs
        }

    def latency_windows(self, refs: Sequence[SeriesRef], start_s: float, end_s: float, *, step_s: float | None = None) -> dict[Hashable, list]:
        return self._windows("latency", refs, start_s, end_s)

    def scalar_windows(self, refs: Sequence[SeriesRef], start_s: float, end_s: float) -> dict[Hashable, list]:
        return {
            key: [(s, v[0] if isinstance(v, tuple) else v) for s, v in windows]
            for key, windows in self._windows("scalar", refs, start_s, end_s).items()
        }


class FixedSourceWithSums(FixedSource):
    """Also answers the optional histogram sums: histogram windows are ``(count, sum)``."""

    def histogram_sum_windows(self, refs: Sequence[SeriesRef], start_s: float, end_s: float) -> dict[Hashable, list]:
        return {
            key: [(s, v[1]) for s, v in windows]
            for key, windows in self._windows("sums", refs, start_s, end_s).items()
        }


def endpoint(name: str, status: str = OK, service: str = "shop") -> dict[str, str]:
    return {"service.name": service, "span.name": name, "span.kind": "SPAN_KIND_SERVER", "status.code": status}


# GET /cart: 3 windows in the minute before T, none erroring.
CART = {T - 60: [10.0, 12.0, 14.0], T - 30: [11.0, 50.0], T - 10: [9.0, 13.0, 15.0, 400.0]}
# POST /pay: ok and error series; an error window at exactly T (outside [T - 60, T)).
PAY_OK = {T - 50: [100.0, 120.0, 800.0], T - 20: [90.0, 95.0, 2000.0, 150.0]}
PAY_ERR = {T - 40: [30.0, 5000.0], T: [70.0]}
# GET /old: only a window before the minute.
OLD = {T - 70: [1.0]}


def latency_source(source: FixedSource | None = None) -> FixedSource:
    source = source or FixedSource()
    source.latency(endpoint("GET /cart"), CART)
    source.latency(endpoint("POST /pay"), PAY_OK)
    source.latency(endpoint("POST /pay", ERROR), PAY_ERR)
    source.latency(endpoint("GET /old"), OLD)
    return source


def values_in(windows: Mapping[float, Sequence[float]], lo: float, hi: float) -> list[float]:
    return [v for start, values in windows.items() if lo <= start < hi for v in values]


def by_labels(samples: Sequence[Sample]) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in samples}


# ------------------------------------------------------------- latency, instant


def test_percentiles_by_label_are_the_merged_histograms_quantiles() -> None:
    found = Evaluator(latency_source()).instant(f"p95({DURATION_METRIC}[1m]) by (span.name)", T)
    pay = values_in(PAY_OK, T - 60, T) + values_in(PAY_ERR, T - 60, T)
    assert found == [
        Sample({"span.name": "GET /cart"}, T, histogram(values_in(CART, T - 60, T)).quantile(0.95)),
        Sample({"span.name": "POST /pay"}, T, histogram(pay).quantile(0.95)),
    ]


def test_without_by_one_group_covers_every_selected_series() -> None:
    (sample,) = Evaluator(latency_source()).instant(f"p999({DURATION_METRIC})", T)
    everything = values_in(CART, T - 60, T) + values_in(PAY_OK, T - 60, T) + values_in(PAY_ERR, T - 60, T)
    assert sample == Sample({}, T, histogram(everything).quantile(0.999))


@pytest.mark.parametrize(
    ("stat", "expected"),
    [
        ("count", lambda v: float(len(v))),
        ("sum", lambda v: float(sum(v))),
        ("avg", lambda v: sum(v) / len(v)),
        ("min", lambda v: min(v)),
        ("max", lambda v: max(v)),
        ("rate", lambda v: len(v) / 60.0),
    ],
)
def test_latency_statistics_of_one_endpoint(stat: str, expected) -> None:  # type: ignore[no-untyped-def]
    (sample,) = Evaluator(latency_source()).instant(f'{stat}({DURATION_METRIC}{{span.name="POST /pay"}}[1m])', T)
    values = values_in(PAY_OK, T - 60, T) + values_in(PAY_ERR, T - 60, T)
    assert sample.value == pytest.approx(expected(values), rel=1e-12)


def test_error_rate_is_error_requests_over_all_requests_per_group() -> None:
    found = Evaluator(latency_source()).instant(f"error_rate({CALLS_METRIC}[1m]) by (span.name)", T)
    assert by_labels(found) == {(("span.name", "GET /cart"),): 0.0, (("span.name", "POST /pay"),): 2 / 9}
    (everything,) = Evaluator(latency_source()).instant(f"error_rate({CALLS_METRIC}[1m])", T)
    assert everything.value == 2 / 18


def test_apdex_with_an_explicit_threshold_counts_errors_as_frustrated() -> None:
    (sample,) = Evaluator(latency_source()).instant(f'apdex({DURATION_METRIC}{{span.name="POST /pay"}}[1m], 100)', T)
    assert sample.value == apdex(histogram(values_in(PAY_OK, T - 60, T)), 2, 100.0)
    assert 0 < sample.value < 1


def test_apdex_defaults_to_each_endpoints_slo_threshold() -> None:
    policy = slo_policy(
        {"default": {"p95_ms": 300}, "services": {"shop": {"endpoints": {"GET /cart": {"apdex_t_ms": 12}}}}}
    )
    evaluator = Evaluator(latency_source(), slo=policy)
    found = by_labels(evaluator.instant(f"apdex({DURATION_METRIC}[1m]) by (span.name)", T))
    cart = apdex(histogram(values_in(CART, T - 60, T)), 0, 12.0)
    pay = apdex(histogram(values_in(PAY_OK, T - 60, T)), 2, 300.0)
    assert found == {(("span.name", "GET /cart"),): cart, (("span.name", "POST /pay"),): pay}
    # One group over both endpoints judges each request against its own endpoint's T.
    (both,) = evaluator.instant(f"apdex({DURATION_METRIC}[1m])", T)
    assert both.value == pytest.approx((cart * 9 + pay * 9) / 18, rel=1e-12)
    # Without a policy the default T is 300 ms.
    (plain,) = Evaluator(latency_source()).instant(f'apdex({DURATION_METRIC}{{span.name="GET /cart"}}[1m])', T)
    assert plain.value == apdex(histogram(values_in(CART, T - 60, T)), 0, 300.0)


def test_an_instant_reads_windows_starting_in_the_range_before_it() -> None:
    source = latency_source()
    evaluator = Evaluator(source)
    # [T - 60, T): the window at T - 60 is in, the error window at T is not, GET /old at T - 70 is not.
    assert evaluator.instant(f"count({CALLS_METRIC}) by (status.code)", T) == [
        Sample({"status.code": ERROR}, T, 2.0),
        Sample({"status.code": OK}, T, 16.0),
    ]
    assert source.reads == [("latency", T - 60, T)]
    # [T - 50, T + 10): now the window at T counts and the one at T - 60 does not.
    assert by_labels(evaluator.instant(f"count({CALLS_METRIC}[1m]) by (status.code)", T + 10)) == {
        (("status.code", ERROR),): 3.0,
        (("status.code", OK),): 13.0,
    }


def test_matchers_select_and_missing_labels_are_left_out_of_groups() -> None:
    source = latency_source()
    source.latency({"service.name": "shop", "status.code": OK}, {T - 10: [5.0]})  # an overflow-like series
    evaluator = Evaluator(source)
    found = evaluator.instant(f'count({CALLS_METRIC}{{span.name!~"POST.*", span.name!="GET /old"}}) by (span.name)', T)
    assert found == [Sample({}, T, 1.0), Sample({"span.name": "GET /cart"}, T, 9.0)]
    assert evaluator.instant(f'count({CALLS_METRIC}{{span.name="nothing"}})', T) == []
    assert evaluator.instant("count(no.such.metric)", T) == []


def test_groups_without_data_in_the_range_have_no_sample() -> None:
    found = Evaluator(latency_source()).instant(f"count({CALLS_METRIC}[1m]) by (span.name)", T)
    assert [s.labels["span.name"] for s in found] == ["GET /cart", "POST /pay"]  # GET /old has data only before


# ------------------------------------------------------------------ ranges


def test_range_queries_fetch_once_and_equal_instant_queries_at_each_step() -> None:
    source = latency_source()
    evaluator = Evaluator(source)
    query = f"p50({DURATION_METRIC}[20s]) by (span.name)"
    series = evaluator.range(query, T - 60, T + 10, 10)
    assert source.reads == [("latency", T - 80, T + 10)]
    for one in series:
        for t, value in zip(one.times_s, one.values):
            (at,) = [s for s in evaluator.instant(query, t) if s.labels == one.labels]
            assert value == at.value
    (cart,) = [s for s in series if s.labels == {"span.name": "GET /cart"}]
    # steps whose 20 s range holds no window (T - 60, T - 30) are absent, not zero
    assert cart.times_s == (T - 50, T - 40, T - 20, T - 10, T, T + 10)


def test_range_defaults_to_the_step_so_steps_partition_the_windows() -> None:
    evaluator = Evaluator(latency_source())
    (series,) = evaluator.range(f"count({CALLS_METRIC})", T - 60, T, 30)
    # steps at T - 60 ([T - 90, T - 60)), T - 30 ([T - 60, T - 30)) and T ([T - 30, T))
    assert series == RangeSeries({}, (T - 60, T - 30, T), (1.0, 8.0, 10.0))
    assert sum(series.values) == 19.0  # every window once: 18 in the minute plus GET /old


def test_range_rates_divide_by_the_range_and_step_times_are_exact() -> None:
    (series,) = Evaluator(latency_source()).range(f"rate({CALLS_METRIC}[30s])", T - 30, T, 15)
    assert series.times_s == (T - 30, T - 15, T)
    assert series.values == (8 / 30, 8 / 30, 10 / 30)


def test_range_arguments_are_checked() -> None:
    evaluator = Evaluator(latency_source())
    with pytest.raises(QueryError, match="^end must not be before start$"):
        evaluator.range(f"count({CALLS_METRIC})", T, T - 1, 10)
    with pytest.raises(QueryError, match="^step must be greater than zero, got 0$"):
        evaluator.range(f"count({CALLS_METRIC})", T - 10, T, 0)


# ------------------------------------------------------------------ limits


def test_too_many_series_is_refused_with_the_limit_and_how_to_narrow() -> None:
    source = FixedSource()
    for i in range(5):
        source.latency(endpoint(f"GET /{i}"), {T - 10: [1.0]})
    evaluator = Evaluator(source, limits=Limits(max_series=4))
    with pytest.raises(QueryError) as caught:
        evaluator.instant(f"p95(\n  {DURATION_METRIC})", T)
    assert str(caught.value) == (
        "2:3: the selector matches 5 series, over the limit of 4 per query; "
        'narrow it with label matchers such as {service.name="..."}'
    )
    assert source.reads == []  # refused before reading any window
    assert len(evaluator.instant(f'p95({DURATION_METRIC}{{span.name=~"GET /[0-3]"}}) by (span.name)', T)) == 4


def test_default_limits_are_1000_series_and_11000_points() -> None:
    assert Limits() == Limits(max_series=1000, max_points=11000)


def test_too_many_points_is_refused_before_reading() -> None:
    source = latency_source()
    evaluator = Evaluator(source, limits=Limits(max_points=100))
    with pytest.raises(QueryError) as caught:
        evaluator.range(f"count({CALLS_METRIC})", T - 1000, T, 1)
    assert str(caught.value) == (
        "start, end and step give 1001 steps, over the limit of 100 points per query; "
        "use a larger step or a shorter time range"
    )
    with pytest.raises(QueryError) as caught:
        evaluator.range(f"count({CALLS_METRIC}) by (span.name)", T - 990, T, 10)
    assert str(caught.value) == (
        "the answer would have 300 points (3 series x 100 steps), over the limit of 100 per query; "
        "use a larger step, a shorter time range or fewer labels in by (...)"
    )
    assert source.reads == []
    assert len(evaluator.range(f"count({CALLS_METRIC})", T - 990, T, 10)) == 1


# ------------------------------------------------------------------ scalars


def scalar_source(source: FixedSource | None = None) -> FixedSource:
    source = source or FixedSourceWithSums()
    orders = {T - 40: 4.0, T - 20: 7.0, T - 10: 5.0}
    source.add("gauge", "queue.depth", {"service.name": "shop", "queue": "orders"}, orders)
    source.add("gauge", "queue.depth", {"service.name": "shop", "queue": "mail"}, {T - 30: 2.0, T - 20: 1.0})
    source.add("sum", "orders.placed", {"service.name": "shop"}, {T - 50: 3.0, T - 10: 9.0, T: 100.0})
    source.add("histogram", "payload.size", {"service.name": "shop"}, {T - 30: (4, 400.0), T - 20: (6, 1000.0)})
    return source


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("avg(queue.depth)", (4 + 7 + 5 + 2 + 1) / 5),
        ("min(queue.depth)", 1.0),
        ("max(queue.depth)", 7.0),
        ("last(queue.depth)", 5.0 + 1.0),  # each series' newest value, added up
        ('last(queue.depth{queue="orders"}[25s])', 5.0),
        ("sum(orders.placed)", 12.0),
        ("rate(orders.placed[1m])", 12.0 / 60),
        ("count(payload.size)", 10.0),
        ("sum(payload.size)", 1400.0),
        ("avg(payload.size)", 140.0),
        ("rate(payload.size[20s])", 6 / 20),
    ],
)
def test_scalar_statistics(query: str, expected: float) -> None:
    (sample,) = Evaluator(scalar_source()).instant(query, T)
    assert sample.value == pytest.approx(expected, rel=1e-12)


def test_gauges_by_label_and_over_a_range() -> None:
    evaluator = Evaluator(scalar_source())
    assert evaluator.instant("max(queue.depth) by (queue)", T) == [
        Sample({"queue": "mail"}, T, 2.0),
        Sample({"queue": "orders"}, T, 7.0),
    ]
    assert evaluator.range('last(queue.depth{queue="orders"})', T - 30, T, 10) == [
        RangeSeries({}, (T - 30, T - 10, T), (4.0, 7.0, 5.0))
    ]


def test_histogram_sums_need_a_source_that_keeps_them() -> None:
    evaluator = Evaluator(scalar_source(FixedSource()))
    assert evaluator.instant("count(payload.size)", T)[0].value == 10.0
    with pytest.raises(QueryError) as caught:
        evaluator.instant("avg(payload.size)", T)
    assert str(caught.value) == (
        "1:1: avg of histogram series needs their per-window sums, which this data source does not keep; "
        "use count or rate"
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("p95(queue.depth)", "1:1: p95 does not apply to 'queue.depth', a gauge (use avg, min, max or last)"),
        ("  rate(queue.depth)", "1:3: rate does not apply to 'queue.depth', a gauge (use avg, min, max or last)"),
        ("avg(orders.placed)", "1:1: avg does not apply to 'orders.placed', a sum (counter) (use sum or rate)"),
        ("last(payload.size)", "1:1: last does not apply to 'payload.size', a histogram (use count, sum, avg or rate)"),
        (
            f"last({DURATION_METRIC})",
            f"1:1: last does not apply to '{DURATION_METRIC}', a latency series "
            "(use p50/p95/p99/pNN, avg, min, max, sum, count, rate, error_rate or apdex)",
        ),
    ],
)
def test_a_statistic_that_does_not_apply_is_refused_at_its_column(query: str, message: str) -> None:
    source = latency_source(scalar_source())
    with pytest.raises(QueryError) as caught:
        Evaluator(source).instant(query, T)
    assert str(caught.value) == message
    assert source.reads == []


def test_an_apps_own_span_metrics_beside_the_span_series_answer_from_the_span_series() -> None:
    # An app set up with configure(otlp_endpoint=<daemon>) exports its spans (the latency series) and
    # its SDK's own traces.span.metrics.duration histogram and calls counter under the same names.
    source = latency_source()
    for name, status in (("GET /cart", OK), ("POST /pay", OK), ("POST /pay", ERROR)):
        labels = endpoint(name, status)
        source.add("histogram", DURATION_METRIC, labels, {T - 60: (90, 9000.0), T - 10: (70, 7000.0)})
        source.add("sum", CALLS_METRIC, labels, {T - 60: 90.0, T - 10: 70.0})
    plain = Evaluator(latency_source())
    evaluator = Evaluator(source)
    query = f'p95({DURATION_METRIC}{{service.name="shop"}}[5m])'
    (sample,) = evaluator.instant(query, T)
    everything = values_in(CART, T - 300, T) + values_in(PAY_OK, T - 300, T) + values_in(PAY_ERR, T - 300, T)
    everything += values_in(OLD, T - 300, T)
    assert sample == Sample({}, T, histogram(everything).quantile(0.95))
    assert [what for what, _, _ in source.reads] == ["latency"]  # the reported series are not read
    for query in (
        f"p95({DURATION_METRIC}[1m]) by (span.name)",
        f"count({DURATION_METRIC}[1m]) by (status.code)",
        f"rate({CALLS_METRIC}[1m])",
        f"error_rate({CALLS_METRIC}[1m]) by (span.name)",
        f'apdex({DURATION_METRIC}{{span.name="POST /pay"}}[1m], 100)',
    ):
        assert evaluator.instant(query, T) == plain.instant(query, T), query
        assert evaluator.range(query, T - 60, T, 10) == plain.range(query, T - 60, T, 10), query
    # Only the series answered from count towards the series limit (4 latency + 3 reported match).
    assert Evaluator(source, limits=Limits(max_series=4)).instant(f"count({CALLS_METRIC})", T) == [Sample({}, T, 18.0)]
    # A statistic is checked against the latency kind.
    with pytest.raises(QueryError) as caught:
        evaluator.instant(f"last({DURATION_METRIC})", T)
    assert str(caught.value).startswith(f"1:1: last does not apply to '{DURATION_METRIC}', a latency series")


def test_reported_series_alone_still_answer_as_their_own_kind() -> None:
    source = latency_source()
    source.add("histogram", DURATION_METRIC, {"service.name": "collector"}, {T - 10: (1, 1.0)})
    evaluator = Evaluator(source)
    assert evaluator.instant(f"count({DURATION_METRIC})", T) == Evaluator(latency_source()).instant(
        f"count({DURATION_METRIC})", T
    )
    found = evaluator.instant(f'count({DURATION_METRIC}{{service.name="collector"}})', T)
    assert found == [Sample({}, T, 1.0)]


@pytest.mark.parametrize(
    ("series", "kinds"),
    [
        ((("gauge", 3.0), ("sum", 4.0)), "gauge, sum"),
        ((("histogram", (2, 5.0)), ("gauge", 3.0)), "gauge, histogram"),
        ((("sum", 4.0), ("histogram", (2, 5.0)), ("gauge", 3.0)), "gauge, histogram, sum"),
    ],
)
def test_a_selection_of_mixed_kinds_without_latency_is_refused_naming_the_kinds(
    series: tuple[tuple[SeriesKind, object], ...], kinds: str
) -> None:
    source = FixedSourceWithSums()
    for i, (kind, value) in enumerate(series):
        source.add(kind, "jobs.queued", {"service.name": f"svc{i}"}, {T - 10: value})
    with pytest.raises(QueryError) as caught:
        Evaluator(source).instant("count(jobs.queued)", T)
    assert str(caught.value) == (
        f"1:7: 'jobs.queued' selects series of several kinds ({kinds}); "
        "add label matchers so the selector picks one kind"
    )
    assert source.reads == []
    # Narrowed to one kind, it answers.
    stat = {"gauge": "last", "sum": "sum", "histogram": "count"}[series[0][0]]
    assert len(Evaluator(source).instant(f'{stat}(jobs.queued{{service.name="svc0"}})', T)) == 1


def test_other_tenants_see_nothing() -> None:
    assert Evaluator(latency_source(), tenant="other").instant(f"count({CALLS_METRIC})", T) == []


# --------------------------------------------------- the daemon's memory


def spans(
    names: Sequence[str], end_s: np.ndarray, duration_ms: np.ndarray, status: np.ndarray, service: str = "shop"
) -> SpanBatch:
    n = len(names)
    return SpanBatch(
        service=[service] * n,
        name=list(names),
        kind=np.full(n, 2, dtype=np.int8),
        status=np.asarray(status, dtype=np.int8),
        end_ns=(np.asarray(end_s) * 1e9).astype(np.int64),
        duration_ms=np.asarray(duration_ms, dtype=np.float64),
        span_id=np.zeros(n, dtype=np.uint64),
        parent_span_id=np.zeros(n, dtype=np.uint64),
    )


NAMES = ("GET /cart", "POST /pay", "GET /search")
RNG = np.random.default_rng(7)
N = 30_000
SPAN_NAMES = RNG.choice(NAMES, N)
SPAN_ENDS = T - RNG.uniform(0.001, 600, N)
SPAN_MS = RNG.lognormal(np.log(40), 0.8, N) * np.where(SPAN_NAMES == "POST /pay", 5, 1)
SPAN_STATUS = np.where(RNG.uniform(size=N) < np.where(SPAN_NAMES == "POST /pay", 0.07, 0.01), 2, 0)


Memory = tuple[LatencyAggregator, ScalarSeriesStore, MemorySource]


@pytest.fixture(scope="module")
def memory() -> Memory:
    aggregator = LatencyAggregator(window_s=10, history_s=3600, clock=lambda: T)
    aggregator.add_spans(spans(SPAN_NAMES.tolist(), SPAN_ENDS, SPAN_MS, SPAN_STATUS))
    scalars = ScalarSeriesStore(window_s=10, clock=lambda: T)
    for offset, value in ((55, 3.0), (25, 8.0), (5, 6.0)):
        scalars.record_gauge(("queue.depth", "shop", (("queue", "orders"),)), int((T - offset) * 1e9), value)
        scalars.record_sum(("orders.placed", "shop", (("paid", True),)), int((T - offset) * 1e9), value)
        scalars.record_histogram(("payload.size", "shop", ()), int((T - offset) * 1e9), int(value), value * 100)
    return aggregator, scalars, MemorySource(aggregator, scalars)


def nearest_rank(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, math.ceil(q * len(ordered))) - 1])


def test_memory_p95_by_span_name_is_the_exact_nearest_rank_within_the_sketch_error(memory: Memory) -> None:
    _, _, source = memory
    found = Evaluator(source).instant(f"p95({DURATION_METRIC}[5m]) by (span.name)", T)
    assert [s.labels for s in found] == [{"span.name": name} for name in sorted(NAMES)]
    in_range = SPAN_ENDS >= T - 300
    for sample in found:
        chosen = SPAN_MS[in_range & (SPAN_NAMES == sample.labels["span.name"])]
        assert sample.value == histogram(chosen).quantile(0.95)  # merging windows is exact
        exact = nearest_rank(chosen, 0.95)
        assert abs(sample.value - exact) / exact <= 0.00543  # scale 6: sqrt(2 ** (1 / 64)) - 1


def test_memory_error_rate_and_rate_are_exact(memory: Memory) -> None:
    _, _, source = memory
    evaluator = Evaluator(source)
    in_range = SPAN_ENDS >= T - 120
    for sample in evaluator.instant(f"error_rate({CALLS_METRIC}[2m]) by (span.name)", T):
        chosen = in_range & (SPAN_NAMES == sample.labels["span.name"])
        assert sample.value == np.count_nonzero(chosen & (SPAN_STATUS == 2)) / np.count_nonzero(chosen)
    (rate,) = evaluator.instant(f'rate({CALLS_METRIC}{{service.name="shop"}}[2m])', T)
    assert rate.value == np.count_nonzero(in_range) / 120


def test_memory_p99_equals_the_live_latency_view(memory: Memory) -> None:
    aggregator, _, source = memory
    policy = slo_policy({"default": {"p95_ms": 200}})
    views = {v.endpoint: v for v in latency_views(aggregator, policy, 300, "shop", None)}
    evaluator = Evaluator(source, slo=policy)
    for q, field in (("p99", "p99_ms"), ("p50", "p50_ms"), ("apdex", "apdex"), ("error_rate", "error_rate")):
        for sample in evaluator.instant(f"{q}({DURATION_METRIC}[5m]) by (span.name)", T):
            view = views[sample.labels["span.name"]]
            assert round(sample.value, 3 if field.endswith("_ms") else 4) == getattr(view, field), (q, sample)


def test_memory_range_query_steps_match_instants(memory: Memory) -> None:
    _, _, source = memory
    evaluator = Evaluator(source)
    query = f'p90({DURATION_METRIC}{{span.name="GET /cart"}})'
    (series,) = evaluator.range(query, T - 600, T, 60)
    assert series.times_s == tuple(T - 540 + 60 * i for i in range(10))  # the step at T - 600 has no data
    for t, value in zip(series.times_s, series.values):
        chosen = SPAN_MS[(SPAN_NAMES == "GET /cart") & (SPAN_ENDS >= t - 60) & (SPAN_ENDS < t)]
        assert value == histogram(chosen).quantile(0.9)


def test_memory_labels_scalars_and_meter_latency(memory: Memory) -> None:
    aggregator, _, source = memory
    refs = source.select(DURATION_METRIC, [Matcher("span.name", "=", "GET /cart")])
    assert sorted(ref.labels["status.code"] for ref in refs) == ["STATUS_CODE_ERROR", "STATUS_CODE_UNSET"]
    assert all(ref.labels["span.kind"] == "SPAN_KIND_SERVER" and ref.kind == "latency" for ref in refs)
    evaluator = Evaluator(source)
    assert evaluator.instant("last(queue.depth)", T) == [Sample({}, T, 6.0)]
    assert evaluator.instant("avg(queue.depth[30s]) by (queue)", T) == [Sample({"queue": "orders"}, T, 7.0)]
    assert evaluator.instant('sum(orders.placed{paid="true"}[1m])', T) == [Sample({}, T, 17.0)]
    assert evaluator.instant("avg(payload.size[1m])", T) == [Sample({}, T, 100.0)]
    assert evaluator.instant("count(payload.size[1m])", T) == [Sample({}, T, 17.0)]
    assert source.select("queue.depth", [], tenant="someone else") == []
    # Meter-recorded latency is its own metric, as storage keeps it: never mixed into the span series.
    meter = LatencyAggregator(window_s=10, history_s=3600, clock=lambda: T)
    meter.add_spans(spans(["GET /cart"], np.array([T - 5]), np.array([10.0]), np.array([0])))
    meter.add_histogram(("shop", "GET /cart", 2, 0), int((T - 15) * 1e9), histogram([200.0, 300.0]))
    metered = Evaluator(MemorySource(meter, ScalarSeriesStore(window_s=10, clock=lambda: T)))
    assert metered.instant(f"count({CALLS_METRIC})", T) == [Sample({}, T, 1.0)]
    found = metered.instant(f"max({METER_LATENCY_METRIC}) by (span.name)", T)
    assert found == [Sample({"span.name": "GET /cart"}, T, 300.0)]


def test_memory_an_apps_reported_span_metrics_defer_to_the_daemons_span_series() -> None:
    # What the daemon holds for an app configured with otlp_endpoint=<daemon>: its spans, in the
    # aggregator, and its SDK's own histogram and counter of the same names, in the scalar store.
    aggregator = LatencyAggregator(window_s=10, history_s=3600, clock=lambda: T)
    durations = np.array([10.0, 20.0, 30.0, 40.0, 900.0])
    aggregator.add_spans(spans(["GET /cart"] * 5, T - np.array([5.0, 15.0, 25.0, 35.0, 45.0]), durations, np.zeros(5)))
    plain = Evaluator(MemorySource(aggregator, ScalarSeriesStore(window_s=10, clock=lambda: T)))
    scalars = ScalarSeriesStore(window_s=10, clock=lambda: T)
    labels = (("span.name", "GET /cart"), ("span.kind", "SPAN_KIND_SERVER"), ("status.code", OK))
    scalars.record_histogram((DURATION_METRIC, "shop", labels), int((T - 5) * 1e9), 5, float(durations.sum()))
    scalars.record_sum((CALLS_METRIC, "shop", labels), int((T - 5) * 1e9), 5.0)
    source = MemorySource(aggregator, scalars)
    assert {ref.kind for ref in source.select(DURATION_METRIC, [])} == {"latency", "histogram"}
    evaluator = Evaluator(source)
    query = f'p95({DURATION_METRIC}{{service.name="shop"}}[5m])'
    (sample,) = evaluator.instant(query, T)
    assert sample == Sample({}, T, histogram(durations).quantile(0.95))
    assert evaluator.instant(query, T) == plain.instant(query, T)
    assert evaluator.instant(f"count({CALLS_METRIC}[5m])", T) == [Sample({}, T, 5.0)]  # each span once


def test_memory_overflow_series_label_is_lowercase_true() -> None:
    aggregator = LatencyAggregator(window_s=10, history_s=3600, cardinality_limit=1, clock=lambda: T)
    aggregator.add_spans(spans(["a", "b", "c"], np.full(3, T - 1), np.ones(3), np.zeros(3)))
    source = MemorySource(aggregator, ScalarSeriesStore(window_s=10, clock=lambda: T))
    found = Evaluator(source).instant(f'count({CALLS_METRIC}{{otel.metric.overflow="true"}})', T)
    assert found == [Sample({}, T, 2.0)]


# ---------------------------------------------------- combined by time


def test_combined_source_reads_each_window_from_one_side_and_merges_series() -> None:
    older, recent = FixedSource(), FixedSource()
    labels = endpoint("GET /cart")
    # Both sides hold the window at T - 30 (flushed but still in memory): only memory's may count.
    older.latency(labels, {T - 50: [1.0], T - 40: [2.0], T - 30: [999.0]})
    recent.latency(labels, {T - 30: [3.0], T - 20: [4.0], T - 10: [5.0]})
    older.latency(endpoint("GET /gone"), {T - 50: [7.0]})
    recent.latency(endpoint("GET /new"), {T - 10: [8.0]})
    source = CombinedSource(recent, older, boundary_s=lambda: T - 30)
    evaluator = Evaluator(source)
    found = by_labels(evaluator.instant(f"max({DURATION_METRIC}) by (span.name)", T))
    assert found == {
        (("span.name", "GET /cart"),): 5.0,
        (("span.name", "GET /gone"),): 7.0,
        (("span.name", "GET /new"),): 8.0,
    }
    (cart,) = evaluator.instant(f'sum({DURATION_METRIC}{{span.name="GET /cart"}})', T)
    assert cart.value == 1 + 2 + 3 + 4 + 5
    assert older.reads[-1] == ("latency", T - 60, T - 30)
    assert recent.reads[-1] == ("latency", T - 30, T)
    # A range entirely on one side reads only that side.
    older.reads.clear()
    evaluator.instant(f"count({CALLS_METRIC}[20s])", T)
    assert older.reads == []
    refs = source.select(DURATION_METRIC, [Matcher("span.name", "=", "GET /cart")])
    assert len(refs) == 1 and refs[0].labels == labels


def test_combined_source_histogram_sums_only_where_both_sides_keep_them() -> None:
    older, recent = FixedSource(), FixedSourceWithSums()
    for side, start in ((older, T - 40), (recent, T - 20)):
        side.add("histogram", "payload.size", {"service.name": "shop"}, {start: (2, 50.0)})
    evaluator = Evaluator(CombinedSource(recent, older, boundary_s=lambda: T - 30))
    assert evaluator.instant("count(payload.size)", T)[0].value == 4.0
    assert evaluator.instant("avg(payload.size[20s])", T)[0].value == 25.0  # recent side only
    with pytest.raises(QueryError, match="^the older data source \\(FixedSource\\) does not keep histogram sums"):
        evaluator.instant("avg(payload.size)", T)

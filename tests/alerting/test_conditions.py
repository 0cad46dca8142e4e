"""Alert conditions over the daemon's real memory: each kind, composite matching, errors, canonical text."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.query.test_evaluator import T, spans
from trm_otel.alerting.conditions import (
    Absent,
    Anomaly,
    Composite,
    Condition,
    Instance,
    Threshold,
    Trend,
    parse_condition,
)
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.query import Evaluator, Limits, MemorySource, Query, QueryError, parse_query
from trm_otel.series_source import DURATION_METRIC

MINUTE = 60.0
RNG = np.random.default_rng(11)


class CountingEvaluator(Evaluator):
    """The real evaluator, counting the queries a condition asks."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.calls: list[tuple[str, str]] = []

    def instant(self, query, time_s):  # type: ignore[no-untyped-def]
        self.calls.append(("instant", str(query)))
        return super().instant(query, time_s)

    def range(self, query, start_s, end_s, step_s):  # type: ignore[no-untyped-def]
        self.calls.append(("range", str(query)))
        return super().range(query, start_s, end_s, step_s)


# ------------------------------------------------------------------- data
#
# Minute windows: the step at time t of "last(m[1m])" reads the window starting at t - 60,
# so "k minutes ago" below is the window starting at T - 60 * k.

ORDERS = {k: 1000.0 - 2.0 * k for k in range(1, 121)}  # rising 2 per minute
MAIL = {k: 5.0 for k in range(1, 121)}  # flat
SPARSE = {1: 0.0, 10: 500.0}  # two points in the last half hour

NOISE = np.round(RNG.normal(10.0, 1.0, 60), 1)  # baselines: k = 2 .. 61, oldest last
SPIKED = NOISE.copy()
SPIKED[[3, 17, 30, 44, 58]] = 1000.0
TEMPS: dict[str, dict[int, float]] = {
    "a": {1: 30.0, **{k: float(v) for k, v in zip(range(2, 62), NOISE)}, 62: 1e6},  # k = 62 is outside the hour
    "b": {1: 10.2, **{k: float(v) for k, v in zip(range(2, 62), NOISE)}},
    "c": {k: 5.0 for k in range(1, 62)},  # flat, unchanged
    "d": {1: 7.0, **{k: 5.0 for k in range(2, 62)}},  # flat, then moves
    "e": {1: 100.0, 2: 10.0, 3: 11.0},  # too short a baseline
    "f": {1: 30.0, **{k: float(v) for k, v in zip(range(2, 62), SPIKED)}},  # spikes inflate the std
    "g": {k: float(v) for k, v in zip(range(2, 62), NOISE)},  # no current value
}


def gauge(scalars: ScalarSeriesStore, name: str, labels: tuple[tuple[str, str], ...], values: dict[int, float]) -> None:
    for minutes_ago, value in values.items():
        start = T - MINUTE * minutes_ago
        assert scalars.record_gauge((name, "shop", labels), int((start + 30) * 1e9), value)


@pytest.fixture(scope="module")
def source() -> MemorySource:
    aggregator = LatencyAggregator(window_s=10, history_s=3600, clock=lambda: T)
    n = 400
    names = ["GET /cart"] * (n // 2) + ["POST /pay"] * (n // 2)
    durations = np.concatenate([RNG.uniform(20, 60, n // 2), RNG.uniform(400, 800, n // 2)])
    aggregator.add_spans(spans(names, T - RNG.uniform(1, 250, n), durations, np.zeros(n)))
    scalars = ScalarSeriesStore(window_s=60, history_s=4 * 3600, clock=lambda: T)
    for queue, values in (("orders", ORDERS), ("mail", MAIL), ("sparse", SPARSE)):
        gauge(scalars, "queue.depth", (("queue", queue),), values)
    for host, values in TEMPS.items():
        gauge(scalars, "temp", (("host", host),), values)
    return MemorySource(aggregator, scalars)


def found(condition: Condition, evaluator: Evaluator) -> list[tuple[dict[str, str], float | None]]:
    return [(i.labels, i.value) for i in condition.evaluate(evaluator, T)]


# -------------------------------------------------------------- threshold


def test_threshold_keeps_each_group_over_it_with_its_value_from_one_instant_query(source: MemorySource) -> None:
    query = f'p95({DURATION_METRIC}{{service.name="shop"}}[5m]) by (span.name)'
    evaluator = CountingEvaluator(source)
    samples = {s.labels["span.name"]: s.value for s in Evaluator(source).instant(query, T)}
    assert samples["GET /cart"] < 300 < samples["POST /pay"]
    assert found(parse_condition(f"{query} > 300"), evaluator) == [({"span.name": "POST /pay"}, samples["POST /pay"])]
    assert evaluator.calls == [("instant", str(parse_query(query)))]
    assert found(parse_condition(f"{query} <= 300"), evaluator) == [({"span.name": "GET /cart"}, samples["GET /cart"])]
    assert len(found(parse_condition(f"{query} != 300"), evaluator)) == 2
    assert found(parse_condition("last(queue.depth[1m]) by (queue) == 5"), evaluator) == [({"queue": "mail"}, 5.0)]


# ------------------------------------------------------------------ trend


def test_slope_is_the_least_squares_slope_per_second_over_the_window(source: MemorySource) -> None:
    evaluator = CountingEvaluator(source)
    rising = parse_condition("slope(last(queue.depth[1m]) by (queue), 30m) > 0.01")
    assert found(rising, evaluator) == [({"queue": "orders"}, pytest.approx(2 / 60, rel=1e-9))]
    assert [kind for kind, _ in evaluator.calls] == ["range"]
    # "sparse" has 2 points in the window: no line, no result whatever the comparison.
    everything = parse_condition("slope(last(queue.depth[1m]) by (queue), 30m) > -1e9")
    assert [labels["queue"] for labels, _ in found(everything, evaluator)] == ["mail", "orders"]
    assert found(parse_condition("slope(last(queue.depth[1m]) by (queue), 30m) <= 0"), evaluator) == [
        ({"queue": "mail"}, 0.0)
    ]


def test_forecast_is_the_lines_value_a_horizon_after_now(source: MemorySource) -> None:
    condition = parse_condition("forecast(last(queue.depth[1m]) by (queue), 30m, 1h) > 1000")
    # The step at t reads the window starting at t - 60, whose value is 1000 + 2 * (t - 60 - T) / 60.
    expected = 1000 + 2 * (3600 - 60) / 60
    assert found(condition, Evaluator(source)) == [({"queue": "orders"}, pytest.approx(expected, rel=1e-12))]


def test_trend_steps_are_the_querys_range_widened_to_at_most_121_points(source: MemorySource) -> None:
    evaluator = CountingEvaluator(source)
    calls: list[tuple[float, float, float]] = []
    original = evaluator.range

    def spy(query, start_s, end_s, step_s):  # type: ignore[no-untyped-def]
        calls.append((start_s, end_s, step_s))
        return original(query, start_s, end_s, step_s)

    evaluator.range = spy  # type: ignore[method-assign]
    parse_condition("slope(last(queue.depth[1m]), 30m) > 0").evaluate(evaluator, T)
    parse_condition("slope(last(queue.depth), 4h) > 0").evaluate(evaluator, T)
    parse_condition("zscore(last(queue.depth[5m]), 1h) > 0").evaluate(evaluator, T)
    assert calls == [(T - 1800, T, 60.0), (T - 14400, T, 120.0), (T - 3600, T, 300.0)]


# ---------------------------------------------------------------- anomaly


def baseline_and_current(host: str) -> tuple[np.ndarray, float]:
    values = TEMPS[host]
    return np.array([values[k] for k in range(61, 1, -1) if k in values]), values[1]


def ewma(values: np.ndarray, alpha: float) -> tuple[float, float]:
    mean, var = float(values[0]), 0.0
    for x in values[1:]:
        diff = x - mean
        mean += alpha * diff
        var = (1 - alpha) * (var + alpha * diff * diff)
    return mean, var**0.5


def expected_scores(function: str) -> dict[str, float]:
    out = {}
    for host in ("a", "b", "f"):  # c, d, e and g are the edge cases asserted below
        base, x = baseline_and_current(host)
        if function == "zscore":
            center, spread = base.mean(), base.std(ddof=1)
        elif function == "madscore":
            center = float(np.median(base))
            spread = 1.4826 * float(np.median(np.abs(base - center)))
        else:
            center, spread = ewma(base, 2 / 61)
        out[host] = (x - center) / spread
    return out


@pytest.mark.parametrize("function", ["zscore", "madscore", "ewma"])
def test_anomaly_scores_the_current_value_against_the_previous_baseline(function: str, source: MemorySource) -> None:
    evaluator = CountingEvaluator(source)
    condition = parse_condition(f"{function}(last(temp[1m]) by (host), 1h) != 12345")
    scores = {labels["host"]: value for labels, value in found(condition, evaluator)}
    assert [kind for kind, _ in evaluator.calls] == ["range"]
    expected = expected_scores(function)
    # a: far out (its 1e6 an hour and a minute ago is outside the baseline); b: ordinary;
    # c: flat and unchanged (no result); d: flat and moved (+inf); e: 2 baseline points; g: no current value.
    assert set(scores) == {"a", "b", "d", "f"}
    for host in ("a", "b", "f"):
        assert scores[host] == pytest.approx(expected[host], rel=1e-9), host
    assert scores["d"] == float("inf")
    assert abs(scores["b"]) < 1 < 3 < scores["a"]


def test_madscore_sees_through_spikes_in_the_baseline_that_hide_a_zscore(source: MemorySource) -> None:
    evaluator = Evaluator(source)
    high = {f: [labels["host"] for labels, _ in found(parse_condition(f"{f}(last(temp[1m]) by (host), 1h) > 5"), evaluator)]
            for f in ("zscore", "madscore")}
    assert high == {"zscore": ["a", "d"], "madscore": ["a", "d", "f"]}
    assert found(parse_condition("zscore(last(temp[1m]) by (host), 1h) < -5"), evaluator) == []


# ----------------------------------------------------------------- absent


def test_absent_holds_once_with_the_selectors_equality_labels(source: MemorySource) -> None:
    evaluator = Evaluator(source)
    missing = parse_condition('absent(last(queue.depth{service.name="shop", queue="nope", queue!~"x.*"}[1m]))')
    assert missing.evaluate(evaluator, T) == [Instance({"service.name": "shop", "queue": "nope"}, None)]
    assert found(parse_condition('absent(last(queue.depth{queue="orders"}[1m]))'), evaluator) == []
    twice = parse_condition('absent(last(queue.depth{queue="a", queue="b", host=""}))')
    assert found(twice, evaluator) == [({}, None)]
    assert found(parse_condition("absent(last(queue.depth[1m]))"), evaluator) == []


# --------------------------------------------------------------- composite


@dataclass(frozen=True)
class Fixed(Condition):
    """A condition answering given instances, recording each evaluation."""

    answer: tuple[Instance, ...]
    evaluations: list[float] = field(default_factory=list, compare=False)

    def evaluate(self, evaluator: Evaluator, time_s: float) -> list[Instance]:
        self.evaluations.append(time_s)
        return list(self.answer)

    def queries(self) -> list[Query]:
        return []


A1 = Instance({"service.name": "shop", "span.name": "a"}, 1.0)
A2 = Instance({"service.name": "shop", "span.name": "b"}, 2.0)
A3 = Instance({"service.name": "mail"}, 3.0)
B1 = Instance({"span.name": "a", "region": "eu"}, 10.0)
B2 = Instance({"service.name": "cart"}, 20.0)


@pytest.mark.parametrize(
    ("op", "left", "right", "expected"),
    [
        # A1 shares span.name=a with B1; A2 disagrees with both; A3 shares no name with B1: it matches.
        ("and", (A1, A2, A3), (B1, B2), [A1, A3]),
        ("unless", (A1, A2, A3), (B1, B2), [A2]),
        ("or", (A1, A2, A3), (B1, B2), [A1, A2, A3, B2]),
        ("and", (A1, A2), (Instance({}, None),), [A1, A2]),  # no labels: matches everything
        ("unless", (A1, A2), (), [A1, A2]),
        ("or", (), (B1, B2), [B1, B2]),
        ("and", (A1,), (B2,), []),
    ],
)
def test_composites_match_instances_that_agree_on_every_shared_label(
    op: str, left: tuple[Instance, ...], right: tuple[Instance, ...], expected: list[Instance]
) -> None:
    assert Composite(op, Fixed(left), Fixed(right)).evaluate(Evaluator(None), T) == expected  # type: ignore[arg-type]


def test_and_and_unless_skip_the_right_side_when_the_left_holds_for_nothing() -> None:
    for op in ("and", "unless", "or"):
        right = Fixed((B1,))
        Composite(op, Fixed(()), right).evaluate(Evaluator(None), T)  # type: ignore[arg-type]
        assert len(right.evaluations) == (op == "or")


def test_composite_over_real_data_keeps_the_left_value(source: MemorySource) -> None:
    evaluator = CountingEvaluator(source)
    condition = parse_condition(
        "last(queue.depth[1m]) by (queue) > 0 and slope(last(queue.depth[1m]) by (queue), 30m) > 0.01"
    )
    assert found(condition, evaluator) == [({"queue": "orders"}, 998.0)]
    assert [kind for kind, _ in evaluator.calls] == ["instant", "range"]
    either = parse_condition("last(queue.depth[1m]) by (queue) > 900 or last(temp[1m]) by (host) > 20")
    assert found(either, evaluator) == [({"queue": "orders"}, 998.0)]  # host=... agrees with queue=orders
    unless = parse_condition("last(temp[1m]) by (host) > 20 unless zscore(last(temp[1m]) by (host), 1h) > 5")
    assert found(unless, evaluator) == [({"host": "e"}, 100.0), ({"host": "f"}, 30.0)]


def test_queries_lists_every_query_in_text_order() -> None:
    condition = parse_condition("p95(a) > 1 and (absent(count(b)) or ewma(avg(c), 1h) > 2) unless slope(max(d), 1h) > 0")
    assert [q.metric for q in condition.queries()] == ["a", "b", "c", "d"]


# --------------------------------------------------------------- parsing


def test_each_kind_parses_to_its_data() -> None:
    q = parse_query('p95(x{a="b"}[5m]) by (c)')
    assert parse_condition('p95(x{a="b"}[5m]) by (c) >= 1.5') == Threshold(q, ">=", 1.5)
    assert parse_condition('slope(p95(x{a="b"}[5m]) by (c), 1h) < -0.5') == Trend("slope", q, 3600.0, None, "<", -0.5)
    assert parse_condition('forecast(p95(x{a="b"}[5m]) by (c), 1h, 4h) > 9') == Trend(
        "forecast", q, 3600.0, 14400.0, ">", 9.0
    )
    assert parse_condition('madscore(p95(x{a="b"}[5m]) by (c), 2h) > 4') == Anomaly("madscore", q, 7200.0, ">", 4.0)
    assert parse_condition('absent(p95(x{a="b"}[5m]) by (c))') == Absent(q)


def test_and_and_unless_bind_tighter_than_or_and_all_associate_left() -> None:
    a, b, c = (Threshold(parse_query(f"avg({m})"), ">", 0.0) for m in "abc")
    assert parse_condition("avg(a) > 0 or avg(b) > 0 and avg(c) > 0") == Composite("or", a, Composite("and", b, c))
    assert parse_condition("avg(a) > 0 unless avg(b) > 0 and avg(c) > 0") == Composite(
        "and", Composite("unless", a, b), c
    )
    assert parse_condition("(avg(a) > 0 or avg(b) > 0) and avg(c) > 0") == Composite("and", Composite("or", a, b), c)


ROUND_TRIP = [
    ("p95(x)>300", "p95(x) > 300"),
    (
        " p95( traces.span.metrics.duration{service.name='shop',span.name=~`GET .*`} [300] ) by(span.name)>=300.50",
        'p95(traces.span.metrics.duration{service.name="shop", span.name=~"GET .*"}[5m]) by (span.name) >= 300.5',
    ),
    ("apdex(x[1h30m], 0.25) < 0.9", "apdex(x[1h30m], 0.25) < 0.9"),
    ("apdex(x, 1.5s) < 0.9", "apdex(x, 1500) < 0.9"),
    ('count(x{a="say \\"hi\\"\\\\\\n"}) == 1e3', 'count(x{a="say \\"hi\\"\\\\\\n"}) == 1000'),
    ("slope(p95(x[1.5m]), 7200) <= -.5", "slope(p95(x[1m30s]), 2h) <= -0.5"),
    ("forecast(avg(d[5m]),6h,90) > 0.95", "forecast(avg(d[5m]), 6h, 1m30s) > 0.95"),
    ("zscore(rate(c[250ms]),1d1h)<-3", "zscore(rate(c[250ms]), 1d1h) < -3"),
    ("ewma(p99(x), 1w) != 0", "ewma(p99(x), 1w) != 0"),
    ("absent(last(up{job=\"x\"}))", 'absent(last(up{job="x"}))'),
    ("p95(a)>1 and p95(b)>1 or p95(c)>1", "p95(a) > 1 and p95(b) > 1 or p95(c) > 1"),
    ("p95(a)>1 and (p95(b)>1 or p95(c)>1)", "p95(a) > 1 and (p95(b) > 1 or p95(c) > 1)"),
    ("((p95(a)>1 and p95(b)>1)) unless p95(c)>1", "p95(a) > 1 and p95(b) > 1 unless p95(c) > 1"),
    ("p95(a)>1 unless (p95(b)>1 unless p95(c)>1)", "p95(a) > 1 unless (p95(b) > 1 unless p95(c) > 1)"),
    ("p95(a)>1 or (p95(b)>1 or p95(c)>1)", "p95(a) > 1 or (p95(b) > 1 or p95(c) > 1)"),
    ("p95(x[0.1])>0.0001", "p95(x[100ms]) > 0.0001"),
    ("p95(x[0.0001])>1", "p95(x[0.0001]) > 1"),
]


@pytest.mark.parametrize(("text", "canonical"), ROUND_TRIP, ids=[t for t, _ in ROUND_TRIP])
def test_str_is_canonical_text_that_parses_back_to_the_same_condition(text: str, canonical: str) -> None:
    condition = parse_condition(text)
    assert str(condition) == canonical
    assert parse_condition(canonical) == condition
    assert str(parse_condition(canonical)) == canonical


FUNCTIONS = "absent, slope, forecast, zscore, madscore or ewma"
BAD = [
    ("", f"1:1: expected a condition such as p95(...) > 300, a function ({FUNCTIONS}) or '(', got end of condition"),
    # bad queries inside: the query parser's message, at its place in the condition
    ("p95(x{a=1}) > 3", "1:9: expected a quoted string after '=', got '1'"),
    ("p95 > 3", "1:5: expected '(' after 'p95', got '>'"),
    ("p95(x", "1:6: expected ')' after the selector, got end of condition"),
    ('p95(x{a=="b"}) > 1', "1:8: expected a matcher (=, !=, =~ or !~) after 'a', got '=='"),
    ("avg(a) > 1 or\n  p95(x[5x]) > 1", "2:9: invalid duration '5x' (use ms, s, m, h, d or w, e.g. 30s, 5m or 1h30m)"),
    ("P95(x) > 3", "1:1: unknown statistic 'P95' (statistics are lower case: p95)"),
    ("avg(a) > 1 and\n  p95(y @) > 2", "2:9: unexpected character '@'"),
    # the comparison and its number
    ("p95(x)", "1:7: expected a comparison (>, >=, <, <=, == or !=) after the query, got end of condition"),
    ("p95(x) = 3", "1:8: expected a comparison (>, >=, <, <=, == or !=) after the query, got '=' (use == to compare)"),
    ("p95(x) >", "1:9: expected a number after '>', got end of condition"),
    ("p95(x) >= avg(y)", "1:11: expected a number after '>=', got 'avg'"),
    ("p95(x) > -", "1:11: expected a number after '> -', got end of condition"),
    (
        "p95(x) > 5m",
        "1:10: expected a number after '>', got '5m' (a threshold is a plain number in the query's unit, "
        "e.g. 300 for 300 ms)",
    ),
    ("absent(p95(x)) > 1", "1:16: absent(...) is a condition on its own and takes no comparison, got '>'"),
    # functions
    ("slop(p95(x), 5m) > 1", f"1:1: unknown function 'slop' (expected a statistic such as p95 or avg, or {FUNCTIONS})"),
    ("SLOPE(p95(x), 1h) > 1", "1:1: unknown function 'SLOPE' (functions are lower case: slope)"),
    ("slope p95(x), 1h) > 1", "1:7: expected '(' after 'slope', got 'p95'"),
    ("slope(p95(x)) > 1", "1:13: expected ',' and the window (e.g. 30m) after the query of slope(...), got ')'"),
    ("zscore(p95(x), ) > 1", "1:16: expected the baseline of zscore(...), a duration such as 30m, got ')'"),
    ("zscore(p95(x), 1h, 2h) > 1", "1:18: expected ')' after the baseline of zscore(...), got ','"),
    ("forecast(p95(x), 1h) > 1", "1:20: expected ',' and the horizon (e.g. 4h) after the window of forecast(...), got ')'"),
    ("forecast(p95(x), 1h, 0) > 1", "1:22: invalid duration '0': must be greater than zero"),
    ("slope(p95(x), 1h)", "1:18: expected a comparison (>, >=, <, <=, == or !=) after slope(...), got end of condition"),
    (
        "slope(p95(x[5m]), 5m) > 1",
        "1:19: slope needs at least 3 points: a window of 5m at the query's step of 5m gives 2; use at least 10m",
    ),
    (
        "ewma(p95(x), 2m) > 1",
        "1:14: ewma needs at least 3 points: a baseline of 2m at the query's step of 1m gives 2; use at least 3m",
    ),
    # structure and trailing garbage
    ("p95(x) > 3 foo", "1:12: expected 'and', 'or', 'unless' or end of condition, got 'foo'"),
    ("p95(x) > 3)", "1:11: expected 'and', 'or', 'unless' or end of condition, got ')'"),
    ("p95(x) > 3 and", f"1:15: expected a condition such as p95(...) > 300, a function ({FUNCTIONS}) or '(', got end of condition"),
    ("or p95(x) > 3", f"1:1: expected a condition such as p95(...) > 300, a function ({FUNCTIONS}) or '(', got 'or'"),
    ("(p95(x) > 1", "1:12: expected ')' to close the '(' at 1:1, got end of condition"),
    ("p95(x) by (a) by (b) > 1", "1:15: expected a comparison (>, >=, <, <=, == or !=) after the query, got 'by'"),
    ("(" * 40 + "p95(x) > 1" + ")" * 40, "1:33: parentheses nest more than 32 deep"),
    (" or ".join(["p95(x) > 1"] * 65), "1:897: a condition may combine at most 64 parts"),
    ('p95(x{a="unterminated) > 1', '1:9: unterminated string: no closing " for the one here'),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[t[:40] for t, _ in BAD])
def test_bad_conditions_name_line_column_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_condition(text)
    assert str(caught.value) == message


def test_evaluation_errors_point_into_the_condition_text(source: MemorySource) -> None:
    condition = parse_condition("avg(nothing) > 1 or\n  (last(queue.depth[1m]) > 0)")
    with pytest.raises(QueryError) as caught:
        condition.evaluate(Evaluator(source, limits=Limits(max_series=2)), T)
    assert str(caught.value).startswith("2:9: the selector matches 3 series, over the limit of 2 per query")
    with pytest.raises(QueryError) as caught:
        parse_condition("  zscore(p95(queue.depth), 1h) > 1").evaluate(Evaluator(source), T)
    assert str(caught.value) == "1:10: p95 does not apply to 'queue.depth', a gauge (use avg, min, max or last)"


# ------------------------------------------------------------------ fuzz

FRAGMENTS = [
    "p95(", "avg(", "x", "x{", 'a="b"', "a!=", "}", "[5m]", "[", "]", ")", "(", " by (a)", ",", " 1h", " 0",
    " > ", ">=", "<", "==", "!=", "=", "-", " 3", "1e3", " and ", " or ", " unless ", "slope(", "forecast(",
    "zscore(", "madscore(", "ewma(", "absent(", "'", '"', "`", "\\", "\n", " ", "@", ".5", "5m", "by",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join)))
def test_any_text_parses_or_raises_a_query_error_and_parsed_text_round_trips(text: str) -> None:
    try:
        condition = parse_condition(text)
    except QueryError as err:
        assert err.line is not None and err.column is not None  # every syntax error has a place
        return
    assert parse_condition(str(condition)) == condition


def test_instances_are_frozen() -> None:
    instance = Instance({"a": "b"}, 1.0)
    with pytest.raises(AttributeError):
        instance.value = 2.0  # type: ignore[misc]


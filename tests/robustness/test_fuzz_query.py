"""Fuzzing the query language and alert conditions: any text parses or is a positioned :class:`QueryError`.

Queries come from people (dashboard panels, ``GET /api/v1/query``, rule
files), so ``parse_query`` and ``parse_condition`` promise exactly one
error type, and the API answers it with a 400. Inputs: sequences of the
language's own tokens (the likeliest to get deep into the parser), valid
queries and conditions with characters and tokens edited, and arbitrary
text. Whatever parses is then evaluated at odd times over a small daemon
memory, where only :class:`QueryError` may come out either.
"""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from trm_otel.alerting.conditions import parse_condition
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.query import Evaluator, MemorySource, QueryError, parse_query
from trm_otel.receivers.otlp_traces import decode_traces

from .mutations import DataChooser, trace_request
from .settings import fuzz_settings

QUERIES = (
    'p95(traces.span.metrics.duration{service.name="shop", span.name=~"GET.*"}[5m]) by (span.name)',
    'apdex(traces.span.metrics.duration{span.name!~"GET /health.*"}[15m], 250)',
    "error_rate(traces.span.metrics.duration{span.kind='SPAN_KIND_SERVER'}[1h30m]) by (service.name,)",
    "p999(traces.span.metrics.duration{a='b\\n'}[250ms])",
    'last(ALERTS{alertstate="firing"}[5m]) by (alertname)',
    "last(system.memory.utilization{system.memory.state=`used`}[1m])",
    "rate(traces.span.metrics.calls[60]) by (service.name, span.name)",
    "count(fuzz.requests)",
)
CONDITIONS = (
    "slope(p95(traces.span.metrics.duration[5m]), 1h) > 0.5",
    "forecast(avg(system.filesystem.utilization[5m]), 6h, 4h) > 0.95",
    "zscore(rate(traces.span.metrics.calls[1m]), 1h) < -3",
    "madscore(p99(traces.span.metrics.duration[1m]) by (span.name), 2h) > 5",
    "ewma(count(traces.span.metrics.calls[1m]), 30m) >= 2",
    'absent(count(traces.span.metrics.calls{service.name="shop"}[10m]))',
    "p95(x[5m]) > 300 and rate(x[5m]) > 1 or (absent(last(up)) unless last(maintenance) == 1)",
    *(f"{query} != 0" for query in QUERIES),
)
_TOKENS = (
    "(", ")", "{", "}", "[", "]", ",", "=", "!=", "=~", "!~", ">", "<", ">=", "<=", "==", "-", "and", "or", "unless",
    "by", "p95", "p50", "p0", "p100", "p990", "p9999999999999999999999", "avg", "count", "rate", "apdex", "last",
    "error_rate", "absent", "slope", "forecast", "zscore", "madscore", "ewma", "traces.span.metrics.duration",
    "service.name", "x", "1", "0", "-0", ".5", "1e3", "1e309", "9" * 400, "300", "5m", "1h30m", "0s", "1ms1s",
    "99999999999999999999999d", "1w1w", "5mm", '"shop"', "'a'", "`[`", '"(.*"', '"\\q"', '"', "`", "nan", "inf",
    "\n", " ", "\t", "é", "\x00", "#",
)

_NUMBERS = ("0", "9" * 400, "9" * 308, "99999999999999999999", "0.0000001", "1e3", ".", "5200", "3200000000")


def _texts(seeds: tuple[str, ...]) -> st.SearchStrategy[str]:
    """Token sequences, edited seeds, and arbitrary text."""
    tokens = st.lists(st.sampled_from(_TOKENS), max_size=40).map(" ".join)
    tight = st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join)

    @st.composite
    def edited(draw: st.DrawFn) -> str:
        ch = DataChooser(draw(st.data()))
        text = list(ch.choice(seeds))
        for _ in range(ch.choice((0, 1, 1, 2, 4))):
            at = ch.integer(0, len(text))
            op = ch.choice(("delete", "char", "token", "number", "duplicate", "nest"))
            if op == "delete" and text:
                del text[at : at + ch.integer(1, 5)]
            elif op == "char":
                text[at:at] = ch.choice("(){}[],=!~<>-`'\"\\ .5emsé\x00\n")
            elif op == "token":
                text[at:at] = f" {ch.choice(_TOKENS)} "
            elif op == "number":  # a number or duration replaced by an extreme one: keeps the text parsable
                digits = [i for i, c in enumerate(text) if c.isdigit()]
                if digits:
                    i = ch.choice(digits)
                    text[i : i + 1] = ch.choice(_NUMBERS)
            elif op == "duplicate" and text:
                start = ch.integer(0, len(text) - 1)
                text[at:at] = text[start : start + ch.integer(1, 40)]
            elif op == "nest":
                depth = ch.choice((5, 33, 300, 3000))
                text = ["("] * depth + text + [")"] * ch.choice((0, depth))
        return "".join(text)

    # Most examples are edited seeds: they get past the parser often enough to test evaluation too.
    return st.one_of(edited(), edited(), edited(), edited(), tokens, tight, st.text(max_size=200))


def _parse_only_query_error(parse: object, text: str) -> object | None:
    """The parsed query or condition, or None after checking the error is a positioned QueryError."""
    try:
        return parse(text)  # type: ignore[operator]
    except QueryError as err:
        assert err.message
        if err.column is not None:
            assert err.line is not None and err.line >= 1 and err.column >= 1
        event("refused")
        return None


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    """A daemon's memory with spans of a few endpoints and one gauge, to evaluate what parses."""
    now = time.time()
    aggregator = LatencyAggregator(window_s=10.0, history_s=3600.0)
    aggregator.add_spans(decode_traces(trace_request(time.time_ns(), spans=20), max_age_s=3600).batch)
    scalars = ScalarSeriesStore(window_s=10.0)
    scalars.record_gauge(("fuzz.queue", "fuzz", ()), int(now * 1e9), 0.5)
    return Evaluator(MemorySource(aggregator, scalars))


_TIMES = st.one_of(
    st.just(None),  # now
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1.0, 1e300, -1e300, 2**63 / 1e9, 9.3e9, -9.3e9, 1e-300]),
)


def _evaluate_only_query_error(evaluator: Evaluator, parsed: object, time_s: float | None, step_s: float) -> None:
    now = time.time() if time_s is None else time_s
    try:
        if hasattr(parsed, "evaluate"):
            parsed.evaluate(evaluator, now)  # type: ignore[attr-defined]
        else:
            evaluator.instant(parsed, now)  # type: ignore[arg-type]
            if math.isfinite(step_s):
                evaluator.range(parsed, now - 600, now, step_s)  # type: ignore[arg-type]
    except QueryError as err:
        assert err.message
        event("parsed, refused when evaluated")
        return
    event("parsed and evaluated")


@fuzz_settings()
@given(text=_texts(QUERIES), time_s=_TIMES, step_s=st.sampled_from([10.0, 0.001, 1e-300, 600.0, -5.0, 0.0]))
def test_queries(evaluator: Evaluator, text: str, time_s: float | None, step_s: float) -> None:
    parsed = _parse_only_query_error(parse_query, text)
    if parsed is not None:
        _evaluate_only_query_error(evaluator, parsed, time_s, step_s)


@fuzz_settings()
@given(text=_texts(CONDITIONS), time_s=_TIMES)
def test_conditions(evaluator: Evaluator, text: str, time_s: float | None) -> None:
    parsed = _parse_only_query_error(parse_condition, text)
    if parsed is not None:
        _evaluate_only_query_error(evaluator, parsed, time_s, 10.0)


@pytest.mark.parametrize("text", [*QUERIES, *CONDITIONS])
def test_the_seeds_are_valid(text: str) -> None:
    """Edits start from valid text; each seed parses (as a query, or else as a condition)."""
    try:
        parse_query(text)
    except QueryError:
        parse_condition(text)

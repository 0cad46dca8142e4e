"""The query language's syntax: good expressions as ASTs, bad ones as exact messages."""

from __future__ import annotations

import pickle

import pytest

from trm_otel.errors import TrmOtelError
from trm_otel.query import Query, QueryError, parse_query
from trm_otel.query.parser import parse_duration_text
from trm_otel.series_source import Matcher

DURATION = "traces.span.metrics.duration"

GOOD: list[tuple[str, Query]] = [
    ("p95(x)", Query("p95", "x", quantile=0.95)),
    ("p50(x)", Query("p50", "x", quantile=0.5)),
    ("p90(x)", Query("p90", "x", quantile=0.9)),
    ("p99(x)", Query("p99", "x", quantile=0.99)),
    ("p1(x)", Query("p1", "x", quantile=0.01)),
    ("p5(x)", Query("p5", "x", quantile=0.05)),
    ("p75(x)", Query("p75", "x", quantile=0.75)),
    ("p999(x)", Query("p999", "x", quantile=0.999)),
    ("p9999(x)", Query("p9999", "x", quantile=0.9999)),
    ("p995(x)", Query("p995", "x", quantile=0.995)),
    *[(f"{stat}(x)", Query(stat, "x")) for stat in ("avg", "min", "max", "sum", "count", "rate", "error_rate", "last")],
    ("apdex(x)", Query("apdex", "x")),
    ("apdex(x[5m], 300)", Query("apdex", "x", range_s=300.0, threshold_ms=300.0)),
    ("apdex(x, 0.25)", Query("apdex", "x", threshold_ms=0.25)),
    ("apdex(x, 1.5s)", Query("apdex", "x", threshold_ms=1500.0)),
    ("apdex(x, 250ms)", Query("apdex", "x", threshold_ms=250.0)),
    (
        f'p95({DURATION}{{service.name="shop", span.name!="GET /health", span.kind=~"SPAN_KIND_(SERVER|CONSUMER)", '
        'status.code!~"STATUS_CODE_ERROR"}[5m]) by (span.name, service.name)',
        Query(
            "p95",
            DURATION,
            (
                Matcher("service.name", "=", "shop"),
                Matcher("span.name", "!=", "GET /health"),
                Matcher("span.kind", "=~", "SPAN_KIND_(SERVER|CONSUMER)"),
                Matcher("status.code", "!~", "STATUS_CODE_ERROR"),
            ),
            range_s=300.0,
            by=("span.name", "service.name"),
            quantile=0.95,
        ),
    ),
    # whitespace and newlines anywhere between tokens, trailing commas, empty braces and by ()
    (" count (\n x { a = 'b' , } [ 1h ] ) by ( a , ) ", Query("count", "x", (Matcher("a", "=", "b"),), 3600.0, ("a",))),
    ("sum(x{})", Query("sum", "x")),
    ("sum(x) by ()", Query("sum", "x")),
    # durations: every unit, compounds, plain seconds, decimals
    ("rate(x[250ms])", Query("rate", "x", range_s=0.25)),
    ("rate(x[30s])", Query("rate", "x", range_s=30.0)),
    ("rate(x[2h])", Query("rate", "x", range_s=7200.0)),
    ("rate(x[1d])", Query("rate", "x", range_s=86400.0)),
    ("rate(x[1w])", Query("rate", "x", range_s=604800.0)),
    ("rate(x[1h30m])", Query("rate", "x", range_s=5400.0)),
    ("rate(x[1.5m])", Query("rate", "x", range_s=90.0)),
    ("rate(x[90])", Query("rate", "x", range_s=90.0)),
    # OTel names: dots, slashes, dashes, colons
    (
        'avg(system.cpu.utilization{cpu.state="idle"})',
        Query("avg", "system.cpu.utilization", (Matcher("cpu.state", "=", "idle"),)),
    ),
    ("last(my-app/queue.depth:v2)", Query("last", "my-app/queue.depth:v2")),
    # string escapes, single quotes and raw backtick strings
    (r'count(x{a="say \"hi\"\\n"})', Query("count", "x", (Matcher("a", "=", 'say "hi"\\n'),))),
    ("count(x{a=\"tab\\there\"})", Query("count", "x", (Matcher("a", "=", "tab\there"),))),
    ("count(x{a=~`GET /api/v\\d+/.*`})", Query("count", "x", (Matcher("a", "=~", "GET /api/v\\d+/.*"),))),
    ("count(x{a=\"\"})", Query("count", "x", (Matcher("a", "=", ""),))),
    # a label may be called by, and by may be followed directly by its list
    ("count(x{by=\"1\"}) by(by)", Query("count", "x", (Matcher("by", "=", "1"),), by=("by",))),
]


@pytest.mark.parametrize(("text", "expected"), GOOD, ids=[text for text, _ in GOOD])
def test_good_expressions_parse_to_their_ast(text: str, expected: Query) -> None:
    assert parse_query(text) == expected


BAD: list[tuple[str, str]] = [
    ("", "1:1: expected a statistic such as p95 or avg, got end of query"),
    ("   ", "1:4: expected a statistic such as p95 or avg, got end of query"),
    ("{a='b'}", "1:1: expected a statistic such as p95 or avg, got '{'"),
    ("p95 {service.name='shop'}", "1:5: expected '(' after 'p95', got '{'"),
    ("p95", "1:4: expected '(' after 'p95', got end of query"),
    ("median(x)", "1:1: unknown statistic 'median' (expected p50, p90, p95, p99, pNN, avg, min, max, sum, count, "
     "rate, error_rate, apdex or last)"),
    ("P95(x)", "1:1: unknown statistic 'P95' (statistics are lower case: p95)"),
    ("p100(x)", "1:1: invalid percentile 'p100' (use p1 to p99, or more digits for decimals: p999 is 99.9)"),
    ("p990(x)", "1:1: invalid percentile 'p990' (use p1 to p99, or more digits for decimals: p999 is 99.9)"),
    ("p0(x)", "1:1: invalid percentile 'p0' (use p1 to p99, or more digits for decimals: p999 is 99.9)"),
    ("p05(x)", "1:1: invalid percentile 'p05' (use p1 to p99, or more digits for decimals: p999 is 99.9)"),
    ("p95()", "1:5: expected a metric name such as traces.span.metrics.duration, got ')'"),
    ("p95({a='b'})", "1:5: expected a metric name such as traces.span.metrics.duration, got '{'"),
    ("p95(x{'a'='b'})", "1:7: expected a label name or '}', got string 'a'"),
    ("p95(x{a})", "1:8: expected a matcher (=, !=, =~ or !~) after 'a', got '}'"),
    ("p95(x{a==\"b\"})", "1:9: expected a quoted string after '=', got '='"),
    ("p95(x{a=b})", "1:9: expected a quoted string after '=', got 'b'"),
    ("p95(x{a=~\"b\" c=\"d\"})", "1:14: expected ',' or '}' after the matcher, got 'c'"),
    ("p95(x{a=\"b\"", "1:12: expected ',' or '}' after the matcher, got end of query"),
    ("p95(x{a=~\"(\"})", "1:10: invalid regular expression \"(\": missing ), unterminated subpattern at position 0"),
    ("p95(x{a=\"b})", "1:9: unterminated string: no closing \" for the one here"),
    ("p95(x{a=\"b\\q\"})", "1:11: unknown escape '\\q' in string (use \\\\ for a backslash, or a `backtick` string)"),
    ("p95(x[])", "1:7: expected a duration such as 5m after '[', got ']'"),
    ("p95(x[5x])", "1:7: invalid duration '5x' (use ms, s, m, h, d or w, e.g. 30s, 5m or 1h30m)"),
    ("p95(x[5M])", "1:7: invalid duration '5M' (use ms, s, m, h, d or w, e.g. 30s, 5m or 1h30m)"),
    ("p95(x[0s])", "1:7: invalid duration '0s': must be greater than zero"),
    ("p95(x[0])", "1:7: invalid duration '0': must be greater than zero"),
    ("p95(x[1m1h])", "1:7: invalid duration '1m1h': units must go from largest to smallest, each once"),
    ("p95(x[5m)", "1:9: expected ']' after the range, got ')'"),
    ("p95(x[5m]", "1:10: expected ')' after the selector, got end of query"),
    ("p95(x, 300)", "1:6: expected ')' after the selector, got ',' (only apdex takes a second argument)"),
    ("apdex(x 300)", "1:9: expected ',' or ')' after the selector, got '300'"),
    ("apdex(x, )", "1:10: expected a threshold in milliseconds (or a duration) after ',', got ')'"),
    ("apdex(x, 0)", "1:10: apdex threshold must be greater than zero, got 0"),
    ("apdex(x, 300, 1)", "1:13: expected ')' after the threshold, got ','"),
    ("p95(x) bye", "1:8: expected 'by' or end of query after ')', got 'bye'"),
    ("p95(x) without (a)", "1:8: expected 'by' or end of query after ')', got 'without'"),
    ("p95(x) by a", "1:11: expected '(' after 'by', got 'a'"),
    ("p95(x) by (a b)", "1:14: expected ',' or ')' after 'a', got 'b'"),
    ("p95(x) by (a, 'b')", "1:15: expected a label name or ')', got string 'b'"),
    ("p95(x) by (a, a)", "1:15: label 'a' appears twice in by (...)"),
    ("p95(x) by (a", "1:13: expected ',' or ')' after 'a', got end of query"),
    ("p95(x) by (a) )", "1:15: expected end of query, got ')'"),
    ("p95(x) # comment", "1:8: unexpected character '#'"),
    ("p95(x)\n  by {", "2:6: expected '(' after 'by', got '{'"),
    (
        'p95(\n  x{a="b",\n    c=~"["})',
        '3:8: invalid regular expression "[": unterminated character set at position 0',
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[text for text, _ in BAD])
def test_bad_expressions_name_line_column_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    assert str(caught.value) == message


def test_query_error_carries_its_position_and_survives_pickling() -> None:
    with pytest.raises(QueryError) as caught:
        parse_query("p95(x)\n  by {")
    err = caught.value
    assert (err.line, err.column, err.message) == (2, 6, "expected '(' after 'by', got '{'")
    assert isinstance(err, TrmOtelError) and isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.line, again.column) == (str(err), 2, 6)
    assert str(QueryError("too many series")) == "too many series"
    assert QueryError("too many series").column is None


def test_positions_of_the_statistic_and_selector_are_kept_for_later_errors() -> None:
    query = parse_query("  p95(\n   x)")
    assert query.stat_at == (1, 3)
    assert query.selector_at == (2, 4)


def test_regex_matchers_are_fully_anchored() -> None:
    (matcher,) = parse_query('count(x{a=~"GET .*|POST"})').matchers
    assert matcher.matches({"a": "GET /cart"})
    assert matcher.matches({"a": "POST"})
    assert not matcher.matches({"a": "POST /pay"})
    assert not matcher.matches({"a": "xGET"})


@pytest.mark.parametrize(
    ("text", "seconds"), [("5m", 300.0), ("1w2d3h4m5s6ms", 604800 + 172800 + 10800 + 240 + 5 + 0.006), (".5s", 0.5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_text(text) == pytest.approx(seconds)

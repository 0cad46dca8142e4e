"""The ``expr`` of an alert rule: when a query's answer means trouble.

    >>> c = parse_condition('p95(traces.span.metrics.duration{service.name="shop"}[5m]) by (span.name) > 300')
    >>> c.evaluate(evaluator, now)                                                     # doctest: +SKIP
    [Instance(labels={'span.name': 'POST /pay'}, value=412.7)]
    >>> str(parse_condition("zscore(avg(queue.depth[1m]), 1h)>3 and absent(last(up{job='x'}))"))
    'zscore(avg(queue.depth[1m]), 1h) > 3 and absent(last(up{job="x"}))'

A condition is evaluated at one time and answers a list of *instances*: the
groups (label sets) for which it holds, each with the value that made it
hold. The rule stage turns each instance into an alert (``for:``,
``keep_firing_for:``, labels and annotations are the rule's business).

Grammar (``QUERY`` is the query language of :mod:`trm_otel.query`;
``WINDOW`` a duration such as ``30m`` or a number of seconds)::

    condition  = conjunction ( "or" conjunction )*
    conjunction= primary ( ( "and" | "unless" ) primary )*
    primary    = "(" condition ")"
               | "absent" "(" QUERY ")"
               | operand OP NUMBER
    operand    = QUERY
               | "slope" "(" QUERY "," WINDOW ")"
               | "forecast" "(" QUERY "," WINDOW "," HORIZON ")"
               | ( "zscore" | "madscore" | "ewma" ) "(" QUERY "," BASELINE ")"
    OP         = ">" | ">=" | "<" | "<=" | "==" | "!="
    NUMBER     = "-"? decimal number (1e3 is allowed, 1e-3 is not: write 0.001)

Examples::

    p95(traces.span.metrics.duration{service.name="shop"}[5m]) > 300
    error_rate(traces.span.metrics.calls[5m]) by (span.name) >= 0.05
    slope(p95(traces.span.metrics.duration[5m]), 1h) > 0.5          # ms per second
    forecast(avg(system.filesystem.utilization[5m]), 6h, 4h) > 0.95
    zscore(rate(traces.span.metrics.calls[1m]), 1h) < -3
    madscore(p99(traces.span.metrics.duration[1m]) by (span.name), 2h) > 5
    absent(count(traces.span.metrics.calls{service.name="shop"}[10m]))
    p95(x[5m]) > 300 and rate(x[5m]) > 1 or (absent(last(up)) unless last(maintenance) == 1)

Kinds, and what each instance's value is:

* threshold ``QUERY OP NUMBER``: one instant query at the evaluation time;
  every group whose value satisfies the comparison, with that value.
* trend: the query is evaluated as a range over the last WINDOW (times
  ``now - n*step .. now``) at a *step* of the query's own ``[range]`` (else
  one minute), widened to ``WINDOW / 120`` so a range never has more than
  121 points. Per group, a least-squares line through its points (groups
  need at least 3): ``slope`` is its slope per second; ``forecast`` its
  value HORIZON after now, as PromQL's ``predict_linear``.
* anomaly: the same range over the BASELINE window; the point at ``now`` is
  the current value ``x`` and the ``n`` points before it the baseline (at
  least 3 present, else the group has no result):

  - ``zscore``: ``(x - mean) / std`` with the sample std (ddof = 1);
  - ``madscore``: ``(x - median) / (1.4826 * MAD)``, ``MAD = median(|b -
    median|)``, robust to spikes already in the baseline (1.4826 makes it
    comparable to a z-score for normal data);
  - ``ewma``: ``(x - m) / s`` where ``m`` and ``s**2`` are the exponentially
    weighted mean and variance of the baseline in time order (``m += a*d;
    v = (1 - a) * (v + a*d*d)`` with ``d = b - m``), ``a = 2 / (n + 1)``: a
    baseline of n steps is the EWMA's span, recent points weigh most.

  A baseline with no spread (all points equal, or MAD of zero) gives no
  result when ``x`` equals its centre and ``+inf``/``-inf`` when it
  differs: a flat line that moves is as anomalous as it gets.
* absence ``absent(QUERY)``: one instance with value ``None`` when the
  query answers no group at all, labelled with the selector's equality
  matchers (``{service.name="shop"}`` gives ``service.name=shop``), as
  Prometheus' ``absent()``. "No data for 10 minutes" is ``absent`` with the
  rule's ``for: 10m``.
* composite ``A and B``, ``A or B``, ``A unless B``: an instance of A
  *matches* one of B when their labels agree on every label name both
  have (so ``{}`` matches everything, and ``{span.name=a}`` matches
  ``{service.name=shop}``). ``and`` keeps A's instances that match some
  instance of B, ``unless`` those that match none, ``or`` is all of A's
  plus B's that match none of A's; kept instances keep their labels and
  values. ``and`` and ``unless`` bind tighter than ``or``, all are
  left-associative, as in PromQL; ``and`` and ``unless`` do not evaluate B
  when A holds for nothing.

Cost: one ``Evaluator.instant`` per threshold or absent query, one
``Evaluator.range`` per trend or anomaly query; the maths runs over a
(groups x steps) array at once. Errors from the evaluator (too many series
or points) are raised by :meth:`Condition.evaluate` as the evaluator's
:class:`~trm_otel.query.errors.QueryError`, positioned in the condition's
text.

Parsing reuses the query lexer and parser: each query's tokens are found by
their brackets and the query's own text goes to
:func:`~trm_otel.query.parse_query`, whose errors are moved to their place
in the whole condition. The lexer refuses ``<``, ``>`` and ``-``; the scan
takes its tokens up to each of them and adds them as operators.
"""

from __future__ import annotations

import bisect
import math
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from trm_otel.query.errors import QueryError
from trm_otel.query.evaluator import DEFAULT_RANGE_S, Evaluator, RangeSeries
from trm_otel.query.expr import NAMED_STATS, Query
from trm_otel.query.lexer import Token, describe, tokenize
from trm_otel.query.parser import parse_duration_text, parse_query, parse_seconds_text

__all__ = [
    "COMPARISONS",
    "MAX_STEPS",
    "MIN_POINTS",
    "Absent",
    "Anomaly",
    "Composite",
    "Condition",
    "Instance",
    "Threshold",
    "Trend",
    "parse_condition",
]

Comparison = Literal[">", ">=", "<", "<=", "==", "!="]

#: The comparison operators and what they compute (elementwise on arrays too).
COMPARISONS: dict[str, Callable[[object, object], object]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
#: Points a trend or an anomaly baseline needs, per group.
MIN_POINTS = 3
#: Steps of a trend or anomaly range at most (plus the one at now).
MAX_STEPS = 120
#: Makes MAD a consistent estimator of a normal distribution's std.
MAD_SCALE = 1.4826
#: How deep parentheses may nest and how many parts a condition may combine.
MAX_NESTING = 32
MAX_PARTS = 64

_TRENDS = ("slope", "forecast")
_ANOMALIES = ("zscore", "madscore", "ewma")
_FUNCTIONS_TEXT = "absent, slope, forecast, zscore, madscore or ewma"
_PRECEDENCE = {"or": 1, "and": 2, "unless": 2}
_PERCENTILE = re.compile(r"p[0-9]+")


@dataclass(frozen=True, slots=True)
class Instance:
    """One group for which a condition holds: its labels and the value that made it hold."""

    labels: dict[str, str]
    value: float | None


class Condition(ABC):
    """A parsed condition; see the module docstring for each kind."""

    __slots__ = ()

    @abstractmethod
    def evaluate(self, evaluator: Evaluator, time_s: float) -> list[Instance]:
        """The instances for which the condition holds at ``time_s``."""

    @abstractmethod
    def queries(self) -> list[Query]:
        """Every query inside, in text order, for a caller checking metrics or limits."""


@dataclass(frozen=True, slots=True)
class Threshold(Condition):
    """``QUERY OP NUMBER``."""

    query: Query
    op: Comparison
    threshold: float

    def evaluate(self, evaluator: Evaluator, time_s: float) -> list[Instance]:
        compare = COMPARISONS[self.op]
        return [
            Instance(dict(s.labels), s.value)
            for s in evaluator.instant(self.query, time_s)
            if compare(s.value, self.threshold)
        ]

    def queries(self) -> list[Query]:
        return [self.query]

    def __str__(self) -> str:
        return f"{_format_query(self.query)} {self.op} {_format_number(self.threshold)}"


@dataclass(frozen=True, slots=True)
class Trend(Condition):
    """``slope(QUERY, WINDOW) OP NUMBER`` or ``forecast(QUERY, WINDOW, HORIZON) OP NUMBER``."""

    function: Literal["slope", "forecast"]
    query: Query
    window_s: float
    horizon_s: float | None
    op: Comparison
    threshold: float

    def evaluate(self, evaluator: Evaluator, time_s: float) -> list[Instance]:
        step, n = _grid(self.query, self.window_s)
        labels, y = _matrix(evaluator, self.query, time_s, step, n)
        x = step * (np.arange(n + 1, dtype=np.float64) - n)  # seconds relative to now
        present = ~np.isnan(y)
        count = present.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            x_mean = np.where(present, x, 0.0).sum(axis=1) / count
            y_mean = np.where(present, y, 0.0).sum(axis=1) / count
            dx = np.where(present, x - x_mean[:, None], 0.0)
            dy = np.where(present, y - y_mean[:, None], 0.0)
            slope = (dx * dy).sum(axis=1) / (dx * dx).sum(axis=1)
        if self.function == "slope":
            values = slope
        else:
            values = y_mean + slope * (float(self.horizon_s or 0.0) - x_mean)
        return _instances(labels, values, count >= MIN_POINTS, self.op, self.threshold)

    def queries(self) -> list[Query]:
        return [self.query]

    def __str__(self) -> str:
        args = [_format_query(self.query), _format_duration(self.window_s)]
        if self.horizon_s is not None:
            args.append(_format_duration(self.horizon_s))
        return f"{self.function}({', '.join(args)}) {self.op} {_format_number(self.threshold)}"


@dataclass(frozen=True, slots=True)
class Anomaly(Condition):
    """``zscore|madscore|ewma(QUERY, BASELINE) OP NUMBER``."""

    function: Literal["zscore", "madscore", "ewma"]
    query: Query
    baseline_s: float
    op: Comparison
    threshold: float

    def evaluate(self, evaluator: Evaluator, time_s: float) -> list[Instance]:
        step, n = _grid(self.query, self.baseline_s)
        labels, y = _matrix(evaluator, self.query, time_s, step, n)
        current, baseline = y[:, n], y[:, :n]
        ok = ~np.isnan(current) & ((~np.isnan(baseline)).sum(axis=1) >= MIN_POINTS)
        scores = np.full(len(labels), np.nan)
        if ok.any():
            center, spread = _BASELINES[self.function](baseline[ok], n)
            diff = current[ok] - center
            with np.errstate(invalid="ignore", divide="ignore"):
                # Zero spread: +-inf when x moved, NaN (no result) when it did not.
                scores[ok] = np.where(spread > 0, diff / spread, np.sign(diff) * np.inf)
        return _instances(labels, scores, ok & ~np.isnan(scores), self.op, self.threshold)

    def queries(self) -> list[Query]:
        return [self.query]

    def __str__(self) -> str:
        return (
            f"{self.function}({_format_query(self.query)}, {_format_duration(self.baseline_s)}) "
            f"{self.op} {_format_number(self.threshold)}"
        )


@dataclass(frozen=True, slots=True)
class Absent(Condition):
    """``absent(QUERY)``: holds, once, while the query answers nothing."""

    query: Query

    def evaluate(self, evaluator: Evaluator, time_s: float) -> list[Instance]:
        if evaluator.instant(self.query, time_s):
            return []
        return [Instance(self.labels(), None)]

    def labels(self) -> dict[str, str]:
        """The selector's equality matchers; a name matched twice, or to "", is left out."""
        equal = [m for m in self.query.matchers if m.op == "="]
        names = [m.name for m in equal]
        return {m.name: m.value for m in equal if names.count(m.name) == 1 and m.value != ""}

    def queries(self) -> list[Query]:
        return [self.query]

    def __str__(self) -> str:
        return f"absent({_format_query(self.query)})"


@dataclass(frozen=True, slots=True)
class Composite(Condition):
    """``left and|or|unless right``, matched on shared label names."""

    op: Literal["and", "or", "unless"]
    left: Condition
    right: Condition

    def evaluate(self, evaluator: Evaluator, time_s: float) -> list[Instance]:
        left = self.left.evaluate(evaluator, time_s)
        if not left and self.op != "or":
            return []
        right = self.right.evaluate(evaluator, time_s)
        if self.op == "and":
            return [a for a in left if any(_agree(a.labels, b.labels) for b in right)]
        if self.op == "unless":
            return [a for a in left if not any(_agree(a.labels, b.labels) for b in right)]
        return left + [b for b in right if not any(_agree(a.labels, b.labels) for a in left)]

    def queries(self) -> list[Query]:
        return self.left.queries() + self.right.queries()

    def __str__(self) -> str:
        precedence = _PRECEDENCE[self.op]
        return f"{_operand(self.left, precedence, False)} {self.op} {_operand(self.right, precedence, True)}"


def parse_condition(text: str) -> Condition:
    """The :class:`Condition` written in ``text``; raises :class:`QueryError` naming line and column."""
    return _Parser(text).parse()


# ----------------------------------------------------------------- evaluation


def _grid(query: Query, window_s: float) -> tuple[float, int]:
    """``(step, n)``: the query's range (else a minute), widened to keep ``n <= MAX_STEPS``."""
    base = query.range_s if query.range_s is not None else DEFAULT_RANGE_S
    step = max(base, window_s / MAX_STEPS)
    return step, int(math.floor(window_s / step + 1e-9))


def _matrix(
    evaluator: Evaluator, query: Query, time_s: float, step: float, n: int
) -> tuple[list[dict[str, str]], np.ndarray]:
    """One range query at ``now - n*step .. now`` as (groups x (n + 1)), NaN where a group had no point."""
    start = time_s - n * step
    found: list[RangeSeries] = evaluator.range(query, start, time_s, step)
    y = np.full((len(found), n + 1), np.nan)
    for row, series in enumerate(found):
        columns = np.rint((np.asarray(series.times_s) - start) / step).astype(np.int64)
        y[row, columns] = series.values
    return [dict(series.labels) for series in found], y


def _instances(
    labels: list[dict[str, str]], values: np.ndarray, ok: np.ndarray, op: str, threshold: float
) -> list[Instance]:
    with np.errstate(invalid="ignore"):
        holds = ok & np.asarray(COMPARISONS[op](values, threshold), dtype=bool)
    return [Instance(labels[i], float(values[i])) for i in np.flatnonzero(holds)]


def _zscore(baseline: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    present = ~np.isnan(baseline)
    count = present.sum(axis=1)
    mean = np.where(present, baseline, 0.0).sum(axis=1) / count
    deviation = np.where(present, baseline - mean[:, None], 0.0)
    std = np.sqrt((deviation * deviation).sum(axis=1) / (count - 1))
    # A constant baseline has its exact value as centre (a mean may be off by an ulp).
    high, low = np.nanmax(baseline, axis=1), np.nanmin(baseline, axis=1)
    constant = high == low
    return np.where(constant, high, mean), np.where(constant, 0.0, std)


def _madscore(baseline: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    median = np.nanmedian(baseline, axis=1)
    mad = np.nanmedian(np.abs(baseline - median[:, None]), axis=1)
    return median, MAD_SCALE * mad


def _ewma(baseline: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    alpha = 2.0 / (n + 1)
    mean = np.full(len(baseline), np.nan)
    var = np.zeros(len(baseline))
    for column in baseline.T:  # at most MAX_STEPS columns, every group at once
        has = ~np.isnan(column)
        first = has & np.isnan(mean)
        update = has & ~first
        mean = np.where(first, column, mean)
        diff = np.where(update, column - mean, 0.0)
        mean = mean + alpha * diff
        var = np.where(update, (1.0 - alpha) * (var + alpha * diff * diff), var)
    return mean, np.sqrt(var)


_BASELINES: dict[str, Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]] = {
    "zscore": _zscore,
    "madscore": _madscore,
    "ewma": _ewma,
}


def _agree(a: dict[str, str], b: dict[str, str]) -> bool:
    """Labels match when they agree on every name both have."""
    if len(b) < len(a):
        a, b = b, a
    return all(b.get(name, value) == value for name, value in a.items())


# ------------------------------------------------------------------ canonical text


def _operand(condition: Condition, precedence: int, right: bool) -> str:
    """A composite's operand, in parentheses only where precedence needs them."""
    if not isinstance(condition, Composite):
        return str(condition)
    inner = _PRECEDENCE[condition.op]
    needs = inner < precedence or (right and inner == precedence)
    return f"({condition})" if needs else str(condition)


def _format_number(value: float) -> str:
    return np.format_float_positional(value, trim="-")


_UNIT_SECONDS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def _format_duration(seconds: float) -> str:
    """``5400 -> 1h30m``, ``0.25 -> 250ms``; a plain number of seconds when units cannot say it exactly."""
    millis = round(seconds * 1000)
    parts = []
    rest = millis
    for unit, size in _UNIT_SECONDS:
        count, rest = divmod(rest, size * 1000)
        if count:
            parts.append(f"{count}{unit}")
    if rest:
        parts.append(f"{rest}ms")
    text = "".join(parts)
    try:
        if text and parse_duration_text(text) == seconds:
            return text
    except ValueError:
        pass
    return _format_number(seconds)


def _format_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _format_query(query: Query) -> str:
    """The canonical text of a query (``parse_query`` of it gives an equal :class:`Query`)."""
    selector = query.metric
    if query.matchers:
        selector += "{" + ", ".join(f"{m.name}{m.op}{_format_string(m.value)}" for m in query.matchers) + "}"
    if query.range_s is not None:
        selector += f"[{_format_duration(query.range_s)}]"
    if query.threshold_ms is not None:
        selector += f", {_format_number(query.threshold_ms)}"
    text = f"{query.stat}({selector})"
    if query.by:
        text += f" by ({', '.join(query.by)})"
    return text


# ----------------------------------------------------------------------- parser


class _Text:
    """Offsets to ``(line, column)`` the way the query lexer counts them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def position(self, offset: int) -> tuple[int, int]:
        index = bisect.bisect_right(self.starts, offset) - 1
        return index + 1, offset - self.starts[index] + 1

    def error(self, message: str, offset: int) -> QueryError:
        line, column = self.position(offset)
        return QueryError(message, column, line)

    def moved(self, token: Token, base: int) -> Token:
        """A token of ``text[base:]`` placed in the whole text."""
        offset = token.offset + base
        return Token(token.kind, token.text, offset, *self.position(offset), token.value)


def _offset_in(text: str, line: int, column: int) -> int:
    start = 0
    for _ in range(line - 1):
        start = text.index("\n", start) + 1
    return start + column - 1


def _scan(where: _Text) -> list[Token]:
    """The query lexer's tokens plus ``< > - <= >= ==`` (the lexer knows ``!=`` and ``=``)."""
    text = where.text
    tokens: list[Token] = []
    base = 0
    while True:
        piece = text[base:]
        try:
            found, extra = tokenize(piece), None
        except QueryError as err:
            at = base + _offset_in(piece, err.line or 1, err.column or 1)
            if not (err.message.startswith("unexpected character") and text[at] in "<>-"):
                raise where.error(err.message, at) from None
            found, extra = tokenize(text[base:at])[:-1], at
        tokens.extend(where.moved(token, base) for token in found)
        if extra is None:
            break
        tokens.append(Token(text[extra], text[extra], extra, *where.position(extra)))
        base = extra + 1
    merged: list[Token] = []
    for token in tokens:
        last = merged[-1] if merged else None
        if last and token.kind == "=" and last.kind in ("<", ">", "=") and last.offset + 1 == token.offset:
            merged[-1] = Token(last.kind + "=", last.text + "=", last.offset, last.line, last.column)
        else:
            merged.append(token)
    return merged


def _describe(token: Token) -> str:
    return "end of condition" if token.kind == "end" else describe(token)


def _is_stat(name: str) -> bool:
    name = name.lower()
    return name in NAMED_STATS or _PERCENTILE.fullmatch(name) is not None


#: Tokens that can never be part of a query: where a query's text surely ends.
_QUERY_STOPS = frozenset({"end", "<", ">", "<=", ">=", "==", "-"})


class _Parser:
    """Recursive descent over the scanned tokens; queries are handed to the query parser."""

    def __init__(self, text: str) -> None:
        self.where = _Text(text)
        self.tokens = _scan(self.where)
        self.pos = 0
        self.depth = 0
        self.parts = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def fail(self, message: str, token: Token | None = None) -> QueryError:
        token = self.current if token is None else token
        return QueryError(message, token.column, token.line)

    def expect(self, kind: str, what: str) -> Token:
        if self.current.kind != kind:
            raise self.fail(f"expected {what}, got {_describe(self.current)}")
        return self.advance()

    def keyword(self, *words: str) -> str | None:
        if self.current.kind == "name" and self.current.text in words:
            return self.advance().text
        return None

    # ----------------------------------------------------------- rules

    def parse(self) -> Condition:
        condition = self.disjunction()
        if self.current.kind != "end":
            raise self.fail(f"expected 'and', 'or', 'unless' or end of condition, got {_describe(self.current)}")
        return condition

    def disjunction(self) -> Condition:
        condition = self.conjunction()
        while self.keyword("or"):
            condition = Composite("or", condition, self.conjunction())
        return condition

    def conjunction(self) -> Condition:
        condition = self.primary()
        while (op := self.keyword("and", "unless")) is not None:
            condition = Composite(op, condition, self.primary())  # type: ignore[arg-type]
        return condition

    def primary(self) -> Condition:
        token = self.current
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise self.fail(f"a condition may combine at most {MAX_PARTS} parts")
        if token.kind == "(":
            if self.depth >= MAX_NESTING:
                raise self.fail(f"parentheses nest more than {MAX_NESTING} deep")
            self.advance()
            self.depth += 1
            inner = self.disjunction()
            line, column = token.line, token.column
            self.expect(")", f"')' to close the '(' at {line}:{column}")
            self.depth -= 1
            return inner
        if token.kind != "name" or token.text in _PRECEDENCE:
            raise self.fail(
                "expected a condition such as p95(...) > 300, a function "
                f"({_FUNCTIONS_TEXT}) or '(', got {_describe(token)}"
            )
        name = token.text
        if name == "absent":
            self.advance()
            self.expect("(", "'(' after 'absent'")
            query = self.query()
            self.expect(")", "')' after the query of absent(...)")
            if self.current.kind in COMPARISONS:
                raise self.fail(f"absent(...) is a condition on its own and takes no comparison, got '{self.current.text}'")
            return Absent(query)
        if name in _TRENDS or name in _ANOMALIES:
            return self.function()
        if not _is_stat(name):
            lower = name.lower()
            if lower != name and (lower in _TRENDS or lower in _ANOMALIES or lower == "absent"):
                raise self.fail(f"unknown function '{name}' (functions are lower case: {lower})")
            raise self.fail(
                f"unknown function '{name}' (expected a statistic such as p95 or avg, or {_FUNCTIONS_TEXT})"
            )
        query = self.query()
        op, threshold = self.comparison("the query")
        return Threshold(query, op, threshold)

    def function(self) -> Condition:
        name = self.advance().text
        self.expect("(", f"'(' after '{name}'")
        query = self.query()
        first = "baseline (e.g. 1h)" if name in _ANOMALIES else "window (e.g. 30m)"
        self.expect(",", f"',' and the {first} after the query of {name}(...)")
        window_token = self.current
        window = self.duration(f"the {first.split()[0]}", name)
        horizon = None
        if name == "forecast":
            self.expect(",", "',' and the horizon (e.g. 4h) after the window of forecast(...)")
            horizon = self.duration("the horizon", name)
        last = "horizon" if name == "forecast" else first.split()[0]
        self.expect(")", f"')' after the {last} of {name}(...)")
        self.check_points(name, query, window, window_token)
        op, threshold = self.comparison(f"{name}(...)")
        if name in _TRENDS:
            return Trend(name, query, window, horizon, op, threshold)  # type: ignore[arg-type]
        return Anomaly(name, query, window, op, threshold)  # type: ignore[arg-type]

    def check_points(self, name: str, query: Query, window: float, token: Token) -> None:
        """Refuse a window that can never hold MIN_POINTS points at the query's step."""
        step, n = _grid(query, window)
        points = n + 1 if name in _TRENDS else n
        if points < MIN_POINTS:
            needed = step * (MIN_POINTS - 1 if name in _TRENDS else MIN_POINTS)
            what = "window" if name in _TRENDS else "baseline"
            raise self.fail(
                f"{name} needs at least {MIN_POINTS} points: a {what} of {_format_duration(window)} at the query's "
                f"step of {_format_duration(step)} gives {points}; use at least {_format_duration(needed)}",
                token,
            )

    def duration(self, what: str, name: str) -> float:
        token = self.current
        if token.kind not in ("duration", "number"):
            raise self.fail(f"expected {what} of {name}(...), a duration such as 30m, got {_describe(token)}")
        self.advance()
        try:
            return parse_seconds_text(token.text)
        except ValueError as err:
            raise self.fail(str(err), token) from None

    def comparison(self, subject: str) -> tuple[Comparison, float]:
        token = self.current
        if token.kind not in COMPARISONS:
            hint = " (use == to compare)" if token.kind == "=" else ""
            raise self.fail(
                f"expected a comparison (>, >=, <, <=, == or !=) after {subject}, got {_describe(token)}{hint}"
            )
        self.advance()
        return token.kind, self.number(token.kind)  # type: ignore[return-value]

    def number(self, op: str) -> float:
        negative = self.current.kind == "-"
        if negative:
            self.advance()
        token = self.current
        if token.kind in ("number", "duration"):
            try:
                value = float(token.text)
            except ValueError:
                value = math.nan
            if math.isfinite(value):
                self.advance()
                return -value if negative else value
            if token.kind == "duration":
                raise self.fail(
                    f"expected a number after '{op}', got '{token.text}' "
                    "(a threshold is a plain number in the query's unit, e.g. 300 for 300 ms)"
                )
        raise self.fail(f"expected a number after '{op}{' -' if negative else ''}', got {_describe(token)}")

    def query(self) -> Query:
        """The query starting here: its tokens are found by brackets, its text parsed by the query parser."""
        first = self.current
        end = self.query_end(self.pos)
        stop = self.tokens[end]
        source = self.where.text[first.offset : stop.offset]
        try:
            query = parse_query(source)
        except QueryError as err:
            if err.column is None:
                raise
            at = first.offset + _offset_in(source, err.line or 1, err.column)
            message = err.message
            if at >= stop.offset and message.endswith("got end of query"):
                message = message[: -len("end of query")] + _describe(stop)
            raise self.where.error(message, at) from None
        self.pos = end
        return replace(
            query,
            stat_at=self.where.position(first.offset + _offset_in(source, *query.stat_at)),
            selector_at=self.where.position(first.offset + _offset_in(source, *query.selector_at)),
        )

    def query_end(self, index: int) -> int:
        """Index of the first token after the query starting at ``index``: ``stat (...) by (...)``."""
        tokens = self.tokens
        if tokens[index].kind == "end":
            return index
        index += 1
        if tokens[index].kind == "(":
            index = self.bracketed_end(index)
        if tokens[index].kind == "name" and tokens[index].text == "by":
            index += 1
            if tokens[index].kind == "(":
                index = self.bracketed_end(index)
        return index

    def bracketed_end(self, index: int) -> int:
        """Past the bracket closing the one at ``index``, or at the first token no query can hold."""
        depth = braces = 0
        while True:
            kind = self.tokens[index].kind
            if kind in _QUERY_STOPS or (kind == "!=" and braces <= 0):
                return index
            if kind in ("(", "[", "{"):
                depth += 1
                braces += kind == "{"
            elif kind in (")", "]", "}"):
                depth -= 1
                braces -= kind == "}"
                if depth == 0:
                    return index + 1
            index += 1


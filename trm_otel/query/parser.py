"""A hand-written recursive-descent parser for the query language.

    >>> q = parse_query('apdex(traces.span.metrics.duration{span.name!~"GET /health.*"}[15m], 250)')
    >>> q.stat, q.range_s, q.threshold_ms, [(m.name, m.op, m.value) for m in q.matchers]
    ('apdex', 900.0, 250.0, [('span.name', '!~', 'GET /health.*')])

Grammar (``?`` optional, ``*`` repeated)::

    query     = stat "(" selector ( "," threshold )? ")" ( "by" "(" labels? ")" )? END
    stat      = "p" DIGITS | "avg" | "min" | "max" | "sum" | "count" | "rate"
              | "error_rate" | "apdex" | "last"
    selector  = NAME ( "{" matchers? "}" )? ( "[" range "]" )?
    matchers  = matcher ( "," matcher )* ","?
    matcher   = NAME ( "=" | "!=" | "=~" | "!~" ) STRING
    range     = DURATION | NUMBER                        (a number is seconds)
    threshold = NUMBER | DURATION                        (a number is milliseconds; apdex only)
    labels    = NAME ( "," NAME )* ","?

One function per rule, each consuming tokens from the front; every failure
names the token where it happened and what the rule expected there, which
is all a person fixing a dashboard query needs. Percentiles: ``p1`` to
``p99`` are whole percents; more digits add decimals after the first two
(``p999`` is 99.9, ``p9995`` 99.95), so ``p100`` and ``p990`` are refused
rather than read as 10 and 99.0.
"""

from __future__ import annotations

import math
import re

from trm_otel.query.errors import QueryError
from trm_otel.query.expr import NAMED_STATS, STAT_NAMES_TEXT, Query
from trm_otel.query.lexer import Token, describe, tokenize
from trm_otel.series_source import Matcher

__all__ = ["MAX_DURATION_S", "parse_duration_text", "parse_query", "parse_seconds_text"]

_PERCENTILE = re.compile(r"p([0-9]+)")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ms|s|m|h|d|w)")
#: unit -> (seconds, rank): units of a compound duration must strictly decrease.
_UNITS = {"w": (604800.0, 0), "d": (86400.0, 1), "h": (3600.0, 2), "m": (60.0, 3), "s": (1.0, 4), "ms": (0.001, 5)}
_DURATION_HINT = "use ms, s, m, h, d or w, e.g. 30s, 5m or 1h30m"
#: The longest range or window (100 years): longer ones reach past the times
#: a nanosecond int64 can hold (year 2262 forward, 1677 back), and
#: ``99999999999999999999w`` would otherwise be read as infinity.
MAX_DURATION_S = 100 * 365.25 * 86400.0


def parse_query(text: str) -> Query:
    """The :class:`Query` written in ``text``; raises :class:`QueryError` naming line and column."""
    return _Parser(tokenize(text)).query()


def parse_duration_text(text: str) -> float:
    """Seconds of ``5m`` / ``1h30m`` / ``250ms``; ``ValueError`` without a position."""
    pos = 0
    seconds = 0.0
    last_rank = -1
    for part in _DURATION_PART.finditer(text):
        if part.start() != pos:
            break
        factor, rank = _UNITS[part.group(2)]
        if rank <= last_rank:
            raise ValueError(f"invalid duration {text!r}: units must go from largest to smallest, each once")
        seconds += float(part.group(1)) * factor
        last_rank, pos = rank, part.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"invalid duration {text!r} ({_DURATION_HINT})")
    return _checked(seconds, text)


def parse_seconds_text(text: str) -> float:
    """Seconds of a range or window written as a duration (``5m``) or a plain number of seconds (``300``).

    ``ValueError`` without a position, as :func:`parse_duration_text`.
    """
    if re.fullmatch(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", text):
        return _checked(float(text), text)
    return parse_duration_text(text)


def _checked(seconds: float, text: str) -> float:
    shown = text if len(text) <= 40 else f"{text[:20]}...{text[-8:]}"
    if not seconds > 0:
        raise ValueError(f"invalid duration {shown!r}: must be greater than zero")
    if not seconds <= MAX_DURATION_S:  # inf and NaN included
        raise ValueError(f"invalid duration {shown!r}: longer than 100 years")
    return seconds


class _Parser:
    """The tokens of one query and a cursor; a method per grammar rule."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    # ----------------------------------------------------------- cursor

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
        """The current token if it is ``kind``; else "expected {what}, got ...", at it."""
        if self.current.kind != kind:
            raise self.fail(f"expected {what}, got {describe(self.current)}")
        return self.advance()

    # ------------------------------------------------------------ rules

    def query(self) -> Query:
        stat_token = self.expect("name", "a statistic such as p95 or avg")
        stat, quantile = self.stat(stat_token)
        self.expect("(", f"'(' after '{stat}'")
        selector_token = self.current
        metric, matchers, range_s = self.selector()
        threshold_ms = None
        if self.current.kind == "," and stat == "apdex":
            self.advance()
            threshold_ms = self.threshold()
            self.expect(")", "')' after the threshold")
        elif stat == "apdex":
            self.expect(")", "',' or ')' after the selector")
        elif self.current.kind == ",":
            raise self.fail("expected ')' after the selector, got ',' (only apdex takes a second argument)")
        else:
            self.expect(")", "')' after the selector")
        by: tuple[str, ...] = ()
        if self.current.kind == "name" and self.current.text == "by":
            self.advance()
            by = self.labels()
        elif self.current.kind != "end":
            raise self.fail(f"expected 'by' or end of query after ')', got {describe(self.current)}")
        self.expect("end", "end of query")
        return Query(
            stat=stat,
            metric=metric,
            matchers=matchers,
            range_s=range_s,
            by=by,
            quantile=quantile,
            threshold_ms=threshold_ms,
            stat_at=(stat_token.line, stat_token.column),
            selector_at=(selector_token.line, selector_token.column),
        )

    def stat(self, token: Token) -> tuple[str, float | None]:
        name = token.text
        if name in NAMED_STATS:
            return name, None
        match = _PERCENTILE.fullmatch(name)
        if match is None:
            if name.lower() != name and _is_stat(name.lower()):
                raise self.fail(f"unknown statistic '{name}' (statistics are lower case: {name.lower()})", token)
            raise self.fail(f"unknown statistic '{name}' (expected {STAT_NAMES_TEXT})", token)
        digits = match.group(1)
        bad = digits.startswith("0") or (len(digits) > 2 and digits.endswith("0"))
        if bad:
            raise self.fail(
                f"invalid percentile '{name}' (use p1 to p99, or more digits for decimals: p999 is 99.9)", token
            )
        quantile = int(digits) / (100 if len(digits) <= 2 else 10 ** len(digits))
        return name, quantile

    def selector(self) -> tuple[str, tuple[Matcher, ...], float | None]:
        metric = self.expect("name", "a metric name such as traces.span.metrics.duration").text
        matchers: list[Matcher] = []
        if self.current.kind == "{":
            self.advance()
            while self.current.kind != "}":
                matchers.append(self.matcher())
                if self.current.kind == ",":
                    self.advance()
                elif self.current.kind != "}":
                    raise self.fail(f"expected ',' or '}}' after the matcher, got {describe(self.current)}")
            self.advance()
        range_s = None
        if self.current.kind == "[":
            self.advance()
            token = self.current
            if token.kind not in ("duration", "number"):
                raise self.fail(f"expected a duration such as 5m after '[', got {describe(token)}")
            range_s = self.seconds(self.advance())
            self.expect("]", "']' after the range")
        return metric, tuple(matchers), range_s

    def matcher(self) -> Matcher:
        if self.current.kind != "name":
            raise self.fail(f"expected a label name or '}}', got {describe(self.current)}")
        label = self.advance().text
        op = self.current
        if op.kind not in ("=", "!=", "=~", "!~"):
            raise self.fail(f"expected a matcher (=, !=, =~ or !~) after '{label}', got {describe(op)}")
        self.advance()
        value = self.expect("string", f"a quoted string after '{op.text}'")
        if op.kind in ("=~", "!~"):
            try:
                re.compile(value.value)  # on its own, so the error's position is the user's
            except re.error as err:
                raise self.fail(f"invalid regular expression {value.text}: {err}", value) from None
        return Matcher(label, op.kind, value.value)  # type: ignore[arg-type]  # kind is one of the four

    def seconds(self, token: Token) -> float:
        """A range: a duration, or a plain number of seconds."""
        try:
            return parse_seconds_text(token.text)
        except ValueError as err:
            raise self.fail(str(err), token) from None

    def threshold(self) -> float:
        token = self.current
        if token.kind == "number":
            value = float(self.advance().text)
            if not value > 0:
                raise self.fail(f"apdex threshold must be greater than zero, got {token.text}", token)
            if not math.isfinite(value):
                raise self.fail(f"apdex threshold must be a finite number of milliseconds, got {token.text}", token)
            return value
        if token.kind == "duration":
            return self.seconds(self.advance()) * 1000.0
        raise self.fail(f"expected a threshold in milliseconds (or a duration) after ',', got {describe(token)}")

    def labels(self) -> tuple[str, ...]:
        self.expect("(", "'(' after 'by'")
        labels: list[str] = []
        while self.current.kind != ")":
            if self.current.kind != "name":
                raise self.fail(f"expected a label name or ')', got {describe(self.current)}")
            token = self.advance()
            if token.text in labels:
                raise self.fail(f"label '{token.text}' appears twice in by (...)", token)
            labels.append(token.text)
            if self.current.kind == ",":
                self.advance()
            elif self.current.kind != ")":
                raise self.fail(f"expected ',' or ')' after '{token.text}', got {describe(self.current)}")
        self.advance()
        return tuple(labels)


def _is_stat(name: str) -> bool:
    return name in NAMED_STATS or _PERCENTILE.fullmatch(name) is not None

"""What the query language reads: series, selected by labels, as windows.

    >>> refs = source.select("traces.span.metrics.duration", [Matcher("service.name", "=", "shop")])  # doctest: +SKIP
    >>> source.latency_windows(refs, start_s, end_s)[refs[0].key][0]                                  # doctest: +SKIP
    (1764467400.0, ExponentialHistogram(count=42, ...))

The evaluator never knows where data lives: recent windows come from the
daemon's memory, older ones from storage, and a combined source stitches
the two by time. Every source answers the same three questions.

Span latency series carry the spanmetrics connector's names: metric
``traces.span.metrics.duration`` (ms; ``traces.span.metrics.calls`` selects
the same series, for counts and rates) with labels ``service.name``,
``span.name``, ``span.kind`` and ``status.code`` (``SPAN_KIND_SERVER``,
``STATUS_CODE_ERROR``, ...). Other metrics keep their OTel names
(``system.memory.utilization``) with ``service.name`` plus their point
attributes as labels.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from trm_otel.histogram import ExponentialHistogram

__all__ = [
    "CALLS_METRIC",
    "label_value",
    "DURATION_METRIC",
    "Matcher",
    "SeriesKind",
    "SeriesRef",
    "SeriesSource",
]

DURATION_METRIC = "traces.span.metrics.duration"
CALLS_METRIC = "traces.span.metrics.calls"

SeriesKind = Literal["latency", "gauge", "sum", "histogram"]
MatchOp = Literal["=", "!=", "=~", "!~"]


def label_value(value: object) -> str:
    """An attribute value as a label value: ``true``/``false`` for booleans (as OTel
    backends print them, and as a query names them), else ``str``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher; regexes are fully anchored, as in PromQL."""

    name: str
    op: MatchOp
    value: str
    _pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"unknown matcher operator {self.op!r} (use =, !=, =~ or !~)")
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_pattern", re.compile(f"(?:{self.value})\\Z"))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """A missing label reads as the empty string, as in PromQL."""
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._pattern is not None
        found = self._pattern.match(value) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True, slots=True)
class SeriesRef:
    """A series a source can read; ``key`` is the source's own handle."""

    key: Hashable
    metric: str
    labels: Mapping[str, str]
    kind: SeriesKind


class SeriesSource(Protocol):
    """Windows of series, by label selection; every window is ``window_s`` long."""

    window_s: float

    def select(self, metric: str, matchers: Sequence[Matcher], tenant: str = "default") -> list[SeriesRef]:
        """Series of ``metric`` whose labels satisfy every matcher."""
        ...

    def latency_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float, *, step_s: float | None = None
    ) -> dict[Hashable, list[tuple[float, ExponentialHistogram]]]:
        """Per latency series: ``(window start, histogram in ms)`` for windows starting in ``[start_s, end_s)``, oldest first.

        ``step_s`` is the coarsest grain the caller needs (a range query's
        step); a source with rollups may answer with windows that long.
        """
        ...

    def scalar_windows(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float
    ) -> dict[Hashable, list[tuple[float, float]]]:
        """Per scalar series: ``(window start, value)``: a gauge's last value, a sum's increase in the window."""
        ...

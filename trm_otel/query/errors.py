"""The one error of the query language: where the query went wrong and why.

    >>> from trm_otel.query import parse_query
    >>> parse_query("p95{service.name='shop'}")
    Traceback (most recent call last):
    ...
    trm_otel.query.errors.QueryError: 1:4: expected '(' after 'p95', got '{'

Hierarchy (extends :mod:`trm_otel.errors`)::

    TrmOtelError
     └── QueryError      (also a ValueError) a query that cannot be parsed or
                         answered: syntax, a statistic that does not apply to
                         the selected series, or a limit reached

A query is typed by a person into a dashboard panel or an alert rule, so the
message leads with ``line:column`` of the offending token (1-based, as
editors count) and says what was expected there; problems that belong to no
position (too many series) carry no prefix but say the limit and how to
narrow the query. The HTTP API answers both with a 400 and this text.
"""

from __future__ import annotations

from typing import Any

from trm_otel.errors import TrmOtelError

__all__ = ["QueryError"]


class QueryError(TrmOtelError, ValueError):
    """A query that cannot be answered; ``str()`` is the whole message for the user.

    ``message`` is the reason alone, ``line`` and ``column`` (1-based) where
    it applies, both ``None`` for errors of the whole query (limits).
    """

    message: str
    line: int | None
    column: int | None

    def __init__(self, message: str, column: int | None = None, line: int | None = None) -> None:
        self.message = message
        self.column = column
        self.line = (1 if line is None else line) if column is not None else None
        super().__init__(self._render())

    def _render(self) -> str:
        if self.column is None:
            return self.message
        return f"{self.line}:{self.column}: {self.message}"

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self) -> tuple[Any, ...]:
        # The default pickling would call QueryError(rendered text) and lose the position.
        return (type(self), (self.message, self.column, self.line))

"""The one error of dashboards: every problem of a document, each with its key path.

    >>> from trm_otel.dashboards import load_dashboard
    >>> load_dashboard({"uid": "a b", "title": "Shop"})
    Traceback (most recent call last):
    ...
    trm_otel.dashboards.errors.DashboardError: uid: must be 1 to 40 letters, digits, '-' or '_', got 'a b'

Hierarchy (extends :mod:`trm_otel.errors`)::

    TrmOtelError
     └── DashboardError   (also a ValueError) a dashboard document that cannot
                          be loaded, migrated, exported or resolved; one
                          (key path, message) pair per problem

A dashboard is edited by a person (in the UI, in a file, in Grafana), so
all problems are reported at once, each located the way the JSON is read
(``panels[1].grid: overlaps panels[0]``); the HTTP API answers with a 400
and :attr:`DashboardError.problems` as a list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trm_otel.errors import TrmOtelError

__all__ = ["DashboardError"]


class DashboardError(TrmOtelError, ValueError):
    """An invalid dashboard; ``problems`` lists ``(key_path, message)``, ``str()`` one line each."""

    problems: list[tuple[str, str]]

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = [(str(path), str(message)) for path, message in problems]
        super().__init__(self._render())

    def _render(self) -> str:
        if not self.problems:
            return "invalid dashboard"
        return "\n".join(f"{path}: {message}" if path else message for path, message in self.problems)

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self) -> tuple[Any, ...]:
        # The default pickling would call DashboardError(rendered text) and lose the pairs.
        return (type(self), (self.problems,))

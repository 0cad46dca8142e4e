"""Query parameters, checked strictly: a typo is a 400 that says so, never a default.

    >>> query = Query({"range": ["15m"], "service": ["checkout"]}, allowed=("service", "range"))
    >>> query.duration("range", default="5m"), query.text("service"), query.text("endpoint")
    (900.0, 'checkout', None)
    >>> Query({"rnage": ["15m"]}, allowed=("service", "range"))
    Traceback (most recent call last):
    ...
    trm_otel.api.params.BadParameter: unknown parameter 'rnage' (known: range, service)

A dashboard that asks for ``?rnage=1h`` and silently gets the default five
minutes shows wrong numbers with no hint why; so unknown and repeated
parameters are refused, and every message starts with the parameter's name.
An empty value (``?service=``, what an HTML form sends for a blank field)
means "not given".
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence

from trm_otel.config_types import parse_duration

__all__ = ["BadParameter", "Query"]

# int() alone would also take " 7", "+7", "1_000" and non-ASCII digits.
_INTEGER = re.compile(r"-?[0-9]+")


class BadParameter(ValueError):
    """A query parameter the API cannot use; ``str()`` is the whole 400 message."""


class Query:
    """The parameters of one request, limited to ``allowed`` names.

    ``params`` maps each name to all its values, as given (starlette's
    ``QueryParams.multi_items()`` grouped, or a plain dict of lists).
    """

    def __init__(self, params: Mapping[str, Sequence[str]], allowed: Collection[str]) -> None:
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            known = f"known: {', '.join(sorted(allowed))}" if allowed else "this endpoint takes none"
            names = ", ".join(repr(name) for name in unknown)
            plural = "s" if len(unknown) > 1 else ""
            raise BadParameter(f"unknown parameter{plural} {names} ({known})")
        for name in sorted(params):
            if len(params[name]) > 1:
                raise BadParameter(f"{name}: given {len(params[name])} times, expected once")
        self._values = {name: values[0] for name, values in params.items() if values and values[0] != ""}

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, str]], allowed: Collection[str]) -> Query:
        """From ``(name, value)`` pairs in request order (repeats kept)."""
        grouped: dict[str, list[str]] = {}
        for name, value in items:
            grouped.setdefault(name, []).append(value)
        return cls(grouped, allowed)

    def text(self, name: str) -> str | None:
        """The value, or ``None`` when absent or empty."""
        return self._values.get(name)

    def duration(self, name: str, default: str) -> float:
        """Seconds, from ``500ms`` / ``10s`` / ``5m`` / ``1h`` / ``7d`` or a number of seconds."""
        raw = self._values.get(name, default)
        try:
            return parse_duration(raw)
        except ValueError as err:
            raise BadParameter(f"{name}: {err}") from None

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        """A whole number in ``[minimum, maximum]``."""
        raw = self._values.get(name)
        if raw is None:
            return default
        if not _INTEGER.fullmatch(raw):
            raise BadParameter(f"{name}: not an integer: {raw!r}")
        value = int(raw)
        if not minimum <= value <= maximum:
            raise BadParameter(f"{name}: must be from {minimum} to {maximum}, got {value}")
        return value

"""The value types every config model shares: durations and the strict base model.

    >>> parse_duration("1h30m"), parse_duration("250ms"), parse_duration(15)
    (5400.0, 0.25, 15.0)
    >>> parse_duration("0s", allow_zero=True)
    0.0

They live apart from :mod:`trm_otel.config` so that section models defined
elsewhere (alerting, dashboards) can use them without importing the daemon's
whole config, which in turn imports those sections.

Durations are written as Collector, Prometheus and Alertmanager users write
them (``500ms``, ``10s``, ``5m``, ``1h30m``, ``7d``); a bare number is
seconds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

__all__ = ["Duration", "NonNegativeDuration", "StrictModel", "parse_duration"]

_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 365 * 86400.0}
_PART = r"(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h|d|w|y)"
_DURATION = re.compile(rf"^\s*(?:(?:\d+(?:\.\d*)?|\.\d+)|(?:{_PART})+)\s*$")
_PARTS = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d|w|y)?")
_FORMS = "use e.g. 500ms, 10s, 5m, 1h30m, 7d"


def parse_duration(value: str | float | int, *, allow_zero: bool = False) -> float:
    """Seconds from ``"250ms"``, ``"10s"``, ``"1h30m"``, ``"7d"`` or a number of seconds.

    Raises ``ValueError`` naming the accepted forms, so the caller can attach
    the key path. Zero is refused unless ``allow_zero`` (``for: 0s`` means
    "at once"; a zero window or interval would be a busy loop).
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} ({_FORMS})")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value)
        if _DURATION.match(text) is None:
            raise ValueError(f"not a duration: {value!r} ({_FORMS})")
        seconds = sum(float(n) * _UNIT_SECONDS[unit or "s"] for n, unit in _PARTS.findall(text))
    if seconds == float("inf") or seconds != seconds or seconds < 0 or (seconds == 0 and not allow_zero):
        qualifier = "zero or positive" if allow_zero else "positive"
        raise ValueError(f"duration must be {qualifier} and finite, got {value!r}")
    return seconds


def _positive(value: Any) -> float:
    return parse_duration(value)


def _non_negative(value: Any) -> float:
    return parse_duration(value, allow_zero=True)


Duration = Annotated[float, BeforeValidator(_positive)]
NonNegativeDuration = Annotated[float, BeforeValidator(_non_negative)]


class StrictModel(BaseModel):
    """Frozen, unknown keys refused, and a section written with no value means its defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        return {} if data is None else data

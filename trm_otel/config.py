"""Typed configuration, validated once at start-up.

    >>> LatencyProcessorConfig.model_validate({"window": "10s", "history": "1h"}).window_s
    10.0

Durations are written the way Collector and Prometheus users write them
(``500ms``, ``10s``, ``5m``, ``1h``, ``7d``); a bare number is seconds. Every
model forbids unknown keys so a typo fails at load with its key path instead
of silently running on defaults.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from trm_otel.errors import ConfigError
from trm_otel.slo import SloPolicy, slo_policy

__all__ = [
    "Duration",
    "LatencyProcessorConfig",
    "latency_processor_config",
    "parse_duration",
]

_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(value: str | float | int) -> float:
    """Seconds from ``"250ms"``, ``"10s"``, ``"5m"``, ``"1h"``, ``"7d"`` or a number of seconds.

    Raises ``ValueError`` naming the accepted forms, so the caller can attach
    the key path.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 10s, 5m, 1h, 7d)")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 10s, 5m, 1h, 7d)")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"duration must be positive and finite, got {value!r}")
    return seconds


def _duration_field(value: Any) -> float:
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_duration_field)]


class LatencyProcessorConfig(BaseModel):
    """``processors.latency``: how spans become per-window latency views.

    ``window`` is the aggregation window (views are merges of windows);
    ``history`` is how much of it stays in memory for ``latency()``,
    ``bottlenecks()`` and ``trends()``; ``cardinality_limit`` caps the series
    per service before the overflow series takes the rest; ``buffer_size``
    bounds the spans waiting for the next aggregation (beyond it spans are
    dropped and counted, never blocking the application).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: Duration = 10.0
    history: Duration = 3600.0
    cardinality_limit: int = Field(default=2000, ge=1)
    buffer_size: int = Field(default=20_000, ge=16)
    slo: SloPolicy = SloPolicy()

    @property
    def window_s(self) -> float:
        return self.window

    @model_validator(mode="after")
    def _history_holds_a_window(self) -> LatencyProcessorConfig:
        if self.history < self.window:
            raise ValueError("history must be at least one window")
        return self


def latency_processor_config(key_path: str = "processors.latency", **values: Any) -> LatencyProcessorConfig:
    """Build and validate the latency processor config, errors naming ``key_path``.

    ``slo`` may be given in any form :func:`trm_otel.slo.slo_policy` accepts.
    """
    values = {k: v for k, v in values.items() if v is not None}
    if "slo" in values and not isinstance(values["slo"], SloPolicy):
        values["slo"] = slo_policy(values["slo"], key_path=f"{key_path}.slo" if key_path else "slo")
    try:
        return LatencyProcessorConfig.model_validate(values)
    except ValidationError as err:
        raise ConfigError.from_validation_error(err, key_path) from None

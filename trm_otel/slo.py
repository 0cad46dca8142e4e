"""Per-endpoint service-level objectives, layered default <- service <- endpoint.

    >>> policy = slo_policy({"default": {"p95_ms": 300},
    ...                      "services": {"checkout": {"p95_ms": 500,
    ...                                                "endpoints": {"POST /pay": {"p95_ms": 800}}}}})
    >>> policy.for_endpoint("checkout", "POST /pay").p95_ms
    800.0
    >>> policy.for_endpoint("checkout", "GET /cart").p95_ms, policy.for_endpoint("search", "GET /").p95_ms
    (500.0, 300.0)

A layer overrides only the fields it spells out, so a service that sets just
``error_rate`` keeps the default ``p95_ms``. Levels, Apdex and bottlenecks all
judge an endpoint against :meth:`SloPolicy.for_endpoint`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from trm_otel.errors import ConfigError

__all__ = ["ServiceSlo", "SloPolicy", "SloTarget", "slo_policy"]

_TARGET_FIELDS = ("p95_ms", "error_rate", "apdex_t_ms")


class SloTarget(BaseModel):
    """What "good" means for one endpoint.

    ``apdex_t_ms`` is the Apdex satisfied threshold T; left unset it follows
    ``p95_ms``, because a request slower than the latency objective is the
    natural line between satisfied and tolerating.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    p95_ms: float = Field(default=300.0, gt=0)
    error_rate: float = Field(default=0.01, gt=0, le=1)
    apdex_t_ms: float | None = Field(default=None, gt=0)

    @property
    def apdex_threshold_ms(self) -> float:
        """The Apdex T in milliseconds: ``apdex_t_ms`` or else ``p95_ms``."""
        return self.p95_ms if self.apdex_t_ms is None else self.apdex_t_ms


class ServiceSlo(SloTarget):
    """A service's objectives, with per-endpoint overrides keyed by span name."""

    endpoints: dict[str, SloTarget] = Field(default_factory=dict)


class SloPolicy(BaseModel):
    """All objectives: a default plus per-service (and per-endpoint) layers.

    Lookups are precomputed at validation: :meth:`for_endpoint` runs once per
    view, so it is a dict lookup rather than a re-merge. Build changed
    policies by validation (``SloPolicy(...)``, :func:`slo_policy`), not by
    ``model_copy(update=...)``, which would skip it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: SloTarget = Field(default_factory=SloTarget)
    services: dict[str, ServiceSlo] = Field(default_factory=dict)

    # (service, endpoint) -> target; endpoint None is the service level.
    _resolved: dict[tuple[str, str | None], SloTarget] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _resolve_layers(self) -> SloPolicy:
        resolved: dict[tuple[str, str | None], SloTarget] = {}
        base = _explicit(self.default)
        for name, service in self.services.items():
            service_fields = {**base, **_explicit(service)}
            resolved[(name, None)] = SloTarget(**service_fields)
            for endpoint, target in service.endpoints.items():
                resolved[(name, endpoint)] = SloTarget(**{**service_fields, **_explicit(target)})
        self._resolved = resolved
        return self

    def for_endpoint(self, service: str, endpoint: str) -> SloTarget:
        """The effective target of ``endpoint`` in ``service``."""
        found = self._resolved.get((service, endpoint))
        if found is None:
            found = self._resolved.get((service, None), self.default)
        return found


def _explicit(target: SloTarget) -> dict[str, Any]:
    """The target fields this layer spelled out (``model_fields_set``)."""
    return {name: getattr(target, name) for name in _TARGET_FIELDS if name in target.model_fields_set}


def slo_policy(value: SloPolicy | SloTarget | Mapping[str, Any] | float | int | None, *, key_path: str = "slo") -> SloPolicy:
    """Everything ``configure(slo=...)`` accepts, as one :class:`SloPolicy`.

    ``None`` means the defaults; a number is the default ``p95_ms`` (the one
    knob most people want); a :class:`SloTarget` is the default target; a
    mapping is the YAML shape ``{default: {...}, services: {name: {...,
    endpoints: {span name: {...}}}}}``. Anything invalid raises
    :class:`~trm_otel.errors.ConfigError` listing every problem under
    ``key_path``.
    """
    if value is None:
        return SloPolicy()
    if isinstance(value, SloPolicy):
        return value
    if isinstance(value, SloTarget):
        return SloPolicy(default=SloTarget(**_explicit(value)))
    if isinstance(value, bool):
        raise ConfigError([(key_path, f"expected a number of milliseconds or a mapping, got {value!r}")])
    if isinstance(value, numbers.Real):
        try:
            return SloPolicy(default=SloTarget(p95_ms=float(value)))
        except ValidationError as err:
            # The user wrote one number at key_path; name that, not default.p95_ms.
            raise ConfigError([(key_path, e["msg"]) for e in err.errors(include_url=False)]) from None
    if isinstance(value, Mapping):
        try:
            return SloPolicy.model_validate(dict(value))
        except ValidationError as err:
            raise _flat_target_hint(ConfigError.from_validation_error(err, key_path, SloPolicy), key_path) from None
    raise ConfigError(
        [(key_path, f"expected a number of milliseconds or a mapping, got {type(value).__name__}")]
    )


def _flat_target_hint(err: ConfigError, key_path: str) -> ConfigError:
    """``slo: {p95_ms: 300}`` is a likely slip for ``slo: {default: {p95_ms: 300}}``; say so."""
    problems = []
    for path, message in err.problems:
        for name in _TARGET_FIELDS:
            top = f"{key_path}.{name}" if key_path else name
            if path == top and message.startswith("unknown key"):
                message = f"unknown key (did you mean 'default.{name}'?)"
        problems.append((path, message))
    return ConfigError(problems)

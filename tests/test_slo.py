"""SLO models: layering default <- service <- endpoint, and what configure(slo=...) accepts."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from trm_otel.errors import ConfigError
from trm_otel.slo import ServiceSlo, SloPolicy, SloTarget, slo_policy

YAML_SHAPE = {
    "default": {"p95_ms": 300, "apdex_t_ms": 250},
    "services": {
        "checkout": {
            "p95_ms": 500,
            "endpoints": {
                "POST /pay": {"p95_ms": 800},
                "GET /health": {"error_rate": 0.5, "apdex_t_ms": None},
            },
        },
        "search": {"error_rate": 0.05},
    },
}


def test_defaults() -> None:
    target = SloTarget()
    assert (target.p95_ms, target.error_rate, target.apdex_t_ms) == (300.0, 0.01, None)
    assert target.apdex_threshold_ms == 300.0
    assert SloTarget(p95_ms=120).apdex_threshold_ms == 120.0
    assert SloTarget(p95_ms=120, apdex_t_ms=50).apdex_threshold_ms == 50.0


def test_models_are_frozen() -> None:
    with pytest.raises(ValidationError):
        SloTarget().p95_ms = 1.0  # type: ignore[misc]


def test_layers_override_only_what_they_set() -> None:
    policy = slo_policy(YAML_SHAPE)
    pay = policy.for_endpoint("checkout", "POST /pay")
    assert (pay.p95_ms, pay.error_rate, pay.apdex_t_ms) == (800.0, 0.01, 250.0)
    cart = policy.for_endpoint("checkout", "GET /cart")
    assert (cart.p95_ms, cart.error_rate, cart.apdex_threshold_ms) == (500.0, 0.01, 250.0)
    search = policy.for_endpoint("search", "GET /q")
    assert (search.p95_ms, search.error_rate, search.apdex_threshold_ms) == (300.0, 0.05, 250.0)
    other = policy.for_endpoint("billing", "POST /pay")
    assert (other.p95_ms, other.error_rate, other.apdex_threshold_ms) == (300.0, 0.01, 250.0)


def test_explicit_null_resets_apdex_to_follow_p95() -> None:
    health = slo_policy(YAML_SHAPE).for_endpoint("checkout", "GET /health")
    assert (health.p95_ms, health.error_rate, health.apdex_t_ms) == (500.0, 0.5, None)
    assert health.apdex_threshold_ms == 500.0


def test_unset_default_fields_keep_model_defaults() -> None:
    policy = SloPolicy(services={"a": ServiceSlo(error_rate=0.2)})
    assert policy.for_endpoint("a", "x") == SloTarget(p95_ms=300.0, error_rate=0.2)


def test_lookup_is_cached_and_stable() -> None:
    policy = slo_policy(YAML_SHAPE)
    assert policy.for_endpoint("checkout", "POST /pay") is policy.for_endpoint("checkout", "POST /pay")
    assert policy.for_endpoint("nobody", "x") is policy.default


def test_equal_policies_compare_equal() -> None:
    assert slo_policy(YAML_SHAPE) == slo_policy(YAML_SHAPE)
    assert slo_policy(None) == SloPolicy()


def test_accepted_forms() -> None:
    assert slo_policy(None) == SloPolicy()
    assert slo_policy(250).default.p95_ms == 250.0
    assert slo_policy(99.5).for_endpoint("s", "e").p95_ms == 99.5
    assert slo_policy(np.int64(120)).default.p95_ms == 120.0
    target = SloTarget(p95_ms=100, error_rate=0.1)
    assert slo_policy(target).default == target
    policy = SloPolicy(default=target)
    assert slo_policy(policy) is policy
    assert slo_policy({"default": {"p95_ms": 42}}).default.p95_ms == 42.0


def test_service_slo_as_default_drops_its_endpoints() -> None:
    policy = slo_policy(ServiceSlo(p95_ms=10, endpoints={"x": SloTarget(p95_ms=1)}))
    assert type(policy.default) is SloTarget
    assert policy.for_endpoint("any", "x").p95_ms == 10.0


def _problems(value: object, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as caught:
        slo_policy(value, **kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    return str(caught.value)


def test_every_problem_is_listed_with_its_key_path() -> None:
    message = _problems(
        {
            "default": {"p95": 300, "error_rate": 2},
            "services": {
                "checkout": {
                    "p95_ms": 0,
                    "endpoints": {"POST /pay": {"p95_ms": -1, "apdex_t": 5, "apdex_t_ms": 0}},
                },
            },
            "servics": {},
        }
    )
    assert message.splitlines() == [
        "slo.default.error_rate: Input should be less than or equal to 1",
        "slo.default.p95: unknown key (did you mean 'p95_ms'?)",
        "slo.services.checkout.p95_ms: Input should be greater than 0",
        "slo.services.checkout.endpoints.POST /pay.p95_ms: Input should be greater than 0",
        "slo.services.checkout.endpoints.POST /pay.apdex_t_ms: Input should be greater than 0",
        "slo.services.checkout.endpoints.POST /pay.apdex_t: unknown key (did you mean 'apdex_t_ms'?)",
        "slo.servics: unknown key (did you mean 'services'?)",
    ]


def test_key_path_prefix() -> None:
    message = _problems({"services": {"a": {"error_rate": 0}}}, key_path="processors.latency.slo")
    assert message == "processors.latency.slo.services.a.error_rate: Input should be greater than 0"


def test_unknown_key_without_close_match() -> None:
    assert _problems({"default": {"banana": 1}}) == "slo.default.banana: unknown key"


def test_flat_target_points_to_default() -> None:
    assert _problems({"p95_ms": 300}) == "slo.p95_ms: unknown key (did you mean 'default.p95_ms'?)"


def test_wrong_types() -> None:
    assert _problems({"default": {"p95_ms": "fast"}}) == (
        "slo.default.p95_ms: Input should be a valid number, unable to parse string as a number"
    )
    assert _problems({"services": []}) == "slo.services: Input should be a valid dictionary"
    assert _problems(0) == "slo: Input should be greater than 0"
    assert _problems(-5, key_path="x.slo") == "x.slo: Input should be greater than 0"
    assert _problems(True) == "slo: expected a number of milliseconds or a mapping, got True"
    assert _problems("300ms") == "slo: expected a number of milliseconds or a mapping, got str"

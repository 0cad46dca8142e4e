"""How hard the robustness tests push: CI-sized by default, benchmark-sized through the environment.

    TRM_FUZZ_EXAMPLES=5000 pytest tests/robustness      # hypothesis examples per fuzz test
    TRM_FUZZ_REQUESTS=20000 pytest tests/robustness     # mutated requests fired at the real daemon

The defaults keep the folder near a minute on a 2-core machine; the
figures that matter for a release come from the larger runs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["FUZZ_EXAMPLES", "FUZZ_REQUESTS", "fuzz_settings"]


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}")
    return value


#: Hypothesis examples per fuzz test.
FUZZ_EXAMPLES = _positive_int("TRM_FUZZ_EXAMPLES", 150)
#: Mutated requests the daemon test sends (split over protobuf/JSON, HTTP/gRPC, three signals).
FUZZ_REQUESTS = _positive_int("TRM_FUZZ_REQUESTS", 3000)


def fuzz_settings(examples: int | None = None) -> settings:
    """Settings for one fuzz test: no deadline (one slow example is not a failure, a hang is), no shrink limit."""
    return settings(
        max_examples=examples or FUZZ_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )

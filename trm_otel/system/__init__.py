"""The system monitor: host and process metrics as OTel instruments, and health.

    >>> from trm_otel.system import FixedReader, HealthMonitor, HostReading
    >>> HealthMonitor(FixedReader(HostReading.of(cpu=0.1))).report().status
    'healthy'

- :mod:`~trm_otel.system.readings`: one snapshot type (:class:`HostReading`)
  behind one reader interface (:class:`HostReader`), with the psutil
  implementation, a fed one for tests and a shared cache;
- :mod:`~trm_otel.system.instruments`: the readings as observable
  instruments with the semantic-convention names;
- :mod:`~trm_otel.system.health`: thresholds held for a duration, custom
  checks with time-outs, the health report and its gauge.
"""

from trm_otel.system.health import (
    CheckResult,
    HealthMonitor,
    HealthReport,
    HealthStatus,
    HealthThresholds,
    Threshold,
    register_health_instruments,
)
from trm_otel.system.instruments import register_system_instruments
from trm_otel.system.readings import (
    CachedReader,
    FixedReader,
    HostReader,
    HostReading,
    PsutilReader,
)

__all__ = [
    "CachedReader",
    "CheckResult",
    "FixedReader",
    "HealthMonitor",
    "HealthReport",
    "HealthStatus",
    "HealthThresholds",
    "HostReader",
    "HostReading",
    "PsutilReader",
    "Threshold",
    "register_health_instruments",
    "register_system_instruments",
]

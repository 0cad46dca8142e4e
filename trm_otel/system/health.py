"""Health: host thresholds that must hold before the status moves, and custom checks with time-outs.

    >>> from trm_otel.system.readings import FixedReader, HostReading
    >>> monitor = HealthMonitor(FixedReader(HostReading.of(cpu=0.2, memory=0.5, disk=0.3)))
    >>> monitor.register_health_check("db", lambda: (True, "ping 3 ms"))
    >>> report = monitor.report()
    >>> report.status, [c.name for c in report.checks if c.status == "healthy"]
    ('healthy', ['system.cpu', 'system.memory', 'system.disk', 'db'])

**Host checks** (``system.cpu``, ``system.memory``, ``system.disk`` and,
when configured, ``system.swap``) compare a utilization with a degraded and
an unhealthy level. A level only takes effect once the value has stayed on
its side of it for ``hold`` (60 s by default), in both directions, so a
compile burst does not page anyone and a single quiet second does not clear
an incident. Disk is the fullest filesystem. Between readings the last value
is assumed to persist, as Prometheus does for ``for:``.

**Custom checks** (``register_health_check``) are plain or ``async``
callables returning ``bool`` or ``(bool, detail)``. An exception, another
return value or running past ``timeout_s`` fails the check with the reason;
a failing critical check makes the report unhealthy, a non-critical one
degraded. ``report()`` runs every check concurrently and returns by the
largest time-out even when a check hangs: each run has its own daemon
thread (a ``ThreadPoolExecutor`` joins its workers at interpreter exit, so
one hung check would hang shutdown), a check still running is never started
twice (so hung checks cost one thread each, no more) and keeps failing as
"still running" until it returns. Coroutines run in that thread's own event
loop and are cancelled at their time-out.

Statuses are also exported as the gauge ``trm_otel.health.status``
(0 healthy, 1 degraded, 2 unhealthy) per ``check`` and overall, for
dashboards and alert rules.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pydantic
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from trm_otel._version import __version__
from trm_otel.config_types import parse_duration
from trm_otel.errors import ConfigError
from trm_otel.system.readings import HostReader, HostReading, after_fork_in_child

__all__ = [
    "STATUS_CODES",
    "CheckFn",
    "CheckResult",
    "HealthMonitor",
    "HealthReport",
    "HealthStatus",
    "HealthThresholds",
    "Threshold",
    "health_thresholds",
    "register_health_instruments",
]

_logger = logging.getLogger(__name__)

HealthStatus = Literal["healthy", "degraded", "unhealthy"]
_STATUSES: tuple[HealthStatus, ...] = ("healthy", "degraded", "unhealthy")
STATUS_CODES: Mapping[HealthStatus, int] = {status: code for code, status in enumerate(_STATUSES)}

CheckOutcome = bool | tuple[bool, str]
CheckFn = Callable[[], CheckOutcome | Awaitable[CheckOutcome]]


# ------------------------------------------------------------------ config

_ZERO = re.compile(r"\s*0+(?:\.0*)?\s*(?:ms|s|m|h|d|w)?\s*")


def _hold(value: Any) -> float:
    """A duration as :func:`parse_duration` reads it, or zero: act on the first reading (tests, demos)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return 0.0
    if isinstance(value, str) and _ZERO.fullmatch(value):
        return 0.0
    return parse_duration(value)


Hold = Annotated[float, BeforeValidator(_hold)]


class Threshold(BaseModel):
    """Degraded and unhealthy levels of one utilization (0..1); ``hold`` overrides the monitor's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    degraded: float = Field(gt=0, le=1)
    unhealthy: float = Field(gt=0, le=1)
    hold: Hold | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.unhealthy < self.degraded:
            raise ValueError(f"unhealthy ({self.unhealthy}) must be >= degraded ({self.degraded})")
        return self


class HealthThresholds(BaseModel):
    """Which host metrics count towards health and at what levels; ``None`` turns one off.

    Shaped like a config section (``{"hold": "2m", "cpu": {"degraded": 0.8,
    "unhealthy": 0.9}}``): keys left out keep their defaults.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hold: Hold = 60.0
    cpu: Threshold | None = Threshold(degraded=0.85, unhealthy=0.95)
    memory: Threshold | None = Threshold(degraded=0.85, unhealthy=0.95)
    disk: Threshold | None = Threshold(degraded=0.90, unhealthy=0.97)
    swap: Threshold | None = None


def health_thresholds(value: HealthThresholds | Mapping[str, Any] | None, key_path: str = "health") -> HealthThresholds:
    """Validate thresholds given as a model or a mapping; errors name ``key_path.metric.field``."""
    if value is None:
        return HealthThresholds()
    if isinstance(value, HealthThresholds):
        return value
    try:
        return HealthThresholds.model_validate(value)
    except pydantic.ValidationError as err:
        raise ConfigError.from_validation_error(err, key_path, HealthThresholds) from None


def _fullest_disk(r: HostReading) -> tuple[float, str] | None:
    fs = r.fullest_filesystem
    return None if fs is None else (fs.utilization, f"filesystem {fs.mountpoint}")


# threshold key -> (check name, the value and what it is of; None when the reading has none)
_HOST_METRICS: Mapping[str, tuple[str, Callable[[HostReading], tuple[float, str] | None]]] = {
    "cpu": ("system.cpu", lambda r: (r.cpu_utilization, "cpu")),
    "memory": ("system.memory", lambda r: (r.memory_utilization, "memory")),
    "swap": ("system.swap", lambda r: (r.swap_utilization, "swap") if r.swap.total > 0 else None),
    "disk": ("system.disk", _fullest_disk),
}


# ----------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict. ``observed_at`` is Unix seconds from the monitor's clock."""

    name: str
    status: HealthStatus
    detail: str
    observed_at: float
    critical: bool = True
    duration_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "observed_at": _iso(self.observed_at),
            "critical": self.critical,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The overall status (the worst check's) and every check."""

    status: HealthStatus
    checks: tuple[CheckResult, ...]
    observed_at: float

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /api/v1/health``; times are RFC 3339 UTC."""
        return {
            "status": self.status,
            "observed_at": _iso(self.observed_at),
            "checks": [c.to_dict() for c in self.checks],
        }


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _worst(results: list[CheckResult]) -> HealthStatus:
    return max((r.status for r in results), key=STATUS_CODES.__getitem__, default="healthy")


# ------------------------------------------------------------- host levels


class _HeldLevel:
    """One metric's level (0 healthy, 1 degraded, 2 unhealthy), moving only after ``hold_s``.

    Each of the two limits flips on its own once the value has stayed on the
    other side of it for ``hold_s``; the level is the highest limit flipped
    on. A value that wanders back resets that limit's wait.
    """

    __slots__ = ("active", "pending_since", "value", "what")

    def __init__(self) -> None:
        self.active = [False, False]
        self.pending_since: list[float | None] = [None, None]
        self.value = 0.0
        self.what = ""

    @property
    def level(self) -> int:
        return 2 if self.active[1] else 1 if self.active[0] else 0

    def update(self, value: float, what: str, limits: tuple[float, float], hold_s: float, now: float) -> None:
        self.value, self.what = value, what
        for i, limit in enumerate(limits):
            above = value >= limit
            since = self.pending_since[i]
            if above == self.active[i]:
                self.pending_since[i] = None
            elif since is None and hold_s > 0:
                self.pending_since[i] = now
            elif since is None or now - since >= hold_s:
                self.active[i] = above
                self.pending_since[i] = None

    def detail(self, limits: tuple[float, float], hold_s: float, now: float) -> str:
        text = f"{self.what} {self.value:.1%} (degraded at {limits[0]:.0%}, unhealthy at {limits[1]:.0%})"
        heading = sum(self.value >= limit for limit in limits)
        waits = [s for s in self.pending_since if s is not None]
        if heading != self.level and waits:
            left = max(0.0, hold_s - (now - min(waits)))
            text += f"; {_STATUSES[heading]} if it stays {left:.0f}s more"
        return text


# ---------------------------------------------------------- custom checks


class _TimedOut(Exception):
    """The check's own time-out expired (as opposed to a TimeoutError the check raised)."""


@dataclass(eq=False)
class _Run:
    started: float  # time.monotonic()
    deadline: float
    done: threading.Event = field(default_factory=threading.Event)
    result: CheckResult | None = None


@dataclass(eq=False)
class _Check:
    name: str
    fn: CheckFn
    timeout_s: float
    critical: bool
    run: _Run | None = None
    last: CheckResult | None = None

    def running(self) -> _Run | None:
        return self.run if self.run is not None and not self.run.done.is_set() else None


async def _within(awaitable: Awaitable[Any], timeout_s: float) -> Any:
    scope = asyncio.timeout(timeout_s)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise _TimedOut from None
        raise


def _interpret(outcome: Any) -> tuple[bool, str]:
    if isinstance(outcome, bool):
        return outcome, "ok" if outcome else "check returned False"
    if isinstance(outcome, tuple) and len(outcome) == 2 and isinstance(outcome[0], bool):
        return outcome[0], str(outcome[1])
    return False, f"check returned {outcome!r:.100}, expected a bool or (bool, detail)"


# ----------------------------------------------------------------- monitor


class HealthMonitor:
    """Host thresholds plus custom checks, summed up as healthy, degraded or unhealthy.

    ``source`` gives host readings (usually the :class:`CachedReader` the
    instruments share; ``None`` for no host checks unless readings are pushed
    with :meth:`observe`). ``clock`` (Unix seconds) times the hold durations
    and stamps results, so tests can drive it; time-outs always use real
    time, since threads really wait. ``check_interval_s`` is how often the
    gauge starts the custom checks in the background.
    """

    def __init__(
        self,
        source: HostReader | None = None,
        thresholds: HealthThresholds | Mapping[str, Any] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        check_interval_s: float = 30.0,
    ) -> None:
        self.source = source
        self.thresholds = health_thresholds(thresholds)
        self.check_interval_s = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._levels: dict[str, _HeldLevel] = {}
        self._last_reading: HostReading | None = None
        self._checks: dict[str, _Check] = {}
        after_fork_in_child(self._after_fork)

    def _after_fork(self) -> None:
        """In a forked child no check thread exists: runs in flight would look hung forever."""
        self._lock = threading.Lock()
        for check in self._checks.values():
            check.run = None

    # ------------------------------------------------------- registration

    def set_thresholds(self, thresholds: HealthThresholds | Mapping[str, Any] | None) -> None:
        """Replace the thresholds; host levels start over from healthy."""
        validated = health_thresholds(thresholds)
        with self._lock:
            self.thresholds = validated
            self._levels.clear()

    def register_health_check(
        self, name: str, fn: CheckFn, timeout_s: float | str = 5.0, critical: bool = True
    ) -> None:
        """Add a custom check; names are unique and ``system.*`` belongs to the host checks."""
        problems: list[tuple[str, str]] = []
        if not isinstance(name, str) or not name.strip():
            problems.append(("name", f"must be a non-empty string, got {name!r}"))
        elif name.startswith("system."):
            problems.append(("name", f"{name!r}: names starting with 'system.' are the host checks'"))
        if not callable(fn):
            problems.append(("fn", f"must be callable, got {type(fn).__name__}"))
        try:
            timeout = parse_duration(timeout_s)
        except ValueError as err:
            problems.append(("timeout_s", str(err)))
            timeout = 0.0
        with self._lock:
            if not problems and name in self._checks:
                problems.append(("name", f"a check named {name!r} is already registered"))
            if problems:
                raise ConfigError(problems)
            self._checks[name] = _Check(name, fn, timeout, bool(critical))

    def unregister_health_check(self, name: str) -> bool:
        """Remove a custom check; False if there was none of that name. A running one finishes unseen."""
        with self._lock:
            return self._checks.pop(name, None) is not None

    # ------------------------------------------------------------ reading

    def observe(self, reading: HostReading) -> None:
        """Move the host levels with a reading (the daemon's host metrics receiver pushes them here)."""
        with self._lock:
            self._observe(reading, self._clock())

    def report(self) -> HealthReport:
        """Read the host, run every custom check, and wait at most each check's time-out."""
        now = self._clock()
        results = self._host_results(now)
        with self._lock:
            runs = [(check, check.running() or self._start(check)) for check in self._checks.values()]
        for _, run in runs:
            run.done.wait(max(0.0, run.deadline - time.monotonic()))
        with self._lock:
            results += [self._result(check, run) for check, run in runs]
        return HealthReport(_worst(results), tuple(results), now)

    def latest(self) -> HealthReport:
        """Without waiting: the host re-evaluated, each check's latest result.

        Custom checks not run for ``check_interval_s`` are started in the
        background and show from the next call on. This is what the gauge
        reports, so a metrics collection never waits for a check.
        """
        now = self._clock()
        results = self._host_results(now)
        mono = time.monotonic()
        with self._lock:
            for check in self._checks.values():
                run = check.running()
                if run is None and (check.run is None or mono - check.run.started >= self.check_interval_s):
                    run = self._start(check)
                result = self._result(check, run) if run is not None and mono >= run.deadline else check.last
                if result is not None:
                    results.append(result)
        return HealthReport(_worst(results), tuple(results), now)

    # ----------------------------------------------------------- internals

    def _host_results(self, now: float) -> list[CheckResult]:
        try:
            reading = self.source.read() if self.source is not None else None
        except Exception as err:  # noqa: BLE001 - a broken reader is a finding, not a crash
            detail = f"reading host metrics failed: {type(err).__name__}: {err}"
            return [CheckResult("system.host", "degraded", detail, now, critical=False)]
        with self._lock:
            reading = reading if reading is not None else self._last_reading
            if reading is None:
                return []
            self._observe(reading, now)
            results = []
            for key, (name, _) in _HOST_METRICS.items():
                threshold: Threshold | None = getattr(self.thresholds, key)
                held = self._levels.get(key)
                if threshold is None or held is None:
                    continue
                limits, hold_s = self._limits(threshold)
                results.append(CheckResult(name, _STATUSES[held.level], held.detail(limits, hold_s, now), now))
            return results

    def _limits(self, threshold: Threshold) -> tuple[tuple[float, float], float]:
        hold_s = threshold.hold if threshold.hold is not None else self.thresholds.hold
        return (threshold.degraded, threshold.unhealthy), hold_s

    def _observe(self, reading: HostReading, now: float) -> None:
        self._last_reading = reading
        for key, (_, value_of) in _HOST_METRICS.items():
            threshold: Threshold | None = getattr(self.thresholds, key)
            measured = value_of(reading) if threshold is not None else None
            if measured is None:
                self._levels.pop(key, None)
                continue
            limits, hold_s = self._limits(threshold)
            self._levels.setdefault(key, _HeldLevel()).update(*measured, limits, hold_s, now)

    def _start(self, check: _Check) -> _Run:
        started = time.monotonic()
        run = _Run(started, started + check.timeout_s)
        check.run = run
        name = f"trm-otel-health-{check.name}"
        threading.Thread(target=self._execute, args=(check, run), name=name, daemon=True).start()
        return run

    def _execute(self, check: _Check, run: _Run) -> None:
        try:
            outcome = check.fn()
            if inspect.isawaitable(outcome):
                outcome = asyncio.run(_within(outcome, max(0.0, run.deadline - time.monotonic())))
            ok, detail = _interpret(outcome)
        except _TimedOut:
            ok, detail = False, f"timed out after {check.timeout_s:g}s"
        except BaseException as err:  # noqa: BLE001 - whatever the check does, it only fails the check
            ok, detail = False, f"raised {type(err).__name__}: {err}"
        elapsed = time.monotonic() - run.started
        status: HealthStatus = "healthy" if ok else "unhealthy" if check.critical else "degraded"
        result = CheckResult(check.name, status, detail, self._clock(), check.critical, round(elapsed * 1000, 3))
        with self._lock:
            run.result = result
            if check.run is run:
                check.last = result
        run.done.set()

    def _result(self, check: _Check, run: _Run) -> CheckResult:
        """The run's result, or a time-out failure if it is still running (caller holds the lock)."""
        if run.result is not None:
            return run.result
        elapsed = time.monotonic() - run.started
        detail = f"timed out after {check.timeout_s:g}s (still running after {elapsed:.1f}s)"
        status: HealthStatus = "unhealthy" if check.critical else "degraded"
        result = CheckResult(check.name, status, detail, self._clock(), check.critical, round(elapsed * 1000, 3))
        check.last = result
        return result


def register_health_instruments(meter_provider: MeterProvider, monitor: HealthMonitor) -> None:
    """Export ``trm_otel.health.status`` (0/1/2) per ``check`` and overall, from :meth:`HealthMonitor.latest`."""
    meter = meter_provider.get_meter("trm_otel.health", __version__)

    def observe(_: CallbackOptions) -> list[Observation]:
        try:
            report = monitor.latest()
        except Exception:  # noqa: BLE001 - never break a metrics collection
            _logger.exception("evaluating health for the health gauge failed")
            return []
        points = [Observation(STATUS_CODES[report.status])]
        points += [Observation(STATUS_CODES[c.status], {"check": c.name}) for c in report.checks]
        return points

    meter.create_observable_gauge(
        "trm_otel.health.status",
        [observe],
        unit="1",
        description="Health per check and overall (no check attribute): 0 healthy, 1 degraded, 2 unhealthy.",
    )

"""Host and process readings as OpenTelemetry observable instruments.

    >>> from opentelemetry.sdk.metrics import MeterProvider
    >>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    >>> memory = InMemoryMetricReader()
    >>> host = register_system_instruments(MeterProvider(metric_readers=[memory]), PsutilReader())
    >>> names = {m.name for rm in memory.get_metrics_data().resource_metrics
    ...          for sm in rm.scope_metrics for m in sm.metrics}
    >>> {"system.cpu.utilization", "system.memory.utilization", "process.memory.usage"} <= names
    True

Names, units, instrument kinds and attributes follow the OpenTelemetry
semantic conventions (and the Collector's ``hostmetrics`` receiver where the
conventions leave a choice, e.g. ``system.cpu.load_average.1m``), so
dashboards and alert rules written for either work unchanged. Whatever
reader collects (the percentile reader's timer, an OTLP exporter,
Prometheus), every callback of one collection reports the same reading: the
first registered callback refreshes a :class:`CachedReader` (at most once
per ``interval_s``) and all the others only look at it, so one collection
is at most one psutil pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from trm_otel._version import __version__
from trm_otel.system.readings import (
    CachedReader,
    FilesystemUsage,
    HostReader,
    HostReading,
    MemoryUsage,
    PsutilReader,
)

__all__ = ["INSTRUMENTS", "TOP_N_INSTRUMENTS", "InstrumentSpec", "register_system_instruments"]

_logger = logging.getLogger(__name__)

Kind = Literal["gauge", "counter", "updowncounter"]
Observe = Callable[[HostReading], Iterable[Observation]]


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """One instrument: its semantic-convention name, kind and unit, and how a reading becomes points."""

    name: str
    kind: Kind
    unit: str
    description: str
    observe: Observe


def _cpu(r: HostReading) -> Iterable[Observation]:
    yield Observation(r.cpu_utilization)  # overall busy share: the point without cpu.mode
    for mode, share in r.cpu_modes.items():
        yield Observation(share, {"cpu.mode": mode})


def _load(index: int) -> Observe:
    return lambda r: [Observation(r.load_average[index])]


def _usage(state_key: str, pick: Callable[[HostReading], MemoryUsage]) -> Observe:
    return lambda r: [Observation(v, {state_key: s}) for s, v in pick(r).states().items()]


def _utilization(state_key: str, pick: Callable[[HostReading], MemoryUsage]) -> Observe:
    def observe(r: HostReading) -> Iterable[Observation]:
        usage = pick(r)
        return [Observation(v / usage.total if usage.total else 0.0, {state_key: s}) for s, v in usage.states().items()]

    return observe


def _disk(read: str, write: str) -> Observe:
    def observe(r: HostReading) -> Iterable[Observation]:
        for d in r.disks:
            yield Observation(getattr(d, read), {"system.device": d.device, "disk.io.direction": "read"})
            yield Observation(getattr(d, write), {"system.device": d.device, "disk.io.direction": "write"})

    return observe


def _fs_attributes(fs: FilesystemUsage) -> dict[str, str]:
    return {
        "system.device": fs.device,
        "system.filesystem.mountpoint": fs.mountpoint,
        "system.filesystem.type": fs.fstype,
    }


def _fs_usage(r: HostReading) -> Iterable[Observation]:
    for fs in r.filesystems:
        for state, value in (("used", fs.used), ("free", fs.free), ("reserved", fs.reserved)):
            yield Observation(value, {**_fs_attributes(fs), "system.filesystem.state": state})


def _fs_utilization(r: HostReading) -> Iterable[Observation]:
    return [Observation(fs.utilization, _fs_attributes(fs)) for fs in r.filesystems]


def _network(transmit: str, receive: str) -> Observe:
    def observe(r: HostReading) -> Iterable[Observation]:
        for n in r.networks:
            for direction, attribute in (("transmit", transmit), ("receive", receive)):
                attributes = {"network.interface.name": n.interface, "network.io.direction": direction}
                yield Observation(getattr(n, attribute), attributes)

    return observe


def _own(attribute: str) -> Observe:
    def observe(r: HostReading) -> Iterable[Observation]:
        value = getattr(r.process, attribute)
        return [] if value is None else [Observation(value)]

    return observe


def _top(which: str, attribute: str) -> Observe:
    def observe(r: HostReading) -> Iterable[Observation]:
        return [
            Observation(getattr(p, attribute), {"process.pid": p.pid, "process.executable.name": p.name})
            for p in getattr(r, which)
        ]

    return observe


def _memory(r: HostReading) -> MemoryUsage:
    return r.memory


def _swap(r: HostReading) -> MemoryUsage:
    return r.swap


INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    InstrumentSpec("system.cpu.utilization", "gauge", "1",
                   "Share of CPU time per cpu.mode since the previous reading; without cpu.mode: busy time.",
                   _cpu),
    InstrumentSpec("system.cpu.load_average.1m", "gauge", "{thread}", "Load average over 1 minute.", _load(0)),
    InstrumentSpec("system.cpu.load_average.5m", "gauge", "{thread}", "Load average over 5 minutes.", _load(1)),
    InstrumentSpec("system.cpu.load_average.15m", "gauge", "{thread}", "Load average over 15 minutes.", _load(2)),
    InstrumentSpec("system.memory.usage", "updowncounter", "By", "Memory in use by state (used = total - available).",
                   _usage("system.memory.state", _memory)),
    InstrumentSpec("system.memory.utilization", "gauge", "1", "Share of memory by state.",
                   _utilization("system.memory.state", _memory)),
    InstrumentSpec("system.swap.usage", "updowncounter", "By", "Swap space by state.",
                   _usage("system.paging.state", _swap)),
    InstrumentSpec("system.swap.utilization", "gauge", "1", "Share of swap space by state.",
                   _utilization("system.paging.state", _swap)),
    InstrumentSpec("system.disk.io", "counter", "By", "Disk bytes transferred.", _disk("read_bytes", "write_bytes")),
    InstrumentSpec("system.disk.operations", "counter", "{operation}", "Disk operations completed.",
                   _disk("read_count", "write_count")),
    InstrumentSpec("system.filesystem.usage", "updowncounter", "By", "Filesystem space by state.", _fs_usage),
    InstrumentSpec("system.filesystem.utilization", "gauge", "1", "Filesystem used / (used + free).", _fs_utilization),
    InstrumentSpec("system.network.io", "counter", "By", "Bytes transmitted and received.",
                   _network("bytes_sent", "bytes_recv")),
    InstrumentSpec("system.network.errors", "counter", "{error}", "Network errors detected.",
                   _network("errors_out", "errors_in")),
    InstrumentSpec("system.network.dropped", "counter", "{packet}", "Packets dropped without an error.",
                   _network("dropped_out", "dropped_in")),
    InstrumentSpec("system.process.count", "updowncounter", "{process}", "Processes on the host.",
                   lambda r: [Observation(r.process_count)]),
    InstrumentSpec("process.cpu.utilization", "gauge", "1",
                   "This process's share of the CPUs available to it since the previous reading.",
                   _own("cpu_utilization")),
    InstrumentSpec("process.memory.usage", "updowncounter", "By", "This process's resident memory (RSS).",
                   _own("memory_rss")),
    InstrumentSpec("process.thread.count", "updowncounter", "{thread}", "This process's threads.", _own("threads")),
    InstrumentSpec("process.open_file_descriptor.count", "updowncounter", "{file_descriptor}",
                   "This process's open file descriptors (handles on Windows).", _own("open_fds")),
)  # fmt: skip

TOP_N_INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    InstrumentSpec("trm_otel.process.top.cpu.utilization", "gauge", "1",
                   "The processes using the most CPU, as a share of all CPUs.", _top("top_cpu", "cpu_utilization")),
    InstrumentSpec("trm_otel.process.top.memory.usage", "gauge", "By",
                   "The processes using the most resident memory.", _top("top_memory", "memory_rss")),
)  # fmt: skip


class _Callbacks:
    """The callbacks of one registration, sharing one cache; a failed read never raises into the SDK.

    The SDK would log a full traceback per callback per collection; one
    warning per failure streak says the same thing once.
    """

    def __init__(self, cache: CachedReader) -> None:
        self.cache = cache
        self._failing = False

    def make(self, spec: InstrumentSpec, lead: bool) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            reading = self._reading(refresh=lead)
            return [] if reading is None else list(spec.observe(reading))

        return callback

    def _reading(self, refresh: bool) -> HostReading | None:
        try:
            reading = self.cache.read() if refresh else self.cache.latest()
        except Exception as err:  # noqa: BLE001 - metrics collection must go on without host metrics
            if not self._failing:
                _logger.warning("reading host metrics failed; reporting none until it works: %s", err)
            self._failing = True
            return None
        if self._failing and refresh:
            _logger.info("reading host metrics works again")
            self._failing = False
        return reading


def register_system_instruments(
    meter_provider: MeterProvider,
    reader: HostReader | None = None,
    interval_s: float = 30.0,
    top_n: int = 0,
) -> CachedReader:
    """Register every host and process instrument on ``meter_provider``.

    ``reader`` defaults to a :class:`PsutilReader`. Readings are refreshed at
    most every ``interval_s`` seconds, however often readers collect (the
    percentile reader collects on every ``latency()`` call); in between,
    collections report the last reading. ``top_n > 0`` adds the top-N
    processes by CPU and by memory (a walk over every process: a few ms per
    hundred processes). Returns the shared cache, so other consumers (the
    health monitor) use the same reads.
    """
    if interval_s < 0:
        raise ValueError(f"interval_s must be >= 0, got {interval_s!r}")
    if top_n < 0:
        raise ValueError(f"top_n must be >= 0, got {top_n!r}")
    cache = CachedReader(reader if reader is not None else PsutilReader(), interval_s, top_n)
    callbacks = _Callbacks(cache)
    meter = meter_provider.get_meter("trm_otel.system", __version__)
    create = {
        "gauge": meter.create_observable_gauge,
        "counter": meter.create_observable_counter,
        "updowncounter": meter.create_observable_up_down_counter,
    }
    specs = INSTRUMENTS + (TOP_N_INSTRUMENTS if top_n > 0 else ())
    # The SDK runs callbacks in registration order: the first one refreshes.
    for index, spec in enumerate(specs):
        callback = callbacks.make(spec, lead=index == 0)
        create[spec.kind](spec.name, [callback], unit=spec.unit, description=spec.description)
    return cache

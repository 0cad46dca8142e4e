"""The instruments, read through a real MeterProvider and InMemoryMetricReader."""

from __future__ import annotations

import logging

import psutil
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from tests.system import metric_points
from trm_otel.system.instruments import INSTRUMENTS, TOP_N_INSTRUMENTS, register_system_instruments
from trm_otel.system.readings import (
    DiskIo,
    FilesystemUsage,
    FixedReader,
    HostReading,
    MemoryUsage,
    NetworkIo,
    ProcessUsage,
    PsutilReader,
)

EXPECTED_UNITS = {
    "system.cpu.utilization": "1",
    "system.cpu.load_average.1m": "{thread}",
    "system.cpu.load_average.5m": "{thread}",
    "system.cpu.load_average.15m": "{thread}",
    "system.memory.usage": "By",
    "system.memory.utilization": "1",
    "system.swap.usage": "By",
    "system.swap.utilization": "1",
    "system.disk.io": "By",
    "system.disk.operations": "{operation}",
    "system.filesystem.usage": "By",
    "system.filesystem.utilization": "1",
    "system.network.io": "By",
    "system.network.errors": "{error}",
    "system.network.dropped": "{packet}",
    "system.process.count": "{process}",
    "process.cpu.utilization": "1",
    "process.memory.usage": "By",
    "process.thread.count": "{thread}",
    "process.open_file_descriptor.count": "{file_descriptor}",
}


def provider_with(reader, **kwargs) -> tuple[InMemoryMetricReader, MeterProvider, object]:
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    cache = register_system_instruments(provider, reader, **kwargs)
    return memory, provider, cache


@pytest.fixture
def real():
    memory, provider, _ = provider_with(PsutilReader(), interval_s=0.0)
    yield memory
    provider.shutdown()


def test_every_instrument_is_there_with_its_semantic_convention_unit(real) -> None:
    _, units = metric_points(real)
    assert {name: units.get(name) for name in EXPECTED_UNITS} == EXPECTED_UNITS
    assert [spec.name for spec in INSTRUMENTS] == list(EXPECTED_UNITS)


def test_memory_utilization_agrees_with_psutil_at_the_same_moment(real) -> None:
    points, _ = metric_points(real)
    expected = psutil.virtual_memory().percent / 100
    assert points["system.memory.utilization"][(("system.memory.state", "used"),)] == pytest.approx(expected, abs=0.05)
    used = points["system.memory.usage"][(("system.memory.state", "used"),)]
    assert used == pytest.approx(psutil.virtual_memory().total * expected, rel=0.2, abs=200e6)


def test_cpu_utilization_is_a_fraction_overall_and_per_mode(real) -> None:
    metric_points(real)  # the first reading's CPU shares are since boot; the second covers the interval
    points, _ = metric_points(real)
    cpu = points["system.cpu.utilization"]
    assert 0.0 <= cpu[()] <= 1.0
    per_mode = {dict(attrs)["cpu.mode"]: v for attrs, v in cpu.items() if attrs}
    assert {"user", "system", "idle"} <= set(per_mode)
    assert all(0.0 <= v <= 1.0 for v in per_mode.values())
    assert sum(per_mode.values()) == pytest.approx(1.0)
    assert 0.0 <= points["process.cpu.utilization"][()] <= 1.0


def test_filesystem_and_process_values_agree_with_psutil(real) -> None:
    points, _ = metric_points(real)
    for attrs, value in points["system.filesystem.utilization"].items():
        mountpoint = dict(attrs)["system.filesystem.mountpoint"]
        assert value == pytest.approx(psutil.disk_usage(mountpoint).percent / 100, abs=0.05)
    me = psutil.Process()
    # Threads left by other tests come and go between the reading and now: close, not equal.
    assert abs(points["process.thread.count"][()] - me.num_threads()) <= 5
    assert points["process.memory.usage"][()] == pytest.approx(me.memory_info().rss, rel=0.5)


def fed_reading() -> HostReading:
    return HostReading(
        timestamp=1.0,
        cpu_utilization=0.25,
        cpu_modes={"user": 0.2, "system": 0.05, "idle": 0.75},
        load_average=(1.5, 1.0, 0.5),
        memory=MemoryUsage(total=1000, used=400, free=500, buffers=20, cached=80),
        swap=MemoryUsage(total=100, used=10, free=90),
        disks=(DiskIo("sda", read_bytes=11, write_bytes=22, read_count=3, write_count=4),),
        filesystems=(FilesystemUsage("/data", "/dev/sdb1", "xfs", total=100, used=45, free=50),),
        networks=(NetworkIo("eth0", bytes_sent=7, bytes_recv=8, errors_out=1, errors_in=2, dropped_out=3, dropped_in=4),),
        process_count=42,
        process=ProcessUsage(pid=9, name="app", cpu_utilization=0.125, memory_rss=4096, threads=6, open_fds=12),
        top_cpu=(ProcessUsage(pid=1, name="busy", cpu_utilization=0.5, memory_rss=1),),
        top_memory=(ProcessUsage(pid=2, name="big", cpu_utilization=0.0, memory_rss=999),),
    )


def test_fed_readings_come_out_with_semantic_convention_attributes() -> None:
    memory, provider, _ = provider_with(FixedReader(fed_reading()), top_n=1)
    points, units = metric_points(memory)
    provider.shutdown()
    assert points["system.cpu.utilization"] == {
        (): 0.25, (("cpu.mode", "user"),): 0.2, (("cpu.mode", "system"),): 0.05, (("cpu.mode", "idle"),): 0.75
    }
    assert points["system.cpu.load_average.5m"] == {(): 1.0}
    assert points["system.memory.usage"] == {
        (("system.memory.state", s),): v for s, v in {"used": 400, "free": 500, "buffers": 20, "cached": 80}.items()
    }
    assert points["system.memory.utilization"][(("system.memory.state", "used"),)] == 0.4
    assert points["system.swap.utilization"][(("system.paging.state", "used"),)] == 0.1
    assert points["system.disk.io"] == {
        (("disk.io.direction", "read"), ("system.device", "sda")): 11,
        (("disk.io.direction", "write"), ("system.device", "sda")): 22,
    }
    assert points["system.disk.operations"][(("disk.io.direction", "write"), ("system.device", "sda"))] == 4
    fs = (("system.device", "/dev/sdb1"), ("system.filesystem.mountpoint", "/data"), ("system.filesystem.type", "xfs"))
    assert points["system.filesystem.utilization"] == {fs: pytest.approx(45 / 95)}
    assert points["system.filesystem.usage"] == {
        tuple(sorted((*fs, ("system.filesystem.state", s)))): v for s, v in {"used": 45, "free": 50, "reserved": 5}.items()
    }
    nic = ("network.interface.name", "eth0")
    assert points["system.network.io"] == {
        (nic, ("network.io.direction", "transmit")): 7,
        (nic, ("network.io.direction", "receive")): 8,
    }
    assert points["system.network.errors"][(nic, ("network.io.direction", "receive"))] == 2
    assert points["system.network.dropped"][(nic, ("network.io.direction", "transmit"))] == 3
    assert points["system.process.count"] == {(): 42}
    assert (points["process.cpu.utilization"], points["process.memory.usage"]) == ({(): 0.125}, {(): 4096})
    assert (points["process.thread.count"], points["process.open_file_descriptor.count"]) == ({(): 6}, {(): 12})
    assert points["trm_otel.process.top.cpu.utilization"] == {
        (("process.executable.name", "busy"), ("process.pid", 1)): 0.5
    }
    assert points["trm_otel.process.top.memory.usage"] == {
        (("process.executable.name", "big"), ("process.pid", 2)): 999
    }
    assert {spec.name for spec in TOP_N_INSTRUMENTS} <= set(units)


def test_top_n_instruments_only_when_asked_for() -> None:
    memory, provider, _ = provider_with(FixedReader(fed_reading()))
    points, _ = metric_points(memory)
    provider.shutdown()
    assert not {spec.name for spec in TOP_N_INSTRUMENTS} & set(points)


def test_one_read_per_collection_shared_by_every_callback() -> None:
    fixed = FixedReader(fed_reading())
    memory, provider, _ = provider_with(fixed, interval_s=0.0)
    for collections in (1, 2, 3):
        metric_points(memory)
        assert fixed.reads == collections
    provider.shutdown()


def test_reads_are_rate_limited_to_the_interval() -> None:
    fixed = FixedReader(fed_reading())
    memory, provider, cache = provider_with(fixed, interval_s=3600.0)
    metric_points(memory)
    fixed.feed(HostReading.of(cpu=0.75))
    points, _ = metric_points(memory)
    assert fixed.reads == 1 and points["system.cpu.utilization"][()] == 0.25  # the cached reading
    assert cache.latest() is not fixed.reading
    provider.shutdown()


class FlakyReader:
    def __init__(self) -> None:
        self.fail = True

    def read(self, top_n: int = 0) -> HostReading:
        if self.fail:
            raise OSError("no /proc here")
        return HostReading.of(cpu=0.5)


def test_a_failing_reader_leaves_the_collection_working_and_warns_once(caplog) -> None:
    flaky = FlakyReader()
    memory, provider, _ = provider_with(flaky, interval_s=0.0)
    with caplog.at_level(logging.WARNING, logger="trm_otel.system.instruments"):
        for _ in range(3):
            points, _ = metric_points(memory)
            assert not any(name.startswith("system.") for name in points)
    assert [r.getMessage() for r in caplog.records].count(
        "reading host metrics failed; reporting none until it works: no /proc here"
    ) == 1
    flaky.fail = False
    points, _ = metric_points(memory)
    assert points["system.cpu.utilization"][()] == 0.5
    provider.shutdown()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        register_system_instruments(MeterProvider(), FixedReader(), interval_s=-1)
    with pytest.raises(ValueError, match="top_n"):
        register_system_instruments(MeterProvider(), FixedReader(), top_n=-1)

"""Readings: the psutil reader against psutil itself, the pure helpers with made-up inputs, the cache."""

from __future__ import annotations

import os
import time
from collections import namedtuple

import psutil
import pytest

from trm_otel.system.readings import (
    DEFAULT_EXCLUDED_FSTYPES,
    CachedReader,
    FilesystemUsage,
    FixedReader,
    HostReader,
    HostReading,
    MemoryUsage,
    PsutilReader,
    choose_filesystems,
    cpu_mode_fractions,
)

CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")
Partition = namedtuple("Partition", "device mountpoint fstype opts")


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


# ------------------------------------------------------------- psutil reader


@pytest.fixture(scope="module")
def reading() -> HostReading:
    reader = PsutilReader()
    spin(0.3)
    return reader.read(top_n=3)


def test_psutil_reader_is_a_host_reader() -> None:
    assert isinstance(PsutilReader(), HostReader)
    assert isinstance(FixedReader(), HostReader)
    assert isinstance(CachedReader(FixedReader()), HostReader)


def test_cpu_shares_are_fractions_that_add_up(reading: HostReading) -> None:
    assert 0.0 <= reading.cpu_utilization <= 1.0
    assert set(reading.cpu_modes) >= {"user", "system", "idle"}
    assert all(0.0 <= share <= 1.0 for share in reading.cpu_modes.values())
    assert sum(reading.cpu_modes.values()) == pytest.approx(1.0)
    busy = 1.0 - reading.cpu_modes["idle"] - reading.cpu_modes.get("iowait", 0.0)
    assert reading.cpu_utilization == pytest.approx(busy)


def test_memory_agrees_with_psutil(reading: HostReading) -> None:
    vm = psutil.virtual_memory()
    assert reading.memory.total == vm.total
    assert reading.memory_utilization == pytest.approx(vm.percent / 100, abs=0.05)
    assert set(reading.memory.states()) >= {"used", "free"}


def test_own_process_is_read(reading: HostReading) -> None:
    me = psutil.Process()
    assert reading.process.pid == me.pid
    assert reading.process.memory_rss == pytest.approx(me.memory_info().rss, rel=0.5)
    assert reading.process.threads is not None and reading.process.threads >= 1
    assert reading.process.open_fds is not None and reading.process.open_fds >= 1
    assert 0.0 <= reading.process.cpu_utilization <= 1.0


def test_a_busy_process_shows_cpu_use() -> None:
    reader = PsutilReader()
    reader.read()
    spin(0.4)
    # One spinning thread is 1/N of the CPUs available to the process.
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else psutil.cpu_count()
    assert reader.read().process.cpu_utilization > 0.3 / cpus


def test_host_counts_and_devices(reading: HostReading) -> None:
    assert reading.process_count == pytest.approx(len(psutil.pids()), abs=20)
    assert {n.interface for n in reading.networks} == set(psutil.net_io_counters(pernic=True))
    assert all(not d.device.startswith("loop") for d in reading.disks)
    assert len(reading.load_average) == 3 and all(v >= 0 for v in reading.load_average)


def test_filesystems_skip_pseudo_ones_and_agree_with_psutil(reading: HostReading) -> None:
    assert reading.filesystems, "expected at least one real filesystem"
    assert not {fs.fstype for fs in reading.filesystems} & DEFAULT_EXCLUDED_FSTYPES
    for fs in reading.filesystems:
        assert fs.utilization == pytest.approx(psutil.disk_usage(fs.mountpoint).percent / 100, abs=0.05)
    assert reading.disk_utilization == max(fs.utilization for fs in reading.filesystems)


def test_top_n_is_sorted_and_capped(reading: HostReading) -> None:
    assert 1 <= len(reading.top_cpu) <= 3 and 1 <= len(reading.top_memory) <= 3
    cpu = [p.cpu_utilization for p in reading.top_cpu]
    rss = [p.memory_rss for p in reading.top_memory]
    assert cpu == sorted(cpu, reverse=True) and rss == sorted(rss, reverse=True)
    assert reading.top_memory[0].memory_rss >= reading.process.memory_rss * 0.5


def test_top_n_is_off_by_default() -> None:
    reading = PsutilReader().read()
    assert reading.top_cpu == () and reading.top_memory == ()


# ------------------------------------------------------------ pure helpers


def test_cpu_mode_fractions_are_the_deltas_over_the_total() -> None:
    before = CpuTimes(10, 0, 5, 100, 1, 0, 0, 0, 0, 0)
    after = CpuTimes(13, 0, 6, 105, 1, 0.5, 0.5, 0, 2, 0)  # guest is already inside user
    shares = cpu_mode_fractions(before, after)
    assert shares == pytest.approx(
        {"user": 0.3, "nice": 0.0, "system": 0.1, "idle": 0.5, "iowait": 0.0, "interrupt": 0.1, "steal": 0.0}
    )


def test_cpu_mode_fractions_wait_for_enough_time_and_start_from_boot() -> None:
    times = CpuTimes(10, 0, 5, 100, 1, 0, 0, 0, 0, 0)
    assert cpu_mode_fractions(times, times._replace(user=10.01)) is None
    assert cpu_mode_fractions(None, times)["idle"] == pytest.approx(100 / 116)


def test_choose_filesystems_skips_pseudo_network_and_repeated_mounts() -> None:
    partitions = [
        Partition("/dev/vda1", "/", "ext4", "rw"),
        Partition("/dev/vda1", "/etc/hosts", "ext4", "rw"),  # a bind mount of the same filesystem
        Partition("overlay", "/var/lib/docker/overlay2/x/merged", "overlay", "rw"),
        Partition("tmpfs", "/dev/shm", "tmpfs", "rw"),
        Partition("proc", "/proc", "proc", "rw"),
        Partition("/dev/loop3", "/snap/core/1", "squashfs", "ro"),
        Partition("server:/export", "/mnt/nfs", "nfs4", "rw"),
        Partition("", "/mnt/cdrom", "", "ro"),
    ]
    chosen = choose_filesystems(partitions, DEFAULT_EXCLUDED_FSTYPES)
    # The overlay's mountpoint does not exist here, so it is skipped as unreadable.
    assert [(fs.device, fs.mountpoint) for fs in chosen] == [("/dev/vda1", "/")]


def test_usage_helpers() -> None:
    fs = FilesystemUsage("/", "/dev/x", "ext4", total=100, used=45, free=50)
    assert (fs.reserved, fs.utilization) == (5, pytest.approx(45 / 95))
    assert MemoryUsage().utilization == 0.0
    assert MemoryUsage(100, 30, 70, buffers=1, cached=2).states() == {"used": 30, "free": 70, "buffers": 1, "cached": 2}


def test_synthetic_reading_gives_back_exact_utilizations() -> None:
    reading = HostReading.of(cpu=0.85, memory=0.95, disk=0.97, timestamp=5.0)
    assert (reading.cpu_utilization, reading.memory_utilization, reading.disk_utilization) == (0.85, 0.95, 0.97)
    assert reading.timestamp == 5.0


# -------------------------------------------------------------------- cache


def test_cached_reader_reads_once_per_max_age() -> None:
    now = [0.0]
    fixed = FixedReader(HostReading.of(cpu=0.1))
    cache = CachedReader(fixed, max_age_s=30.0, clock=lambda: now[0])
    assert cache.read() is cache.read() is cache.latest()
    assert fixed.reads == 1
    fixed.feed(HostReading.of(cpu=0.9))
    now[0] = 29.9
    assert cache.read().cpu_utilization == 0.1
    now[0] = 30.0
    assert cache.read().cpu_utilization == 0.9
    assert fixed.reads == 2


def test_cached_reader_latest_reads_only_when_empty() -> None:
    fixed = FixedReader()
    cache = CachedReader(fixed, max_age_s=0.0)
    cache.latest()
    cache.latest()
    assert fixed.reads == 1
    cache.read()
    assert fixed.reads == 2


def test_a_forked_child_reads_its_own_process_not_the_cached_parent() -> None:
    cache = CachedReader(PsutilReader(), max_age_s=3600)
    assert cache.read().process.pid == os.getpid()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, str(cache.read().process.pid).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert int(os.read(read_end, 100)) == pid
    os.close(read_end)

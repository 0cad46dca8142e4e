"""Host and process readings: one snapshot type, one small reader interface.

    >>> reader = FixedReader(HostReading.of(cpu=0.5, memory=0.9, disk=0.2))
    >>> reading = reader.read()
    >>> reading.cpu_utilization, reading.memory_utilization, reading.disk_utilization
    (0.5, 0.9, 0.2)

Everything that consumes host metrics (the OTel instruments, the health
monitor, the daemon's ``hostmetrics`` receiver) reads a :class:`HostReading`
through a :class:`HostReader`, never psutil directly. That is what lets
tests feed exact values (:class:`FixedReader`), and what lets several
consumers share one psutil read (:class:`CachedReader`) instead of each
paying for its own.

Utilizations are fractions in 0..1. CPU utilization is the change of the
cumulative CPU times since the previous read divided by the elapsed CPU time,
so it describes the interval between two reads, like ``psutil.cpu_percent()``
(busy = everything except ``idle`` and ``iowait``). Memory ``used`` is
``total - available``: what applications cannot get back, the figure behind
psutil's ``percent`` and ``free``'s "available" column.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import psutil

__all__ = [
    "DEFAULT_EXCLUDED_DEVICES",
    "DEFAULT_EXCLUDED_FSTYPES",
    "CachedReader",
    "DiskIo",
    "FilesystemUsage",
    "FixedReader",
    "HostReader",
    "HostReading",
    "MemoryUsage",
    "NetworkIo",
    "ProcessUsage",
    "PsutilReader",
    "choose_filesystems",
    "cpu_mode_fractions",
]

_logger = logging.getLogger(__name__)

# Kernel and virtual filesystems: their "usage" is not disk space anyone can
# run out of, and read-only images (squashfs snaps, ISOs) are always 100%
# full, which would make every host with a snap permanently "unhealthy".
PSEUDO_FSTYPES = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devfs", "devpts",
        "devtmpfs", "efivarfs", "fdescfs", "fuse.gvfsd-fuse", "fuse.lxcfs", "fuse.portal", "fusectl",
        "hugetlbfs", "iso9660", "linprocfs", "linsysfs", "mqueue", "nsfs", "proc", "procfs", "pstore",
        "ramfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs", "udf",
    }
)  # fmt: skip
# statvfs() on an unreachable network mount blocks until the server answers;
# a host metric read must never hang the metrics pipeline, so these are off
# by default (pass your own ``exclude_fstypes`` to include them).
NETWORK_FSTYPES = frozenset(
    {"afs", "ceph", "cifs", "davfs", "fuse.glusterfs", "fuse.s3fs", "fuse.sshfs", "glusterfs", "nfs", "nfs4",
     "smb3", "smbfs", "sshfs"}
)  # fmt: skip
DEFAULT_EXCLUDED_FSTYPES = PSEUDO_FSTYPES | NETWORK_FSTYPES
# Loop and RAM-disk block devices: one per snap/image, all noise.
DEFAULT_EXCLUDED_DEVICES = r"(loop|ram)\d+"

# psutil's cpu_times fields -> OTel ``cpu.mode``. ``guest``/``guest_nice``
# are already inside ``user``/``nice`` on Linux, so they are not added again.
_CPU_MODES: Mapping[str, tuple[str, ...]] = {
    "user": ("user",),
    "nice": ("nice",),
    "system": ("system",),
    "idle": ("idle",),
    "iowait": ("iowait",),
    "interrupt": ("irq", "softirq", "interrupt", "dpc"),
    "steal": ("steal",),
}
_NOT_BUSY = ("idle", "iowait")
# Below this much CPU time between two reads the fractions are mostly clock
# tick rounding (ticks are 10 ms); keep the previous figures instead.
_MIN_CPU_DELTA_S = 0.05


# --------------------------------------------------------------- the snapshot


@dataclass(frozen=True, slots=True)
class MemoryUsage:
    """RAM or swap in bytes by state; ``buffers``/``cached`` are None where the OS has no such figure."""

    total: int = 0
    used: int = 0
    free: int = 0
    buffers: int | None = None
    cached: int | None = None

    @property
    def utilization(self) -> float:
        return self.used / self.total if self.total > 0 else 0.0

    def states(self) -> dict[str, int]:
        """Bytes per semantic-convention state, only the states this OS reports."""
        states = {"used": self.used, "free": self.free}
        if self.buffers is not None:
            states["buffers"] = self.buffers
        if self.cached is not None:
            states["cached"] = self.cached
        return states


@dataclass(frozen=True, slots=True)
class FilesystemUsage:
    """One mounted filesystem; ``free`` is what unprivileged users may still write."""

    mountpoint: str
    device: str
    fstype: str
    total: int
    used: int
    free: int

    @property
    def reserved(self) -> int:
        """Blocks kept for root: neither used nor available to applications."""
        return max(0, self.total - self.used - self.free)

    @property
    def utilization(self) -> float:
        """``used / (used + free)``, as ``df`` and psutil compute it (reserved blocks do not count as room)."""
        room = self.used + self.free
        return self.used / room if room > 0 else 0.0


@dataclass(frozen=True, slots=True)
class DiskIo:
    """Cumulative I/O of one block device since boot."""

    device: str
    read_bytes: int = 0
    write_bytes: int = 0
    read_count: int = 0
    write_count: int = 0


@dataclass(frozen=True, slots=True)
class NetworkIo:
    """Cumulative traffic of one network interface since boot."""

    interface: str
    bytes_sent: int = 0
    bytes_recv: int = 0
    errors_out: int = 0
    errors_in: int = 0
    dropped_out: int = 0
    dropped_in: int = 0


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """One process. ``cpu_utilization`` is a share of all CPUs available to it (0..1).

    ``threads`` and ``open_fds`` are None when not read (top-N entries) or
    not readable.
    """

    pid: int = 0
    name: str = ""
    cpu_utilization: float = 0.0
    memory_rss: int = 0
    threads: int | None = None
    open_fds: int | None = None


@dataclass(frozen=True, slots=True)
class HostReading:
    """Everything the instruments and the health monitor need, read at one moment.

    ``timestamp`` is Unix seconds; ``cpu_modes`` maps ``cpu.mode`` to its
    share of CPU time (summing to 1); ``top_cpu``/``top_memory`` are empty
    unless a top-N was asked for.
    """

    timestamp: float = 0.0
    cpu_utilization: float = 0.0
    cpu_modes: Mapping[str, float] = field(default_factory=dict)
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)
    memory: MemoryUsage = MemoryUsage()
    swap: MemoryUsage = MemoryUsage()
    disks: tuple[DiskIo, ...] = ()
    filesystems: tuple[FilesystemUsage, ...] = ()
    networks: tuple[NetworkIo, ...] = ()
    process_count: int = 0
    process: ProcessUsage = ProcessUsage()
    top_cpu: tuple[ProcessUsage, ...] = ()
    top_memory: tuple[ProcessUsage, ...] = ()

    @property
    def memory_utilization(self) -> float:
        return self.memory.utilization

    @property
    def swap_utilization(self) -> float:
        return self.swap.utilization

    @property
    def fullest_filesystem(self) -> FilesystemUsage | None:
        """The filesystem closest to full: disk health is as bad as its worst filesystem."""
        return max(self.filesystems, key=lambda fs: fs.utilization, default=None)

    @property
    def disk_utilization(self) -> float:
        fullest = self.fullest_filesystem
        return fullest.utilization if fullest is not None else 0.0

    @classmethod
    def of(
        cls, cpu: float = 0.0, memory: float = 0.0, disk: float = 0.0, timestamp: float | None = None
    ) -> HostReading:
        """A synthetic reading with exactly these utilizations, for tests and demos.

        Sizes are 10**12 bytes so that ``used / total`` gives back the very
        float passed in, and threshold comparisons in tests are exact.
        """
        total = 10**12
        mem_used = round(memory * total)
        disk_used = round(disk * total)
        return cls(
            timestamp=time.time() if timestamp is None else timestamp,
            cpu_utilization=cpu,
            cpu_modes={"user": cpu, "idle": 1.0 - cpu},
            memory=MemoryUsage(total=total, used=mem_used, free=total - mem_used),
            filesystems=(FilesystemUsage("/", "/dev/synthetic", "ext4", total, disk_used, total - disk_used),),
        )


# ----------------------------------------------------------------- readers


@runtime_checkable
class HostReader(Protocol):
    """Where readings come from. ``top_n > 0`` also fills the top-N process lists."""

    def read(self, top_n: int = 0) -> HostReading: ...


class FixedReader:
    """A reader that returns whatever it was last fed; ``reads`` counts the calls.

    Tests feed exact values through it, and count ``reads`` to prove that
    consumers share reads instead of each reading on its own.
    """

    def __init__(self, reading: HostReading | None = None) -> None:
        self.reading = reading if reading is not None else HostReading()
        self.reads = 0

    def feed(self, reading: HostReading) -> None:
        self.reading = reading

    def read(self, top_n: int = 0) -> HostReading:
        self.reads += 1
        return self.reading


class CachedReader:
    """Shares one read among every consumer for ``max_age_s``.

    The instruments' callbacks, the health gauge and ``health()`` all run at
    different moments and from different threads; without this each would
    read psutil on its own and CPU deltas would cover random short slices.
    ``read()`` refreshes when the cached reading is older than ``max_age_s``;
    ``latest()`` never refreshes once something is cached.
    """

    def __init__(
        self,
        reader: HostReader,
        max_age_s: float = 30.0,
        top_n: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age_s < 0:
            raise ValueError(f"max_age_s must be >= 0, got {max_age_s!r}")
        self.reader = reader
        self.max_age_s = max_age_s
        self.top_n = top_n
        self._clock = clock
        self._lock = threading.Lock()
        self._reading: HostReading | None = None
        self._read_at = 0.0
        after_fork_in_child(self._forget)

    def _forget(self) -> None:
        """In a forked child: the parent's reading describes the parent, and its lock may be held."""
        self._lock = threading.Lock()
        self._reading = None

    def read(self, top_n: int = 0) -> HostReading:
        with self._lock:
            now = self._clock()
            if self._reading is None or now - self._read_at >= self.max_age_s:
                self._reading = self.reader.read(max(top_n, self.top_n))
                self._read_at = now
            return self._reading

    def latest(self) -> HostReading:
        """The cached reading, reading only if there is none yet."""
        with self._lock:
            reading = self._reading
        return reading if reading is not None else self.read()


class PsutilReader:
    """The real reader: one psutil pass over CPU, memory, disks, filesystems, network and this process.

    About 0.5 ms on a small host without top-N. The top-N walks every
    process (a few ms per hundred processes), which is why it only runs when
    asked for. Filesystems whose type is in ``exclude_fstypes`` and block
    devices whose name fully matches ``exclude_devices`` are left out; each
    device's filesystem is reported once, at its shortest mountpoint (bind
    mounts and container ``/etc/hosts`` files are the same filesystem).
    """

    def __init__(
        self,
        *,
        exclude_fstypes: Iterable[str] = DEFAULT_EXCLUDED_FSTYPES,
        exclude_devices: str | None = DEFAULT_EXCLUDED_DEVICES,
    ) -> None:
        self.exclude_fstypes = frozenset(exclude_fstypes)
        self._exclude_devices = re.compile(exclude_devices) if exclude_devices else None
        self._lock = threading.Lock()
        after_fork_in_child(self._new_lock)
        self._cpu_count = _available_cpus()
        self._cpu_times: Any = psutil.cpu_times()
        self._cpu_modes = cpu_mode_fractions(None, self._cpu_times)
        self._own: psutil.Process | None = None
        self._own_cpu: tuple[float, float] | None = None  # (monotonic, cpu seconds)
        self._own_utilization = 0.0
        self._top_cpu: dict[tuple[int, float], float] = {}
        self._top_at: float | None = None

    def _new_lock(self) -> None:
        self._lock = threading.Lock()  # a lock held by another thread at fork stays held in the child

    def read(self, top_n: int = 0) -> HostReading:
        with self._lock:
            now_mono = time.monotonic()
            modes = self._read_cpu()
            top_cpu, top_memory = self._read_top(top_n, now_mono) if top_n > 0 else ((), ())
            return HostReading(
                timestamp=time.time(),
                cpu_utilization=_clamp(1.0 - sum(modes.get(m, 0.0) for m in _NOT_BUSY)),
                cpu_modes=modes,
                load_average=_load_average(),
                memory=_memory(),
                swap=_swap(),
                disks=self._read_disks(),
                filesystems=choose_filesystems(psutil.disk_partitions(all=True), self.exclude_fstypes),
                networks=_networks(),
                process_count=len(psutil.pids()),
                process=self._read_own(now_mono),
                top_cpu=top_cpu,
                top_memory=top_memory,
            )

    def _read_cpu(self) -> dict[str, float]:
        current = psutil.cpu_times()
        modes = cpu_mode_fractions(self._cpu_times, current)
        if modes is not None:  # else: too little time passed; keep the baseline for a longer delta
            self._cpu_times = current
            self._cpu_modes = modes
        return dict(self._cpu_modes or {})

    def _read_disks(self) -> tuple[DiskIo, ...]:
        counters = psutil.disk_io_counters(perdisk=True) or {}
        return tuple(
            DiskIo(name, c.read_bytes, c.write_bytes, c.read_count, c.write_count)
            for name, c in sorted(counters.items())
            if self._exclude_devices is None or not self._exclude_devices.fullmatch(name)
        )

    def _read_own(self, now_mono: float) -> ProcessUsage:
        pid = os.getpid()
        if self._own is None or self._own.pid != pid:  # first read, or we are a forked child
            self._own = psutil.Process(pid)
            self._own_cpu = None
        proc = self._own
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                rss = proc.memory_info().rss
                threads = proc.num_threads()
                fds = proc.num_fds() if hasattr(proc, "num_fds") else proc.num_handles()
                cpu_s = times.user + times.system
                if self._own_cpu is None:  # first figure: the average over the process lifetime
                    lifetime = max(1e-9, time.time() - proc.create_time())
                    self._own_utilization = _clamp(cpu_s / lifetime / self._cpu_count)
                    self._own_cpu = (now_mono, cpu_s)
                elif now_mono - self._own_cpu[0] >= _MIN_CPU_DELTA_S:
                    elapsed = now_mono - self._own_cpu[0]
                    self._own_utilization = _clamp((cpu_s - self._own_cpu[1]) / elapsed / self._cpu_count)
                    self._own_cpu = (now_mono, cpu_s)
                name = proc.name()
        except (psutil.Error, OSError) as err:
            _logger.debug("reading this process failed: %s", err)
            return ProcessUsage(pid=pid)
        return ProcessUsage(pid, name, self._own_utilization, rss, threads, fds)

    def _read_top(self, n: int, now_mono: float) -> tuple[tuple[ProcessUsage, ...], tuple[ProcessUsage, ...]]:
        """The n processes using the most CPU (since the previous top-N read) and the most memory."""
        elapsed = now_mono - self._top_at if self._top_at is not None else None
        now_wall = time.time()
        seen: dict[tuple[int, float], float] = {}
        usages: list[ProcessUsage] = []
        for proc in psutil.process_iter(["name", "cpu_times", "memory_info", "create_time"]):
            info = proc.info
            times, memory, created = info.get("cpu_times"), info.get("memory_info"), info.get("create_time")
            if times is None or memory is None or created is None:
                continue  # gone, or not ours to read
            key = (proc.pid, created)  # create_time tells a reused pid apart
            cpu_s = times.user + times.system
            seen[key] = cpu_s
            previous = self._top_cpu.get(key)
            if elapsed and previous is not None:
                share = (cpu_s - previous) / elapsed
            else:
                share = cpu_s / max(1e-9, now_wall - created)
            usages.append(ProcessUsage(proc.pid, info.get("name") or "", _clamp(share / self._cpu_count), memory.rss))
        self._top_cpu, self._top_at = seen, now_mono
        by_cpu = sorted(usages, key=lambda u: u.cpu_utilization, reverse=True)[:n]
        by_memory = sorted(usages, key=lambda u: u.memory_rss, reverse=True)[:n]
        return tuple(by_cpu), tuple(by_memory)


# ------------------------------------------------------------ pure helpers


def after_fork_in_child(method: Callable[[], None]) -> None:
    """Call a bound ``method`` in the child after ``os.fork()``, without keeping its object alive.

    Pre-fork servers (gunicorn ``--preload``) call ``configure()`` before
    forking; a lock held by a collection thread at that moment would stay
    held in the child forever, and cached per-process state would describe
    the parent.
    """
    if hasattr(os, "register_at_fork"):
        weak = weakref.WeakMethod(method)  # type: ignore[arg-type]
        os.register_at_fork(after_in_child=lambda: (alive := weak()) is not None and alive())


def cpu_mode_fractions(previous: Any | None, current: Any) -> dict[str, float] | None:
    """Share of CPU time per ``cpu.mode`` between two ``psutil.cpu_times()`` results.

    With ``previous=None`` the shares are over the time since boot. Returns
    None when less than 50 ms of CPU time passed in between, too little to
    say anything (the counters move in 10 ms ticks).
    """
    deltas: dict[str, float] = {}
    for mode, fields in _CPU_MODES.items():
        present = [f for f in fields if hasattr(current, f)]
        if not present:
            continue
        now = sum(getattr(current, f) for f in present)
        before = sum(getattr(previous, f) for f in present) if previous is not None else 0.0
        deltas[mode] = max(0.0, now - before)
    total = sum(deltas.values())
    if total < (_MIN_CPU_DELTA_S if previous is not None else 1e-9):
        return None
    return {mode: delta / total for mode, delta in deltas.items()}


def choose_filesystems(partitions: Iterable[Any], exclude_fstypes: Iterable[str]) -> tuple[FilesystemUsage, ...]:
    """Usage of each real filesystem once, sorted by mountpoint.

    ``partitions`` are ``psutil.disk_partitions(all=True)`` entries. Pseudo
    filesystems (and whatever ``exclude_fstypes`` names) are skipped; a device
    mounted several times is reported at its shortest mountpoint; a mount that
    cannot be read or has no size (an empty CD drive) is skipped.
    """
    excluded = frozenset(exclude_fstypes)
    chosen: dict[str, Any] = {}
    for part in partitions:
        if not part.fstype or part.fstype in excluded:
            continue
        kept = chosen.get(part.device)
        if kept is None or len(part.mountpoint) < len(kept.mountpoint):
            chosen[part.device] = part
    usages = []
    for part in sorted(chosen.values(), key=lambda p: p.mountpoint):
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except (OSError, psutil.Error):
            continue
        if usage.total > 0:
            fs = FilesystemUsage(part.mountpoint, part.device, part.fstype, usage.total, usage.used, usage.free)
            usages.append(fs)
    return tuple(usages)


def _memory() -> MemoryUsage:
    vm = psutil.virtual_memory()
    return MemoryUsage(
        total=vm.total,
        used=max(0, vm.total - vm.available),
        free=vm.free,
        buffers=getattr(vm, "buffers", None),
        cached=getattr(vm, "cached", None),
    )


def _swap() -> MemoryUsage:
    try:
        sm = psutil.swap_memory()
    except (OSError, RuntimeError, psutil.Error):  # no swap accounting (some containers)
        return MemoryUsage()
    return MemoryUsage(total=sm.total, used=sm.used, free=sm.free)


def _networks() -> tuple[NetworkIo, ...]:
    counters = psutil.net_io_counters(pernic=True) or {}
    return tuple(
        NetworkIo(name, c.bytes_sent, c.bytes_recv, c.errout, c.errin, c.dropout, c.dropin)
        for name, c in sorted(counters.items())
    )


def _load_average() -> tuple[float, float, float]:
    try:
        one, five, fifteen = psutil.getloadavg()
    except (AttributeError, OSError):
        return (0.0, 0.0, 0.0)
    return (float(one), float(five), float(fifteen))


def _available_cpus() -> int:
    """CPUs this process may run on (its affinity), the semantic conventions' divisor."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:
            pass
    return psutil.cpu_count() or 1


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))

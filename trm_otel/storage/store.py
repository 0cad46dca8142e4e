"""The embedded time-series store: per-window histograms and scalars in one SQLite file.

    >>> store = Store(Path("trm-otel-data/trm-otel.sqlite3"))                          # doctest: +SKIP
    >>> row = ("default", DURATION_METRIC, {"service.name": "shop"}, 1_764_467_400, histogram)  # doctest: +SKIP
    >>> store.write_latency([row])          # one transaction per call (per flush)     # doctest: +SKIP
    >>> store.compact(time.time())          # rollups and retention, run every minute  # doctest: +SKIP
    >>> refs = store.select("default", DURATION_METRIC, [Matcher("service.name", "=", "shop")])  # doctest: +SKIP
    >>> store.latency_windows(refs, start_s, end_s)     # {series id: [(start, histogram)]}  # doctest: +SKIP
    >>> store.latency_merged(refs, start_s, end_s, step_s=300, group_of=by_span_name)      # doctest: +SKIP

Resolutions. Raw rows are ``window_s`` long; ``compact`` merges them into
1-minute rows and those into 1-hour rows (the keys of ``retention_s``), so
every resolution holds exact merges of the finer one: a 7-day P99 from
1-hour rows is the P99 of one histogram of all its values, to the sketch's
accuracy. Each resolution keeps its rows for its retention (24 h, 7 d,
90 d by default), and a row is only deleted once it is rolled into the next
resolution.

Late data. A write for a window that already has a row merges into it
(histograms merged, sums and histogram counts added, gauges: the newer
write wins), and a write for a window that was already rolled up is merged
into those rollup rows too, in the same transaction, so every resolution
stays the merge of its windows whenever data arrives.

Reads. ``latency_windows`` and ``scalar_windows`` answer at the finest
resolution whose retention still reaches back to ``start_s`` (or the one
asked for, or with ``step_s`` the coarsest that divides the step), as
windows of that resolution starting in ``[start_s, end_s)``. Windows newer
than the last compaction are merged on the fly from the finer rows, so a
coarse answer is never missing its most recent part. ``latency_merged``
answers a range query's shape directly: one merged histogram per step and
group of series, without a histogram object per stored window.

Durability. SQLite in WAL mode with ``synchronous=NORMAL``: each write call
is one transaction, and once it has returned its rows survive the process
being killed (SIGKILL included): the commit is in the WAL file, which the
next open replays. An operating-system crash or power loss can roll back
the transactions committed since the last WAL checkpoint (SQLite
checkpoints every ~1000 pages, about 4 MB of writes), never corrupt the
file. What the daemon holds in memory and has not yet written is, of
course, not in the file.

Exemplars. ``write_exemplars`` stores each latency series' exemplar spans
per raw window (merging with what a window already has: the slowest of
both, and the bottom-k sample by span id, which is what the union's sample
would be); ``exemplars`` reads them back for a time range. They live as
long as raw latency rows and are not rolled up.

Concurrency. One connection, guarded by a lock: the daemon writes from one
thread while API threads read. Reads fetch rows under the lock 50 series at
a time and decode them outside it; compaction takes the lock one small
transaction at a time, so writes and reads interleave with both. One
``Store`` per file at a time: series ids are cached in memory.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

from trm_otel.histogram import ExponentialHistogram
from trm_otel.series_source import CALLS_METRIC, DURATION_METRIC, Matcher, SeriesKind, SeriesRef, label_value
from trm_otel.storage.codec import decode_many, decode_merged, encode_many
from trm_otel.storage.schema import SCHEMA_VERSION, migrate

__all__ = [
    "DATABASE_NAME",
    "DEFAULT_RETENTION_S",
    "SCHEMA_VERSION",
    "ExemplarRow",
    "LatencyRow",
    "ScalarRow",
    "Store",
    "StoreStats",
    "canonical_labels",
    "retention_from_config",
]

#: The file name inside ``storage.path``.
DATABASE_NAME = "trm-otel.sqlite3"

#: resolution seconds -> retention seconds: raw 10 s windows 24 h, 1 m rows 7 d, 1 h rows 90 d.
DEFAULT_RETENTION_S: Mapping[int, float] = {10: 24 * 3600.0, 60: 7 * 86400.0, 300: 7 * 86400.0, 3600: 90 * 86400.0}

ScalarKind = Literal["gauge", "sum", "histogram"]
#: (tenant, metric, labels, window start s, histogram)
LatencyRow = tuple[str, str, Mapping[str, Any], int, ExponentialHistogram]
#: (tenant, metric, labels, kind, window start s, value)
ScalarRow = tuple[str, str, Mapping[str, Any], str, int, float]
#: (tenant, metric, labels, window start s, {"slowest": [record, ...], "sampled": [record, ...]})
ExemplarRow = tuple[str, str, Mapping[str, Any], int, Mapping[str, Sequence[Mapping[str, Any]]]]

_SCALAR_KINDS = ("gauge", "sum", "histogram")
_LATENCY = "latency"
_SCALAR = "scalar"
_IN_CHUNK = 500  # series ids per IN (...) list: far below SQLite's variable limit
_READ_CHUNK = 50  # series read per lock hold (a day of 1 m rows of 50 series: ~0.1 s)
_ROLLUP_SOURCE_WINDOWS = 64  # finer windows per series per compaction transaction, at most
_ROLLUP_ROWS = 20_000  # finer rows per compaction transaction, roughly (never less than one period)
_DELETE_SLICE_WINDOWS = 360  # windows of a resolution deleted per retention transaction
_KEY_MEMO = 200_000  # label layouts remembered by _key

_UPSERT_ADD = """
    INSERT INTO scalar (series_id, resolution, window_start, value) VALUES (?, ?, ?, ?)
    ON CONFLICT (series_id, resolution, window_start) DO UPDATE SET value = value + excluded.value
"""
_UPSERT_REPLACE = """
    INSERT INTO scalar (series_id, resolution, window_start, value) VALUES (?, ?, ?, ?)
    ON CONFLICT (series_id, resolution, window_start) DO UPDATE SET value = excluded.value
"""


def canonical_labels(labels: Mapping[str, Any]) -> str:
    """Labels as the series key stores them: sorted JSON of string values.

    Matchers compare strings, so values are stored as the text a query
    would name: booleans as ``true``/``false`` (as the spanmetrics overflow
    flag reads in other backends), everything else by ``str``.
    """
    return json.dumps(
        {str(k): label_value(v) for k, v in labels.items()}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def retention_from_config(retention: Any, window_s: float) -> dict[int, float]:
    """``storage.retention`` (raw / 1m / 1h) as ``Store``'s ``retention_s`` for ``window_s`` raw windows.

    A 5 m tier, kept as long as the 1 m one, sits between them: dashboards'
    usual 5 m step then reads one stored row per step instead of merging
    five (a day of 20 series at a 5 m step is 5,760 rows instead of 28,800).
    A raw window of a minute or more leaves out the tiers it would not be
    coarser than.
    """
    raw = _whole_seconds(window_s, "window_s")
    out = {raw: float(retention.raw)}
    for resolution, kept in ((60, retention.one_minute), (300, retention.one_minute), (3600, retention.one_hour)):
        if resolution > raw and resolution % raw == 0:
            out[resolution] = float(kept)
    return out


def _whole_seconds(value: float, name: str) -> int:
    if not (value >= 1 and float(value).is_integer()):
        raise ValueError(f"{name} must be a whole number of seconds >= 1 for storage, got {value!r}")
    return int(value)


def _align(t: float, resolution: int) -> int:
    """Start of the window of ``resolution`` holding ``t``."""
    return math.floor(t / resolution) * resolution


def _align_up(t: float, resolution: int) -> int:
    return math.ceil(t / resolution) * resolution


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What the store holds, for health checks and the footprint report.

    ``*_rows`` and ``latency_bytes`` (sum of histogram blob sizes) are per
    resolution; ``bytes_on_disk`` counts the database, WAL and shared-memory
    files.
    """

    series: int
    latency_rows: dict[int, int]
    scalar_rows: dict[int, int]
    latency_bytes: dict[int, int]
    bytes_on_disk: int
    schema_version: int


@dataclass(frozen=True, slots=True)
class _Series:
    id: int
    labels: dict[str, str]
    kind: SeriesKind


class Store:
    """Per-window latency histograms and scalar series in one SQLite file (see the module doc).

    ``retention_s`` maps each resolution (seconds) to how long its rows are
    kept; the finest must be ``window_s`` (whole seconds) and each coarser
    one a multiple of the next finer one.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        retention_s: Mapping[int, float] = DEFAULT_RETENTION_S,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        raw = _whole_seconds(window_s, "window_s")
        resolutions = sorted(int(r) for r in retention_s)
        if not resolutions or resolutions[0] != raw:
            raise ValueError(f"retention_s must include the raw resolution window_s={raw}, got {sorted(retention_s)}")
        for finer, coarser in zip(resolutions, resolutions[1:]):
            if coarser % finer:
                raise ValueError(
                    f"resolution {coarser} s is not a multiple of {finer} s: rollups could not merge whole windows"
                )
        for r in resolutions:
            if not retention_s[r] > 0:
                raise ValueError(f"retention of resolution {r} s must be > 0, got {retention_s[r]!r}")
        self.path = Path(path)
        self.window_s = float(raw)
        self.resolutions: tuple[int, ...] = tuple(resolutions)
        self.retention_s: dict[int, float] = {r: float(retention_s[r]) for r in resolutions}
        self.clock = clock
        self._lock = threading.RLock()
        self._closed = False
        self._keys: dict[tuple[Any, ...], tuple[str, str, str, str]] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30.0)
        try:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"cannot put {self.path} in WAL mode (got {mode!r})")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self.schema_version = migrate(self._db)
            self._ids: dict[tuple[str, str, str, str], int] = {}
            self._by_metric: dict[tuple[str, str], list[_Series]] = defaultdict(list)
            for sid, tenant, metric, labels, kind in self._db.execute(
                "SELECT id, tenant, metric, labels, kind FROM series ORDER BY id"
            ):
                self._remember(sid, tenant, metric, labels, kind)
            progress = self._db.execute("SELECT data_table, resolution, done_until FROM rollup_progress")
            self._progress: dict[tuple[str, int], int] = {(table, int(r)): int(done) for table, r, done in progress}
        except BaseException:
            self._db.close()
            raise

    # ------------------------------------------------------------ plumbing

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction (the lock must be held)."""
        cursor = self._db.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    def _remember(self, sid: int, tenant: str, metric: str, labels: str, kind: str) -> None:
        self._ids[(tenant, metric, labels, kind)] = sid
        self._by_metric[(tenant, metric)].append(_Series(sid, json.loads(labels), kind))  # type: ignore[arg-type]

    def _key(self, tenant: str, metric: str, labels: Mapping[str, Any], kind: str) -> tuple[str, str, str, str]:
        """The series key, with its canonical labels JSON memoized per label dict layout.

        A flush writes the same label dicts every window; rendering JSON for
        each row would cost more than writing it.
        """
        try:
            layout = (tenant, metric, kind, tuple(labels.items()))
            key = self._keys.get(layout)
        except TypeError:  # unhashable label values: no memo
            return (tenant, metric, canonical_labels(labels), kind)
        if key is None:
            if len(self._keys) >= _KEY_MEMO:
                self._keys.clear()
            key = self._keys[layout] = (tenant, metric, canonical_labels(labels), kind)
        return key

    def _resolve(
        self, cursor: sqlite3.Cursor, key: tuple[str, str, str, str], new: dict[tuple[str, str, str, str], int]
    ) -> int:
        """The id of a series, inserting it inside the current transaction if unknown."""
        sid = self._ids.get(key)
        if sid is None:
            sid = new.get(key)
        if sid is None:
            cursor.execute(
                "INSERT INTO series (tenant, metric, labels, kind) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant, metric, labels, kind) DO UPDATE SET kind = excluded.kind RETURNING id",
                key,
            )
            sid = int(cursor.fetchone()[0])
            new[key] = sid
        return sid

    def _publish(self, new: dict[tuple[str, str, str, str], int]) -> None:
        """Cache series created by a committed transaction (never those of a rolled-back one)."""
        for key, sid in new.items():
            if key not in self._ids:
                self._remember(sid, *key)

    def _raw_start(self, window_start_s: float) -> int:
        start = int(window_start_s)
        if start != window_start_s or start < 0:
            raise ValueError(f"window start must be a non-negative whole second, got {window_start_s!r}")
        return _align(start, self.resolutions[0])

    def _rolled_targets(self, table: str, start: int) -> Iterator[tuple[int, int]]:
        """(resolution, window start) of rollups already holding ``start``: late data goes there too."""
        for r in self.resolutions[1:]:
            done = self._progress.get((table, r))
            if done is not None and start < done:
                yield r, _align(start, r)

    # ------------------------------------------------------------ writes

    def series_id(self, tenant: str, metric: str, labels: Mapping[str, Any], kind: str) -> int:
        """The integer id of a series, created if new."""
        if kind not in ("latency", *_SCALAR_KINDS):
            raise ValueError(f"kind must be latency, gauge, sum or histogram, got {kind!r}")
        key = self._key(tenant, metric, labels, kind)
        with self._lock:
            sid = self._ids.get(key)
            if sid is not None:
                return sid
            new: dict[tuple[str, str, str, str], int] = {}
            with self._transaction() as cursor:
                sid = self._resolve(cursor, key, new)
            self._publish(new)
            return sid

    def write_latency(self, rows: Iterable[LatencyRow]) -> int:
        """Write raw latency windows in one transaction; returns the rows written.

        A window that already has a row merges with it, as do rollups already
        made of it. Histograms are in the unit of the metric (ms for spans).
        """
        items = list(rows)
        if not items:
            return 0
        keys = [self._key(t, m, labels, _LATENCY) for t, m, labels, _, _ in items]
        starts = [self._raw_start(ws) for _, _, _, ws, _ in items]
        raw = self.resolutions[0]
        with self._lock:
            new: dict[tuple[str, str, str, str], int] = {}
            with self._transaction() as cursor:
                incoming: dict[tuple[int, int, int], list[ExponentialHistogram]] = defaultdict(list)
                for key, start, (*_, histogram) in zip(keys, starts, items):
                    sid = self._resolve(cursor, key, new)
                    incoming[(sid, raw, start)].append(histogram)
                    for r, rolled in self._rolled_targets(_LATENCY, start):
                        incoming[(sid, r, rolled)].append(histogram)
                self._merge_latency(cursor, incoming)
            self._publish(new)
        return len(items)

    def _merge_latency(
        self, cursor: sqlite3.Cursor, incoming: Mapping[tuple[int, int, int], list[ExponentialHistogram]]
    ) -> None:
        """Write each (series, resolution, window)'s histograms merged with what is stored there."""
        stored = self._stored_latency(cursor, incoming)
        previous = dict(zip(stored, decode_many(list(stored.values()))))
        final = []
        for target, histograms in incoming.items():
            before = previous.get(target)
            parts = histograms if before is None else [before, *histograms]
            final.append(parts[0] if len(parts) == 1 else ExponentialHistogram.merged(parts))
        cursor.executemany(
            "INSERT OR REPLACE INTO latency (series_id, resolution, window_start, data) VALUES (?, ?, ?, ?)",
            [(*target, blob) for target, blob in zip(incoming, encode_many(final))],
        )

    def _stored_latency(
        self, cursor: sqlite3.Cursor, targets: Iterable[tuple[int, int, int]]
    ) -> dict[tuple[int, int, int], bytes]:
        """Blobs already stored for some of ``targets`` (late data), looked up window by window.

        A flush covers one or two windows, so this is a couple of indexed
        queries that find nothing; merging in Python rather than in an SQL
        function lets all the merges of a call share one decode and one encode.
        """
        by_window: dict[tuple[int, int], list[int]] = defaultdict(list)
        for sid, resolution, start in targets:
            by_window[(resolution, start)].append(sid)
        found: dict[tuple[int, int, int], bytes] = {}
        for (resolution, start), sids in by_window.items():
            for at in range(0, len(sids), _IN_CHUNK):
                chunk = sids[at : at + _IN_CHUNK]
                for sid, data in cursor.execute(
                    f"SELECT series_id, data FROM latency WHERE resolution = ? AND window_start = ? "
                    f"AND series_id IN ({','.join('?' * len(chunk))})",
                    (resolution, start, *chunk),
                ):
                    found[(sid, resolution, start)] = data
        return found

    def write_scalars(self, rows: Iterable[ScalarRow]) -> int:
        """Write raw scalar windows in one transaction; returns the rows written.

        ``sum`` values are the window's increase and ``histogram`` values its
        count: both add up with data already stored. A ``gauge`` value
        replaces the stored one (the newer write wins). NaN is stored as NULL
        and read back as NaN.
        """
        items = list(rows)
        if not items:
            return 0
        for item in items:
            if item[3] not in _SCALAR_KINDS:
                raise ValueError(f"scalar kind must be gauge, sum or histogram, got {item[3]!r}")
        raw = self.resolutions[0]
        prepared = [
            (self._key(t, m, labels, kind), self._raw_start(ws), None if math.isnan(v) else float(v))
            for t, m, labels, kind, ws, v in items
        ]
        with self._lock:
            new: dict[tuple[str, str, str, str], int] = {}
            with self._transaction() as cursor:
                adds: list[tuple[int, int, int, float | None]] = []
                replaces: list[tuple[int, int, int, float | None]] = []
                for key, start, value in prepared:
                    sid = self._resolve(cursor, key, new)
                    target = replaces if key[3] == "gauge" else adds
                    target.append((sid, raw, start, value))
                    target.extend((sid, r, rolled, value) for r, rolled in self._rolled_targets(_SCALAR, start))
                cursor.executemany(_UPSERT_ADD, adds)
                cursor.executemany(_UPSERT_REPLACE, replaces)
            self._publish(new)
        return len(items)

    def write_exemplars(self, rows: Iterable[ExemplarRow]) -> int:
        """Write exemplar sets per latency series and raw window in one transaction; returns rows written.

        A window that already has exemplars (late data) keeps the merge:
        the slowest of both sets, and the smallest span ids of both samples
        (see :func:`trm_otel.processors.exemplars.merge_records`), each set
        as long as the longer of the two.
        """
        from trm_otel.processors.exemplars import merge_records

        items = list(rows)
        if not items:
            return 0
        keys = [self._key(t, m, labels, _LATENCY) for t, m, labels, _, _ in items]
        starts = [self._raw_start(ws) for _, _, _, ws, _ in items]
        with self._lock:
            new: dict[tuple[str, str, str, str], int] = {}
            with self._transaction() as cursor:
                incoming: dict[tuple[int, int], Mapping[str, Sequence[Mapping[str, Any]]]] = {}
                for key, start, (*_, sets) in zip(keys, starts, items):
                    target = (self._resolve(cursor, key, new), start)
                    before = incoming.get(target)
                    incoming[target] = sets if before is None else _merged_sets(before, sets, merge_records)
                stored = self._stored_exemplars(cursor, incoming)
                final = []
                for target, sets in incoming.items():
                    before = stored.get(target)
                    merged = sets if before is None else _merged_sets(orjson.loads(before), sets, merge_records)
                    final.append((*target, orjson.dumps(merged)))
                cursor.executemany(
                    "INSERT OR REPLACE INTO exemplar (series_id, window_start, data) VALUES (?, ?, ?)", final
                )
            self._publish(new)
        return len(items)

    def _stored_exemplars(
        self, cursor: sqlite3.Cursor, targets: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        by_window: dict[int, list[int]] = defaultdict(list)
        for sid, start in targets:
            by_window[start].append(sid)
        found: dict[tuple[int, int], bytes] = {}
        for start, sids in by_window.items():
            for at in range(0, len(sids), _IN_CHUNK):
                chunk = sids[at : at + _IN_CHUNK]
                for sid, data in cursor.execute(
                    f"SELECT series_id, data FROM exemplar WHERE window_start = ? "
                    f"AND series_id IN ({','.join('?' * len(chunk))})",
                    (start, *chunk),
                ):
                    found[(sid, start)] = data
        return found

    def exemplars(
        self, refs: Sequence[SeriesRef], start_s: float, end_s: float
    ) -> dict[Hashable, list[tuple[float, dict[str, list[dict[str, Any]]]]]]:
        """Per latency series: ``(window start, {"slowest": [...], "sampled": [...]})`` for raw windows
        starting in ``[start_s, end_s)``, oldest first."""
        wanted = [ref for ref in refs if ref.kind == "latency"]
        out: dict[Hashable, list[tuple[float, dict[str, list[dict[str, Any]]]]]] = {ref.key: [] for ref in wanted}
        ids = sorted({int(ref.key) for ref in wanted})  # type: ignore[call-overload]
        begin, end = math.ceil(start_s), math.ceil(end_s)
        for at in range(0, len(ids), _IN_CHUNK):
            chunk = ids[at : at + _IN_CHUNK]
            with self._lock:
                rows = self._db.execute(
                    "SELECT series_id, window_start, data FROM exemplar "
                    f"WHERE series_id IN ({','.join('?' * len(chunk))}) "
                    "AND window_start >= ? AND window_start < ? ORDER BY series_id, window_start",
                    (*chunk, begin, end),
                ).fetchall()
            for sid, start, data in rows:
                out[sid].append((float(start), orjson.loads(data)))
        return out

    def _expire_exemplars(self, now: float) -> int:
        """Exemplars go with the raw latency rows: after the raw retention."""
        raw = self.resolutions[0]
        cutoff = math.floor(now - self.retention_s[raw] - raw) + 1
        with self._lock:
            with self._transaction() as cursor:
                cursor.execute("DELETE FROM exemplar WHERE window_start < ?", (cutoff,))
                return cursor.rowcount

    # ------------------------------------------------------------ compaction

    def compact(self, now_s: float | None = None) -> dict[str, dict[int, int]]:
        """Roll up the minutes and hours completed by ``now_s``, then apply retention; safe to interrupt.

        Returns ``{"rolled": {resolution: rows written}, "deleted":
        {resolution: rows deleted}}``. Each step is a small transaction that
        also records its progress, so a restart resumes where it stopped.
        A window written after its period was rolled up is merged into the
        rollup as late data: correct, but a decode and re-encode per row, so
        a caller that flushes windows some time after they close passes
        ``now_s`` minus that lateness (e.g. ``now - 2 * flush interval``).
        """
        now = self.clock() if now_s is None else float(now_s)
        rolled: dict[int, int] = defaultdict(int)
        deleted: dict[int, int] = defaultdict(int)
        for table in (_LATENCY, _SCALAR):
            for finer, coarser in zip(self.resolutions, self.resolutions[1:]):
                rolled[coarser] += self._roll_up(table, finer, coarser, now)
        for table in (_LATENCY, _SCALAR):
            for i, resolution in enumerate(self.resolutions):
                coarser = self.resolutions[i + 1] if i + 1 < len(self.resolutions) else None
                deleted[resolution] += self._expire(table, resolution, coarser, now)
        self._expire_exemplars(now)
        return {"rolled": dict(rolled), "deleted": dict(deleted)}

    def _rollable_until(self, table: str, finer: int, coarser: int, now: float) -> int | None:
        """End of the completed ``coarser`` periods whose ``finer`` rows are all in place."""
        limit = _align(now, coarser)
        if finer != self.resolutions[0]:
            done = self._progress.get((table, finer))
            if done is None:
                return None
            limit = min(limit, _align(done, coarser))
        return limit

    def _roll_up(self, table: str, finer: int, coarser: int, now: float) -> int:
        written = 0
        # Small transactions: a few coarse periods, fewer with many series (at least one period).
        per_period = (coarser // finer) * max(1, len(self._ids))
        periods = max(1, min(_ROLLUP_SOURCE_WINDOWS // (coarser // finer), _ROLLUP_ROWS // per_period))
        while True:
            with self._lock:
                limit = self._rollable_until(table, finer, coarser, now)
                if limit is None:
                    return written
                done = self._progress.get((table, coarser))
                row = self._db.execute(
                    f"SELECT MIN(window_start) FROM {table} WHERE resolution = ? AND window_start >= ?",
                    (finer, done if done is not None else -(2**62)),
                ).fetchone()
                first = row[0]
                if first is None or first >= limit:
                    if done is not None and done < limit:  # nothing in between: skip the gap
                        with self._transaction() as cursor:
                            self._set_progress(cursor, table, coarser, limit)
                        self._progress[(table, coarser)] = limit
                    return written
                begin = _align(first, coarser)
                end = min(limit, begin + periods * coarser)
                with self._transaction() as cursor:
                    if table == _LATENCY:
                        made = self._roll_latency(cursor, finer, coarser, begin, end)
                    else:
                        made = self._roll_scalars(cursor, finer, coarser, begin, end)
                    self._set_progress(cursor, table, coarser, end)
                # Published only once committed; the lock kept writers out meanwhile.
                self._progress[(table, coarser)] = end
                written += made

    def _set_progress(self, cursor: sqlite3.Cursor, table: str, resolution: int, until: int) -> None:
        cursor.execute(
            "INSERT INTO rollup_progress (data_table, resolution, done_until) VALUES (?, ?, ?) "
            "ON CONFLICT (data_table, resolution) DO UPDATE SET done_until = excluded.done_until",
            (table, resolution, until),
        )

    def _roll_latency(self, cursor: sqlite3.Cursor, finer: int, coarser: int, begin: int, end: int) -> int:
        rows = cursor.execute(
            "SELECT series_id, window_start, data FROM latency "
            "WHERE resolution = ? AND window_start >= ? AND window_start < ?",
            (finer, begin, end),
        ).fetchall()
        if not rows:
            return 0
        histograms = decode_many([data for _, _, data in rows])
        groups: dict[tuple[int, int, int], list[ExponentialHistogram]] = defaultdict(list)
        for (sid, start, _), histogram in zip(rows, histograms):
            groups[(sid, coarser, _align(start, coarser))].append(histogram)
        self._merge_latency(cursor, groups)
        return len(groups)

    def _roll_scalars(self, cursor: sqlite3.Cursor, finer: int, coarser: int, begin: int, end: int) -> int:
        window = {"finer": finer, "coarser": coarser, "begin": begin, "end": end}
        cursor.execute(
            """INSERT INTO scalar (series_id, resolution, window_start, value)
            SELECT s.series_id, :coarser, (s.window_start / :coarser) * :coarser AS period, SUM(s.value)
            FROM scalar AS s JOIN series ON series.id = s.series_id
            WHERE s.resolution = :finer AND s.window_start >= :begin AND s.window_start < :end
              AND series.kind != 'gauge'
            GROUP BY s.series_id, period
            ON CONFLICT (series_id, resolution, window_start) DO UPDATE SET value = value + excluded.value""",
            window,
        )
        added = cursor.rowcount
        # A gauge's rollup is its last value: SQLite takes the bare column from the MAX() row.
        cursor.execute(
            """INSERT INTO scalar (series_id, resolution, window_start, value)
            SELECT series_id, :coarser, period, value FROM (
                SELECT s.series_id, (s.window_start / :coarser) * :coarser AS period, s.value AS value,
                       MAX(s.window_start)
                FROM scalar AS s JOIN series ON series.id = s.series_id
                WHERE s.resolution = :finer AND s.window_start >= :begin AND s.window_start < :end
                  AND series.kind = 'gauge'
                GROUP BY s.series_id, period
            ) WHERE true
            ON CONFLICT (series_id, resolution, window_start) DO UPDATE SET value = excluded.value""",
            window,
        )
        return added + cursor.rowcount

    def _expire(self, table: str, resolution: int, coarser: int | None, now: float) -> int:
        """Delete rows whose window ended before the retention horizon, once rolled up."""
        # window_start + resolution <= now - retention
        cutoff = math.floor(now - self.retention_s[resolution] - resolution) + 1
        if coarser is not None:
            done = self._progress.get((table, coarser))
            if done is None:
                return 0
            cutoff = min(cutoff, done)
        deleted = 0
        step = _DELETE_SLICE_WINDOWS * resolution
        while True:
            with self._lock:
                first = self._db.execute(
                    f"SELECT MIN(window_start) FROM {table} WHERE resolution = ?", (resolution,)
                ).fetchone()[0]
                if first is None or first >= cutoff:
                    return deleted
                with self._transaction() as cursor:
                    cursor.execute(
                        f"DELETE FROM {table} WHERE resolution = ? AND window_start < ?",
                        (resolution, min(cutoff, first + step)),
                    )
                    deleted += cursor.rowcount

    # ------------------------------------------------------------ reads

    def select(self, tenant: str, metric: str, matchers: Sequence[Matcher] = ()) -> list[SeriesRef]:
        """Series of ``metric`` whose labels satisfy every matcher, sorted by labels.

        ``traces.span.metrics.calls`` selects the span latency series (their
        counts are the calls), keyed like ``traces.span.metrics.duration``.
        """
        stored = DURATION_METRIC if metric == CALLS_METRIC else metric
        with self._lock:
            candidates = list(self._by_metric.get((tenant, stored), ()))
        if metric == CALLS_METRIC:
            candidates = [s for s in candidates if s.kind == "latency"]
        chosen = [s for s in candidates if all(m.matches(s.labels) for m in matchers)]
        chosen.sort(key=lambda s: (sorted(s.labels.items()), s.kind))
        return [SeriesRef(key=s.id, metric=metric, labels=dict(s.labels), kind=s.kind) for s in chosen]

    def metric_names(self, tenant: str) -> set[str]:
        """Every metric ``select`` finds series of for ``tenant`` (``traces.span.metrics.calls`` with the duration)."""
        with self._lock:
            names = {metric for (owner, metric), series in self._by_metric.items() if owner == tenant and series}
        if DURATION_METRIC in names:
            names.add(CALLS_METRIC)
        return names

    def resolution_for(self, start_s: float, *, step_s: float | None = None, now_s: float | None = None) -> int:
        """The resolution a read starting at ``start_s`` gets by default.

        The finest one whose retention still reaches back to ``start_s``
        (else the coarsest). With ``step_s`` (a range query's step), the
        coarsest of those that still divides the step, so every step is a
        merge of whole windows and nothing finer is decoded: a 24 h query at
        a 5 m step reads 1 m rows (1440 per series) rather than 8640 raw ones.
        """
        now = self.clock() if now_s is None else now_s
        covering = [r for r in self.resolutions if start_s >= now - self.retention_s[r]] or [self.resolutions[-1]]
        if step_s is not None:
            dividing = [r for r in covering if step_s >= r and float(step_s / r).is_integer()]
            if dividing:
                return dividing[-1]
        return covering[0]

    def _resolution(self, start_s: float, resolution_s: float | None, step_s: float | None) -> int:
        if resolution_s is None:
            return self.resolution_for(start_s, step_s=step_s)
        if resolution_s not in self.resolutions:
            raise ValueError(f"resolution_s must be one of {list(self.resolutions)}, got {resolution_s!r}")
        return int(resolution_s)

    def _fetch(
        self, table: str, ids: Sequence[int], resolution: int, begin: int, end: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Rows of ``resolution`` windows in ``[begin, end)`` (aligned) of ``ids``, a group of series at a time.

        Series by series, and for each its stored rows then the
        not-yet-rolled-up tail from the finer resolutions, oldest first.
        The lock is taken per group, so a wide read never holds writers
        back for long, and each series is read consistently.
        """
        for at in range(0, len(ids), _READ_CHUNK):
            chunk = ids[at : at + _READ_CHUNK]
            with self._lock:
                segments = self._segments(table, chunk, resolution, begin, end)
            if len(segments) <= 1:
                yield segments[0] if segments else []
                continue
            by_series: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
            for segment in segments:  # several resolutions: regroup, each series' segments in time order
                for row in segment:
                    by_series[row[0]].append(row)
            yield [row for sid in sorted(by_series) for row in by_series[sid]]

    def _segments(
        self, table: str, ids: Sequence[int], resolution: int, begin: int, end: int
    ) -> list[list[tuple[Any, ...]]]:
        """The stored rows of ``resolution``, then the tail from the finer one (recursively); lock held."""
        if begin >= end or not ids:
            return []
        column = "data" if table == _LATENCY else "value"
        level = self.resolutions.index(resolution)
        stored_end = end if level == 0 else min(end, self._progress.get((table, resolution), begin))
        segments: list[list[tuple[Any, ...]]] = []
        if begin < stored_end:
            segments.append(
                self._db.execute(
                    f"SELECT series_id, window_start, {column} FROM {table} "
                    f"WHERE series_id IN ({','.join('?' * len(ids))}) AND resolution = ? "
                    "AND window_start >= ? AND window_start < ? ORDER BY series_id, window_start",
                    (*ids, resolution, begin, stored_end),
                ).fetchall()
            )
        if stored_end < end:
            segments.extend(self._segments(table, ids, self.resolutions[level - 1], max(begin, stored_end), end))
        return segments

    def _rows(
        self,
        table: str,
        refs: Sequence[SeriesRef],
        start_s: float,
        end_s: float,
        resolution_s: float | None,
        step_s: float | None,
    ) -> tuple[list[tuple[Any, ...]], list[tuple[int, int, range]]]:
        """Fetched rows, and per output window ``(series id, window start, row indexes)``.

        Rows come series by series, oldest first, so a window's rows are
        adjacent and one vectorized pass over the keys groups them (a day
        of 5-minute windows is thousands of rows per panel); only windows
        of the not-yet-rolled-up tail have several rows.
        """
        resolution = self._resolution(start_s, resolution_s, step_s)
        ids = sorted({int(ref.key) for ref in refs})  # type: ignore[call-overload]
        begin, end = _align_up(start_s, resolution), _align_up(end_s, resolution)
        rows = [row for chunk in self._fetch(table, ids, resolution, begin, end) for row in chunk]
        if not rows:
            return rows, []
        sids = np.fromiter((row[0] for row in rows), np.int64, len(rows))
        starts = np.fromiter((row[1] for row in rows), np.int64, len(rows))
        starts -= starts % resolution
        new = np.ones(len(rows), dtype=bool)
        new[1:] = (sids[1:] != sids[:-1]) | (starts[1:] != starts[:-1])
        firsts = np.flatnonzero(new)
        ends = np.append(firsts[1:], len(rows)).tolist()
        windows = [
            (sid, start, range(first, stop))
            for sid, start, first, stop in zip(sids[firsts].tolist(), starts[firsts].tolist(), firsts.tolist(), ends)
        ]
        return rows, windows

    def latency_windows(
        self,
        refs: Sequence[SeriesRef],
        start_s: float,
        end_s: float,
        resolution_s: float | None = None,
        *,
        step_s: float | None = None,
    ) -> dict[Hashable, list[tuple[float, ExponentialHistogram]]]:
        """Per latency series: ``(window start, histogram)`` of its windows starting in ``[start_s, end_s)``.

        Windows are ``resolution_s`` long (default: :meth:`resolution_for`
        ``start_s`` and ``step_s``), oldest first; series without data map
        to ``[]``. Each window costs about 2 KB of memory decoded (its dense
        bucket counts): ask for the resolution the question needs.
        """
        wanted = [ref for ref in refs if ref.kind == "latency"]
        rows, windows = self._rows(_LATENCY, wanted, start_s, end_s, resolution_s, step_s)
        histograms = decode_many([row[2] for row in rows])
        out: dict[Hashable, list[tuple[float, ExponentialHistogram]]] = {ref.key: [] for ref in wanted}
        for sid, start, members in windows:
            if len(members) == 1:
                histogram = histograms[members[0]]
            else:
                histogram = ExponentialHistogram.merged([histograms[i] for i in members])
            out[sid].append((float(start), histogram))
        return out

    def latency_merged(
        self,
        refs: Sequence[SeriesRef],
        start_s: float,
        end_s: float,
        step_s: float,
        *,
        group_of: Callable[[SeriesRef], Hashable] | None = None,
        resolution_s: float | None = None,
    ) -> dict[Hashable, list[tuple[float, ExponentialHistogram]]]:
        """Per group of series: ``(step start, merged histogram)`` for steps ``[start_s + k * step_s, ...)``.

        What a range query of a latency statistic needs (``p95(...) by
        (span.name)`` at a step), computed without a histogram per window:
        every window (at ``resolution_s``, default :meth:`resolution_for`
        ``start_s`` and ``step_s``) starting in ``[start_s, end_s)`` is merged
        into the step holding its start and the group ``group_of(ref)``
        (default: each series alone, keyed by ``ref.key``). Equal to merging
        the :meth:`latency_windows` of each step and group; steps without
        data are left out. Much cheaper in memory and time for long ranges
        (see :func:`~trm_otel.storage.codec.decode_merged`).
        """
        if not step_s > 0:
            raise ValueError(f"step_s must be > 0, got {step_s!r}")
        wanted = [ref for ref in refs if ref.kind == "latency"]
        keys = [ref.key if group_of is None else group_of(ref) for ref in wanted]
        group_keys = list(dict.fromkeys(keys))
        index_of_group = {key: i for i, key in enumerate(group_keys)}
        group_of_series = {
            int(ref.key): index_of_group[key] for ref, key in zip(wanted, keys)  # type: ignore[call-overload]
        }
        resolution = self._resolution(start_s, resolution_s, step_s)
        begin, end = _align_up(start_s, resolution), _align_up(end_s, resolution)
        n_steps = max(1, math.ceil((end_s - start_s) / step_s))
        cells: dict[int, ExponentialHistogram] = {}
        # A group of series at a time: memory stays bounded by the answer, not the rows read.
        for rows in self._fetch(_LATENCY, sorted(group_of_series), resolution, begin, end):
            if not rows:
                continue
            series = np.fromiter((group_of_series[row[0]] for row in rows), dtype=np.int64, count=len(rows))
            starts = np.fromiter((row[1] for row in rows), dtype=np.float64, count=len(rows))
            starts -= starts % resolution
            steps = np.floor((starts - start_s) / step_s).astype(np.int64)
            present, local = np.unique(series * n_steps + steps, return_inverse=True)
            merged = decode_merged([row[2] for row in rows], local, present.size)
            for cell, histogram in zip(present.tolist(), merged):
                before = cells.get(cell)
                if histogram is not None:  # every local cell has members
                    cells[cell] = histogram if before is None else ExponentialHistogram.merged([before, histogram])
        out: dict[Hashable, list[tuple[float, ExponentialHistogram]]] = {key: [] for key in group_keys}
        for cell in sorted(cells):
            group, step = divmod(cell, n_steps)
            out[group_keys[group]].append((start_s + step * step_s, cells[cell]))
        return out

    def scalar_windows(
        self,
        refs: Sequence[SeriesRef],
        start_s: float,
        end_s: float,
        resolution_s: float | None = None,
        *,
        step_s: float | None = None,
    ) -> dict[Hashable, list[tuple[float, float]]]:
        """Per scalar series: ``(window start, value)`` of its windows starting in ``[start_s, end_s)``.

        A gauge's value is its last one in the window, a sum's its increase,
        a histogram's its count.
        """
        wanted = [ref for ref in refs if ref.kind in _SCALAR_KINDS]
        gauges = {int(ref.key) for ref in wanted if ref.kind == "gauge"}  # type: ignore[call-overload]
        rows, windows = self._rows(_SCALAR, wanted, start_s, end_s, resolution_s, step_s)
        out: dict[Hashable, list[tuple[float, float]]] = {ref.key: [] for ref in wanted}
        for sid, start, members in windows:
            if sid in gauges:
                value = max((rows[i] for i in members), key=lambda row: row[1])[2]  # the newest window's
            else:
                known = [rows[i][2] for i in members if rows[i][2] is not None]
                value = sum(known) if known else None
            out[sid].append((float(start), math.nan if value is None else float(value)))
        return out

    # ------------------------------------------------------------ housekeeping

    def stats(self) -> StoreStats:
        """Rows and blob bytes per resolution, series, bytes on disk (a full scan: not for hot paths)."""
        with self._lock:
            series = self._db.execute("SELECT COUNT(*) FROM series").fetchone()[0]
            latency_rows: dict[int, int] = {}
            latency_bytes: dict[int, int] = {}
            for res, n, size in self._db.execute(
                "SELECT resolution, COUNT(*), SUM(LENGTH(data)) FROM latency GROUP BY resolution"
            ):
                latency_rows[int(res)] = int(n)
                latency_bytes[int(res)] = int(size or 0)
            scalar_rows = {
                int(res): int(n)
                for res, n in self._db.execute("SELECT resolution, COUNT(*) FROM scalar GROUP BY resolution")
            }
        files = [self.path, *(self.path.with_name(self.path.name + suffix) for suffix in ("-wal", "-shm"))]
        on_disk = sum(p.stat().st_size for p in files if p.exists())
        return StoreStats(int(series), latency_rows, scalar_rows, latency_bytes, on_disk, self.schema_version)

    def close(self) -> None:
        """Close the database (the WAL is checkpointed into the main file); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._db.execute("PRAGMA optimize")
            finally:
                self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _merged_sets(a: Mapping[str, Any], b: Mapping[str, Any], merge: Callable[..., Any]) -> dict[str, Any]:
    slowest = [*a.get("slowest", ()), *b.get("slowest", ())]
    sampled = [*a.get("sampled", ()), *b.get("sampled", ())]
    k_slow = max(len(a.get("slowest", ())), len(b.get("slowest", ())))
    k_sample = max(len(a.get("sampled", ())), len(b.get("sampled", ())))
    return merge(slowest, sampled, k_slow, k_sample)

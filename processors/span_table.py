"""Every span series' histogram for one window, held as columns.

    >>> table = SpanTable()
    >>> table.add(np.array([0, 0, 3]), np.array([12.0, 15.5, 230.0]))
    >>> table.histograms(np.array([0, -1, -1, 0]), groups=1)[0].count   # series 0 and 3 merged
    3

Ingest never touches a per-series object: a batch becomes bucket indexes
with one numpy pass and is appended as ``(series, bucket) -> count`` rows,
plus per-series count/sum/min/max/zero columns updated with ``bincount``.
With 10 000 series and 1000-span batches, one histogram object per series
and window cost a Python call per span; this costs a few numpy calls per
batch. Histograms are built only when asked, for the groups asked for
(an endpoint, its errors), by one sort over the rows of all windows in the
range; per-window quantiles for trends come out of the same sort without
building any histogram at all.

Buckets are at the default sketch scale (6: 0.54% worst-case error). Rows
are compacted (duplicate keys summed) as they accumulate, so memory is one
16-byte row per distinct (series, bucket) in the window.
"""

from __future__ import annotations

import math

import numpy as np

from trm_otel.histogram import DEFAULT_MAX_SCALE, ExponentialHistogram, bucket_indexes, bucket_values

__all__ = ["SpanTable", "group_quantiles"]

_BUCKET_BITS = 18
_BUCKET_BIAS = 1 << 17  # every float64 > 0 has |index| < 2**17 at scale 6
_BUCKET_MASK = (1 << _BUCKET_BITS) - 1
_MAX_CHUNKS = 16


class SpanTable:
    """One window (or the since-start total) of span latencies for all series, in ms."""

    __slots__ = ("_chunks", "_compacted", "_rows", "count", "hi", "lo", "total", "zero")

    def __init__(self) -> None:
        self.count = np.zeros(0, dtype=np.int64)
        self.zero = np.zeros(0, dtype=np.int64)
        self.total = np.zeros(0, dtype=np.float64)
        self.lo = np.zeros(0, dtype=np.float64)
        self.hi = np.zeros(0, dtype=np.float64)
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self._rows = 0
        self._compacted = 0

    def _grow(self, size: int) -> None:
        old = self.count.size
        if size <= old:
            return
        size = max(size, old * 2, 64)
        self.count = np.concatenate((self.count, np.zeros(size - old, np.int64)))
        self.zero = np.concatenate((self.zero, np.zeros(size - old, np.int64)))
        self.total = np.concatenate((self.total, np.zeros(size - old)))
        self.lo = np.concatenate((self.lo, np.full(size - old, math.inf)))
        self.hi = np.concatenate((self.hi, np.full(size - old, -math.inf)))

    def add(self, series: np.ndarray, values: np.ndarray) -> None:
        """Record ``values[i]`` (ms, finite, >= 0) into series ``series[i]``."""
        if series.size == 0:
            return
        self._grow(int(series.max()) + 1)
        size = self.count.size
        self.count += np.bincount(series, minlength=size)
        self.total += np.bincount(series, weights=values, minlength=size)
        np.minimum.at(self.lo, series, values)
        np.maximum.at(self.hi, series, values)
        positive = values > 0
        if not positive.all():
            self.zero += np.bincount(series[~positive], minlength=size)
            series, values = series[positive], values[positive]
        if series.size:
            keys = (series.astype(np.int64) << _BUCKET_BITS) | (bucket_indexes(values) + _BUCKET_BIAS)
            self._append(*np.unique(keys, return_counts=True))

    def merge(self, other: SpanTable) -> None:
        """Add another table's data (window rollups, since-start totals)."""
        if other.count.size == 0:
            return
        self._grow(other.count.size)
        n = other.count.size
        self.count[:n] += other.count
        self.zero[:n] += other.zero
        self.total[:n] += other.total
        np.minimum(self.lo[:n], other.lo, out=self.lo[:n])
        np.maximum(self.hi[:n], other.hi, out=self.hi[:n])
        keys, counts = other.rows()
        if keys.size:
            self._append(keys, counts.copy())

    def _append(self, keys: np.ndarray, counts: np.ndarray) -> None:
        self._chunks.append((keys, counts))
        self._rows += keys.size
        if len(self._chunks) > _MAX_CHUNKS or self._rows > 2 * self._compacted + 65_536:
            self._compact()

    def _compact(self) -> None:
        if len(self._chunks) <= 1:
            return
        keys = np.concatenate([k for k, _ in self._chunks])
        counts = np.concatenate([c for _, c in self._chunks])
        unique, inverse = np.unique(keys, return_inverse=True)
        summed = np.bincount(inverse.ravel(), weights=counts, minlength=unique.size).astype(np.int64)
        self._chunks = [(unique, summed)]
        self._rows = self._compacted = unique.size

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """``(series << 18 | bucket + bias, count)`` with each key once, sorted."""
        self._compact()
        if not self._chunks:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return self._chunks[0]

    def copy(self) -> SpanTable:
        """An independent snapshot (compacted), safe to read while this one keeps growing."""
        other = SpanTable()
        other.count, other.zero, other.total = self.count.copy(), self.zero.copy(), self.total.copy()
        other.lo, other.hi = self.lo.copy(), self.hi.copy()
        keys, counts = self.rows()
        if keys.size:
            other._chunks = [(keys.copy(), counts.copy())]
            other._rows = other._compacted = keys.size
        return other

    def series_ids(self) -> np.ndarray:
        """Series with data in this table."""
        return np.flatnonzero(self.count)

    @property
    def nbytes(self) -> int:
        columns = sum(a.nbytes for a in (self.count, self.zero, self.total, self.lo, self.hi))
        return columns + sum(k.nbytes + c.nbytes for k, c in self._chunks)

    def histograms(self, group_of_series: np.ndarray, groups: int) -> list[ExponentialHistogram | None]:
        """Merged histogram per group (``group_of_series[s]``, -1 = leave out); None if empty."""
        return merged_histograms([self], group_of_series, groups)


def _group_columns(
    tables: list[SpanTable], group_of_series: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per group: count, zero count, sum, min, max over the tables."""
    count = np.zeros(groups, np.int64)
    zero = np.zeros(groups, np.int64)
    total = np.zeros(groups)
    lo = np.full(groups, math.inf)
    hi = np.full(groups, -math.inf)
    for table in tables:
        n = min(table.count.size, group_of_series.size)
        group = group_of_series[:n]
        used = (group >= 0) & (table.count[:n] > 0)
        if not used.any():
            continue
        g = group[used]
        count += np.bincount(g, weights=table.count[:n][used], minlength=groups).astype(np.int64)
        zero += np.bincount(g, weights=table.zero[:n][used], minlength=groups).astype(np.int64)
        total += np.bincount(g, weights=table.total[:n][used], minlength=groups)
        np.minimum.at(lo, g, table.lo[:n][used])
        np.maximum.at(hi, g, table.hi[:n][used])
    return count, zero, total, lo, hi


def _group_rows(
    tables: list[SpanTable], group_of_series: np.ndarray, tag: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of all tables as ``(group[*tags] << 18 | bucket, count)``, summed and sorted."""
    keys_parts, count_parts = [], []
    tags = 1 if tag is None else max(tag) + 1
    for i, table in enumerate(tables):
        keys, counts = table.rows()
        if keys.size == 0:
            continue
        series = keys >> _BUCKET_BITS
        inside = series < group_of_series.size
        group = np.full(series.size, -1, np.int64)
        group[inside] = group_of_series[series[inside]]
        used = group >= 0
        if not used.any():
            continue
        group = group[used] * tags + (0 if tag is None else tag[i])
        keys_parts.append((group << _BUCKET_BITS) | (keys[used] & _BUCKET_MASK))
        count_parts.append(counts[used])
    if not keys_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys = np.concatenate(keys_parts)
    counts = np.concatenate(count_parts)
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique, np.bincount(inverse.ravel(), weights=counts, minlength=unique.size).astype(np.int64)


def merged_histograms(
    tables: list[SpanTable], group_of_series: np.ndarray, groups: int
) -> list[ExponentialHistogram | None]:
    """One histogram per group merged over all ``tables`` (None for a group with no data)."""
    count, zero, total, lo, hi = _group_columns(tables, group_of_series, groups)
    keys, counts = _group_rows(tables, group_of_series)
    group_of_row = keys >> _BUCKET_BITS
    buckets = (keys & _BUCKET_MASK) - _BUCKET_BIAS
    bounds = np.searchsorted(group_of_row, np.arange(groups + 1))
    result: list[ExponentialHistogram | None] = []
    for g in range(groups):
        if count[g] == 0:
            result.append(None)
            continue
        a, b = bounds[g], bounds[g + 1]
        result.append(
            ExponentialHistogram.from_buckets(
                buckets[a:b], counts[a:b], zero_count=int(zero[g]), total=float(total[g]), lo=float(lo[g]), hi=float(hi[g])
            )
        )
    return result


def group_quantiles(
    tables: list[SpanTable], group_of_series: np.ndarray, groups: int, q: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per table and group, the nearest-rank ``q`` quantile and the count: shape (tables, groups).

    No histogram objects: one sort over all rows, a cumulative sum, and a
    ``searchsorted`` for every (table, group) rank at once. Same answer as
    ``histogram.quantile(q)`` at the default scale (log-midpoint clamped to
    [min, max]); NaN where there is no data.
    """
    n_tables = len(tables)
    per_table = [_group_columns([t], group_of_series, groups) for t in tables]
    count = np.array([c[0] for c in per_table]).reshape(n_tables, groups)
    zero = np.array([c[1] for c in per_table]).reshape(n_tables, groups)
    lo = np.array([c[3] for c in per_table]).reshape(n_tables, groups)
    hi = np.array([c[4] for c in per_table]).reshape(n_tables, groups)
    values = np.full((n_tables, groups), np.nan)
    if count.sum() == 0:
        return values, count
    # Rows keyed by (group, table) so each cell's buckets are contiguous and ordered.
    keys, counts = _group_rows(tables, group_of_series, tag=list(range(n_tables)))
    cell_of_row = keys >> _BUCKET_BITS  # group * n_tables + table
    buckets = (keys & _BUCKET_MASK) - _BUCKET_BIAS
    cumulative = np.cumsum(counts)
    cells = np.arange(groups * n_tables)
    starts = np.searchsorted(cell_of_row, cells)
    before = np.where(starts > 0, cumulative[np.maximum(starts - 1, 0)], 0)
    cell_count = count.T.ravel()  # [group, table] order matches cells
    cell_zero = zero.T.ravel()
    rank = np.maximum(1, np.ceil(q * cell_count)).astype(np.int64)
    has = cell_count > 0
    in_zero = has & (rank <= cell_zero)
    positive = has & ~in_zero
    row = np.searchsorted(cumulative, before + rank - cell_zero, side="left")
    result = np.full(cells.size, np.nan)
    result[in_zero] = 0.0
    if positive.any():
        picked = bucket_values(buckets[row[positive]], DEFAULT_MAX_SCALE)
        result[positive] = picked
    result = result.reshape(groups, n_tables).T
    # Clamp to the observed range, as ExponentialHistogram.quantile does; rank 1 and n are exact.
    result = np.clip(result, lo, hi)
    first = (rank.reshape(groups, n_tables).T == 1) & (count > 0)
    last = (rank.reshape(groups, n_tables).T >= count) & (count > 0)
    result[first] = lo[first]
    result[last] = hi[last]
    return result, count

"""The stored form of one latency window: a compact, exact histogram blob.

    >>> blob = encode(histogram)                                   # doctest: +SKIP
    >>> decode(blob) == histogram                                  # doctest: +SKIP
    True
    >>> decode_many(blobs)                  # a query's windows, vectorized  # doctest: +SKIP
    >>> decode_merged(blobs, step_of_each_blob, n_steps)   # merged per step  # doctest: +SKIP

Storage keeps one histogram per series and window, so the blob decides the
footprint: a 10 s window of a typical endpoint (100 lognormal latencies,
median 50 ms, sigma 0.4) spans ~240 buckets at scale 6 of which ~75 are
occupied. Dense counts would cost a byte per bucket, so the counts are
written as a token stream of varints in which a zero run is one token:

* token ``2 * (c - 1)``: one bucket holding ``c >= 1`` values;
* token ``2 * (L - 1) + 1``: ``L >= 1`` empty buckets.

Counts and zero runs up to 64 take one byte each. Measured (the storage
benchmark; ``tests/storage/test_codec.py`` prints the same figures):
~48 bytes for a window of 10 values, ~135 for 100 (sigma 0.4; 180 at sigma
1.0), ~226 for 1000; 1-minute rollups of 600 values ~280 bytes.

Layout, little-endian::

    flags      1 byte: bit 0 approximate, bit 1 non-default max_scale/max_size,
               bit 2 has data (count > 0); bits 3-7 must be 0 (format 0)
    stats      sum, min, max as float64 (only with bit 2: exact, since the
               extremes are what rank-1 and rank-n quantiles report)
    varints    zigzag(scale), zigzag(offset), zero_count,
               zigzag(count - zero_count - sum(counts)) (0 for every
               histogram this package builds), [zigzag(max_scale), max_size
               with bit 1], then the count tokens up to the end of the blob

Every field is stored, nothing is rounded: ``decode(encode(h)) == h`` with
identical scale, offset and counts, so merges of decoded windows are the
merges of the originals.

Decoding is vectorized over a chunk of blobs at a time (varints, tokens
and run expansion are array operations over their concatenation), because a
24-hour query reads tens of thousands of windows and a per-blob Python
decoder would dominate it. A decoded window costs ~2.4 KB (dense int64
counts, as :class:`ExponentialHistogram` holds them); ``decode_merged``
goes from the tokens straight to one histogram per group, for queries that
only need merges.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trm_otel.histogram import DEFAULT_MAX_SCALE, DEFAULT_MAX_SIZE, ExponentialHistogram

__all__ = ["decode", "decode_many", "decode_merged", "encode", "encode_many"]

_APPROXIMATE = 0x01
_CUSTOM_LIMITS = 0x02
_HAS_DATA = 0x04
_KNOWN_FLAGS = _APPROXIMATE | _CUSTOM_LIMITS | _HAS_DATA
_STATS = struct.Struct("<ddd")
_HEADER_VARINTS = 4  # scale, offset, zero_count, count correction
_MAX_VARINT_BYTES = 10  # 64 bits / 7
# Blobs per vectorized pass: big enough to amortize numpy's per-call cost,
# small enough that the temporaries stay in cache (measured: 512-1024 blobs
# decode ~2.5x faster than 30k at once, mostly fewer page faults).
_CHUNK = 1024


def _zigzag(values: np.ndarray) -> np.ndarray:
    """Signed int64 to unsigned, small magnitudes to small numbers."""
    v = values.astype(np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def _unzigzag(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.uint64)
    return ((v >> np.uint64(1)).astype(np.int64)) ^ -((v & np.uint64(1)).astype(np.int64))


def _varint_encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LEB128 bytes of unsigned values, and how many bytes each took."""
    v = values.astype(np.uint64)
    nbytes = np.ones(v.size, dtype=np.int64)
    if v.size == 0 or int(v.max()) < 0x80:  # the common case: one byte each
        return v.astype(np.uint8), nbytes
    rest = v >> np.uint64(7)
    while True:
        more = rest != 0
        if not more.any():
            break
        nbytes += more
        rest >>= np.uint64(7)
    ends = np.cumsum(nbytes)
    starts = ends - nbytes
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    for k in range(int(nbytes.max())):
        sel = nbytes > k
        chunk = ((v[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        chunk[nbytes[sel] - 1 > k] |= 0x80
        out[starts[sel] + k] = chunk
    return out, nbytes


def _varint_decode(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of a byte array that is a whole number of LEB128 varints, and each one's last byte.

    Almost every varint is one byte (token counts and runs below 65), so the
    values are read from the last bytes in one gather, and only the few
    continuation bytes get per-byte work.
    """
    last = data < 0x80
    if data.size and not last[-1]:
        raise ValueError("corrupt histogram blob: truncated varint")
    ends = np.flatnonzero(last)
    values = (data[ends] & 0x7F).astype(np.uint64)
    if ends.size == data.size:
        return values, ends
    cont = np.flatnonzero(~last)  # continuation bytes, each followed by more of its varint
    run_start = np.ones(cont.size, dtype=bool)
    run_start[1:] = cont[1:] != cont[:-1] + 1
    starts = cont[run_start]
    run_id = np.cumsum(run_start) - 1
    position = cont - starts[run_id]  # 0 for a varint's first byte
    if int(position.max()) >= _MAX_VARINT_BYTES - 1:
        raise ValueError("corrupt histogram blob: varint longer than 64 bits")
    low = np.zeros(starts.size, dtype=np.uint64)
    np.bitwise_or.at(low, run_id, (data[cont] & 0x7F).astype(np.uint64) << (7 * position).astype(np.uint64))
    run_last = np.searchsorted(ends, starts)  # index of the varint each run belongs to
    run_bytes = np.bincount(run_id, minlength=starts.size).astype(np.uint64)
    values[run_last] = (values[run_last] << (np.uint64(7) * run_bytes)) | low
    return values, ends


def _tokens(counts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Token stream of concatenated trimmed count arrays (see the module doc),
    and where each histogram's tokens end (``ends`` are its bucket ends).

    Each histogram's counts start and end non-zero, so no zero run crosses
    from one histogram into the next and one pass serves all of them.
    """
    occupied = counts != 0
    run_start = ~occupied
    run_start[1:] &= occupied[:-1]
    run_last = ~occupied
    run_last[:-1] &= occupied[1:]
    kept = np.flatnonzero(occupied | run_start)
    tokens = 2 * counts[kept] - 2
    starts_at = tokens < 0  # the kept zeros: first bucket of each run
    tokens[starts_at] = 2 * (np.flatnonzero(run_last) - kept[starts_at]) + 1
    return tokens.astype(np.uint64), np.searchsorted(kept, ends)


def encode_many(histograms: Sequence[ExponentialHistogram]) -> list[bytes]:
    """The blob of each histogram, encoded together (one numpy pass for all)."""
    n = len(histograms)
    if n == 0:
        return []
    for h in histograms:
        if h.counts.size and (h.counts[0] <= 0 or h.counts[-1] <= 0):
            raise ValueError("histogram counts must be trimmed (non-zero at both ends)")
    sizes = np.fromiter((h.counts.size for h in histograms), dtype=np.int64, count=n)
    ends = np.cumsum(sizes)
    if int(ends[-1]):
        all_counts = np.concatenate([h.counts for h in histograms]).astype(np.int64, copy=False)
        if int(all_counts.min()) < 0:
            raise ValueError("histogram counts must be non-negative")
        tokens, token_ends = _tokens(all_counts, ends)
        running = np.concatenate(([0], np.cumsum(all_counts)))
        bucket_totals = (running[ends] - running[ends - sizes]).tolist()
    else:
        tokens = np.zeros(0, dtype=np.uint64)
        token_ends = np.zeros(n, dtype=np.int64)
        bucket_totals = [0] * n
    custom = [h.max_scale != DEFAULT_MAX_SCALE or h.max_size != DEFAULT_MAX_SIZE for h in histograms]
    header = np.array(
        [[h.scale, h.offset, h.zero_count, h.count - h.zero_count - t] for h, t in zip(histograms, bucket_totals)],
        dtype=np.int64,
    )
    header_u = np.column_stack(
        (_zigzag(header[:, 0]), _zigzag(header[:, 1]), header[:, 2].astype(np.uint64), _zigzag(header[:, 3]))
    )
    pieces: list[np.ndarray] = []
    varints_per = np.empty(n, dtype=np.int64)
    token_begin = 0
    for i, (h, is_custom, token_end) in enumerate(zip(histograms, custom, token_ends.tolist())):
        pieces.append(header_u[i])
        if is_custom:
            pieces.append(np.array([_zigzag(np.array([h.max_scale]))[0], h.max_size], dtype=np.uint64))
        pieces.append(tokens[token_begin:token_end])
        varints_per[i] = _HEADER_VARINTS + 2 * is_custom + token_end - token_begin
        token_begin = token_end
    data, nbytes = _varint_encode(np.concatenate(pieces))
    byte_ends = np.cumsum(nbytes)[np.cumsum(varints_per) - 1].tolist()
    raw = data.tobytes()
    out: list[bytes] = []
    begin = 0
    for h, end, is_custom in zip(histograms, byte_ends, custom):
        flags = (_APPROXIMATE if h.approximate else 0) | (_CUSTOM_LIMITS if is_custom else 0)
        if h.count:
            prefix = bytes((flags | _HAS_DATA,)) + _STATS.pack(h.sum, h.min, h.max)
        else:
            prefix = bytes((flags,))
        out.append(prefix + raw[begin:end])
        begin = end
    return out


def encode(histogram: ExponentialHistogram) -> bytes:
    """One histogram's blob."""
    return encode_many([histogram])[0]


@dataclass(frozen=True, slots=True)
class _Parsed:
    """Many blobs' fields as arrays (one entry per blob), and their count tokens.

    ``values`` holds each token's bucket count (0 inside a zero run) and
    ``lengths`` how many buckets it covers; ``token_offsets``/``token_counts``
    locate each blob's tokens and ``sizes`` its dense bucket span.
    """

    scale: np.ndarray
    offset: np.ndarray
    zero_count: np.ndarray
    count: np.ndarray
    stats: np.ndarray  # (n, 3): sum, min, max
    max_scale: np.ndarray
    max_size: np.ndarray
    approximate: np.ndarray
    values: np.ndarray
    lengths: np.ndarray
    token_offsets: np.ndarray
    token_counts: np.ndarray
    sizes: np.ndarray
    bucket_ends: np.ndarray  # cumulative buckets covered, token by token (0 first)


def _parse(blobs: Sequence[bytes]) -> _Parsed:
    """Every field of every blob, in one vectorized pass over their concatenation."""
    n = len(blobs)
    lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=n)
    if n and int(lengths.min()) < 1:
        raise ValueError("corrupt histogram blob: empty")
    buf = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    blob_starts = np.cumsum(lengths) - lengths
    flags = buf[blob_starts]
    if np.any(flags & ~np.uint8(_KNOWN_FLAGS)):
        raise ValueError("corrupt histogram blob: unknown flags (written by a newer format?)")
    has_data = (flags & _HAS_DATA) != 0
    custom = (flags & _CUSTOM_LIMITS) != 0
    area = lengths - (1 + _STATS.size * has_data)  # bytes of varints
    if n and int(area.min()) < _HEADER_VARINTS:
        raise ValueError("corrupt histogram blob: too short")
    # the varints: everything after each blob's fixed prefix (flags, and stats when present)
    varint = np.ones(buf.size, dtype=bool)
    varint[blob_starts] = False
    with_stats = blob_starts[has_data]
    varint[(with_stats[:, None] + np.arange(1, 1 + _STATS.size)).ravel()] = False
    varint_bytes = buf[varint]
    area_ends = np.cumsum(area)
    if np.any(varint_bytes[area_ends - 1] >= 0x80):
        raise ValueError("corrupt histogram blob: truncated varint")
    raw, ends = _varint_decode(varint_bytes)
    per_blob = np.diff(np.searchsorted(ends, area_ends - 1, side="right"), prepend=0)
    first = np.cumsum(per_blob) - per_blob
    header_len = _HEADER_VARINTS + 2 * custom
    token_counts = per_blob - header_len
    if n and int(token_counts.min()) < 0:
        raise ValueError("corrupt histogram blob: header cut short")
    max_scale = np.full(n, DEFAULT_MAX_SCALE, dtype=np.int64)
    max_size = np.full(n, DEFAULT_MAX_SIZE, dtype=np.int64)
    is_token = np.ones(raw.size, dtype=bool)
    for j in range(_HEADER_VARINTS):
        is_token[first + j] = False
    if custom.any():
        where = first[custom]
        max_scale[custom] = _unzigzag(raw[where + 4])
        max_size[custom] = raw[where + 5].astype(np.int64)
        is_token[where + 4] = False
        is_token[where + 5] = False
    tokens = raw[is_token]
    # Narrow integers halve the memory traffic of the passes below.
    small = tokens.size == 0 or int(tokens.max()) < 2**31
    tokens = tokens.astype(np.int32 if small else np.int64)
    is_run = (tokens & 1).astype(bool)
    values = (tokens >> 1) + 1
    run_lengths = np.where(is_run, values, 1)
    values[is_run] = 0
    token_offsets = np.cumsum(token_counts) - token_counts
    with_tokens = token_counts > 0
    if with_tokens.any():
        firsts = token_offsets[with_tokens]
        lasts = firsts + token_counts[with_tokens] - 1
        if np.any(is_run[firsts]) or np.any(is_run[lasts]):
            raise ValueError("corrupt histogram blob: counts not trimmed")
    cum_len = np.zeros(tokens.size + 1, dtype=np.int64)
    np.cumsum(run_lengths, out=cum_len[1:])
    cum_sum = np.zeros(tokens.size + 1, dtype=np.int64)
    np.cumsum(values, out=cum_sum[1:])
    token_ends = token_offsets + token_counts
    zero_count = raw[first + 2].astype(np.int64)
    count = zero_count + (cum_sum[token_ends] - cum_sum[token_offsets]) + _unzigzag(raw[first + 3])
    if np.any(count < 0):
        raise ValueError("corrupt histogram blob: negative count")
    stats = np.zeros((n, 3), dtype=np.float64)
    stats[:, 1] = np.inf
    stats[:, 2] = -np.inf
    if has_data.any():
        stats[has_data] = buf[with_stats[:, None] + 1 + np.arange(_STATS.size)].view("<f8").reshape(-1, 3)
    return _Parsed(
        scale=_unzigzag(raw[first]),
        offset=_unzigzag(raw[first + 1]),
        zero_count=zero_count,
        count=count,
        stats=stats,
        max_scale=max_scale,
        max_size=max_size,
        approximate=(flags & _APPROXIMATE).astype(bool),
        values=values,
        lengths=run_lengths,
        token_offsets=token_offsets,
        token_counts=token_counts,
        sizes=cum_len[token_ends] - cum_len[token_offsets],
        bucket_ends=cum_len,
    )


def _build(
    parsed: _Parsed,
    rows: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    counts: list[np.ndarray],
    zero_count: np.ndarray,
    count: np.ndarray,
    stats: np.ndarray,
    approximate: np.ndarray,
) -> list[ExponentialHistogram]:
    """Histogram objects from per-histogram arrays; limits come from blob ``rows``.

    The fields hold exactly the state of valid histograms (trimmed counts,
    their scale and offset), so they are restored as they are rather than
    re-recorded: construction through record/from_buckets would cost more
    than the whole decode.
    """
    out: list[ExponentialHistogram] = []
    new = object.__new__
    cls = ExponentialHistogram
    for c, sc, off, zc, cnt, (total, lo, hi), ms, mz, approx in zip(
        counts,
        scale.tolist(),
        offset.tolist(),
        zero_count.tolist(),
        count.tolist(),
        stats.tolist(),
        parsed.max_scale[rows].tolist(),
        parsed.max_size[rows].tolist(),
        approximate.tolist(),
    ):
        h = new(cls)
        h.max_scale = ms
        h.max_size = mz
        h.scale = sc
        h.offset = off
        h.counts = c
        h.zero_count = zc
        h.count = cnt
        h.sum = total
        h.min = lo
        h.max = hi
        h.approximate = approx
        out.append(h)
    return out


def decode_many(blobs: Sequence[bytes]) -> list[ExponentialHistogram]:
    """Histograms of many blobs, decoded a chunk of blobs per vectorized pass.

    The histograms' ``counts`` are views into one array per chunk (each its
    own slice; nothing in :class:`ExponentialHistogram` writes counts in
    place). Raises ``ValueError`` on a corrupt blob.
    """
    out: list[ExponentialHistogram] = []
    for at in range(0, len(blobs), _CHUNK):
        p = _parse(blobs[at : at + _CHUNK])
        dense = np.repeat(p.values.astype(np.int64), p.lengths)
        bounds = np.cumsum(p.sizes).tolist()
        counts = [dense[b - k : b] for b, k in zip(bounds, p.sizes.tolist())]
        rows = np.arange(p.scale.size)
        out.extend(_build(p, rows, p.scale, p.offset, counts, p.zero_count, p.count, p.stats, p.approximate))
    return out


def decode(blob: bytes) -> ExponentialHistogram:
    """One blob's histogram."""
    return decode_many([blob])[0]


def decode_merged(blobs: Sequence[bytes], groups: npt.ArrayLike, n_groups: int) -> list[ExponentialHistogram | None]:
    """Per group, the merge of the blobs in it (``groups[i]`` is blob ``i``'s group); None for an empty group.

    Equal to ``ExponentialHistogram.merged`` of the group's decoded
    histograms in blob order (same scale, offset and counts), but computed
    from the sparse tokens in a few array passes: no histogram and no dense
    counts per window, so merging a day of 1-minute windows into 5-minute
    steps costs less than decoding them. Blobs are taken a chunk at a time
    in group order; a group split between chunks has its partial merges
    merged (exact: merging is associative).
    """
    group = np.asarray(groups, dtype=np.int64).reshape(-1)
    if group.size != len(blobs):
        raise ValueError(f"groups must have one entry per blob, got {group.size} for {len(blobs)}")
    if group.size and (int(group.min()) < 0 or int(group.max()) >= n_groups):
        raise ValueError(f"groups must be in [0, {n_groups})")
    out: list[ExponentialHistogram | None] = [None] * n_groups
    order = np.argsort(group, kind="stable")
    for at in range(0, order.size, _CHUNK):
        chosen = order[at : at + _CHUNK]
        present, local = np.unique(group[chosen], return_inverse=True)
        parts = _merge_chunk([blobs[i] for i in chosen.tolist()], local, present.size)
        for g, part in zip(present.tolist(), parts):
            before = out[g]
            out[g] = part if before is None else ExponentialHistogram.merged([before, part])
    return out


def _merge_chunk(blobs: Sequence[bytes], group: np.ndarray, n_groups: int) -> list[ExponentialHistogram]:
    """``decode_merged`` of one chunk whose every group has members."""
    p = _parse(blobs)
    n = len(blobs)
    first = np.full(n_groups, n, dtype=np.int64)  # each group's first blob sets the scale cap and limits
    np.minimum.at(first, group, np.arange(n))
    # the common scale: the lowest of the members with buckets, capped by the first member's
    target = p.scale[first].copy()
    occupied = p.sizes > 0
    np.minimum.at(target, group[occupied], p.scale[occupied])
    shift = np.where(occupied, p.scale - target[group], 0)
    lo = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(n_groups, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(lo, group[occupied], (p.offset >> shift)[occupied])
    np.maximum.at(hi, group[occupied], ((p.offset + p.sizes - 1) >> shift)[occupied])
    with_buckets = hi >= lo
    # then as few halvings as make the union fit the first member's max_size
    down = np.zeros(n_groups, dtype=np.int64)
    limit = p.max_size[first]
    while True:
        wide = with_buckets & (((hi >> down) - (lo >> down) + 1) > limit)
        if not wide.any():
            break
        down[wide] += 1
    start = np.where(with_buckets, lo >> down, 0)
    width = np.where(with_buckets, (hi >> down) - start + 1, 0)
    base = np.cumsum(width) - width
    # every occupied bucket of every blob, moved to its group's scale
    blob_of_token = np.repeat(np.arange(n), p.token_counts)
    filled = p.values > 0
    blob_of_bucket = blob_of_token[filled]
    first_bucket = p.bucket_ends[:-1] - np.repeat(p.bucket_ends[p.token_offsets], p.token_counts)
    index = p.offset[blob_of_bucket] + first_bucket[filled]
    index >>= (shift + down[group])[blob_of_bucket]
    g = group[blob_of_bucket]
    weights = p.values[filled].astype(np.int64)
    flat = base[g] + index - start[g]
    total = int(width.sum())
    if int(weights.sum()) < 2**53:  # float weights are exact below 2**53
        summed = np.rint(np.bincount(flat, weights=weights.astype(np.float64), minlength=total)).astype(np.int64)
    else:
        summed = np.zeros(total, dtype=np.int64)
        np.add.at(summed, flat, weights)
    zero_count = np.zeros(n_groups, dtype=np.int64)
    np.add.at(zero_count, group, p.zero_count)
    count = np.zeros(n_groups, dtype=np.int64)
    np.add.at(count, group, p.count)
    stats = np.empty((n_groups, 3), dtype=np.float64)
    stats[:, 0] = 0.0
    np.add.at(stats[:, 0], group, p.stats[:, 0])
    stats[:, 1] = np.inf
    np.minimum.at(stats[:, 1], group, p.stats[:, 1])
    stats[:, 2] = -np.inf
    np.maximum.at(stats[:, 2], group, p.stats[:, 2])
    approximate = np.zeros(n_groups, dtype=bool)
    np.logical_or.at(approximate, group, p.approximate)
    # trim each group's span to its first and last occupied bucket
    # (a group with buckets has an occupied one: counts are positive)
    occupied_at = np.append(np.flatnonzero(summed), summed.size)  # a sentinel keeps the lookups in range
    lo_at = occupied_at[np.searchsorted(occupied_at, base)]
    hi_at = occupied_at[np.maximum(np.searchsorted(occupied_at, base + width) - 1, 0)]
    offsets = np.where(with_buckets, start + lo_at - base, 0)
    empty = np.zeros(0, dtype=np.int64)
    counts = [
        summed[a : b + 1] if k else empty for a, b, k in zip(lo_at.tolist(), hi_at.tolist(), with_buckets.tolist())
    ]
    scale = np.where(with_buckets, target - down, p.max_scale[first])
    return _build(p, first, scale, offsets, counts, zero_count, count, stats, approximate)

"""Storage tests; the helpers here check invariants every storage test relies on."""

from __future__ import annotations

from collections import defaultdict

from trm_otel.histogram import ExponentialHistogram
from trm_otel.storage import Store
from trm_otel.storage.codec import decode_many


def rows_of(store: Store, table: str, resolution: int) -> dict[tuple[int, int], object]:
    column = "data" if table == "latency" else "value"
    return {
        (sid, start): value
        for sid, start, value in store._db.execute(
            f"SELECT series_id, window_start, {column} FROM {table} WHERE resolution = ?", (resolution,)
        )
    }


def assert_rollups_are_merges(store: Store) -> None:
    """Every stored rollup row equals the merge of the finer rows of its period (where those still exist)."""
    for finer, coarser in zip(store.resolutions, store.resolutions[1:]):
        fine_rows = rows_of(store, "latency", finer)
        fine = defaultdict(list)
        for (sid, start), h in zip(fine_rows, decode_many(list(fine_rows.values()))):
            fine[(sid, start // coarser * coarser)].append(h)
        coarse_rows = rows_of(store, "latency", coarser)
        coarse = dict(zip(coarse_rows, decode_many(list(coarse_rows.values()))))
        done = store._progress.get(("latency", coarser))
        for key, parts in fine.items():
            if done is not None and key[1] < done:
                assert coarse[key] == ExponentialHistogram.merged(parts), key
        assert not any(start >= (done or 0) for _, start in coarse)

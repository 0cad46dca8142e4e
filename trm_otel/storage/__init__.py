"""Embedded time-series storage: per-window histograms and scalars in SQLite, rollups, retention.

    >>> from trm_otel.storage import DATABASE_NAME, StorageSource, Store, retention_from_config
    >>> retention = retention_from_config(config.storage.retention, window_s=10)     # doctest: +SKIP
    >>> store = Store(config.storage.path / DATABASE_NAME, retention_s=retention)    # doctest: +SKIP
    >>> source = StorageSource(store)          # what the query language reads       # doctest: +SKIP

* :mod:`~trm_otel.storage.codec`: the compact exact histogram blob;
* :mod:`~trm_otel.storage.schema`: layout, version, migrations run at open;
* :mod:`~trm_otel.storage.store`: writes (one transaction per flush, late
  data merges), compaction (1 m / 1 h rollups by merging, retention), reads;
* :mod:`~trm_otel.storage.source`: the store as a ``SeriesSource`` for queries.
"""

from trm_otel.storage.schema import SCHEMA_VERSION, SchemaError
from trm_otel.storage.source import StorageSource
from trm_otel.storage.store import (
    DATABASE_NAME,
    DEFAULT_RETENTION_S,
    Store,
    StoreStats,
    canonical_labels,
    retention_from_config,
)

__all__ = [
    "DATABASE_NAME",
    "DEFAULT_RETENTION_S",
    "SCHEMA_VERSION",
    "SchemaError",
    "StorageSource",
    "Store",
    "StoreStats",
    "canonical_labels",
    "retention_from_config",
]

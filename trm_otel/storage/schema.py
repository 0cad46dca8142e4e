"""The database layout, its version, and the migrations that bring any older file up to date.

    >>> version = migrate(connection)     # at every open; a new file goes 0 -> SCHEMA_VERSION  # doctest: +SKIP

A new database is built by running every migration from version 0, so the
upgrade path is the creation path and cannot silently rot. Each step runs in
its own transaction together with the row recording it in
``schema_version``: a crash mid-migration leaves the previous version intact.

Layout (version 3):

* ``series``: one row per (tenant, metric, canonical labels JSON, kind); the
  integer ``id`` is what the data tables and :class:`SeriesRef` keys use.
* ``latency``: histogram blobs (:mod:`trm_otel.storage.codec`) per series,
  resolution (window length in seconds) and window start (unix seconds).
* ``scalar``: one float per series, resolution and window (NULL stands for
  NaN, which SQLite cannot store).
* ``rollup_progress``: per data table and rollup resolution, the window
  start below which every finer row has been merged in, so compaction
  resumes where it stopped after a restart.
* ``exemplar``: per latency series and raw window, its exemplar spans as
  JSON (``{"slowest": [...], "sampled": [...]}``, each
  ``{trace_id, span_id, duration_ms, time_unix_nano, attributes}``). Raw
  windows only (no rollups: a range's exemplars are a merge of its
  windows'), kept as long as raw latency rows.

The data tables are ``WITHOUT ROWID`` keyed (series, resolution, window):
queries read a few series over a range, which is one index seek per series,
and late data finds its window by the same key. The ``*_by_time`` indexes
serve compaction, which walks all series by time.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SchemaError", "current_version", "migrate"]

#: Each entry brings the database from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[Sequence[str], ...] = (
    # 0 -> 1: series and the per-window data tables
    (
        """CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            metric TEXT NOT NULL,
            labels TEXT NOT NULL,
            kind TEXT NOT NULL,
            UNIQUE (tenant, metric, labels, kind)
        )""",
        """CREATE TABLE latency (
            series_id INTEGER NOT NULL,
            resolution INTEGER NOT NULL,
            window_start INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (series_id, resolution, window_start)
        ) WITHOUT ROWID""",
        """CREATE TABLE scalar (
            series_id INTEGER NOT NULL,
            resolution INTEGER NOT NULL,
            window_start INTEGER NOT NULL,
            value REAL,
            PRIMARY KEY (series_id, resolution, window_start)
        ) WITHOUT ROWID""",
    ),
    # 1 -> 2: rollups and retention walk the data by time and resume from recorded progress
    (
        "CREATE INDEX latency_by_time ON latency (resolution, window_start)",
        "CREATE INDEX scalar_by_time ON scalar (resolution, window_start)",
        """CREATE TABLE rollup_progress (
            data_table TEXT NOT NULL,
            resolution INTEGER NOT NULL,
            done_until INTEGER NOT NULL,
            PRIMARY KEY (data_table, resolution)
        )""",
    ),
    # 2 -> 3: exemplar spans of each latency series and raw window
    (
        """CREATE TABLE exemplar (
            series_id INTEGER NOT NULL,
            window_start INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (series_id, window_start)
        ) WITHOUT ROWID""",
        "CREATE INDEX exemplar_by_time ON exemplar (window_start)",
    ),
)

SCHEMA_VERSION: int = len(MIGRATIONS)

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at REAL NOT NULL
)"""


class SchemaError(RuntimeError):
    """The database cannot be used by this version of the code."""


def current_version(connection: sqlite3.Connection) -> int:
    """The version recorded in the file (0 for an empty file)."""
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if found is None:
        return 0
    row = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(connection: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing migrations up to ``target``; returns the version now in the file.

    ``connection`` must be in autocommit mode (``isolation_level=None``): each
    step manages its own transaction. A file newer than this code is refused
    rather than guessed at.
    """
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"target must be in [0, {SCHEMA_VERSION}], got {target}")
    version = current_version(connection)
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"database schema version {version} is newer than this trm-otel supports ({SCHEMA_VERSION}); "
            "upgrade trm-otel or use another storage.path"
        )
    while version < target:
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(_VERSION_TABLE)
            for statement in MIGRATIONS[version]:
                connection.execute(statement)
            version += 1
            connection.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, time.time()))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return version

"""Results directories: Parquet schema, atomic parts, manifest, lock, compaction, summary.

Each table (``runs``, ``stalls``, ``curves``) is a folder of Parquet parts that
pyarrow, pandas, polars and DuckDB read without sweepengine. This package
imports no numerical code and nothing from ``sweepengine.sweep``.
"""

from __future__ import annotations

from .directory import (
    SpecMismatchError,
    Store,
    StoreError,
    StoreLockedError,
    VersionMismatchError,
    lock_token,
    open_store,
    read_curves,
    read_runs,
    read_stalls,
    spec_hash,
    status,
    write_unit,
)

__all__ = [
    "SpecMismatchError",
    "Store",
    "StoreError",
    "StoreLockedError",
    "VersionMismatchError",
    "lock_token",
    "open_store",
    "read_curves",
    "read_runs",
    "read_stalls",
    "spec_hash",
    "status",
    "write_unit",
]

"""The version-2 columns the analysis reads (stall measurement of issue 10).

Until the store writes them, tests and benchmarks build version-2 directories
directly with pyarrow from these definitions (:func:`write_directory`), in the
layout ``OUT/runs/*.parquet``, ``OUT/stalls/*.parquet``, ``OUT/curves/*.parquet``.
Time is dimensionless: ``time = steps x time_unit`` with ``time_unit = lam_ref x
effective lr`` (per run).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..store.schema import (
    CURVES_SCHEMA,
    RUNS_SCHEMA,
    RUNS_V3_COLUMNS,
    STALLS_SCHEMA,
    STALLS_V3_COLUMNS,
)

__all__ = [
    "STALL_CLASSES",
    "RUNS_V2_SCHEMA",
    "STALLS_V2_SCHEMA",
    "write_directory",
]

#: Where training time goes besides descent, in the order figures and tables list
#: them: the stall classes of schema version 2 (``stalls.STALL_CLASSES``) and the
#: unstable stretches the trainer leaves out of the stalls but counts per run.
STALL_CLASSES = ("bad_saddle", "strict_saddle", "minimum", "unstable", "unresolved")
#: A class derived at load (``load.py``, never stored): a nonlinear run's ``minimum``
#: stall whose polished loss lies above the best final loss of its configuration.
DERIVED_CLASSES = ("minimum_above_best",)
#: Every class the analysis helpers may meet, stored or derived.
ALL_STALL_CLASSES = (*STALL_CLASSES, *DERIVED_CLASSES)

_S, _I32, _I64, _F64, _B = pa.string(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()

# The store's schemas as of version 2 (the columns version 3 added left out), without
# nullability: synthetic directories may leave any column out (written as nulls).
RUNS_V2_SCHEMA = pa.schema(
    [pa.field(f.name, f.type) for f in RUNS_SCHEMA if f.name not in RUNS_V3_COLUMNS]
)
STALLS_V2_SCHEMA = pa.schema(
    [pa.field(f.name, f.type) for f in STALLS_SCHEMA if f.name not in STALLS_V3_COLUMNS]
)


def _table(columns: Mapping[str, Any], schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` from whole columns; missing columns are null."""
    n = {len(v) for v in columns.values()}
    if len(n) > 1:
        raise ValueError(
            f"columns have different lengths: { {k: len(v) for k, v in columns.items()} }"
        )
    rows = n.pop() if n else 0
    unknown = set(columns) - set(schema.names)
    if unknown:
        raise ValueError(f"unknown column(s) {sorted(unknown)}")
    arrays = [
        pa.nulls(rows, f.type)
        if f.name not in columns
        else columns[f.name].cast(f.type)
        if isinstance(columns[f.name], pa.Array)
        else pa.array(columns[f.name], type=f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(
        arrays, schema=pa.schema([pa.field(f.name, f.type) for f in schema])
    )


def write_directory(
    out: str | os.PathLike,
    runs: Mapping[str, Any],
    stalls: Mapping[str, Any] | None = None,
    curves: Mapping[str, Any] | None = None,
    *,
    parts: int = 1,
    runs_schema: pa.Schema = RUNS_V2_SCHEMA,
    stalls_schema: pa.Schema = STALLS_V2_SCHEMA,
) -> Path:
    """Write a results directory of real Parquet files from whole columns.

    ``runs``/``stalls``/``curves`` map column names to sequences (NumPy arrays or
    lists); columns not given are written as nulls. Rows are split into ``parts``
    files per table (the stalls and curves rows follow their run's part).
    Pass ``runs_schema``/``stalls_schema`` to write another version's shape.
    """
    out = Path(out)
    tables = {"runs": _table(runs, runs_schema)}
    if stalls is not None:
        tables["stalls"] = _table(stalls, stalls_schema)
    if curves is not None:
        tables["curves"] = _table(curves, CURVES_SCHEMA)
    ids = tables["runs"].column("run_id")
    n = max(len(ids), 1)
    for name, t in tables.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        row = pc.index_in(t.column("run_id"), value_set=ids).to_numpy(zero_copy_only=False)
        which = np.nan_to_num(row.astype(float), nan=0.0).astype(np.int64) * parts // n
        for p in range(parts):
            piece = t.filter(pa.array(which == p))
            if piece.num_rows or name == "runs":
                pq.write_table(piece, out / name / f"part-{p:05d}.parquet", compression="zstd")
    return out

"""Arrow schemas of the results tables, and builders that check rows against them.

Three tables, each a directory of Parquet parts under the results directory:

- ``runs``: one row per training run (the outcome of the run);
- ``stalls``: one row per stall detected in a run;
- ``curves``: a thinned loss curve per run, long format (run_id, step, loss).

Each column is declared once below as (name, type, nullable, description); the
schemas, the builders' checks and the per-field Parquet metadata all come from
that one list, and ``docs/results-schema.md`` documents it column by column
(a test keeps the two in step). Changing a column means bumping
``SCHEMA_VERSIONS`` for its table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..stalls import LOCAL_CLASSES, STALL_CLASSES

__all__ = [
    "CURVES_SCHEMA",
    "RUNS_SCHEMA",
    "RUN_STATUSES",
    "SCHEMAS",
    "SCHEMA_VERSIONS",
    "STALLS_SCHEMA",
    "STALL_CLASSES",
    "columns_table",
    "conform",
    "curves_table",
    "runs_table",
    "stalls_table",
]

SCHEMA_VERSIONS: dict[str, int] = {"runs": 3, "stalls": 3, "curves": 1}
#: Runs columns new in schema version 3 (activation and weight decay as sweep axes).
RUNS_V3_COLUMNS = (
    "loss_floor",
    "gap_scale",
    "alpha",
    "path_activation_rate",
    "input_dependence",
    "path_dependence_shared",
    "path_dependence_disjoint",
)
#: Stalls columns new in schema version 3: the independence measures at the probe point.
STALLS_V3_COLUMNS = RUNS_V3_COLUMNS[3:]

RUN_STATUSES = ("converged", "max_steps", "diverged", "failed")

# Columns holding JSON text: the builders encode dicts with sorted keys so that
# equal parameters give equal strings (and group together in queries).
_JSON_COLUMNS = frozenset({"problem_params", "optimizer_params"})

_S, _I32, _I64, _F64, _B = pa.string(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()

# (name, type, nullable, description)
_RUNS = [
    ("run_id", _S, False, "content hash of everything that determines the result"),
    ("sweep", _S, False, "sweep name from the spec"),
    ("chunk_id", _S, False, "chunk (Dask task) the run was computed in"),
    ("problem", _S, False, "problem (data set) name"),
    ("problem_params", _S, False, "problem parameters, JSON object with sorted keys"),
    ("d_x", _I32, False, "input dimension d_0"),
    ("d_y", _I32, False, "output dimension d_K"),
    ("depth", _I32, False, "H, number of hidden layers (K = H + 1 weight matrices)"),
    ("widths", pa.list_(_I32), False, "hidden widths d_1..d_H"),
    ("min_width", _I32, False, "min(d_1..d_H)"),
    ("n_params", _I64, False, "number of trainable parameters, sum_k d_k d_{k-1}"),
    ("seed", _I64, False, "random seed of the initialisation"),
    ("init_scheme", _S, False, "initialisation scheme name"),
    ("init_scale", _F64, False, "initialisation scale"),
    ("optimizer", _S, False, "optimizer name"),
    ("lr", _F64, False, "learning rate"),
    ("optimizer_params", _S, False, "other optimizer parameters, JSON object with sorted keys"),
    ("max_steps", _I64, False, "step budget"),
    ("status", _S, False, "converged | max_steps | diverged | failed"),
    ("error", _S, True, "error text when status is failed, else null"),
    ("steps", _I64, False, "steps taken"),
    ("final_loss", _F64, False, "loss L(W) after the last step"),
    (
        "global_min",
        _F64,
        False,
        "L*, the analytic global minimum of the loss; NaN for nonlinear runs (unknown)",
    ),
    (
        "loss_floor",
        _F64,
        False,
        "the floor gaps are measured from: global_min (linear), 0 (activation or weight decay)",
    ),
    ("final_gap", _F64, False, "final_loss - loss_floor"),
    ("gap_scale", _F64, False, "L(0) - loss_floor, L(0) = 1/2 tr(Y Y^T): the normaliser of gaps"),
    (
        "final_gap_rel",
        _F64,
        False,
        "final_gap / (L(0) - loss_floor), L(0) = 1/2 tr(Y Y^T) the loss of the zero network",
    ),
    ("target_gap", _F64, False, "relative gap at or below which the run counts as converged"),
    (
        "steps_to_target",
        _I64,
        True,
        "first step with relative gap (from loss_floor) <= target_gap; null if never",
    ),
    ("time_unit", _F64, False, "training time of one step, lam_ref x effective lr (docs/maths.md)"),
    ("time_to_target", _F64, True, "steps_to_target x time_unit; null if never"),
    (
        "n_stalls",
        _I32,
        False,
        "number of stalls (the first StallConfig.max_stalls are in the stalls table)",
    ),
    ("n_unstable", _I32, False, "flat stretches left out of the stalls as unstable"),
    ("steps_in_strict_saddle", _I64, False, "steps spent in stalls classed strict_saddle"),
    ("steps_in_bad_saddle", _I64, False, "steps spent in stalls classed bad_saddle"),
    ("steps_in_minimum", _I64, False, "steps spent in stalls classed minimum"),
    ("steps_in_unstable", _I64, False, "steps in flat stretches where the loss rose or oscillated"),
    ("steps_in_unresolved", _I64, False, "steps spent in stalls classed unresolved"),
    ("time_in_strict_saddle", _F64, False, "training time in stalls classed strict_saddle"),
    ("time_in_bad_saddle", _F64, False, "training time in stalls classed bad_saddle"),
    ("time_in_minimum", _F64, False, "training time in stalls classed minimum"),
    ("time_in_unstable", _F64, False, "training time in such unstable stretches"),
    ("time_in_unresolved", _F64, False, "training time in stalls classed unresolved"),
    ("first_stall_class", _S, True, "class of the run's first stall; null if none"),
    ("longest_stall_class", _S, True, "class of the run's longest stall (in time); null if none"),
    ("final_grad_norm", _F64, False, "gradient norm ||dL/dW|| after the last step"),
    ("final_lam_min", _F64, True, "smallest Hessian eigenvalue at the end; null if not computed"),
    ("final_lam_max", _F64, True, "largest Hessian eigenvalue at the end; null if not computed"),
    (
        "lam_ref",
        _F64,
        False,
        "curvature scale: top Hessian eigenvalue at the balanced global minimizer of the "
        "linear problem (plus weight_decay)",
    ),
    ("kicks", _I64, False, "perturbations applied (perturbed GD), else 0"),
    ("activation", _S, False, "hidden-layer activation: linear | relu | leaky_relu | tanh"),
    ("alpha", _F64, True, "leaky_relu slope for z <= 0; null for other activations"),
    ("weight_decay", _F64, False, "L2 penalty wd/2 ||theta||^2 in the loss (0: none)"),
    (
        "path_activation_rate",
        _F64,
        True,
        "rho, fraction of active paths at the final weights (relu/leaky_relu; else null)",
    ),
    (
        "input_dependence",
        _F64,
        True,
        "mean over hidden units of max_i |corr(unit active, sign x_i)| (relu/leaky_relu)",
    ),
    (
        "path_dependence_shared",
        _F64,
        True,
        "mean corr. of path indicators sharing a hidden unit (relu/leaky_relu, <= 256 paths)",
    ),
    (
        "path_dependence_disjoint",
        _F64,
        True,
        "mean corr. of path indicators sharing no hidden unit (relu/leaky_relu, <= 256 paths)",
    ),
    ("wall_time_s", _F64, False, "this run's share of its chunk's wall time, seconds"),
    ("compile_time_s", _F64, False, "JIT compile time charged to the chunk, seconds"),
    ("worker", _S, False, "Dask worker (or host) that ran the chunk"),
    ("sweepengine_version", _S, False, "sweepengine version that produced the row"),
]

_STALLS = [
    ("run_id", _S, False, "run the stall belongs to (runs.run_id)"),
    ("stall_index", _I32, False, "0-based index of the stall within its run"),
    ("start_step", _I64, False, "first step of the stall"),
    ("end_step", _I64, False, "last step of the stall"),
    ("probe_step", _I64, False, "step of the smallest gradient norm in the stall (the probe)"),
    ("start_time", _F64, False, "start_step x runs.time_unit"),
    ("end_time", _F64, False, "end_step x runs.time_unit"),
    ("probe_time", _F64, False, "probe_step x runs.time_unit"),
    ("loss", _F64, False, "loss at the probe point"),
    ("gap", _F64, False, "loss - runs.loss_floor"),
    ("gap_rel", _F64, False, "gap / (L(0) - runs.loss_floor)"),
    ("modes", pa.list_(_I32), False, "learned mode set S (sorted 0-based modes of Sigma)"),
    ("occupancy", pa.list_(_F64), False, "occupancy u_i^T P Cyx^T u_i / l_i of each mode"),
    (
        "critical_value",
        _F64,
        False,
        "analytic level of S, 1/2 (yy - sum_{i in S} l_i); nonlinear: the polished loss",
    ),
    ("critical_rank", _I32, False, "|S|; -1 for nonlinear runs"),
    (
        "nearest_value",
        _F64,
        False,
        "analytic critical level nearest the probe loss (cross-check); NaN for nonlinear runs",
    ),
    ("nearest_rank", _I32, False, "|S| of that nearest level; -1 for nonlinear runs"),
    ("min_grad_norm", _F64, False, "gradient norm at the probe point (smallest in the stall)"),
    ("local_lam_min", _F64, False, "smallest Hessian eigenvalue at the probe point"),
    ("local_lam_max", _F64, False, "largest Hessian eigenvalue at the probe point"),
    ("local_lam_min_err", _F64, False, "Lanczos residual bound on local_lam_min"),
    ("local_lam_max_err", _F64, False, "Lanczos residual bound on local_lam_max"),
    ("local_rel_lam_min", _F64, False, "local_lam_min / lam_ref"),
    ("local_class", _S, False, "threshold class of the probe point's Hessian"),
    ("lanczos_iters", _I32, False, "Lanczos iterations at the probe point"),
    ("rise", _F64, False, "total increase of the relative gap during the stall"),
    ("polish_converged", _B, False, "Newton-MR reached ||grad|| / g_ref <= polish_tol"),
    ("polish_iters", _I32, False, "Newton-MR iterations (0: not polished)"),
    ("polish_hvps", _I64, False, "Hessian-vector products spent polishing"),
    ("polish_grad_rel", _F64, True, "||grad|| / g_ref at the polished point; null if not polished"),
    ("polish_distance", _F64, True, "distance from the probe point to the polished point"),
    ("polish_loss", _F64, True, "loss at the polished point"),
    ("lam_min", _F64, True, "smallest Hessian eigenvalue at the polished point"),
    ("lam_max", _F64, True, "largest Hessian eigenvalue at the polished point"),
    ("lam_min_err", _F64, True, "Lanczos residual bound on lam_min"),
    ("rel_lam_min", _F64, True, "lam_min / lam_ref"),
    ("kawaguchi_rank", _I32, True, "rank(W_{K-1}..W_2) at the polished point; -1 nonlinear"),
    (
        "stall_class",
        _S,
        False,
        "class of the shadowed critical point: strict_saddle | bad_saddle | minimum | unresolved",
    ),
    (
        "path_activation_rate",
        _F64,
        True,
        "rho, fraction of active paths at the probe point (relu/leaky_relu; else null)",
    ),
    (
        "input_dependence",
        _F64,
        True,
        "mean over hidden units of max_i |corr(unit active, sign x_i)| at the probe point",
    ),
    (
        "path_dependence_shared",
        _F64,
        True,
        "mean corr. of path indicators sharing a hidden unit, probe point (<= 256 paths)",
    ),
    (
        "path_dependence_disjoint",
        _F64,
        True,
        "mean corr. of path indicators sharing no hidden unit, probe point (<= 256 paths)",
    ),
]

_CURVES = [
    ("run_id", _S, False, "run the point belongs to (runs.run_id)"),
    ("step", _I64, False, "step number"),
    ("loss", _F64, False, "loss at that step"),
]


def _schema(cols: list[tuple[str, pa.DataType, bool, str]]) -> pa.Schema:
    return pa.schema(
        [pa.field(n, t, nullable=nl, metadata={"description": d}) for n, t, nl, d in cols]
    )


RUNS_SCHEMA = _schema(_RUNS)
STALLS_SCHEMA = _schema(_STALLS)
CURVES_SCHEMA = _schema(_CURVES)
SCHEMAS: dict[str, pa.Schema] = {
    "runs": RUNS_SCHEMA,
    "stalls": STALLS_SCHEMA,
    "curves": CURVES_SCHEMA,
}

# Allowed values of categorical string columns, checked on every write.
_CATEGORIES = {
    ("runs", "status"): RUN_STATUSES,
    ("stalls", "stall_class"): STALL_CLASSES,
    ("stalls", "local_class"): LOCAL_CLASSES,
    ("runs", "first_stall_class"): STALL_CLASSES,
    ("runs", "longest_stall_class"): STALL_CLASSES,
}


def _table_name(schema: pa.Schema) -> str:
    for name, s in SCHEMAS.items():
        if s.equals(schema):
            return name
    raise ValueError("schema is not one of RUNS_SCHEMA, STALLS_SCHEMA, CURVES_SCHEMA")


def conform(data: pa.Table | pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """Check ``data`` against ``schema`` and return it with exactly that schema.

    Columns are put in schema order and cast where the cast is safe (int64 to
    int32 within range, a string-typed null column to string, ...). A missing
    nullable column is filled with nulls. Raises ValueError, naming the column,
    for: a missing non-nullable column, an unknown column, a cast that would
    lose information, a null in a non-nullable column, or a value outside the
    allowed set of a categorical column (``status``, ``stall_class``).
    """
    name = _table_name(schema)
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if not isinstance(data, pa.Table):
        raise ValueError(f"{name} data must be a pyarrow Table, got {type(data).__name__}")
    unknown = [c for c in data.column_names if c not in schema.names]
    if unknown:
        raise ValueError(f"{name} table has unknown column(s) {unknown}; valid: {schema.names}")
    if len(set(data.column_names)) != len(data.column_names):
        raise ValueError(f"{name} table has duplicate column names: {data.column_names}")
    cols = []
    for field in schema:
        if field.name not in data.column_names:
            if not field.nullable:
                raise ValueError(f"{name} table is missing required column {field.name!r}")
            cols.append(pa.nulls(data.num_rows, field.type))
            continue
        col = data.column(field.name)
        if not col.type.equals(field.type):
            try:
                col = col.cast(field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise ValueError(
                    f"{name} column {field.name!r}: cannot cast {col.type} to {field.type}: {e}"
                ) from None
        if not field.nullable and col.null_count:
            raise ValueError(
                f"{name} column {field.name!r} is not nullable but holds {col.null_count} null(s)"
            )
        allowed = _CATEGORIES.get((name, field.name))
        if allowed is not None and data.num_rows:
            known = pc.is_in(col, value_set=pa.array(allowed))  # null stays null: allowed
            bad = pc.filter(col, pc.and_kleene(pc.is_valid(col), pc.invert(known)))
            if len(bad):
                raise ValueError(
                    f"{name} column {field.name!r} holds {bad[0].as_py()!r}; allowed: {allowed}"
                )
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays as plain Python values for pyarrow."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_text(value: Any, column: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=_plain, allow_nan=True)
    except TypeError as e:
        raise ValueError(f"column {column!r}: value is not JSON-serialisable: {e}") from None


def _from_rows(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    name = _table_name(schema)
    rows = list(rows)
    names = set(schema.names)
    values: dict[str, list[Any]] = {f.name: [] for f in schema}
    for i, row in enumerate(rows):
        unknown = set(row) - names
        if unknown:
            raise ValueError(
                f"{name} row {i} has unknown key(s) {sorted(unknown)}; valid: {schema.names}"
            )
        for field in schema:
            if field.name in row:
                v = _plain(row[field.name])
                if field.name in _JSON_COLUMNS and v is not None:
                    v = _json_text(v, field.name)
            elif field.nullable:
                v = None
            else:
                raise ValueError(f"{name} row {i} is missing required column {field.name!r}")
            values[field.name].append(v)
    arrays = []
    for field in schema:
        try:
            arrays.append(pa.array(values[field.name], type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
            raise ValueError(f"{name} column {field.name!r}: {e}") from None
    return conform(pa.Table.from_arrays(arrays, names=schema.names), schema)


def columns_table(columns: Mapping[str, Any], schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` from whole columns (NumPy arrays or lists), one per name.

    The fast path for builders that already hold columns (a chunk's kernel output):
    no per-row Python objects. A NumPy float column holding NaN where the schema
    allows nulls stores null there; JSON columns must already be text. Checked like
    every table (:func:`conform`): unknown or missing columns and bad values raise
    ValueError naming the column.
    """
    unknown = set(columns) - set(schema.names)
    if unknown:
        raise ValueError(f"unknown column(s) {sorted(unknown)}; valid: {schema.names}")
    arrays, names = [], []
    for field in schema:
        if field.name not in columns:
            continue
        v = columns[field.name]
        try:
            if isinstance(v, np.ndarray):
                nan_null = field.nullable and v.dtype.kind == "f"
                arrays.append(pa.array(v, type=field.type, from_pandas=nan_null))
            else:
                arrays.append(pa.array(v, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
            raise ValueError(f"column {field.name!r}: {e}") from None
        names.append(field.name)
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        got = {n: len(a) for n, a in zip(names, arrays, strict=True)}
        raise ValueError(f"columns have different lengths: {got}")
    return conform(pa.Table.from_arrays(arrays, names=names), schema)


def runs_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """A runs table (``RUNS_SCHEMA``) from one dict per run.

    Keys are column names. Dict values of ``problem_params`` and
    ``optimizer_params`` are stored as JSON with sorted keys; NumPy scalars and
    arrays are accepted. A row without a nullable column (``error``,
    ``steps_to_target``, ``final_lam_min``, ``final_lam_max``) gets null there;
    a row without any other column, or with an unknown key, raises ValueError
    naming it.
    """
    return _from_rows(rows, RUNS_SCHEMA)


def stalls_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """A stalls table (``STALLS_SCHEMA``) from one dict per stall; see :func:`runs_table`."""
    return _from_rows(rows, STALLS_SCHEMA)


def curves_table(
    run_ids: str | Sequence[str] | np.ndarray,
    steps: Sequence[int] | np.ndarray,
    losses: Sequence[float] | np.ndarray,
) -> pa.Table:
    """A curves table (``CURVES_SCHEMA``), long format: row i is (run_ids[i], steps[i], losses[i]).

    ``run_ids`` may be a single string, repeated for every point (one run's curve).
    """
    steps = np.asarray(steps)
    losses = np.asarray(losses)
    if steps.ndim != 1 or losses.shape != steps.shape:
        raise ValueError(
            f"steps and losses must be 1-D of equal length, got shapes {steps.shape}, "
            f"{losses.shape}"
        )
    if isinstance(run_ids, str):
        ids = pa.array([run_ids] * len(steps), type=pa.string())
    else:
        ids = pa.array(_plain(np.asarray(run_ids, dtype=object)), type=pa.string())
        if len(ids) != len(steps):
            raise ValueError(f"run_ids has length {len(ids)}, steps has length {len(steps)}")
    if steps.size and not np.issubdtype(steps.dtype, np.integer):
        if not np.array_equal(steps, np.round(steps)):
            raise ValueError("curves column 'step' must hold integers")
        steps = steps.astype(np.int64)
    table = pa.table(
        {
            "run_id": ids,
            "step": pa.array(steps.astype(np.int64, copy=False)),
            "loss": pa.array(losses.astype(np.float64, copy=False)),
        }
    )
    return conform(table, CURVES_SCHEMA)

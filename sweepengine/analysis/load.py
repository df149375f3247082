"""Load a results directory for analysis: runs and stalls, version 3, 2 or 1.

:func:`load` reads ``OUT/runs/*.parquet`` and ``OUT/stalls/*.parquet`` the way
any globbing Parquet reader (DuckDB, pandas) does: every file whose name ends in
``.parquet`` (temporaries and hidden compaction sources never do), so the helpers
and the SQL of ``docs/analysis.md`` see the same rows. Stalls whose run is not in
the runs table (a chunk whose runs file, the commit marker, is not written yet)
are dropped; ``stalls.run_row`` is the row of each stall's run in ``runs``.

Version-1 directories (no time columns, three stall classes, the Hessian only at
the probe point) are made to look like version 2, and :attr:`Results.notes` says
what was derived:

- ``time_unit`` = 1: time is counted in optimizer steps;
- ``time_*`` = ``steps_*`` x ``time_unit``; ``time_to_target`` = ``steps_to_target``;
- ``steps_in_unstable`` = ``steps_in_unresolved`` = 0 (classes that did not exist);
- ``first_stall_class`` / ``longest_stall_class`` from the stalls table (smallest
  ``stall_index``; longest ``end_step - start_step``, first on ties);
- stalls: ``start_time``/``end_time``/``probe_time`` from steps; the probe-point
  Hessian (v1 ``lam_min``, ``rel_lam_min``, ``stall_class``) becomes ``local_lam_min``,
  ``local_rel_lam_min``, ``local_class``; the polished-point ``lam_min`` and
  ``rel_lam_min`` are null; ``modes`` is null; ``stall_class`` stays the v1 label.

Version-2 directories (deep linear runs only) get the version-3 columns silently:
``loss_floor`` = ``global_min``; ``gap_scale``, ``alpha`` and the independence
measures null.

Runs of nonlinear nets (an activation or weight decay; ``global_min`` NaN: L* is
unknown) are compared with the best of their configuration at every load
(:func:`best_losses`), so the numbers follow the directory as it grows:
``best_loss`` (the smallest final loss over the configuration's seeds, diverged and
failed runs left out), ``gap_to_best`` = final_loss - best_loss, and their
``minimum`` stalls whose polished loss (``critical_value``) lies above best_loss by
more than ``BEST_TOL`` x ``gap_scale`` relabelled ``minimum_above_best`` (with the
runs' ``steps_in_*`` / ``time_in_*`` and first / longest stall class moved to
match). Both columns are null for linear runs (their gap is to L*).

The time to target of those runs is measured against the same best loss
(:func:`best_target_times`, also at every load): ``best_target`` = best_loss +
target_gap x gap_scale, ``steps_to_best`` the first step at which the run's loss was
at or below it, read from the recorded loss curves (points every ``record_every``
steps) and the final loss at ``steps``, and ``time_to_best`` = steps_to_best x
time_unit; null when the run never got there, or when the directory has no curves
(a note says so). For deep linear runs the best is L* itself, so ``steps_to_best``
and ``time_to_best`` are their ``steps_to_target`` and ``time_to_target`` (exact to
the step: the trainer checks every step) and ``best_target`` is null.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .v2 import DERIVED_CLASSES, STALL_CLASSES

__all__ = ["AnalysisError", "BEST_TOL", "Results", "best_losses", "best_target_times", "load",
           "RUN_COLUMNS", "STALL_COLUMNS"]  # fmt: skip

#: ``minimum`` stalls of nonlinear runs whose polished loss exceeds the configuration's
#: best loss by more than BEST_TOL x gap_scale (L(0) - floor) are ``minimum_above_best``
#: (``nltraining.best_loss_gaps``' default tolerance).
BEST_TOL = 1e-6
#: The runs columns that identify a configuration: every sweep axis but the seed.
CONFIG_COLUMNS = ("problem", "problem_params", "d_x", "d_y", "widths", "init_scheme",
                  "init_scale", "optimizer", "lr", "optimizer_params", "max_steps",
                  "activation", "alpha", "weight_decay")  # fmt: skip
_V3_FILL = ("alpha", "path_activation_rate", "input_dependence", "path_dependence_shared",
            "path_dependence_disjoint")  # fmt: skip


class AnalysisError(ValueError):
    """Bad input to the analysis: missing directory, no runs, unknown column or axis."""


#: Runs columns read by :func:`load`; any other column is read from disk on first use
#: (:meth:`Results.fetch`), so a million-run directory loads only what the helpers need.
RUN_COLUMNS = [
    "run_id", "problem", "depth", "widths", "min_width", "seed", "init_scheme",
    "init_scale", "optimizer", "lr", "status", "steps", "max_steps", "global_min",
    "steps_to_target", "n_stalls", "lam_ref", "time_unit", "time_to_target",
    "activation", "weight_decay", "first_stall_class", "longest_stall_class",
    *(f"steps_in_{c}" for c in STALL_CLASSES), *(f"time_in_{c}" for c in STALL_CLASSES),
    "loss_floor", "gap_scale", *_V3_FILL,
]  # fmt: skip

#: Stalls columns read by :func:`load` (the others on first use, like the runs').
STALL_COLUMNS = [
    "run_id", "stall_index", "start_step", "end_step", "probe_step", "start_time",
    "end_time", "probe_time", "local_lam_min", "local_rel_lam_min", "lam_min",
    "rel_lam_min", "stall_class",
]  # fmt: skip


@dataclasses.dataclass
class Results:
    """Runs and stalls of one results directory, in the version-2 shape.

    ``runs`` and ``stalls`` are pyarrow Tables (pandas DataFrames when loaded with
    ``pandas=True``). ``schema_version`` is what the files hold (1 or 2);
    ``time_basis`` is ``"time"`` (dimensionless training time, v2) or ``"steps"``
    (v1: time columns derived from step counts). ``notes`` lists every derivation.
    """

    out_dir: Path
    runs: pa.Table
    stalls: pa.Table
    schema_version: int
    time_basis: str
    notes: list[str]
    has_curves: bool
    _cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
    _disk: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def fetch(self, table: str, columns) -> pa.Table:
        """The runs or stalls table with ``columns`` read from disk if not loaded yet.

        Columns that are in the files but were not read by :func:`load` are read now
        (same files, same row order; stalls filtered like at load) and added to
        ``self.runs`` / ``self.stalls``. Unknown names are left to the caller.
        """
        t = self.runs if table == "runs" else self.stalls
        if not isinstance(t, pa.Table) or table not in self._disk:
            return t
        files, schema, keep = self._disk[table]
        todo = [c for c in dict.fromkeys(columns) if c not in t.column_names and c in schema.names]
        if todo:
            extra = _dataset(files, schema).to_table(columns=todo)
            if keep is not None:
                extra = extra.filter(keep)
            for c in todo:
                t = t.append_column(c, extra.column(c))
            if table == "runs":
                self.runs = t
            else:
                self.stalls = t
        return t

    def _columns(self, table: str, columns) -> pd.DataFrame:
        if columns is None and table in self._disk:  # everything: on disk and derived
            t = self.runs if table == "runs" else self.stalls
            columns = list(dict.fromkeys([*self._disk[table][1].names, *t.column_names]))
        if columns is not None:
            self.fetch(table, [c for c in columns if c != "run_row"])
        t = self.runs if table == "runs" else self.stalls
        names = t.column_names if isinstance(t, pa.Table) else list(t.columns)
        if columns is None:
            columns = names
        columns = [c for c in columns if c in names or table not in self._disk]
        missing = [c for c in columns if c not in names]
        if missing:
            raise AnalysisError(f"{table} table has no column(s) {missing}")
        out = {}
        for c in dict.fromkeys(columns):
            key = (table, c)
            if key not in self._cache:  # each column converted to pandas once
                self._cache[key] = t.column(c).to_pandas() if isinstance(t, pa.Table) else t[c]
            out[c] = self._cache[key]
        return pd.DataFrame(out)

    def frame(self, columns=None) -> pd.DataFrame:
        """Runs columns as a pandas DataFrame (all when ``columns`` is None), cached per column."""
        return self._columns("runs", columns)

    def stalls_frame(self, columns=None) -> pd.DataFrame:
        """Stalls columns as a pandas DataFrame, cached per column."""
        return self._columns("stalls", columns)

    def to_pandas(self) -> Results:
        """The same results with pandas DataFrames instead of Arrow tables."""
        if not isinstance(self.runs, pa.Table):
            return self
        return dataclasses.replace(
            self, runs=self.frame(), stalls=self.stalls_frame(), _cache={}, _disk={}
        )


def _files(out: Path, table: str) -> list[Path]:
    d = out / table
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.name.endswith(".parquet") and p.is_file())


def _dataset(files: list[Path], schema: pa.Schema) -> ds.Dataset:
    return ds.dataset([str(f) for f in files], format="parquet", schema=schema)


def _read(files: list[Path], wanted: list[str]) -> tuple[pa.Table, pa.Schema]:
    """The ``wanted`` columns the files have, and the files' unified schema."""
    schema = pa.unify_schemas([pq.read_schema(f) for f in files])
    cols = [c for c in wanted if c in schema.names]
    return _dataset(files, schema).to_table(columns=cols), schema


def _set(t: pa.Table, name: str, values) -> pa.Table:
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    if name in t.column_names:
        return t.set_column(t.column_names.index(name), name, arr)
    return t.append_column(name, arr)


def _first_and_longest(stalls: pa.Table, run_ids: pa.ChunkedArray) -> tuple[list, list]:
    """Per run (in ``run_ids`` order): class of the first and of the longest stall."""
    first: dict[str, str] = {}
    longest: dict[str, tuple[float, str]] = {}
    if stalls.num_rows:
        s = stalls.sort_by([("run_id", "ascending"), ("stall_index", "ascending")])
        ids = s.column("run_id").to_pylist()
        cls = s.column("stall_class").to_pylist()
        dur = pc.subtract(s.column("end_step"), s.column("start_step")).to_pylist()
        for rid, c, d in zip(ids, cls, dur, strict=True):
            first.setdefault(rid, c)
            if rid not in longest or d > longest[rid][0]:
                longest[rid] = (d, c)
    ids = run_ids.to_pylist()
    return [first.get(r) for r in ids], [longest[r][1] if r in longest else None for r in ids]


def _upgrade_runs(runs: pa.Table, stalls: pa.Table, notes: list[str]) -> pa.Table:
    n = runs.num_rows
    names = runs.column_names
    if "time_unit" not in names:
        runs = _set(runs, "time_unit", pa.array(np.ones(n)))
        notes.append(
            "schema version 1: no time columns; training time is counted in optimizer "
            "steps (time_unit = 1)"
        )
    tu = runs.column("time_unit")
    for c in STALL_CLASSES:
        if f"steps_in_{c}" not in runs.column_names:
            runs = _set(runs, f"steps_in_{c}", pa.array(np.zeros(n, dtype=np.int64)))
            notes.append(f"steps_in_{c} absent (class did not exist): taken as 0")
        if f"time_in_{c}" not in runs.column_names:
            steps = pc.cast(runs.column(f"steps_in_{c}"), pa.float64())
            runs = _set(runs, f"time_in_{c}", pc.multiply(steps, tu))
    if "time_to_target" not in runs.column_names:
        stt = pc.cast(runs.column("steps_to_target"), pa.float64())
        runs = _set(runs, "time_to_target", pc.multiply(stt, tu))
    if "first_stall_class" not in runs.column_names:
        first, longest = _first_and_longest(stalls, runs.column("run_id"))
        runs = _set(runs, "first_stall_class", pa.array(first, pa.string()))
        runs = _set(runs, "longest_stall_class", pa.array(longest, pa.string()))
        notes.append("first_stall_class and longest_stall_class derived from the stalls table")
    if "activation" not in runs.column_names:
        runs = _set(runs, "activation", pa.array(["linear"] * n, pa.string()))
    if "weight_decay" not in runs.column_names:
        runs = _set(runs, "weight_decay", pa.array(np.zeros(n)))
    # version 2 -> 3 (deep linear runs only: nothing to note)
    if "loss_floor" not in runs.column_names and "global_min" in runs.column_names:
        runs = _set(runs, "loss_floor", runs.column("global_min"))
    for c in ("gap_scale", *_V3_FILL):
        if c not in runs.column_names:
            runs = _set(runs, c, pa.nulls(n, pa.float64()))
    return runs


def _upgrade_stalls(stalls: pa.Table, runs: pa.Table, notes: list[str]) -> pa.Table:
    n = stalls.num_rows
    names = stalls.column_names
    if "local_lam_min" not in names:  # v1: the Hessian was taken at the probe point only
        for old, new in (("lam_min", "local_lam_min"), ("rel_lam_min", "local_rel_lam_min"),
                         ("stall_class", "local_class")):  # fmt: skip
            if old in names:
                stalls = _set(stalls, new, stalls.column(old))
        for c in ("lam_min", "rel_lam_min"):
            stalls = _set(stalls, c, pa.nulls(n, pa.float64()))
        notes.append(
            "schema version 1 stalls: the Hessian was probed only at the flattest point "
            "(local_lam_min); no polished critical point (lam_min null); stall_class is "
            "the v1 threshold label"
        )
    if "start_time" not in stalls.column_names:
        tu = pc.take(runs.column("time_unit"), stalls.column("run_row"))
        for c in ("start", "end", "probe"):
            steps = pc.cast(stalls.column(f"{c}_step"), pa.float64())
            stalls = _set(stalls, f"{c}_time", pc.multiply(steps, tu))
    for c, typ in (("modes", pa.list_(pa.int32())), ("polish_converged", pa.bool_()),
                   ("kawaguchi_rank", pa.int32()), ("local_class", pa.string())):  # fmt: skip
        if c not in stalls.column_names:
            stalls = _set(stalls, c, pa.nulls(n, typ))
    return stalls


def load(out_dir: str | os.PathLike, *, pandas: bool = False) -> Results:
    """Runs and stalls of the results directory ``out_dir`` (see the module docstring).

    Raises :class:`AnalysisError` when the directory or its runs are missing.
    ``pandas=True`` returns DataFrames instead of Arrow tables.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise AnalysisError(f"results directory {out} does not exist")
    run_files = _files(out, "runs")
    if not run_files:
        raise AnalysisError(f"{out} holds no runs (no {out / 'runs'}/*.parquet)")
    runs, run_schema = _read(run_files, RUN_COLUMNS)
    if runs.num_rows == 0:
        raise AnalysisError(f"{out}: the runs table is empty")
    for c in ("run_id", "depth", "status", "steps"):
        if c not in runs.column_names:
            raise AnalysisError(
                f"{out}: runs table has no column {c!r}; is it a results directory?"
            )
    names = run_schema.names
    version = 1 if "time_unit" not in names else 3 if "loss_floor" in names else 2
    stall_files = _files(out, "stalls")
    disk = {"runs": (run_files, run_schema, None)}
    if stall_files:
        stalls, stall_schema = _read(stall_files, STALL_COLUMNS)
        row = pc.index_in(stalls.column("run_id"), value_set=runs.column("run_id"))
        keep = pc.is_valid(row)
        stalls = stalls.append_column("run_row", pc.cast(row, pa.int64()))
        stalls = stalls.filter(keep)
        disk["stalls"] = (stall_files, stall_schema, None if pc.all(keep).as_py() else keep)
    else:
        from .v2 import STALLS_V2_SCHEMA

        stalls = STALLS_V2_SCHEMA.empty_table().select(STALL_COLUMNS)
        stalls = stalls.append_column("run_row", pa.array([], pa.int64()))
    notes: list[str] = []
    runs = _upgrade_runs(runs, stalls, notes)
    stalls = _upgrade_stalls(stalls, runs, notes)
    res = Results(
        out_dir=out, runs=runs, stalls=stalls, schema_version=version,
        time_basis="time" if version >= 2 else "steps", notes=notes,
        has_curves=bool(_files(out, "curves")), _disk=disk,
    )  # fmt: skip
    if _nonlinear(runs).any():
        # nonlinear runs: what best_losses needs, read now (linear directories stay lazy)
        res.fetch("runs", [*CONFIG_COLUMNS, "final_loss", "target_gap"])
        res.fetch("stalls", ["critical_value"])
    res.runs, res.stalls = best_losses(res.runs, res.stalls)
    res.runs = best_target_times(res.runs, _files(out, "curves"), notes)
    if pandas:  # everything on disk, then DataFrames
        for table, (_, schema, _) in disk.items():
            res.fetch(table, schema.names)
        return res.to_pandas()
    return res


def _config_keys(runs: pa.Table) -> np.ndarray:
    """One integer per run naming its configuration (``CONFIG_COLUMNS``: all but the seed)."""
    cols = [c for c in CONFIG_COLUMNS if c in runs.column_names]
    df = pd.DataFrame({c: runs.column(c).to_pandas() for c in cols})
    if "widths" in df:
        df["widths"] = df["widths"].map(lambda w: None if w is None else tuple(w))
    return df.groupby(cols, dropna=False, sort=False).ngroup().to_numpy()


def _nonlinear(runs: pa.Table) -> np.ndarray:
    """Runs of nonlinear nets: an activation other than linear, or weight decay (a null
    activation or weight decay, in hand-made directories, counts as linear / 0)."""
    act = np.asarray(runs.column("activation").to_pylist(), dtype=object)
    wd = runs.column("weight_decay").to_numpy(zero_copy_only=False).astype(float)
    named = np.array([a is not None and a != "linear" for a in act], dtype=bool)
    return named | (np.nan_to_num(wd) != 0)


def best_losses(runs: pa.Table, stalls: pa.Table) -> tuple[pa.Table, pa.Table]:
    """``best_loss`` and ``gap_to_best`` for the nonlinear runs (``global_min`` NaN: an
    activation other than linear, or weight decay), the
    ``minimum_above_best`` relabelling of their stalls and the runs' per-class totals
    (see the module docstring). Linear runs get nulls and keep their stalls."""
    n = runs.num_rows
    nl = _nonlinear(runs)
    for c in DERIVED_CLASSES:
        if f"steps_in_{c}" not in runs.column_names:
            runs = _set(runs, f"steps_in_{c}", pa.array(np.zeros(n, dtype=np.int64)))
            runs = _set(runs, f"time_in_{c}", pa.array(np.zeros(n)))
    best = np.full(n, np.nan)
    if nl.any() and "final_loss" in runs.column_names:
        final = runs.column("final_loss").to_numpy(zero_copy_only=False).astype(float)
        status = np.asarray(runs.column("status").to_pylist(), dtype=object)
        ok = nl & np.isin(status, ["converged", "max_steps"]) & np.isfinite(final)
        key = _config_keys(runs)
        s = pd.Series(np.where(ok, final, np.nan)).groupby(key).transform("min").to_numpy()
        best = np.where(nl, s, np.nan)
    runs = _set(runs, "best_loss", pa.array(best, from_pandas=True))
    final = runs.column("final_loss").to_numpy(zero_copy_only=False).astype(float) if (
        "final_loss" in runs.column_names) else np.full(n, np.nan)  # fmt: skip
    runs = _set(runs, "gap_to_best", pa.array(final - best, from_pandas=True))
    if not nl.any() or not stalls.num_rows or "critical_value" not in stalls.column_names:
        return runs, stalls
    row = stalls.column("run_row").to_numpy()
    cls = np.asarray(stalls.column("stall_class").to_pylist(), dtype=object)
    crit = stalls.column("critical_value").to_numpy(zero_copy_only=False).astype(float)
    scale = runs.column("gap_scale").to_numpy(zero_copy_only=False).astype(float)[row]
    with np.errstate(invalid="ignore"):
        above = (cls == "minimum") & nl[row] & (crit - best[row] > BEST_TOL * scale)
    if not above.any():
        return runs, stalls
    cls[above] = "minimum_above_best"
    stalls = _set(stalls, "stall_class", pa.array(cls.tolist(), pa.string()))
    # the runs' totals, and first / longest class, as the worker would have written them
    length = stalls.column("end_step").to_numpy() - stalls.column("start_step").to_numpy()
    dur = (stalls.column("end_time").to_numpy(zero_copy_only=False)
           - stalls.column("start_time").to_numpy(zero_copy_only=False))  # fmt: skip
    moved_steps = np.bincount(row[above], weights=length[above], minlength=n).astype(np.int64)
    moved_time = np.bincount(row[above], weights=dur[above], minlength=n)
    for unit, moved in (("steps", moved_steps), ("time", moved_time)):
        old = runs.column(f"{unit}_in_minimum").to_numpy(zero_copy_only=False)
        runs = _set(runs, f"{unit}_in_minimum", pa.array(old - moved))
        runs = _set(runs, f"{unit}_in_minimum_above_best", pa.array(moved))
    idx = stalls.column("stall_index").to_numpy()
    first = np.asarray(runs.column("first_stall_class").to_pylist(), dtype=object)
    longest = np.asarray(runs.column("longest_stall_class").to_pylist(), dtype=object)
    head = idx == 0
    first[row[head]] = cls[head]
    order = np.lexsort((idx, -dur, row))
    lead = np.r_[True, row[order][1:] != row[order][:-1]]
    hit = np.zeros(n, dtype=bool)
    hit[row[above]] = True
    for j in order[lead]:
        if hit[row[j]]:
            longest[row[j]] = cls[j]
    runs = _set(runs, "first_stall_class", pa.array(first.tolist(), pa.string()))
    runs = _set(runs, "longest_stall_class", pa.array(longest.tolist(), pa.string()))
    return runs, stalls


def _floats(t: pa.Table, name: str) -> np.ndarray:
    """Column ``name`` as float64 (nulls NaN); all NaN when the table lacks it."""
    if name not in t.column_names:
        return np.full(t.num_rows, np.nan)
    return t.column(name).to_numpy(zero_copy_only=False).astype(float)


def _first_passage(files: list[Path], run_ids: pa.Array, level: np.ndarray):
    """Per run: the first curve step whose loss is <= ``level`` (int64 max if none) and
    whether the run has any curve point. Curves are read in batches, only for the runs
    with a finite level, so memory stays bounded whatever the directory's size."""
    n = level.size
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    seen = np.zeros(n, dtype=bool)
    want = run_ids.filter(pa.array(np.isfinite(level)))
    if not len(want) or not files:
        return first, seen
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    for batch in dataset.to_batches(columns=["run_id", "step", "loss"],
                                    filter=ds.field("run_id").isin(want)):  # fmt: skip
        if not batch.num_rows:
            continue
        row = pc.index_in(batch.column("run_id"), value_set=run_ids).to_numpy(
            zero_copy_only=False).astype(np.int64)  # fmt: skip
        step = batch.column("step").to_numpy(zero_copy_only=False).astype(np.int64)
        loss = batch.column("loss").to_numpy(zero_copy_only=False).astype(float)
        seen[row] = True
        hit = loss <= level[row]
        np.minimum.at(first, row[hit], step[hit])
    return first, seen


def best_target_times(runs: pa.Table, curve_files: list[Path],
                      notes: list[str] | None = None) -> pa.Table:  # fmt: skip
    """``best_target``, ``steps_to_best`` and ``time_to_best`` (see the module docstring).

    Nonlinear runs: the first step t with L_t <= best_loss + target_gap x gap_scale
    among the recorded curve points (steps 0, r, 2r, ... for ``record_every`` r) and the
    final point (``steps``, ``final_loss``): exact at those points, so for a loss that
    does not rise again the first passage lies in (t - r, t]. The run of the
    configuration whose final loss is the best always gets there (by its last step).
    Null: never got there (censored at its last step, ``steps``), or no curve points
    (``notes`` gets a line). Linear runs: ``steps_to_target`` / ``time_to_target``.
    """
    n = runs.num_rows
    nl = _nonlinear(runs)
    level = np.full(n, np.nan)
    steps_best = np.full(n, np.nan)
    if nl.any():
        tol = _floats(runs, "target_gap") * _floats(runs, "gap_scale")
        level = np.where(nl, _floats(runs, "best_loss") + tol, np.nan)
        first, seen = _first_passage(curve_files, runs.column("run_id").combine_chunks(), level)
        steps = runs.column("steps").to_numpy(zero_copy_only=False).astype(np.int64)
        with np.errstate(invalid="ignore"):
            at_end = _floats(runs, "final_loss") <= level
        first = np.where((first == np.iinfo(np.int64).max) & at_end, steps, first)
        known = np.isfinite(level) & seen & (first != np.iinfo(np.int64).max)
        steps_best = np.where(nl & known, first, np.nan)
        status = np.asarray(runs.column("status").to_pylist(), dtype=object)
        blind = nl & np.isfinite(level) & ~seen & (status != "failed")
        if blind.any() and notes is not None:
            notes.append(
                f"{int(blind.sum())} nonlinear run(s) have no loss curve (record_every = 0): "
                "their time to the best loss (time_to_best) is unknown (null)"
            )
    lin = ~nl
    steps_best = np.where(lin, _floats(runs, "steps_to_target"), steps_best)
    time_best = np.where(lin, _floats(runs, "time_to_target"),
                         steps_best * _floats(runs, "time_unit"))  # fmt: skip
    ok = np.isfinite(steps_best)
    runs = _set(runs, "best_target", pa.array(level, from_pandas=True))
    runs = _set(runs, "steps_to_best",
                pa.array(np.where(ok, steps_best, 0).astype(np.int64), mask=~ok))  # fmt: skip
    runs = _set(runs, "time_to_best", pa.array(time_best, mask=~np.isfinite(time_best)))
    return runs


def read_curves(out_dir: str | os.PathLike, run_ids: list[str]) -> pa.Table:
    """Curve points (run_id, step, loss) of the given runs only, sorted by run and step."""
    files = _files(Path(out_dir), "curves")
    if not files or not run_ids:
        return pa.table({"run_id": pa.array([], pa.string()), "step": pa.array([], pa.int64()),
                         "loss": pa.array([], pa.float64())})  # fmt: skip
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    t = dataset.to_table(
        columns=["run_id", "step", "loss"], filter=ds.field("run_id").isin(run_ids)
    )
    return t.sort_by([("run_id", "ascending"), ("step", "ascending")])

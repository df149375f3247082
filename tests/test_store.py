"""The results store: schemas, atomic parts, recovery, compaction, lock, manifest.

Everything runs on real files under tmp_path. Rows are compared as sorted
Python lists, so a lost or duplicated row anywhere shows up as a mismatch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from sweepengine.store import directory as st
from sweepengine.store.schema import (
    CURVES_SCHEMA,
    RUNS_SCHEMA,
    STALLS_SCHEMA,
    columns_table,
    conform,
    curves_table,
    runs_table,
    stalls_table,
)

SPEC = {"name": "demo", "depths": [1, 2, 3], "seeds": 4, "optimizer": {"name": "gd", "lr": 0.1}}
REPO = Path(__file__).resolve().parents[1]

# -- schema lock: any change here must be deliberate (and bump SCHEMA_VERSIONS) --

EXPECTED_RUNS = [
    ("run_id", pa.string()),
    ("sweep", pa.string()),
    ("chunk_id", pa.string()),
    ("problem", pa.string()),
    ("problem_params", pa.string()),
    ("d_x", pa.int32()),
    ("d_y", pa.int32()),
    ("depth", pa.int32()),
    ("widths", pa.list_(pa.int32())),
    ("min_width", pa.int32()),
    ("n_params", pa.int64()),
    ("seed", pa.int64()),
    ("init_scheme", pa.string()),
    ("init_scale", pa.float64()),
    ("optimizer", pa.string()),
    ("lr", pa.float64()),
    ("optimizer_params", pa.string()),
    ("max_steps", pa.int64()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("steps", pa.int64()),
    ("final_loss", pa.float64()),
    ("global_min", pa.float64()),
    ("loss_floor", pa.float64()),
    ("final_gap", pa.float64()),
    ("gap_scale", pa.float64()),
    ("final_gap_rel", pa.float64()),
    ("target_gap", pa.float64()),
    ("steps_to_target", pa.int64()),
    ("time_unit", pa.float64()),
    ("time_to_target", pa.float64()),
    ("n_stalls", pa.int32()),
    ("n_unstable", pa.int32()),
    ("steps_in_strict_saddle", pa.int64()),
    ("steps_in_bad_saddle", pa.int64()),
    ("steps_in_minimum", pa.int64()),
    ("steps_in_unstable", pa.int64()),
    ("steps_in_unresolved", pa.int64()),
    ("time_in_strict_saddle", pa.float64()),
    ("time_in_bad_saddle", pa.float64()),
    ("time_in_minimum", pa.float64()),
    ("time_in_unstable", pa.float64()),
    ("time_in_unresolved", pa.float64()),
    ("first_stall_class", pa.string()),
    ("longest_stall_class", pa.string()),
    ("final_grad_norm", pa.float64()),
    ("final_lam_min", pa.float64()),
    ("final_lam_max", pa.float64()),
    ("lam_ref", pa.float64()),
    ("kicks", pa.int64()),
    ("activation", pa.string()),
    ("alpha", pa.float64()),
    ("weight_decay", pa.float64()),
    ("path_activation_rate", pa.float64()),
    ("input_dependence", pa.float64()),
    ("path_dependence_shared", pa.float64()),
    ("path_dependence_disjoint", pa.float64()),
    ("wall_time_s", pa.float64()),
    ("compile_time_s", pa.float64()),
    ("worker", pa.string()),
    ("sweepengine_version", pa.string()),
]
EXPECTED_RUNS_NULLABLE = {
    "error",
    "steps_to_target",
    "time_to_target",
    "first_stall_class",
    "longest_stall_class",
    "final_lam_min",
    "final_lam_max",
    "alpha",
    "path_activation_rate",
    "input_dependence",
    "path_dependence_shared",
    "path_dependence_disjoint",
}
EXPECTED_STALLS = [
    ("run_id", pa.string()),
    ("stall_index", pa.int32()),
    ("start_step", pa.int64()),
    ("end_step", pa.int64()),
    ("probe_step", pa.int64()),
    ("start_time", pa.float64()),
    ("end_time", pa.float64()),
    ("probe_time", pa.float64()),
    ("loss", pa.float64()),
    ("gap", pa.float64()),
    ("gap_rel", pa.float64()),
    ("modes", pa.list_(pa.int32())),
    ("occupancy", pa.list_(pa.float64())),
    ("critical_value", pa.float64()),
    ("critical_rank", pa.int32()),
    ("nearest_value", pa.float64()),
    ("nearest_rank", pa.int32()),
    ("min_grad_norm", pa.float64()),
    ("local_lam_min", pa.float64()),
    ("local_lam_max", pa.float64()),
    ("local_lam_min_err", pa.float64()),
    ("local_lam_max_err", pa.float64()),
    ("local_rel_lam_min", pa.float64()),
    ("local_class", pa.string()),
    ("lanczos_iters", pa.int32()),
    ("rise", pa.float64()),
    ("polish_converged", pa.bool_()),
    ("polish_iters", pa.int32()),
    ("polish_hvps", pa.int64()),
    ("polish_grad_rel", pa.float64()),
    ("polish_distance", pa.float64()),
    ("polish_loss", pa.float64()),
    ("lam_min", pa.float64()),
    ("lam_max", pa.float64()),
    ("lam_min_err", pa.float64()),
    ("rel_lam_min", pa.float64()),
    ("kawaguchi_rank", pa.int32()),
    ("stall_class", pa.string()),
    ("path_activation_rate", pa.float64()),
    ("input_dependence", pa.float64()),
    ("path_dependence_shared", pa.float64()),
    ("path_dependence_disjoint", pa.float64()),
]
EXPECTED_STALLS_NULLABLE = {
    "polish_grad_rel",
    "polish_distance",
    "polish_loss",
    "lam_min",
    "lam_max",
    "lam_min_err",
    "rel_lam_min",
    "kawaguchi_rank",
    "path_activation_rate",
    "input_dependence",
    "path_dependence_shared",
    "path_dependence_disjoint",
}
EXPECTED_CURVES = [("run_id", pa.string()), ("step", pa.int64()), ("loss", pa.float64())]


@pytest.mark.parametrize(
    "schema, expected, nullable",
    [
        (RUNS_SCHEMA, EXPECTED_RUNS, EXPECTED_RUNS_NULLABLE),
        (STALLS_SCHEMA, EXPECTED_STALLS, EXPECTED_STALLS_NULLABLE),
        (CURVES_SCHEMA, EXPECTED_CURVES, set()),
    ],
    ids=["runs", "stalls", "curves"],
)
def test_schema_is_locked(schema, expected, nullable):
    assert [(f.name, f.type) for f in schema] == expected
    assert {f.name for f in schema if f.nullable} == nullable
    assert all(f.metadata[b"description"] for f in schema)


def test_docs_describe_every_column():
    text = (REPO / "docs" / "results-schema.md").read_text()
    for schema in (RUNS_SCHEMA, STALLS_SCHEMA, CURVES_SCHEMA):
        for f in schema:
            assert f"| `{f.name}` |" in text, f"docs/results-schema.md lacks column {f.name}"


# -- helpers ------------------------------------------------------------------


def run_row(run_id: str, chunk_id: str, **over) -> dict:
    row = dict(
        run_id=run_id,
        sweep="demo",
        chunk_id=chunk_id,
        problem="whitened",
        problem_params={"spectrum": [3.0, 2.0, 1.0], "m": 100},
        d_x=3,
        d_y=3,
        depth=2,
        widths=[4, 2],
        min_width=2,
        n_params=3 * 4 + 4 * 2 + 2 * 3,
        seed=int(run_id.split("-")[-1]),
        init_scheme="gaussian",
        init_scale=0.01,
        optimizer="gd",
        lr=0.1,
        optimizer_params={},
        max_steps=1000,
        status="converged",
        steps=500,
        final_loss=1.25,
        global_min=1.25,
        loss_floor=1.25,
        final_gap=0.0,
        gap_scale=3.0,
        final_gap_rel=0.0,
        target_gap=1e-6,
        steps_to_target=480,
        time_unit=0.1,
        time_to_target=48.0,
        n_stalls=2,
        n_unstable=0,
        steps_in_strict_saddle=10,
        steps_in_bad_saddle=100,
        steps_in_minimum=0,
        steps_in_unstable=0,
        steps_in_unresolved=0,
        time_in_strict_saddle=1.0,
        time_in_bad_saddle=10.0,
        time_in_minimum=0.0,
        time_in_unstable=0.0,
        time_in_unresolved=0.0,
        first_stall_class="bad_saddle",
        longest_stall_class="bad_saddle",
        final_grad_norm=1e-9,
        final_lam_min=0.0,
        final_lam_max=4.0,
        lam_ref=4.0,
        kicks=0,
        activation="linear",
        weight_decay=0.0,
        wall_time_s=0.01,
        compile_time_s=0.0,
        worker="w0",
        sweepengine_version="0.1.0",
    )
    row.update(over)
    return row


def stall_row(run_id: str, i: int) -> dict:
    lam_min = -0.5 if i else -1e-12
    return dict(
        run_id=run_id,
        stall_index=i,
        start_step=10 * i,
        end_step=10 * i + 5,
        probe_step=10 * i + 2,
        start_time=1.0 * i,
        end_time=1.0 * i + 0.5,
        probe_time=1.0 * i + 0.2,
        loss=2.0 - i,
        gap=0.75 - i * 0.5,
        gap_rel=(0.75 - i * 0.5) / 2.0,
        modes=list(range(i)),
        occupancy=[1.0] * i + [0.0] * (3 - i),
        critical_value=2.0 - i,
        critical_rank=i,
        nearest_value=2.0 - i,
        nearest_rank=i,
        min_grad_norm=1e-4,
        local_lam_min=-0.1 if i else -1e-3,
        local_lam_max=3.0,
        local_lam_min_err=1e-10,
        local_lam_max_err=1e-10,
        local_rel_lam_min=(-0.1 if i else -1e-3) / 3.0,
        local_class="strict_saddle",
        lanczos_iters=20,
        rise=0.0,
        polish_converged=True,
        polish_iters=3,
        polish_hvps=40,
        polish_grad_rel=1e-12,
        polish_distance=1e-2,
        polish_loss=2.0 - i,
        lam_min=lam_min,
        lam_max=3.0,
        lam_min_err=1e-10,
        rel_lam_min=lam_min / 3.0,
        kawaguchi_rank=i,
        stall_class="strict_saddle" if i else "bad_saddle",
    )


def chunk(chunk_id: str, n: int, start: int = 0, curves: bool = True, **over):
    """A chunk of n runs with 2 stalls and 3 curve points each."""
    ids = [f"r{chunk_id}-{start + k}" for k in range(n)]
    runs = runs_table([run_row(r, chunk_id, **over) for r in ids])
    stalls = stalls_table([stall_row(r, i) for r in ids for i in range(2)])
    c = None
    if curves:
        c = curves_table(
            [r for r in ids for _ in range(3)],
            [s for _ in ids for s in (0, 10, 20)],
            [float(x) for x in range(3 * n)],
        )
    return runs, stalls, c


def rows(table: pa.Table) -> list[tuple]:
    """Every row as a tuple, sorted: equal lists mean equal multisets of rows."""
    cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return sorted(zip(*cols, strict=True), key=repr)


@pytest.fixture
def out(tmp_path):
    return tmp_path / "out"


@pytest.fixture
def store(out):
    return st.open_store(out, SPEC)


def write_chunks(store, specs):
    """specs: list of (chunk_id, n, start); returns the written tables."""
    written = {"runs": [], "stalls": [], "curves": []}
    with store.lock():
        for cid, n, start in specs:
            r, s, c = chunk(cid, n, start)
            store.write_chunk(cid, r, s, c)
            written["runs"].append(r)
            written["stalls"].append(s)
            written["curves"].append(c)
    return {k: pa.concat_tables(v) for k, v in written.items()}


def assert_reads(out, expected):
    assert rows(st.read_runs(out)) == rows(expected["runs"])
    assert rows(st.read_stalls(out)) == rows(expected["stalls"])
    assert rows(st.read_curves(out)) == rows(expected["curves"])


# -- builders -------------------------------------------------------------------


def test_builders_fill_nullable_and_name_missing_required():
    row = run_row("r-1", "c")
    for k in ("error", "steps_to_target", "final_lam_min", "final_lam_max"):
        row.pop(k, None)
    t = runs_table([row])
    assert t.schema.equals(RUNS_SCHEMA)
    assert t.column("error").to_pylist() == [None]
    assert t.column("steps_to_target").to_pylist() == [None]
    assert json.loads(t.column("problem_params")[0].as_py()) == {
        "m": 100,
        "spectrum": [3.0, 2.0, 1.0],
    }
    del row["lr"]
    with pytest.raises(ValueError, match="'lr'"):
        runs_table([row])
    with pytest.raises(ValueError, match="unknown key"):
        runs_table([run_row("r-1", "c", learning_rate=0.1)])
    with pytest.raises(ValueError, match="status"):
        runs_table([run_row("r-1", "c", status="done")])
    with pytest.raises(ValueError, match="stall_class"):
        stalls_table([{**stall_row("r-1", 0), "stall_class": "plateau"}])
    with pytest.raises(ValueError, match="'depth'"):
        runs_table([run_row("r-1", "c", depth=2**40)])  # does not fit int32
    assert stalls_table([]).num_rows == 0
    c = curves_table("r-1", [0, 5], [2.0, 1.0])
    assert c.schema.equals(CURVES_SCHEMA) and c.column("run_id").to_pylist() == ["r-1"] * 2


def test_conform_casts_safely_and_orders_columns():
    t = runs_table([run_row("r-1", "c")])
    shuffled = t.select(list(reversed(t.column_names)))
    shuffled = shuffled.set_column(
        shuffled.column_names.index("depth"), "depth", t.column("depth").cast(pa.int64())
    )
    assert conform(shuffled, RUNS_SCHEMA).equals(t)
    with pytest.raises(ValueError, match="missing required column 'seed'"):
        conform(t.drop_columns(["seed"]), RUNS_SCHEMA)
    assert conform(t.drop_columns(["error"]), RUNS_SCHEMA).column("error").null_count == 1


# -- writing and reading --------------------------------------------------------


def test_round_trip_with_all_readers(store, out):
    expected = write_chunks(store, [("c0", 5, 0), ("c1", 7, 0), ("c2", 1, 0)])
    assert_reads(out, expected)
    n = expected["runs"].num_rows
    assert n == 13

    # pyarrow.dataset on the directory: values and types as written
    t = ds.dataset(out / "runs", format="parquet").to_table()
    assert t.schema.remove_metadata().equals(RUNS_SCHEMA.remove_metadata())
    assert rows(t) == rows(expected["runs"])
    assert rows(ds.dataset(out / "stalls", format="parquet").to_table()) == rows(expected["stalls"])

    # pandas
    df = pd.read_parquet(out / "runs")
    assert len(df) == n and set(df["run_id"]) == set(expected["runs"].column("run_id").to_pylist())
    assert df.set_index("run_id").loc["rc1-3", "widths"].tolist() == [4, 2]
    assert df["error"].isna().all()

    # duckdb, glob
    q = duckdb.sql(
        f"select count(*), sum(seed), count(distinct run_id) from '{out}/runs/*.parquet'"
    )
    assert q.fetchall() == [(n, sum(expected["runs"].column("seed").to_pylist()), n)]
    joined = duckdb.sql(
        f"select r.run_id, s.stall_class from '{out}/runs/*.parquet' r "
        f"join '{out}/stalls/*.parquet' s using (run_id)"
    ).fetchall()
    assert len(joined) == 2 * n

    # polars, glob
    p = pl.read_parquet(out / "runs" / "*.parquet")
    assert p.height == n and p["lr"].to_list() == [0.1] * n
    assert pl.read_parquet(out / "curves" / "*.parquet").height == 3 * n


def test_rewrite_replaces_chunk_and_done_run_ids(store, out):
    write_chunks(store, [("c0", 4, 0), ("c1", 3, 0)])
    assert store.done_run_ids() == {f"rc0-{k}" for k in range(4)} | {f"rc1-{k}" for k in range(3)}
    # same chunk again, now with fewer runs, different values and no curves
    r, s, _ = chunk("c0", 2, 0, curves=False, status="diverged")
    store.write_chunk("c0", r, s)
    runs = st.read_runs(out)
    assert runs.num_rows == 5
    assert sorted(runs.column("run_id").to_pylist()) == sorted(
        ["rc0-0", "rc0-1", "rc1-0", "rc1-1", "rc1-2"]
    )
    assert st.read_stalls(out).num_rows == 10
    assert st.read_curves(out).num_rows == 9  # only c1's points remain
    assert not (out / "curves" / "part-c0.parquet").exists()
    assert pd.read_parquet(out / "runs").shape[0] == 5
    info = st.status(out)
    assert info["runs_done"] == 5 and info["by_status"]["diverged"] == 2
    assert info["tables"]["runs"]["parts"] == 2 and info["tables"]["runs"]["bytes"] > 0


def test_write_chunk_checks_consistency(store):
    r, s, c = chunk("c0", 2)
    with pytest.raises(ValueError, match="chunk_id"):
        store.write_chunk("c1", r, s, c)
    with pytest.raises(ValueError, match="chunk_id must match"):
        store.write_chunk("../evil", r, s, c)
    r2, s2, _ = chunk("c0", 2, start=5)
    with pytest.raises(ValueError, match="not in its runs"):
        store.write_chunk("c0", r, s2)
    with pytest.raises(ValueError, match="not unique"):
        store.write_chunk("c0", pa.concat_tables([r, r]), s)
    store.write_chunk("c0", r)  # takes the lock by itself; no stalls is fine
    assert store.done_run_ids() == {"rc0-0", "rc0-1"}


def test_truncated_runs_part_is_redone(store, out):
    write_chunks(store, [("c0", 4, 0), ("c1", 3, 0), ("c2", 2, 0)])
    runs1 = out / "runs" / "part-c1.parquet"
    with open(runs1, "r+b") as f:  # a torn write: the footer is gone
        f.truncate(os.path.getsize(runs1) // 2)
    bad_footer = out / "runs" / "part-c2.parquet"
    data = bad_footer.read_bytes()
    bad_footer.write_bytes(data[:-4] + b"XXXX")  # magic bytes destroyed
    (out / "runs" / ".tmp-deadbeef.parquet.partial").write_bytes(b"PAR1 half")
    (out / "stalls" / ".tmp-cafe.parquet.partial").write_bytes(b"")
    (out / "stalls" / "part-c9.parquet").write_bytes(b"")  # orphan: no runs part

    # a reader that does not hold the lock skips the damage without touching files
    assert sorted(st.read_runs(out).column("run_id").to_pylist()) == [f"rc0-{k}" for k in range(4)]
    assert st.read_stalls(out).num_rows == 8
    # the two corrupt runs files, and their units' stalls and curves files with them
    assert st.status(out)["pending_cleanup"]["quarantine"] == 6
    assert runs1.exists()

    assert store.done_run_ids() == {f"rc0-{k}" for k in range(4)}
    assert not runs1.exists() and not bad_footer.exists()
    for name in ("runs", "stalls", "curves"):
        assert len(list((out / "quarantine" / name).iterdir())) == 2
    for name in ("stalls", "curves"):
        left = sorted(p.name for p in (out / name).iterdir())
        assert left == ["part-c0.parquet"], (name, left)
    assert not list((out / "runs").glob(".tmp-*"))
    # every reader agrees after cleanup
    assert duckdb.sql(f"select count(*) from '{out}/stalls/*.parquet'").fetchall() == [(8,)]
    assert pl.read_parquet(out / "curves" / "*.parquet").height == 12

    # redo the lost chunks: nothing is duplicated
    expected = write_chunks(store, [("c1", 3, 0), ("c2", 2, 0)])
    assert st.read_runs(out).num_rows == 9
    assert st.read_stalls(out).num_rows == 18
    assert rows(st.read_curves(out).filter(pa.compute.field("run_id") != "rc0-0")) == rows(
        pa.concat_tables(
            [chunk("c0", 4)[2].filter(pa.compute.field("run_id") != "rc0-0"), expected["curves"]]
        )
    )


def test_stalls_part_missing_or_short_uncommits_chunk(store, out):
    write_chunks(store, [("c0", 2, 0), ("c1", 2, 0)])
    (out / "stalls" / "part-c1.parquet").unlink()
    assert store.done_run_ids() == {"rc0-0", "rc0-1"}
    assert not (out / "runs" / "part-c1.parquet").exists()
    assert not (out / "curves" / "part-c1.parquet").exists()


def test_crash_between_stalls_and_runs_leaves_no_orphans(store, out, monkeypatch):
    write_chunks(store, [("c0", 2, 0)])
    real = st.write_parquet_atomic

    def crash_on_runs(table, path, name, unit, **extra):
        if name == "runs":
            raise KeyboardInterrupt("simulated crash")
        real(table, path, name, unit, **extra)

    monkeypatch.setattr(st, "write_parquet_atomic", crash_on_runs)
    r, s, c = chunk("c1", 3)
    with pytest.raises(KeyboardInterrupt):
        store.write_chunk("c1", r, s, c)
    # rewriting c0 un-commits it before writing anything
    r, s, c = chunk("c0", 2)
    with pytest.raises(KeyboardInterrupt):
        store.write_chunk("c0", r, s, c)
    assert st.read_runs(out).num_rows == 0 and st.read_stalls(out).num_rows == 0
    monkeypatch.undo()
    assert store.done_run_ids() == set()
    assert not list((out / "stalls").iterdir()) and not list((out / "curves").iterdir())


# -- compaction ----------------------------------------------------------------

CHUNKS = [(f"c{k:02d}", 1 + (k * 7) % 5, 0) for k in range(12)]  # 1..5 runs each


def test_compaction_preserves_rows_and_is_idempotent(store, out):
    expected = write_chunks(store, CHUNKS)
    n = expected["runs"].num_rows
    report = store.compact(target_rows=10)
    assert report["units_created"] >= 2
    parts = sorted(p.name for p in (out / "runs").iterdir())
    assert len(parts) < len(CHUNKS)
    assert_reads(out, expected)
    assert rows(ds.dataset(out / "runs", format="parquet").to_table()) == rows(expected["runs"])
    assert duckdb.sql(f"select count(*) from '{out}/stalls/*.parquet'").fetchall() == [(2 * n,)]
    assert pl.read_parquet(out / "curves" / "*.parquet").height == 3 * n
    # merged files are sorted by run_id and sized by target_rows
    for p in (out / "runs").glob("compact-*.parquet"):
        ids = pq.read_table(p, columns=["run_id"]).column(0).to_pylist()
        assert ids == sorted(ids) and len(ids) <= 10
    assert store.compact(target_rows=10) == {"units_merged": 0, "units_created": 0}
    assert sorted(p.name for p in (out / "runs").iterdir()) == parts
    # compacting the compacted result further still keeps every row once
    store.compact(target_rows=1000)
    assert len(list((out / "runs").iterdir())) == 1
    assert_reads(out, expected)
    assert len(store.done_run_ids()) == n
    # a compacted chunk cannot be silently rewritten (it would duplicate rows)
    with pytest.raises(st.StoreError, match="compaction"):
        store.write_chunk("c00", *chunk("c00", 1))
    # new chunks after compaction are fine
    more = write_chunks(store, [("d0", 3, 0)])
    assert st.read_runs(out).num_rows == n + 3
    assert rows(st.read_curves(out)) == rows(pa.concat_tables([expected["curves"], more["curves"]]))


class Crash(Exception):
    pass


def _crash(*args, **kwargs):
    raise Crash("simulated crash")


def test_crash_after_publish_before_dropping_sources(store, out, monkeypatch):
    expected = write_chunks(store, CHUNKS)
    n = expected["runs"].num_rows
    monkeypatch.setattr(st, "_drop_sources", _crash)
    with store.lock():
        with pytest.raises(Crash):
            store.compact(target_rows=1000)
        hidden = list((out / "runs").glob(".src-*"))
        assert len(hidden) == len(CHUNKS)
        # readers while the crashed writer still holds the lock: no duplicates
        other = st.open_store(out, SPEC)
        assert len(other.done_run_ids()) == n  # cannot lock, reads without cleaning
        assert len(hidden) == len(list((out / "runs").glob(".src-*")))
        assert_reads(out, expected)
        assert pd.read_parquet(out / "runs").shape[0] == n
        assert duckdb.sql(f"select count(*) from '{out}/runs/*.parquet'").fetchall() == [(n,)]
        assert pl.read_parquet(out / "stalls" / "*.parquet").height == 2 * n
    monkeypatch.undo()
    # the next holder of the lock finishes the compaction
    assert len(st.open_store(out, SPEC).done_run_ids()) == n
    assert not list((out / "runs").glob(".src-*"))
    assert len(list((out / "runs").iterdir())) == 1
    assert_reads(out, expected)


def test_crash_with_sources_still_visible(store, out, monkeypatch):
    """The state a naive compactor leaves: merged unit and its sources both visible."""
    expected = write_chunks(store, CHUNKS)
    n = expected["runs"].num_rows
    monkeypatch.setattr(st, "_drop_sources", _crash)
    with pytest.raises(Crash):
        store.compact(target_rows=1000)
    monkeypatch.undo()
    for name in ("runs", "stalls", "curves"):
        for p in (out / name).glob(".src-*"):
            os.rename(p, p.parent / p.name.split("--", 1)[1].removesuffix(".hidden"))
    assert len(list((out / "runs").glob("*.parquet"))) == len(CHUNKS) + 1
    assert_reads(out, expected)  # sources of a committed compact unit are skipped
    assert st.status(out)["runs_done"] == n
    assert len(store.done_run_ids()) == n  # ... and deleted
    assert len(list((out / "runs").iterdir())) == 1
    assert duckdb.sql(f"select count(*) from '{out}/runs/*.parquet'").fetchall() == [(n,)]
    assert_reads(out, expected)


def test_crash_before_publish_restores_sources(store, out, monkeypatch):
    expected = write_chunks(store, CHUNKS)
    monkeypatch.setattr(st, "_publish", _crash)
    with pytest.raises(Crash):
        store.compact(target_rows=1000)
    monkeypatch.undo()
    hidden = sorted((out / "runs").glob(".src-*"))
    assert len(hidden) == len(CHUNKS)
    for p in hidden[::2]:  # as if it crashed half way through hiding the sources
        os.rename(p, p.parent / p.name.split("--", 1)[1].removesuffix(".hidden"))
    assert_reads(out, expected)  # pending hidden sources are read
    assert len(store.done_run_ids()) == expected["runs"].num_rows  # restores them
    assert len(list((out / "runs").glob("part-*.parquet"))) == len(CHUNKS)
    assert not [p for p in (out / "runs").iterdir() if not p.name.startswith("part-")]
    store.compact(target_rows=1000)
    assert_reads(out, expected)


def test_duplicate_run_ids_across_parts_are_read_once(store, out):
    write_chunks(store, [("a", 3, 0)])
    dup_runs, dup_stalls, dup_curves = chunk("a", 3, 0)
    dup_runs = dup_runs.set_column(
        dup_runs.column_names.index("chunk_id"), "chunk_id", pa.array(["b"] * 3)
    )
    store.write_chunk("b", dup_runs, dup_stalls, dup_curves)  # same run_ids, another chunk
    assert st.read_runs(out).num_rows == 3
    assert st.read_stalls(out).num_rows == 6
    assert st.read_curves(out).num_rows == 9
    assert st.status(out)["runs_done"] == 3
    store.compact(target_rows=100)
    assert pq.read_table(next((out / "runs").glob("*.parquet"))).num_rows == 3
    assert duckdb.sql(f"select count(*) from '{out}/stalls/*.parquet'").fetchall() == [(6,)]


# -- lock and manifest ----------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from sweepengine.store import open_store
    store = open_store(sys.argv[1])
    with store.lock():
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_lock_refuses_second_sweep_until_holder_dies(store, out):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError, match=rf"locked by another sweep.*pid.*{proc.pid}"):
            with store.lock():
                pass
        with pytest.raises(st.StoreLockedError):
            store.write_chunk("c0", *chunk("c0", 1))
        lock = st.status(out)["lock"]
        assert lock["pid"] == proc.pid and lock["alive"] is True
        # readers still work, and leave the holder's files alone
        assert st.read_runs(out).num_rows == 0 and store.done_run_ids() == set()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert st.status(out)["lock"]["alive"] is False
    with store.lock():  # the kernel dropped the dead holder's flock
        store.write_chunk("c0", *chunk("c0", 1))
    assert st.status(out)["lock"] is None
    assert store.done_run_ids() == {"rc0-0"}


def test_lock_within_one_process(store, out):
    other = st.open_store(out, SPEC)
    with store.lock():
        with pytest.raises(st.StoreLockedError, match=str(os.getpid())):
            with other.lock():
                pass
        with pytest.raises(st.StoreError, match="already holds"):
            with store.lock():
                pass
    with other.lock():
        pass


def test_manifest_records_and_refuses_other_spec(store, out, monkeypatch):
    m = json.loads((out / "manifest.json").read_text())
    assert m["spec"] == SPEC and m["spec_hash"] == st.spec_hash(SPEC)
    assert m["schema_versions"] == {"runs": 3, "stalls": 3, "curves": 1}
    assert {"sweepengine", "numba", "numpy", "dask", "pyarrow", "python"} <= set(m["versions"])
    created = m["created"]
    monkeypatch.setattr(st, "_now", lambda: "2999-01-01T00:00:00+00:00")
    other = st.open_store(out, SPEC)
    other.done_run_ids()  # takes the lock to clean up: nothing changed, manifest kept
    assert json.loads((out / "manifest.json").read_text()) == m
    write_chunks(store, [("c0", 1, 0)])
    m2 = json.loads((out / "manifest.json").read_text())
    assert m2["created"] == created and m2["updated"] == "2999-01-01T00:00:00+00:00"
    assert m2["last_writer_versions"]["pyarrow"] == pa.__version__
    # the same spec (keys in another order) resumes; another spec is refused
    same = dict(reversed(list(SPEC.items())))
    assert st.open_store(out, same).done_run_ids() == {"rc0-0"}
    with pytest.raises(st.SpecMismatchError, match=r"different spec.*'seeds'"):
        st.open_store(out, {**SPEC, "seeds": 5})
    assert st.open_store(out).spec_hash == st.spec_hash(SPEC)  # spec=None: any
    with pytest.raises(FileNotFoundError):
        st.open_store(out.parent / "nothing", SPEC, create=False)
    info = st.status(out)
    assert info["sweep"] == "demo" and info["runs_done"] == 1


def test_columns_fast_path_equals_checked_builder():
    rows = [run_row(f"r-{i}", "c", seed=i) for i in range(3)]
    rows[1]["final_lam_min"] = None
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    for k in ("problem_params", "optimizer_params"):
        cols[k] = [json.dumps(v, sort_keys=True) for v in cols[k]]
    cols["seed"] = np.array(cols["seed"])
    lam = cols["final_lam_min"]
    cols["final_lam_min"] = np.array([np.nan if v is None else v for v in lam])  # NaN -> null
    assert columns_table(cols, RUNS_SCHEMA).equals(runs_table(rows))
    with pytest.raises(ValueError, match="unknown column"):
        columns_table({**cols, "bogus": [1, 2, 3]}, RUNS_SCHEMA)
    with pytest.raises(ValueError, match="status"):
        columns_table({k: v for k, v in cols.items() if k != "status"}, RUNS_SCHEMA)
    with pytest.raises(ValueError, match="different lengths"):
        columns_table({**cols, "seed": np.arange(4)}, RUNS_SCHEMA)
    with pytest.raises(ValueError, match="'status'.*allowed"):
        columns_table({**cols, "status": ["converged", "weird", "converged"]}, RUNS_SCHEMA)

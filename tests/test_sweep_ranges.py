"""Chunks as index ranges of the spec, written by the workers: planning, resume, writers.

The planning helpers are checked against per-run enumeration; the sweeps run on
real Dask clusters on loopback (the session cluster of ``test_sweep``, or
clusters of their own), and their results are compared with each other after
dropping the columns that say where and how fast a run was computed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from sweepengine.store import open_store, read_curves, read_runs, read_stalls
from sweepengine.sweep import chunk_runs, load_spec, run_sweep
from sweepengine.sweep import schedule as sw
from tests.conftest import whitened_spec
from tests.test_sweep import (
    SMALL,
    _env,
    _exe,
    assert_one_row_per_run,
    part_files,
    runs_frame,
    sorted_frame,
    start_cluster,
)

# -- planning ------------------------------------------------------------------------

GRID = whitened_spec(
    "g", seeds=3, max_steps=10,
    problem={"d_x": 4, "d_y": 3, "m": 16, "singular_values": [3.0, 1.0, 0.5]},
    architecture={"depth": [0, 1, 2], "width": [2, 4]}, init={"scale": [1e-2, 0.3]},
    optimizer={"name": ["gd", "momentum"], "lr": [0.1, 0.2], "beta": [0.9, 0.5]},
)  # fmt: skip
ZIP = whitened_spec(
    "z", seeds=2, max_steps=10,
    problem={"d_x": 4, "d_y": 3, "m": 16, "singular_values": [3.0, 1.0, 0.5]},
    architecture={"depth": [1, 1, 2, 1], "width": [2, 2, 4, 2]},
    init={"scale": [1e-2, 0.3, 0.1, 0.2]}, optimizer={"name": "gd", "lr": [0.1, 0.2, 0.3, 0.4]},
).replace('name = "z"', 'name = "z"\ncombine = "zip"')  # fmt: skip
RANDOM = GRID.replace('name = "g"', 'name = "g"\ncombine = "random"\nsamples = 20')


@pytest.mark.parametrize("text", [GRID, ZIP, RANDOM, SMALL], ids=["grid", "zip", "random", "small"])
def test_shape_blocks_tile_the_runs_one_shape_each(text):
    spec = load_spec(text)
    blocks = spec.shape_blocks()
    assert blocks[0][0] == 0 and blocks[-1][1] == spec.n_runs
    assert all(b == c for (_, b), (c, _) in zip(blocks, blocks[1:], strict=False))
    runs = list(spec.runs())
    for a, b in blocks:
        assert a < b and len({r.shape_key() for r in runs[a:b]}) == 1
    # maximal: every block boundary is a change of shape (these specs have no repeats)
    changes = {i for i in range(1, len(runs)) if runs[i].shape_key() != runs[i - 1].shape_key()}
    assert {a for a, _ in blocks[1:]} == changes


def test_spec_pickles_small_and_whole():
    """The spec travels with every task: its pickle leaves cached state behind (the
    sampled indices of a random combination, the shape blocks) and gives the same runs."""
    import pickle

    text = GRID.replace("seeds = { range = [0, 3] }", "seeds = { range = [0, 1000000] }")
    spec = load_spec(text.replace('name = "g"', 'name = "g"\ncombine = "random"\nsamples = 50'))
    before = len(pickle.dumps(spec))
    spec.run(12345)  # draws the sampled indices
    spec.shape_blocks()
    assert len(pickle.dumps(spec)) == before < 8000
    copy = pickle.loads(pickle.dumps(spec))
    assert copy.shape_blocks() == spec.shape_blocks()
    ids = [r.run_id for r in spec.runs(999_990, 1_000_010)]
    assert [r.run_id for r in copy.runs(999_990, 1_000_010)] == ids


def test_plan_chunks_cuts_shape_blocks_at_fixed_offsets():
    blocks = [(0, 10), (10, 13), (13, 30)]
    every = list(sw.plan_chunks(blocks, 4, [(0, 30)]))
    assert every == [(0, 4), (4, 8), (8, 10), (10, 13), (13, 17), (17, 21), (21, 25),
                     (25, 29), (29, 30)]  # fmt: skip
    # what is left after some chunks are done is cut where it was cut before
    done = [(4, 8), (13, 21)]
    left = sw._subtract([(0, 30)], done)
    assert left == [(0, 4), (8, 13), (21, 30)]
    assert list(sw.plan_chunks(blocks, 4, left)) == [c for c in every if c not in
                                                     [(4, 8), (13, 17), (17, 21)]]  # fmt: skip
    # pieces of a chunk cut by a done range stay within it
    assert list(sw.plan_chunks(blocks, 10, [(2, 5), (7, 12)])) == [(2, 5), (7, 10), (10, 12)]
    assert sw._merge([(5, 7), (0, 2), (2, 3), (6, 9)]) == [(0, 3), (5, 9)]
    assert sw._subtract([(0, 10), (20, 30)], [(2, 3), (9, 21), (25, 40)]) == [
        (0, 2), (3, 9), (21, 25)]  # fmt: skip


def test_range_chunk_ids():
    h = "ab" * 32
    cid = sw.range_chunk_id(h, 12, 4108)
    assert cid == "rabababababab-12-4108"
    prefix = sw.range_chunk_id(h, 0, 1)[:-3]
    assert sw._parse_range(cid, prefix) == (12, 4108)
    for other in ("rabababababab-12", "rabababababab-012-20", "rabababababab-5-5",
                  "rcdcdcdcdcdcd-1-2", "3f2a9c", None, "rabababababab-1-2-3"):  # fmt: skip
        assert sw._parse_range(other, prefix) is None
    from sweepengine.store.directory import _CHUNK_ID

    assert _CHUNK_ID.match(cid)


# -- sweeps ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A scheduler and two workers, processes of their own on loopback."""
    procs = start_cluster(tmp_path_factory.mktemp("dask"), 2)
    try:
        yield procs
    finally:
        procs.close()


def _tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return (
        runs_frame(out),
        sorted_frame(read_stalls(out), ["run_id", "stall_index"]),
        sorted_frame(read_curves(out), ["run_id", "step"]),
    )


def _assert_same(out: Path, ref: tuple, name: str) -> None:
    for got, want in zip(_tables(out), ref, strict=True):
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=name)


@pytest.mark.cluster
def test_results_equal_whoever_writes_and_however_chunked(dask_cluster, tmp_path):
    spec = load_spec(SMALL)
    addr = dask_cluster.address
    ref_out = tmp_path / "client-writes"
    ref_report = run_sweep(spec, ref_out, scheduler=addr, worker_writes=False, progress=False)
    assert ref_report.complete and ref_report.written_by_workers == 0
    ref = _tables(ref_out)
    assert len(ref[1]) and len(ref[2])
    for name, kw in {
        "workers-write": {"scheduler": addr},
        "chunk5": {"scheduler": addr, "max_chunk": 5},
        "chunk1": {"scheduler": addr, "max_chunk": 1},
        "one-worker": {"n_workers": 1, "max_chunk": 3, "in_process": False},
        "in-process": {"max_chunk": 2, "in_process": True},
    }.items():
        out = tmp_path / name
        report = run_sweep(spec, out, progress=False, **kw)
        assert report.complete and report.trained == spec.n_runs, name
        assert report.in_process == (name == "in-process"), name
        assert report.written_by_workers == report.chunks, name
        _assert_same(out, ref, name)
        assert_one_row_per_run(out, spec)
        # part names are the range chunk ids, and every row carries its chunk's id
        runs = read_runs(out, ["run_id", "chunk_id"]).to_pandas()
        stems = {p.name.removeprefix("part-").removesuffix(".parquet") for p in part_files(out)}
        assert set(runs.chunk_id) == stems
        assert all(c.startswith("r") and c.count("-") == 2 for c in stems)
        # the verified log holds every file the workers wrote, so recovery reads none
        logged = {line.split("\t")[0] for line in (out / "verified.log").read_text().splitlines()}
        written = {
            f"{t}/{p.name}" for t in ("runs", "stalls", "curves") for p in part_files(out, t)
        }
        assert written <= logged


def test_in_process_is_chosen_for_short_sweeps_on_a_warm_cache(tmp_path, monkeypatch):
    """The embedded cluster's workers are threads of the client for a short sweep whose
    compile units are warm, processes for a long one (estimated) or a cold cache."""
    from sweepengine.sweep import compile_lock, schedule

    spec = load_spec(SMALL)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert not schedule.in_process_auto(spec, spec.n_runs)  # cold: processes compile
    for unit in compile_lock.UNIT_NEEDS:
        if unit not in ("per_run", "nonlinear"):  # one driver is enough
            compile_lock.lock_paths(unit)[1].touch()
    assert schedule.in_process_auto(spec, spec.n_runs)
    cost = schedule.estimated_cost_s(spec, spec.n_runs)
    assert 0 < cost <= schedule.IN_PROCESS_MAX_S
    monkeypatch.setattr(schedule, "IN_PROCESS_MAX_S", cost / 2)
    assert not schedule.in_process_auto(spec, spec.n_runs)  # long: processes
    assert schedule.in_process_auto(spec, spec.n_runs // 4)  # what is left of it: short
    compile_lock.lock_paths("lockstep")[1].unlink()
    monkeypatch.setattr(schedule, "IN_PROCESS_MAX_S", 60.0)
    assert not schedule.in_process_auto(spec, spec.n_runs)  # no driver warm


@pytest.mark.cluster
def test_rerun_after_partial_sweep_trains_only_the_missing_runs(dask_cluster, tmp_path):
    spec, out = load_spec(SMALL), tmp_path / "out"
    addr = dask_cluster.address
    first = run_sweep(spec, out, scheduler=addr, max_chunk=4, progress=False)
    assert first.trained == spec.n_runs and first.chunks == 16
    before = _tables(out)
    lost = part_files(out)[2:7]
    n_lost = sum(len(pd.read_parquet(p, columns=["run_id"])) for p in lost)
    for p in lost:
        p.unlink()
    # resume with another chunk size: only the missing runs, read from chunk ids
    again = run_sweep(spec, out, scheduler=addr, max_chunk=3, progress=False)
    assert again.resumed_by == "ranges" and again.not_in_spec == 0
    assert (again.already_done, again.trained) == (spec.n_runs - n_lost, n_lost)
    assert again.complete
    assert_one_row_per_run(out, spec)
    _assert_same(out, before, "resumed")
    # compaction keeps the chunk ids: still resumed from them, nothing to train
    store = open_store(out, spec.source)
    assert store.compact()["units_created"] >= 1
    done = run_sweep(spec, out, scheduler=addr, progress=False)
    assert done.resumed_by == "ranges"
    assert (done.already_done, done.trained, done.chunks) == (spec.n_runs, 0, 0)
    _assert_same(out, before, "compacted")


@pytest.mark.cluster
def test_parts_of_other_chunk_ids_fall_back_to_ids(dask_cluster, tmp_path):
    """A directory holding parts written by Store.write_chunk with hash chunk ids
    (an older layout, or a hand-written chunk) is resumed exactly by run id."""
    from sweepengine.sweep.worker import train_chunk

    spec, out = load_spec(SMALL), tmp_path / "out"
    ref_out = tmp_path / "ref"
    run_sweep(spec, ref_out, scheduler=dask_cluster.address, progress=False)
    ref = _tables(ref_out)
    # runs 3..10 and 40..45 (crossing shape boundaries), written under hash chunk ids
    picked = list(spec.runs(3, 11)) + list(spec.runs(40, 46))
    store = open_store(out, spec.source)
    with store.lock():
        for cid, runs in chunk_runs(picked, 4):
            res = train_chunk(cid, runs, spec.name)
            store.write_chunk(cid, res.runs, res.stalls, res.curves)
    report = run_sweep(spec, out, scheduler=dask_cluster.address, max_chunk=4, progress=False)
    assert report.resumed_by == "ids" and report.not_in_spec == 0
    assert (report.already_done, report.trained) == (len(picked), spec.n_runs - len(picked))
    assert report.complete
    assert_one_row_per_run(out, spec)
    _assert_same(out, ref, "fallback")
    again = run_sweep(spec, out, scheduler=dask_cluster.address, progress=False)
    assert (again.already_done, again.trained) == (spec.n_runs, 0)


def _unshare_ok() -> bool:
    exe = shutil.which("unshare")
    if exe is None:
        return False
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        probe = subprocess.run([exe, "-rm", "true"], capture_output=True, timeout=30)
        return probe.returncode == 0
    return False


@pytest.mark.cluster
@pytest.mark.skipif(not _unshare_ok(), reason="needs unprivileged user+mount namespaces")
def test_workers_that_cannot_see_the_directory_return_their_results(tmp_path):
    """A worker whose view of the results directory's path is another file system
    (here: an empty tmpfs mounted over it, in a mount namespace of its own, as on a
    cluster without a shared file system) returns its tables; the client writes them."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    procs = start_cluster(tmp_path / "dask", 0)
    try:
        log = open(tmp_path / "blind-worker.log", "wb")  # noqa: SIM115
        cmd = " ".join([
            "mount -t tmpfs none", str(hidden), "&&", "exec", *_exe("dask"), "worker",
            "--scheduler-file", str(procs.scheduler_file), "--nthreads 1 --host 127.0.0.1",
            "--no-dashboard --local-directory", str(tmp_path / "wb"), "--name blind",
        ])  # fmt: skip
        blind = subprocess.Popen(
            ["unshare", "-rm", "sh", "-c", cmd], cwd=tmp_path, env=_env(), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        procs.workers.append(blind)
        procs.wait_for_workers(1)
        spec, out = load_spec(SMALL), hidden / "out"
        report = run_sweep(spec, out, scheduler=procs.address, max_chunk=8, progress=False)
    finally:
        procs.close()
    assert report.complete and report.trained == spec.n_runs
    assert report.written_by_workers == 0 and report.chunks == 8
    assert_one_row_per_run(out, spec)
    with contextlib.suppress(OSError):
        os.rmdir(tmp_path / "wb")


@pytest.mark.cluster
def test_workers_of_another_version_fail_the_chunks(dask_cluster, tmp_path, monkeypatch):
    """Workers compute run ids, which hash the package version: a worker whose version
    is not the client's refuses the chunk (recorded as failed, nothing written)."""
    from sweepengine import _version

    monkeypatch.setattr(_version, "package_version", lambda: "0.0.9")
    spec, out = load_spec(SMALL), tmp_path / "out"
    report = run_sweep(spec, out, scheduler=dask_cluster.address, max_chunk=32, progress=False)
    assert not report.complete and report.trained == 0 and len(report.failed_chunks) == 8
    assert report.failed_runs == spec.n_runs
    errors = {rec["error"] for rec in open_store(out, spec.source).failures()}
    assert len(errors) == 1 and "sweepengine" in errors.pop()
    assert read_runs(out).num_rows == 0

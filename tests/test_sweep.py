"""Sweeps end to end on real Dask clusters: results, invariance to scheduling, faults.

A session fixture starts a scheduler and two workers as separate processes
(``dask scheduler`` / ``dask worker``) on loopback; the fault tests that kill a
worker start their own cluster so the shared one stays whole. Sweeps are tiny
(whitened d = 4, depth 1-2, a few hundred steps) except where a test needs
work in flight to interrupt. Results are read back with pyarrow, pandas and
DuckDB, never through the code that wrote them alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pytest

from sweepengine.store import StoreLockedError, read_curves, read_runs, read_stalls
from sweepengine.sweep import Spec, SpecError, load_spec, run_sweep, worker_env
from tests.conftest import whitened_spec

pytestmark = pytest.mark.cluster
# waits and subprocess timeouts: long enough for a cold Numba compile on a loaded machine
# (conftest.compiled compiles first; only a bug should ever reach them)
COLD = 900

# Columns that say where and how fast a run was computed, not what it computed.
PLACEMENT = ["chunk_id", "worker", "wall_time_s", "compile_time_s"]
STATUSES = {"converged", "max_steps", "diverged"}

# 64 runs in 8 shapes (depth x width x optimizer), all three outcomes: at lr 0.1 some
# depth-2 momentum runs diverge, so NaN/inf values are part of every comparison.
SMALL = whitened_spec(
    "small", seeds=4, max_steps=300, record_every=50,
    problem={"d_x": 4, "d_y": 3, "m": 16, "singular_values": [3.0, 1.0, 0.5]},
    architecture={"depth": [1, 2], "width": [2, 4]}, init={"scale": [1e-2, 0.3]},
    optimizer={"name": ["gd", "momentum"], "lr": 0.1, "beta": 0.9},
)  # fmt: skip


def _exe(name: str) -> list[str]:
    """A console script of this environment (next to the interpreter), else ``python -m``."""
    script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    module = {"dask": "dask", "sweepengine": "sweepengine.cli"}[name]
    return [sys.executable, "-m", module]


def _env() -> dict[str, str]:
    return {**os.environ, **worker_env(), "PYTHONUNBUFFERED": "1"}


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 15.0) -> None:
    """Signal a process started in its own session (and its children), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(wait)


@dataclasses.dataclass
class DaskProcs:
    """A scheduler and workers, each a process group of its own, listening on 127.0.0.1."""

    root: Path
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen]

    @property
    def scheduler_file(self) -> Path:
        return self.root / "scheduler.json"

    def add_worker(self) -> subprocess.Popen:
        i = len(self.workers)
        log = open(self.root / f"worker-{i}.log", "wb")  # noqa: SIM115 (lives with the process)
        proc = subprocess.Popen(
            [*_exe("dask"), "worker", "--scheduler-file", str(self.scheduler_file),
             "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
             "--local-directory", str(self.root / f"w{i}"), "--name", f"w{i}",
             "--death-timeout", "30"],
            cwd=self.root, env=_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, n: int, timeout: float = 300.0) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout) as c:
            c.wait_for_workers(n, timeout=timeout)

    def close(self) -> None:
        for p in self.workers:
            _stop(p)
        _stop(self.scheduler)


def start_cluster(root: Path, n_workers: int = 2) -> DaskProcs:
    root.mkdir(parents=True, exist_ok=True)
    sfile = root / "scheduler.json"
    log = open(root / "scheduler.log", "wb")  # noqa: SIM115
    sched = subprocess.Popen(
        [*_exe("dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--scheduler-file", str(sfile), "--no-dashboard"],
        cwd=root, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    procs = DaskProcs(root, "", sched, [])
    try:
        deadline = time.monotonic() + 300
        while not procs.address:
            if sched.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"scheduler did not start:\n{(root / 'scheduler.log').read_text()}"
                )
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                procs.address = json.loads(sfile.read_text())["address"]
            time.sleep(0.1)
        assert procs.address.startswith("tcp://127.0.0.1:"), procs.address
        for _ in range(n_workers):
            procs.add_worker()
        if n_workers:
            procs.wait_for_workers(n_workers)
    except BaseException:
        procs.close()
        raise
    return procs


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory) -> DaskProcs:
    procs = start_cluster(tmp_path_factory.mktemp("dask"), 2)
    try:
        yield procs
    finally:
        procs.close()


# -- helpers -----------------------------------------------------------------------


def small_spec() -> Spec:
    return load_spec(SMALL)


def heavy_spec(seeds: int) -> str:
    """Work to interrupt: 2 x ``seeds`` runs of 40k steps at an lr too small to converge
    (about 0.1 s per run on one thread), no curves."""
    return whitened_spec(
        "heavy", seeds=seeds, max_steps=40_000,
        problem={"d_x": 4, "d_y": 4, "m": 16, "singular_values": [3.0, 2.0, 1.0, 0.5]},
        architecture={"depth": [1, 2], "width": 4}, init={"scale": 0.1},
        optimizer={"name": "gd", "lr": 2e-4},
    )  # fmt: skip


def spec_ids(spec: Spec) -> list[str]:
    return sorted(r.run_id for r in spec.runs())


def runs_frame(out: Path) -> pd.DataFrame:
    df = read_runs(out).to_pandas().drop(columns=PLACEMENT)
    return df.sort_values("run_id").reset_index(drop=True)


def sorted_frame(table, keys: list[str]) -> pd.DataFrame:
    return table.to_pandas().sort_values(keys).reset_index(drop=True)


def sql(query: str) -> list[tuple]:
    return duckdb.sql(query).fetchall()


def part_files(out: Path, table: str = "runs") -> list[Path]:
    d = out / table
    return sorted(d.glob("*.parquet")) if d.is_dir() else []


def assert_one_row_per_run(out: Path, spec: Spec) -> pd.DataFrame:
    runs = read_runs(out).to_pandas()
    assert not runs.run_id.duplicated().any()
    assert sorted(runs.run_id) == spec_ids(spec)
    # a plain Parquet reader sees the same rows: no stray or doubled files
    plain = ds.dataset(out / "runs", format="parquet").to_table(columns=["run_id"])
    assert sorted(plain.column("run_id").to_pylist()) == spec_ids(spec)
    return runs


def cli_run(spec_path: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*_exe("sweepengine"), "run", str(spec_path), "--out", str(out), "-q", *extra],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def trained_count(stdout: str) -> tuple[int, int]:
    m = re.search(r"(\d+) runs trained in .*?; (\d+) were already done", stdout)
    assert m, stdout
    return int(m[1]), int(m[2])


def wait_for(cond, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- results on an external cluster ------------------------------------------------


def test_sweep_on_external_cluster(dask_cluster, tmp_path):
    spec, out = small_spec(), tmp_path / "out"
    report = run_sweep(spec, out, scheduler=dask_cluster.address, progress=False)
    assert report.complete and report.trained == spec.n_runs == 64
    assert report.already_done == 0 and not report.failed_chunks

    runs = assert_one_row_per_run(out, spec)
    assert set(runs.status) <= STATUSES
    assert set(runs.status) == STATUSES  # the spec covers all three
    assert set(runs.sweep) == {"small"}
    workers = set(runs.worker)
    assert workers and all(w.startswith("tcp://127.0.0.1:") for w in workers)

    pdf = pd.read_parquet(out / "runs")
    assert len(pdf) == spec.n_runs and pdf.run_id.is_unique
    r, s, c = (f"'{out}/{t}/*.parquet'" for t in ("runs", "stalls", "curves"))
    assert sql(f"select count(*), count(distinct run_id) from {r}") == [(64, 64)]
    [(n_stalls,)] = sql(f"select count(*) from {s}")
    assert n_stalls > 0
    assert sql(f"select count(*) from {s} join {r} using (run_id)") == [(n_stalls,)]
    # every run's n_stalls counts its stall rows (max_stalls is not reached here)
    miscounted = sql(f"""
        select r.run_id from {r} r left join {s} s using (run_id)
        group by r.run_id, r.n_stalls having count(s.run_id) != r.n_stalls""")
    assert miscounted == []
    # curves: every point belongs to a run, every run has points, at multiples of 50
    assert sql(f"select count(*) from {c} anti join {r} using (run_id)") == [(0,)]
    assert sql(f"select count(distinct run_id) from {c}") == [(64,)]
    assert sql(f"select count(*) from {c} where step % 50 != 0") == [(0,)]


def test_results_do_not_depend_on_chunking_or_scheduling(dask_cluster, tmp_path):
    spec = small_spec()
    outs = {
        "external": tmp_path / "external",
        "chunk1": tmp_path / "chunk1",
        "chunk7": tmp_path / "chunk7",
        "local": tmp_path / "local",
    }
    reports = {
        "external": run_sweep(spec, outs["external"], scheduler=dask_cluster.address,
                              progress=False),
        "chunk1": run_sweep(spec, outs["chunk1"], scheduler=dask_cluster.address, max_chunk=1,
                            progress=False),
        "chunk7": run_sweep(spec, outs["chunk7"], scheduler=dask_cluster.address, max_chunk=7,
                            progress=False),
        "local": run_sweep(spec, outs["local"], n_workers=2, progress=False),
    }  # fmt: skip
    assert all(r.complete and r.trained == spec.n_runs for r in reports.values())
    assert reports["chunk1"].chunks == spec.n_runs
    # 8 shapes of 8 runs: chunks of at most 7 split each shape in two
    assert reports["chunk7"].chunks == 16
    chunk_sizes = read_runs(outs["chunk7"], ["chunk_id"]).to_pandas().chunk_id.value_counts()
    assert sorted(set(chunk_sizes)) == [1, 7]

    ref = runs_frame(outs["external"])
    ref_stalls = sorted_frame(read_stalls(outs["external"]), ["run_id", "stall_index"])
    ref_curves = sorted_frame(read_curves(outs["external"]), ["run_id", "step"])
    assert len(ref_stalls) and len(ref_curves)
    for name in ("chunk1", "chunk7", "local"):
        pd.testing.assert_frame_equal(runs_frame(outs[name]), ref, check_exact=True, obj=name)
        stalls = sorted_frame(read_stalls(outs[name]), ["run_id", "stall_index"])
        pd.testing.assert_frame_equal(stalls, ref_stalls, check_exact=True, obj=name)
        curves = sorted_frame(read_curves(outs[name]), ["run_id", "step"])
        pd.testing.assert_frame_equal(curves, ref_curves, check_exact=True, obj=name)


# -- resume -----------------------------------------------------------------------


def test_resume_trains_only_missing_runs(dask_cluster, tmp_path):
    spec, out = small_spec(), tmp_path / "out"
    first = run_sweep(spec, out, scheduler=dask_cluster.address, max_chunk=4, progress=False)
    assert first.trained == spec.n_runs and first.chunks == 16
    before = runs_frame(out)

    lost = part_files(out)[3:6]
    lost_ids = set(ds.dataset(lost, format="parquet").to_table(["run_id"])["run_id"].to_pylist())
    assert len(lost_ids) == 12
    for p in lost:
        p.unlink()
    assert len(read_runs(out)) == spec.n_runs - 12

    again = run_sweep(spec, out, scheduler=dask_cluster.address, max_chunk=4, progress=False)
    assert (again.already_done, again.trained, again.chunks) == (spec.n_runs - 12, 12, 3)
    assert again.complete
    assert_one_row_per_run(out, spec)
    pd.testing.assert_frame_equal(runs_frame(out), before, check_exact=True)
    # the orphaned stalls/curves files of the deleted parts were cleaned up, not doubled
    stalls = read_stalls(out).to_pandas()
    assert not stalls.duplicated(["run_id", "stall_index"]).any()

    done = run_sweep(spec, out, scheduler=dask_cluster.address, progress=False)
    assert (done.already_done, done.trained, done.chunks) == (spec.n_runs, 0, 0)
    assert done.complete


def test_corrupt_part_is_quarantined_and_redone(dask_cluster, tmp_path):
    spec, out = small_spec(), tmp_path / "out"
    run_sweep(spec, out, scheduler=dask_cluster.address, max_chunk=4, progress=False)
    before = runs_frame(out)
    victim = part_files(out)[5]
    n_victim = ds.dataset(victim, format="parquet").count_rows()
    size = victim.stat().st_size
    with open(victim, "r+b") as f:
        f.truncate(size // 2)

    again = run_sweep(spec, out, scheduler=dask_cluster.address, max_chunk=4, progress=False)
    assert again.trained == n_victim == 4
    assert again.already_done == spec.n_runs - n_victim
    assert_one_row_per_run(out, spec)
    pd.testing.assert_frame_equal(runs_frame(out), before, check_exact=True)
    quarantined = list((out / "quarantine" / "runs").iterdir())
    assert len(quarantined) == 1 and quarantined[0].name.startswith(victim.name)


# -- faults -----------------------------------------------------------------------


def test_killed_worker_chunks_rerun_on_survivor(tmp_path):
    """SIGKILL a worker (nanny and all) mid-chunk: Dask reruns its chunks on the survivor."""
    from distributed import Client

    procs = start_cluster(tmp_path / "dask", 2)
    try:
        spec, out = load_spec(heavy_spec(12)), tmp_path / "out"  # 24 runs, ~3 s of work
        victim = procs.workers[0]
        seen: dict[str, object] = {}

        def killer() -> None:
            with Client(procs.address) as c:
                workers = c.scheduler_info(n_workers=-1)["workers"]
                [addr] = [a for a, w in workers.items() if w["name"] == "w0"]
                # once a chunk is written both workers are busy with their next ones
                wait_for(lambda: len(part_files(out)) >= 1, COLD, "the first part")
                seen["held"] = [str(k) for k in c.processing(workers=[addr])[addr]]
                os.killpg(victim.pid, signal.SIGKILL)
                seen["addr"] = addr

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        report = run_sweep(spec, out, scheduler=procs.address, max_chunk=2, progress=False)
        t.join(10)
        assert victim.wait(10) == -signal.SIGKILL
        assert report.complete and not report.failed_chunks
        assert report.trained == spec.n_runs and report.chunks == 12
        runs = assert_one_row_per_run(out, spec)
        assert set(runs.status) <= STATUSES
        held = {k.removeprefix("chunk-") for k in seen["held"]}
        assert held, "the victim held no chunk when it was killed"
        redone = runs[runs.chunk_id.isin(held)]
        assert len(redone) == 2 * len(held)
        assert seen["addr"] not in set(redone.worker)  # finished by the survivor
    finally:
        procs.close()


def test_killed_client_rerun_trains_exactly_the_missing_runs(dask_cluster, tmp_path):
    text = heavy_spec(16)  # 32 runs, ~3 s of work on two workers
    spec_path = tmp_path / "heavy.toml"
    spec_path.write_text(text)
    spec, out = load_spec(text), tmp_path / "out"
    args = ("--scheduler", dask_cluster.address, "--chunk", "2")

    proc = cli_run(spec_path, out, *args)
    try:
        wait_for(lambda: len(part_files(out)) >= 2, COLD, "two parts", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        _stop(proc, signal.SIGKILL)
    # chunks already running on the workers when the client died still finish, and the
    # workers (which see the directory) write them: count once no worker is executing
    # (cancelled tasks still running count; the scheduler has forgotten them)
    from distributed import Client

    def idle() -> bool:
        counts = c.run(lambda dask_worker: dask_worker.state.executing_count)
        return not any(counts.values())

    with Client(dask_cluster.address) as c:
        wait_for(idle, COLD, "the orphaned chunks")
    n_done = len(read_runs(out))
    assert 2 * 2 <= n_done < spec.n_runs

    rerun = subprocess.run(
        [*_exe("sweepengine"), "run", str(spec_path), "--out", str(out), "-q", *args],
        env=_env(), capture_output=True, text=True, timeout=COLD,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    trained, already = trained_count(rerun.stdout)
    assert (trained, already) == (spec.n_runs - n_done, n_done)
    assert_one_row_per_run(out, spec)


def test_second_sweep_into_locked_dir_is_refused(dask_cluster, tmp_path, monkeypatch, capsys):
    from sweepengine.cli import main

    text = heavy_spec(16)
    spec_path = tmp_path / "heavy.toml"
    spec_path.write_text(text)
    spec, out = load_spec(text), tmp_path / "out"
    proc = cli_run(spec_path, out, "--scheduler", dask_cluster.address, "--chunk", "2")
    try:

        def locked_by_proc() -> bool:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                return json.loads((out / ".lock").read_text())["pid"] == proc.pid
            return False

        wait_for(locked_by_proc, COLD, "the first sweep to take the lock", proc)
        with pytest.raises(StoreLockedError, match=rf"locked by another sweep.*{proc.pid}"):
            run_sweep(spec, out, scheduler=dask_cluster.address, progress=False)

        monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", "warning")
        code = main(["run", str(spec_path), "--out", str(out), "-q",
                     "--scheduler", dask_cluster.address])  # fmt: skip
        assert code == 2
        assert "locked by another sweep" in capsys.readouterr().err

        stdout, stderr = proc.communicate(timeout=COLD)
        assert proc.returncode == 0, stderr
    finally:
        _stop(proc, signal.SIGKILL)
    assert trained_count(stdout) == (spec.n_runs, 0)
    assert_one_row_per_run(out, spec)


@pytest.mark.slow
def test_lost_scheduler_stops_the_sweep_and_rerun_finishes(tmp_path):
    """Kill the scheduler mid-sweep: run_sweep returns (no hang), incomplete; a rerun
    on a new cluster trains exactly the missing runs."""
    import dask

    procs = start_cluster(tmp_path / "dask", 2)
    spec, out = load_spec(heavy_spec(12)), tmp_path / "out"
    try:

        def killer() -> None:
            wait_for(lambda: len(part_files(out)) >= 1, COLD, "the first part")
            os.killpg(procs.scheduler.pid, signal.SIGKILL)

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        with dask.config.set({"distributed.comm.timeouts.connect": "3s"}):
            t0 = time.monotonic()
            report = run_sweep(spec, out, scheduler=procs.address, max_chunk=2, progress=False)
        t.join(5)
        assert time.monotonic() - t0 < COLD  # a hang guard, not a timing
        assert not report.complete and report.failed_chunks
    finally:
        procs.close()
    n_done = len(read_runs(out))
    # chunks the workers were training when the scheduler died may have been written by
    # them (they see the directory) without the client hearing of it: on disk, once
    assert report.trained <= n_done < spec.n_runs

    procs = start_cluster(tmp_path / "dask2", 2)
    try:
        again = run_sweep(spec, out, scheduler=procs.address, max_chunk=2, progress=False)
    finally:
        procs.close()
    assert (again.already_done, again.trained) == (n_done, spec.n_runs - n_done)
    assert again.complete
    assert_one_row_per_run(out, spec)


def test_oversized_batch_is_refused_before_anything_runs():
    text = SMALL.replace('name = ["gd", "momentum"]', 'name = ["gd", "sgd"]').replace(
        "beta = 0.9", "batch_size = 64"
    )
    with pytest.raises(SpecError, match=r"optimizer.batch_size.*exceeds the number of samples"):
        load_spec(text)


def test_failing_chunk_is_recorded_as_failed(dask_cluster, tmp_path):
    """A chunk whose training raises becomes rows with status 'failed' and the error.

    Validation refuses such specs, so the runs are built past it: SGD with a
    mini-batch larger than the data set, which the trainer rejects on the worker.
    The task itself succeeds (failure is an outcome, the error names the run).
    """
    from distributed import Client

    from sweepengine.options import make_optimizer
    from sweepengine.store import open_store
    from sweepengine.sweep.worker import train_chunk

    spec = load_spec(SMALL)
    runs = [dataclasses.replace(r, optimizer=make_optimizer("sgd", 0.05, batch_size=64))
            for r in spec.runs(0, 3)]  # fmt: skip
    with Client(dask_cluster.address) as c:
        res = c.submit(train_chunk, "failing", runs, spec.name, pure=False).result()
    store = open_store(tmp_path / "out", spec.source)
    with store.lock():
        store.write_chunk(res.chunk_id, res.runs, res.stalls, res.curves)
    got = pd.read_parquet(tmp_path / "out" / "runs")
    assert sorted(got.run_id) == sorted(r.run_id for r in runs)
    assert (got.status == "failed").all() and (got.steps == 0).all()
    assert got.error.str.contains("batch_size 64 exceeds the number of samples m=16").all()
    assert got.error.str.contains("run 0 of the batch").all()
    # rows with status "failed" never count as done (run_sweep never stores them: it
    # retries the chunk or records the failure in OUT/failed/, see test_sweep_faults.py)
    assert store.done_run_ids() == set()


def test_cluster_listens_on_loopback_only(dask_cluster):
    from distributed import Client

    with Client(dask_cluster.address) as c:
        info = c.scheduler_info(n_workers=-1)
    addrs = [dask_cluster.address, *info["workers"]]
    addrs += [w["nanny"] for w in info["workers"].values() if w.get("nanny")]
    assert all(a.startswith("tcp://127.0.0.1:") for a in addrs), addrs


def test_local_cluster_is_private_and_keeps_short_comm_logs():
    """Loopback and TLS only; and the in-process scheduler does not keep the last 1000
    messages to each worker (each holds a chunk's Run objects: ~1 KB per run of client
    memory)."""
    from sweepengine.sweep.schedule import COMM_LOG, connect

    with connect(n_workers=1) as c:
        info = c.scheduler_info(n_workers=-1)
        assert c.scheduler.address.startswith("tls://127.0.0.1:")
        assert all(w.startswith("tls://127.0.0.1:") for w in info["workers"])
        assert c.dashboard_link.startswith("http://127.0.0.1:")
        scheduler = c.cluster.scheduler
        assert scheduler.http_server.address == "127.0.0.1"
        [stream] = scheduler.stream_comms.values()
        limit = COMM_LOG["distributed.admin.low-level-log-length"]
        assert stream.recent_message_log.maxlen == limit <= 100


def test_chunk_size_balances_cost_and_bounds_memory():
    from sweepengine.sweep import schedule as sw

    def spec(depths, seeds, steps=400, record=None):
        return load_spec(whitened_spec(
            "cs", seeds=seeds, max_steps=steps, record_every=record,
            problem={"d_x": 6, "d_y": 6, "m": 16, "singular_values": [3.0, 1.0]},
            architecture={"depth": depths, "width": 6}, init={"scale": 0.1},
            optimizer={"name": "gd", "lr": 0.05},
        ))  # fmt: skip

    def cost(run):
        return run.max_steps * sw.step_cost_s(run.dims)

    # a uniform sweep: CHUNKS_PER_WORKER chunks per worker
    s = spec([1], 4000)
    assert sw.chunk_size(s, 2) == math.ceil(4000 / (sw.CHUNKS_PER_WORKER * 2))
    # cheap and costly shapes: chunks of the costliest runs hold 1/8 of a worker's share
    s = spec([0, 6], 4000)
    runs = list(s.runs())
    share = sum(map(cost, runs)) / (sw.CHUNKS_PER_WORKER * 2)
    size = sw.chunk_size(s, 2)
    assert size * max(map(cost, runs)) == pytest.approx(share, rel=0.1)
    assert size < math.ceil(8000 / (sw.CHUNKS_PER_WORKER * 2))
    assert sw.chunk_size(spec([1], 20), 2) == sw.MIN_CHUNK  # not below one lock-step block
    # recorded losses: at most CURVE_BYTES per chunk
    big = spec([1], 4000, steps=100_000, record=1)
    assert sw.chunk_size(big, 2) * 8 * 100_001 <= sw.CURVE_BYTES

"""Sweeps on a real SLURM: jobs submitted, started, cancelled, timed out and orphaned.

Needs a running SLURM whose default partition is ``compute`` (``ci/slurm-up.sh``
starts one on this machine, as root; ``.ci/run`` does so for ``pytest -m slurm``).
Without one, every test here is skipped, with the reason.

The site set-up is the worked example of docs/clusters.md, run as written: its
shell blocks and its ``jobqueue.yaml`` are read out of the file, with
``/shared/proj42/sweeps`` replaced by a temporary directory (the shared
directory: Python environment, Dask configuration, Numba cache, job logs). Only
this machine's size is overridden, through ``DASK_JOBQUEUE__SLURM__*``
variables (see ``MACHINE``). The Numba cache is warmed once by the docs' ``srun``
step, so no job compiles.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sweepengine.store import read_curves, read_runs, read_stalls
from sweepengine.sweep import load_spec, worker_env
from tests.conftest import whitened_spec

pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed (extra 'jobqueue')")

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "clusters.md"
PLACEHOLDER = "/shared/proj42/sweeps"
JOB_NAME = "sweep-worker"  # jobqueue.slurm.name in the docs' jobqueue.yaml
PLACEMENT = ["chunk_id", "worker", "wall_time_s", "compile_time_s"]

# This machine is not a 32-core node on InfiniBand: one single-core job per worker
# (2 jobs fill it), loopback, short timeouts so faults resolve in seconds.
MACHINE = {
    "DASK_JOBQUEUE__SLURM__CORES": "1",
    "DASK_JOBQUEUE__SLURM__PROCESSES": "1",
    "DASK_JOBQUEUE__SLURM__MEMORY": "1GiB",
    "DASK_JOBQUEUE__SLURM__INTERFACE": "lo",
    "DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS": (
        "{'interface': 'lo', 'dashboard_address': '127.0.0.1:0'}"
    ),
    "DASK_JOBQUEUE__SLURM__DEATH_TIMEOUT": "20",
    # an ended job is replaced this long after its workers left (default 15 s)
    "DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT": "'5s'",
}
SWEEP_TIMEOUT = 900  # s: generous; a sweep here takes seconds to a few minutes
COLD_TIMEOUT = 1200  # s: the warm-up compiles every kernel cold (~90 s on 2 idle cores)


# -- SLURM and the site --------------------------------------------------------------


def slurm_missing() -> str | None:
    """Why the tests cannot run here, or None when a SLURM node is up."""
    for cmd in ("sbatch", "squeue", "scancel", "srun", "sinfo"):
        if shutil.which(cmd) is None:
            return f"no SLURM here ({cmd} not found): start one with `sudo ci/slurm-up.sh`"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        return "no SLURM is running (sinfo timed out): start one with `sudo ci/slurm-up.sh`"
    states = set(out.stdout.split())
    if out.returncode or not states & {"idle", "mixed", "allocated"}:
        return (
            f"no SLURM node is up (sinfo: {out.stdout.strip() or out.stderr.strip()!r}): "
            "start one with `sudo ci/slurm-up.sh`"
        )
    return None


def docs_block(label: str) -> str:
    """The code block after ``<!-- slurm-example: LABEL -->`` in docs/clusters.md."""
    m = re.search(
        rf"<!-- slurm-example: {re.escape(label)} -->\s*```\w+\n(.*?)```", DOCS.read_text(), re.S
    )
    assert m, f"no block {label!r} in {DOCS}"
    return m[1]


def our_jobs() -> list[str]:
    out = subprocess.run(
        ["squeue", "--noheader", "--name", JOB_NAME, "-o", "%i %T"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return out.stdout.split("\n")[:-1] if out.stdout else []


def wait_for(cond, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"sweep exited ({proc.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def wait_for_no_jobs(timeout: float = 120) -> None:
    """(e) No orphans: every job of ours has left squeue (a killed client's jobs
    go by themselves, after their workers' death-timeout)."""
    wait_for(lambda: not our_jobs(), timeout, f"no {JOB_NAME} job in squeue")


class Site:
    """The shared directory of docs/clusters.md's worked example, on this machine."""

    def __init__(self, root: Path):
        self.root = root
        self.cache = root / "numba-cache"
        self.logs = root / "logs"
        (root / "dask").mkdir(parents=True, exist_ok=True)
        (root / "scratch").mkdir(exist_ok=True)
        venv = root / "venv"  # step 1 (pip install into it): this test's environment
        if not venv.exists():
            venv.symlink_to(sys.prefix, target_is_directory=True)
        assert (venv / "bin" / "activate").exists(), f"{sys.prefix} is not a venv"
        yaml = docs_block("jobqueue.yaml").replace(PLACEHOLDER, str(root))
        (root / "dask" / "jobqueue.yaml").write_text(yaml)
        self.env = {
            **os.environ, **worker_env(), **MACHINE,
            "PYTHONUNBUFFERED": "1", "TMPDIR": str(root / "scratch"),
        }  # fmt: skip
        self.setup = docs_block("env").replace(PLACEHOLDER, str(root))

    def bash(self, script: str, timeout: float) -> subprocess.CompletedProcess:
        """Run a docs block after the docs' environment block, in the repository."""
        script = self.setup + script.replace(PLACEHOLDER, str(self.root))
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def sweep(self, spec: Path, out: Path, *args: str, **env: str) -> subprocess.Popen:
        """``sweepengine run SPEC --out OUT --cluster slurm ARGS`` in the docs' environment."""
        script = self.setup + 'exec sweepengine run "$@"'
        return subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script, "sweep", str(spec), "--out", str(out),
             "-q", "--cluster", "slurm", *args],
            cwd=ROOT, env={**self.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip

    def cache_state(self) -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(self.cache)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in self.cache.rglob("*")
            if p.is_file()
        }

    def job_logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.err")))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    reason = slurm_missing()
    if reason:
        pytest.skip(reason)
    # SWEEPENGINE_SLURM_SITE: keep the shared directory (and its warm cache) between
    # sessions while working on these tests
    keep = os.environ.get("SWEEPENGINE_SLURM_SITE")
    s = Site(Path(keep) if keep else tmp_path_factory.mktemp("sweeps"))
    assert not our_jobs(), f"{JOB_NAME} jobs already queued: {our_jobs()}"
    warm = s.bash(docs_block("warm-up"), COLD_TIMEOUT)
    assert warm.returncode == 0, warm.stdout + warm.stderr
    assert s.cache_state(), "the warm-up wrote no Numba cache"
    return s


@pytest.fixture
def no_orphans(site):
    """Each test starts with no job of ours queued, and leaves none (asserted by the
    test itself); on failure, its jobs are cancelled so the next test starts clean."""
    yield
    if our_jobs():
        subprocess.run(["scancel", "--name", JOB_NAME], timeout=30)
        wait_for_no_jobs(60)


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def finish(proc: subprocess.Popen, timeout: float = SWEEP_TIMEOUT) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    return out, err


def trained_count(stdout: str) -> tuple[int, int]:
    m = re.search(r"(\d+) runs trained in .*?; (\d+) were already done", stdout)
    assert m, stdout
    return int(m[1]), int(m[2])


def assert_every_run_once(out: Path, spec_text: str) -> None:
    spec = load_spec(spec_text)
    ids = read_runs(out, ["run_id"]).column("run_id").to_pylist()
    assert len(ids) == len(set(ids)), "a run was written twice"
    assert sorted(ids) == sorted(r.run_id for r in spec.runs())
    plain = pd.read_parquet(out / "runs", columns=["run_id"])  # no sweepengine reader
    assert sorted(plain.run_id) == sorted(ids)


def n_parts(out: Path) -> int:
    return len(list((out / "runs").glob("*.parquet"))) if (out / "runs").is_dir() else 0


def long_spec(tmp: Path, seeds: int) -> tuple[Path, str]:
    """``seeds`` runs of a million GD steps that stay near the saddle at 0 (lr too
    small to leave it): about 0.5 s of compute each, no curves."""
    text = whitened_spec(
        "long", seeds=seeds, max_steps=1_000_000,
        problem={"d_x": 4, "d_y": 4, "m": 16, "singular_values": [3.0, 2.0, 1.0, 0.5]},
        architecture={"depth": 2, "width": 4}, init={"scale": 0.1},
        optimizer={"name": "gd", "lr": 2e-5},
    )  # fmt: skip
    path = tmp / "long.toml"
    path.write_text(text)
    return path, text


def sorted_frame(table, keys: list[str]) -> pd.DataFrame:
    return table.to_pandas().sort_values(keys).reset_index(drop=True)


# -- the tests ---------------------------------------------------------------------


def test_quick_sweep_on_slurm_matches_embedded(site, no_orphans):
    """(a) The docs' run block, sweeps/quick.toml on 2 jobs: bit-identical to the
    embedded run of the warm-up step, and no job compiled anything."""
    out = site.root / "out" / "quick"
    shutil.rmtree(out, ignore_errors=True)
    cache_before = site.cache_state()
    res = site.bash(docs_block("run"), SWEEP_TIMEOUT)
    assert res.returncode == 0, res.stdout + res.stderr
    spec = load_spec(ROOT / "sweeps" / "quick.toml")
    assert trained_count(res.stdout) == (spec.n_runs, 0)

    embedded = site.root / "warm-up"
    ref = sorted_frame(read_runs(embedded), ["run_id"]).drop(columns=PLACEMENT)
    got = sorted_frame(read_runs(out), ["run_id"]).drop(columns=PLACEMENT)
    assert len(got) == spec.n_runs and not got.run_id.duplicated().any()
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    for reader, keys in (
        (read_stalls, ["run_id", "stall_index"]),
        (read_curves, ["run_id", "step"]),
    ):
        pd.testing.assert_frame_equal(
            sorted_frame(reader(out), keys), sorted_frame(reader(embedded), keys), check_exact=True
        )
    # the jobs loaded every kernel from the shared cache: nothing compiled, nothing written
    assert site.cache_state() == cache_before
    wait_for_no_jobs()


def test_scancel_of_a_job_mid_sweep(site, no_orphans, tmp_path):
    """(b) ``scancel`` one of the two jobs once chunks are being written."""
    spec_path, text = long_spec(tmp_path, seeds=48)
    out = tmp_path / "out"
    proc = site.sweep(spec_path, out, "--jobs", "2", "--chunk", "2")
    try:
        wait_for(lambda: n_parts(out) >= 2, SWEEP_TIMEOUT, "two chunks written", proc)
        running = [j.split()[0] for j in our_jobs() if j.endswith(" RUNNING")]
        assert running, our_jobs()
        victim = running[0]
        subprocess.run(["scancel", victim], check=True, timeout=30)
        written_at_cancel = n_parts(out)
        stdout, stderr = finish(proc)
    finally:
        if proc.returncode is None:
            _stop(proc)
    assert written_at_cancel < 24, "the sweep was over before the job was cancelled"
    assert trained_count(stdout) == (48, 0)
    assert_every_run_once(out, text)
    wait_for(lambda: f"JOB {victim} ON" in site.job_logs(), 30, "the cancelled job's log")
    assert re.search(rf"JOB {victim} ON \S+ CANCELLED", site.job_logs())
    wait_for_no_jobs()


def run_cpu_seconds(site: Site, tmp: Path) -> float:
    """CPU seconds one run of ``long_spec`` takes here, on one thread (a chunk of 4)."""
    _, text = long_spec(tmp, seeds=4)
    code = (
        "import sys, time, numba; from sweepengine.sweep import load_spec, chunk_runs; "
        "from sweepengine.sweep.worker import train_chunk, warm_up; numba.set_num_threads(1); "
        "warm_up(); spec = load_spec(sys.stdin.read()); "
        "cid, runs = next(chunk_runs(spec.runs(), 4)); train_chunk(cid, runs[:1], spec.name); "
        "t = time.process_time(); train_chunk(cid, runs, spec.name); "
        "print((time.process_time() - t) / len(runs))"
    )
    env = {**site.env, "NUMBA_CACHE_DIR": str(site.cache)}
    res = subprocess.run(
        [sys.executable, "-c", code], input=text, env=env, capture_output=True, text=True,
        timeout=COLD_TIMEOUT, check=True,
    )  # fmt: skip
    return float(res.stdout.split()[-1])


def test_walltime_ends_jobs_mid_sweep(site, no_orphans, tmp_path):
    """(c) One job of 1 minute of walltime, a sweep of 100 s of compute here:
    SLURM ends the job mid-sweep (60-90 s after its start: slurmctld checks time
    limits every 30 s), sweepengine submits another, the sweep finishes."""
    # sized on this machine's speed: more than the 90 s a job can compute
    n = max(40, math.ceil(100 / run_cpu_seconds(site, tmp_path)))
    spec_path, text = long_spec(tmp_path, seeds=n)
    out = tmp_path / "out"
    proc = site.sweep(
        spec_path, out, "--jobs", "1", "--chunk", "4",
        DASK_JOBQUEUE__SLURM__WALLTIME="00:01:00",
    )  # fmt: skip
    try:
        stdout, stderr = finish(proc, timeout=2 * SWEEP_TIMEOUT)
    finally:
        if proc.returncode is None:
            _stop(proc)
    assert trained_count(stdout) == (n, 0)
    assert_every_run_once(out, text)
    logs = site.job_logs()
    assert "DUE TO TIME LIMIT" in logs, "no job reached its walltime: make the sweep longer"
    assert "has ended" in stderr and "submitting a replacement" in stderr, stderr
    wait_for_no_jobs()


def test_killed_client_rerun(site, no_orphans, tmp_path):
    """(d) SIGKILL ``sweepengine run`` mid-sweep, rerun it: every run exactly once;
    (e) the killed client's job goes by itself (its workers' death-timeout)."""
    spec_path, text = long_spec(tmp_path, seeds=32)
    out = tmp_path / "out"
    args = ("--jobs", "1", "--chunk", "2")
    proc = site.sweep(spec_path, out, *args)
    try:
        wait_for(lambda: n_parts(out) >= 2, SWEEP_TIMEOUT, "two chunks written", proc)
        os.kill(proc.pid, signal.SIGKILL)  # the client only: it hosts the scheduler
        proc.communicate(timeout=30)
    finally:
        if proc.returncode is None:
            _stop(proc)
    n_done = len(read_runs(out, ["run_id"]))
    assert 2 * 2 <= n_done < 32

    rerun = site.sweep(spec_path, out, *args)
    try:
        stdout, _ = finish(rerun)
    finally:
        if rerun.returncode is None:
            _stop(rerun)
    assert trained_count(stdout) == (32 - n_done, n_done)
    assert_every_run_once(out, text)
    wait_for_no_jobs()

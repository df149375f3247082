"""Exactly once at the sweep level, with real clusters and real processes.

Failed chunks (made to fail through the worker's documented test hook,
``SWEEPENGINE_INJECT_FAULT``, in real worker processes), resume by run id with
rows of another spec or another package version in the directory, and the
embedded cluster's TLS: a client without its credentials cannot submit work.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pytest

from sweepengine import _version
from sweepengine.store import VersionMismatchError, open_store, read_runs
from sweepengine.sweep import load_spec, run_sweep
from tests.test_sweep import (
    SMALL,
    _env,
    _exe,
    assert_one_row_per_run,
    part_files,
    runs_frame,
    trained_count,
)

pytestmark = pytest.mark.cluster

# 16 runs, 2 shapes (depth 1 and 2): chunks of 4 -> 4 chunks
TINY = (
    SMALL.replace("width = [2, 4]", "width = 2")
    .replace('name = ["gd", "momentum"]', 'name = "gd"')
    .replace("beta = 0.9\n", "")
)


def cli(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_exe("sweepengine"), *args], env={**_env(), **(env or {})}, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip


def status(out) -> dict:
    proc = cli("status", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    path = root / "tiny.toml"
    path.write_text(TINY)
    spec = load_spec(TINY)
    assert spec.n_runs == 16
    clean = root / "clean"
    proc = cli("run", str(path), "--out", str(clean), "--workers", "1", "--chunk", "4", "-q")
    assert proc.returncode == 0, proc.stderr
    return path, spec, clean


def test_failed_chunks_are_retried_listed_and_retried_on_request(tiny, tmp_path):
    path, spec, clean = tiny
    fault = tmp_path / "fault"
    args = ("run", str(path), "--out", str(tmp_path / "out"), "--workers", "1", "--chunk", "4",
            "-q")  # fmt: skip
    env = {"SWEEPENGINE_INJECT_FAULT": str(fault)}

    # one attempt fails (an OSError: may not recur), the retry succeeds: exit 0
    fault.write_text("1")
    once = cli(*args, env=env)
    assert once.returncode == 0, once.stderr
    assert fault.read_text() == "0"
    assert trained_count(once.stdout) == (16, 0)
    pd.testing.assert_frame_equal(runs_frame(tmp_path / "out"), runs_frame(clean),
                                  check_exact=True)  # fmt: skip

    # every attempt fails: 1 + 2 retries per chunk, nothing stored, exit 1, listed
    out = tmp_path / "out2"
    args = (*args[:3], str(out), *args[4:])
    fault.write_text("1000000")
    always = cli(*args, env=env)
    assert always.returncode == 1, always.stderr
    assert int(fault.read_text()) == 1000000 - 4 * 3
    assert "16 runs failed" in always.stderr and "--retry-failed" in always.stderr
    assert trained_count(always.stdout) == (0, 0)
    assert read_runs(out).num_rows == 0  # failed runs are never results
    info = status(out)
    assert info["failed_runs"] == 16 and len(info["failures"]) == 4
    assert all(f["attempts"] == 3 and "injected fault" in f["error"] for f in info["failures"])
    assert info["complete"] is False and info["spec_runs_failed"] == 16 and info["pending"] == 0

    # a plain rerun skips them (same error again) and still exits 1
    fault.unlink()  # the cause is removed
    again = cli(*args, env=env)
    assert again.returncode == 1 and "16 failed before and were skipped" in again.stderr
    assert trained_count(again.stdout) == (0, 0)
    # --retry-failed trains them: everything done, records gone, equal to a clean run
    fixed = cli(*args, "--retry-failed", env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert trained_count(fixed.stdout) == (16, 0)
    info = status(out)
    assert info["failures"] == [] and info["complete"] is True and info["runs_done"] == 16
    assert not list((out / "failed").glob("*.json"))
    assert_one_row_per_run(out, spec)
    pd.testing.assert_frame_equal(runs_frame(out), runs_frame(clean), check_exact=True)


def test_permanent_errors_are_not_retried():
    from sweepengine.sweep.schedule import worth_retrying

    assert not worth_retrying("ValueError: run 1 of the batch: batch_size 100 exceeds ...")
    assert not worth_retrying("numpy.linalg.LinAlgError: SVD did not converge")
    assert worth_retrying("MemoryError")
    assert worth_retrying("OSError: [Errno 28] No space left on device")
    assert worth_retrying("numba.core.errors.NumbaError: cache file unreadable")


def test_resume_matches_ids_not_counts(tiny, tmp_path):
    """Rows of another spec in OUT (as many as the parts deleted) used to make a resume
    count the sweep complete; by id, exactly the missing runs are trained."""
    import shutil

    path, spec, clean = tiny
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    lost = part_files(out)[:2]
    n_lost = sum(pd.read_parquet(p).shape[0] for p in lost)
    foreign = read_runs(out).slice(0, n_lost + 3)
    old_ids = pa.array([f"0ld{r}" for r in foreign["run_id"].to_pylist()])
    foreign = foreign.set_column(0, "run_id", old_ids)
    foreign = foreign.set_column(2, "chunk_id", pa.array(["old-spec"] * foreign.num_rows))
    store = open_store(out)
    with store.lock():
        store.write_chunk("old-spec", foreign)
    for p in lost:
        p.unlink()
    assert len(read_runs(out)) >= spec.n_runs  # a count would say: done
    assert status(out)["complete"] is False and status(out)["pending"] == n_lost

    report = run_sweep(spec, out, n_workers=1, max_chunk=4, progress=False)
    assert (report.trained, report.already_done) == (n_lost, spec.n_runs - n_lost)
    assert report.not_in_spec == n_lost + 3 and report.complete
    info = status(out)
    assert info["complete"] is True and info["not_in_spec"] == n_lost + 3
    mine = runs_frame(out)
    mine = mine[~mine.run_id.str.startswith("0ld")].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, runs_frame(clean), check_exact=True)


def test_version_change_refused_then_moved_aside(tiny, tmp_path, monkeypatch):
    path, spec, clean = tiny
    out = tmp_path / "out"
    monkeypatch.setattr(_version, "package_version", lambda: "0.0.9")
    old_spec = load_spec(TINY)  # run ids of version 0.0.9
    old_ids = {r.run_id for r in old_spec.runs()}
    # workers compute run ids: in this process (threads), where the old version is set
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
        ) as lc,
        Client(lc) as c,
    ):
        report = run_sweep(old_spec, out, client=c, max_chunk=4, progress=False)
    assert report.complete
    monkeypatch.undo()
    assert not old_ids & {r.run_id for r in spec.runs()}

    info = status(out)  # made by 0.0.9, read by this version: not complete
    assert info["package_version"] == "0.0.9" and info["complete"] is False
    assert info["spec_runs_done"] == 0 and "0.0.9" in info["version_note"]
    with pytest.raises(VersionMismatchError, match=r"0\.0\.9.*--allow-version-change"):
        run_sweep(spec, out, n_workers=1, progress=False)
    refused = cli("run", str(path), "--out", str(out), "--workers", "1", "-q")
    assert refused.returncode == 2 and "--allow-version-change" in refused.stderr

    moved = cli("run", str(path), "--out", str(out), "--workers", "1", "--chunk", "4", "-q",
                "--allow-version-change")  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert trained_count(moved.stdout) == (16, 0)
    assert_one_row_per_run(out, spec)
    pd.testing.assert_frame_equal(runs_frame(out), runs_frame(clean), check_exact=True)
    old = read_runs(out / "previous" / "0.0.9")
    assert set(old["run_id"].to_pylist()) == old_ids  # kept, apart
    info = status(out)
    assert info["complete"] is True and info["previous_versions"][0]["version"] == "0.0.9"


_INTRUDER = r"""
import sys
from distributed import Client
from distributed.security import Security

addr, how = sys.argv[1], sys.argv[2]
sec = {"none": None, "other": Security.temporary()}[how]
try:
    with Client(addr, security=sec, timeout="5s") as c:
        print("RESULT", c.submit(sum, [1, 2]).result(timeout=10), flush=True)
except Exception as e:  # refused: the expected outcome
    print("REFUSED", type(e).__name__, flush=True)
"""


def test_embedded_cluster_refuses_clients_without_credentials():
    """Another process (another local user, on a shared login node) tries to submit a
    task: with plain tcp://, with TLS but no credentials, with someone else's
    temporary credentials. None gets a result; the sweep's own client still works."""
    from sweepengine.sweep.schedule import connect

    with connect(n_workers=1) as c:
        address = c.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert c.submit(sum, [1, 2]).result(timeout=60) == 3  # its own client works
        plain = address.replace("tls://", "tcp://")
        for addr, how in [(plain, "none"), (address, "none"), (address, "other")]:
            try:
                proc = subprocess.run(
                    [sys.executable, "-c", _INTRUDER, addr, how], capture_output=True,
                    text=True, timeout=120,
                )  # fmt: skip
                out = proc.stdout
            except subprocess.TimeoutExpired as e:  # hung in the handshake: no result either
                out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            assert "RESULT" not in out, (addr, how, out)
        assert c.submit(sum, [3, 4]).result(timeout=60) == 7  # and it still works


def test_tls_scheduler_with_site_credentials(tiny, tmp_path):
    """``--scheduler tls://...``: joined with the credentials in dask's configuration;
    without them, refused with a message saying what to set."""
    import dask
    from distributed.security import Security

    from tests.test_sweep import DaskProcs, _stop

    _, spec, clean = tiny
    sec = Security.temporary()
    files = {}
    for name, pem in (("ca", sec.tls_ca_file), ("cert", sec.tls_scheduler_cert),
                      ("key", sec.tls_scheduler_key)):  # fmt: skip
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text(pem)
        files[name].chmod(0o600)
    tls = ["--tls-ca-file", str(files["ca"]), "--tls-cert", str(files["cert"]),
           "--tls-key", str(files["key"])]  # fmt: skip
    sfile = tmp_path / "scheduler.json"
    sched = subprocess.Popen(
        [*_exe("dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--protocol", "tls",
         "--scheduler-file", str(sfile), "--no-dashboard", *tls],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    procs = DaskProcs(tmp_path, "", sched, [])
    try:
        import time

        deadline = time.monotonic() + 60
        while not sfile.exists() or not procs.address:
            assert time.monotonic() < deadline and sched.poll() is None
            try:
                procs.address = json.loads(sfile.read_text())["address"]
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.1)
        assert procs.address.startswith("tls://127.0.0.1:")
        worker = subprocess.Popen(
            [*_exe("dask"), "worker", "--scheduler-file", str(sfile), "--nthreads", "1",
             "--host", "127.0.0.1", "--no-dashboard", "--death-timeout", "30", *tls],
            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        procs.workers.append(worker)
        with pytest.raises(ValueError, match="no client credentials.*tls.ca-file"):
            run_sweep(spec, tmp_path / "refused", scheduler=procs.address, progress=False)
        site = {
            "distributed.comm.tls.ca-file": str(files["ca"]),
            "distributed.comm.tls.client.cert": str(files["cert"]),
            "distributed.comm.tls.client.key": str(files["key"]),
        }
        with dask.config.set(site):
            report = run_sweep(spec, tmp_path / "out", scheduler=procs.address, max_chunk=4,
                               progress=False)  # fmt: skip
        assert report.complete and report.trained == spec.n_runs
        pd.testing.assert_frame_equal(runs_frame(tmp_path / "out"), runs_frame(clean),
                                      check_exact=True)  # fmt: skip
    finally:
        for p in procs.workers:
            _stop(p)
        _stop(sched)


def test_embedded_cluster_without_workers_stops_instead_of_waiting(tiny, tmp_path, monkeypatch):
    """Kill the embedded cluster's worker, then every new worker process as soon as it
    appears (while its nanny is still starting it): with no worker left the sweep
    stops after ``NO_WORKER_S`` (shortened here) instead of waiting for ever; a rerun
    finishes it, equal to a clean run."""
    import threading
    import time

    import psutil

    from sweepengine.sweep import schedule
    from tests.test_sweep import wait_for

    monkeypatch.setattr(schedule, "NO_WORKER_S", 8.0)
    _, spec, clean = tiny
    out = tmp_path / "out"
    me = psutil.Process()
    stop, killed = threading.Event(), []

    def killer() -> None:
        wait_for(lambda: part_files(out), 120, "the first part")
        while not stop.wait(0.05):
            for p in me.children(recursive=False):  # the embedded cluster's workers
                try:
                    if "spawn_main" in " ".join(p.cmdline()):
                        p.kill()
                        killed.append(p.pid)
                except psutil.Error:
                    pass

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        report = run_sweep(spec, out, n_workers=1, max_chunk=1, progress=False, in_process=False)
    finally:
        stop.set()
        t.join(10)
    assert killed and not report.complete and report.trained < spec.n_runs
    assert time.monotonic() - t0 < 120
    again = run_sweep(spec, out, n_workers=1, max_chunk=4, progress=False)
    assert again.complete and again.already_done + again.trained == spec.n_runs
    assert_one_row_per_run(out, spec)
    pd.testing.assert_frame_equal(runs_frame(out), runs_frame(clean), check_exact=True)

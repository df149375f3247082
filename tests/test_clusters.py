"""Batch clusters (SLURM, PBS) through dask-jobqueue: the job scripts we would submit.

No batch system is needed: ``jobs=0`` starts only the local scheduler (on
loopback), and ``job_script()`` renders what ``sbatch``/``qsub`` would get.
Everything site-specific comes from dask's ``jobqueue.<kind>.*`` configuration.
"""

from __future__ import annotations

import re

import dask
import pytest

from sweepengine.sweep import worker_env
from sweepengine.sweep.clusters import KINDS, batch_cluster

pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed (extra 'jobqueue')")

LOOPBACK = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
SITE = {
    "cores": 8,
    "memory": "16GiB",
    "processes": 4,
    "queue": "short",
    "walltime": "01:30:00",
    "account": "proj42",
    "job-script-prologue": ["module load python/3.11", "source ~/venvs/sweeps/bin/activate"],
}
DIRECTIVES = {
    "slurm": [
        "#SBATCH -J dask-worker",
        "#SBATCH -p short",
        "#SBATCH -A proj42",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=16G",
        "#SBATCH -t 01:30:00",
    ],
    "pbs": [
        "#PBS -N dask-worker",
        "#PBS -q short",
        "#PBS -A proj42",
        "#PBS -l select=1:ncpus=8:mem=16GB",
        "#PBS -l walltime=01:30:00",
    ],
}


def job_script(kind: str, site: dict | None = None, **overrides) -> str:
    config = {f"jobqueue.{kind}.{k}": v for k, v in (SITE if site is None else site).items()}
    with dask.config.set(config):
        cluster = batch_cluster(kind, jobs=0, scheduler_options=LOOPBACK, **overrides)
        try:
            assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
            return cluster.job_script()
        finally:
            cluster.close()


def exports() -> list[str]:
    return [f"export {k}={v}" for k, v in worker_env().items()]


@pytest.mark.parametrize("kind", KINDS)
def test_job_script_from_config(kind):
    script = job_script(kind)
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for directive in DIRECTIVES[kind]:
        assert directive in lines, f"{directive!r} not in\n{script}"
    # the site's prologue first, then the thread caps, then the worker command
    want = [*SITE["job-script-prologue"], *exports()]
    body = [line for line in lines if line and not line.startswith("#")]
    assert body[: len(want)] == want, script
    cmd = body[len(want)]
    assert re.search(r"-m distributed\.cli\.dask_worker tls://127\.0\.0\.1:\d+ ", cmd), cmd
    # cores / processes threads per worker process, memory split the same way
    for arg in ("--nthreads 2", "--nworkers 4", "--memory-limit 4.00GiB", "--nanny"):
        assert arg in cmd, cmd
    assert len(body) == len(want) + 1


@pytest.mark.parametrize("kind", KINDS)
def test_one_thread_per_worker_process(kind):
    """The layout docs/clusters.md recommends: processes = cores, one thread each."""
    site = {**SITE, "processes": 8}
    cmd = job_script(kind, site).strip().splitlines()[-1]
    assert "--nthreads 1" in cmd and "--nworkers 8" in cmd and "--memory-limit 2.00GiB" in cmd


@pytest.mark.parametrize("kind", KINDS)
def test_thread_caps_without_site_prologue(kind):
    site = {k: v for k, v in SITE.items() if k != "job-script-prologue"}
    script = job_script(kind, site)
    body = [line for line in script.splitlines() if line and not line.startswith("#")]
    assert body[:-1] == exports()


@pytest.mark.parametrize("kind", KINDS)
def test_caller_prologue_keeps_thread_caps(kind):
    script = job_script(kind, job_script_prologue=["module load gcc"])
    body = [line for line in script.splitlines() if line and not line.startswith("#")]
    # the caller's prologue replaces the configured one; the caps are always added
    assert body[:-1] == ["module load gcc", *exports()]


def test_keyword_overrides_beat_config():
    script = job_script("slurm", queue="long", walltime="12:00:00")
    assert "#SBATCH -p long" in script and "#SBATCH -t 12:00:00" in script
    assert "#SBATCH -p short" not in script


def test_unknown_kind():
    with pytest.raises(ValueError, match=r"unknown batch system 'sge'; valid: \['slurm', 'pbs'\]"):
        batch_cluster("sge", jobs=0)


@pytest.mark.parametrize("kind", KINDS)
def test_workers_join_with_tls_credentials(kind, tmp_path):
    """Jobs get temporary TLS credentials (files only their user can read) on the
    worker command line; the scheduler listens on tls:// only."""
    import os
    import stat

    config = {f"jobqueue.{kind}.{k}": v for k, v in SITE.items()}
    config[f"jobqueue.{kind}.shared-temp-directory"] = str(tmp_path)
    with dask.config.set(config):
        cluster = batch_cluster(kind, jobs=0, scheduler_options=LOOPBACK)
        try:
            assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
            script = cluster.job_script()
            for flag in ("--tls-ca-file", "--tls-cert", "--tls-key"):
                m = re.search(rf"{flag} (\S+)", script)
                assert m, (flag, script)
                assert m[1].startswith(str(tmp_path)), m[1]
                assert stat.S_IMODE(os.stat(m[1]).st_mode) == 0o600
            assert "tcp://" not in script
        finally:
            cluster.close()

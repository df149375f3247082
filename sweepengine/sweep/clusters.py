"""Batch-system clusters (SLURM, PBS) through dask-jobqueue.

Everything site-specific (queue, account, cores, memory, walltime, modules to
load) comes from dask's configuration, ``jobqueue.slurm.*`` / ``jobqueue.pbs.*``
(for example ``~/.config/dask/jobqueue.yaml``); see docs/clusters.md. We only
add the thread caps every sweep worker needs, so workers x threads <= cores,
and TLS: the scheduler, workers and client use the site's TLS credentials when
dask's configuration has them (``distributed.comm.tls.*``), else temporary ones
made for this cluster (``Security.temporary()``), which dask-jobqueue writes
(mode 0600) under ``jobqueue.<kind>.shared-temp-directory`` for the jobs to
read. Either way a process without the credentials cannot connect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .schedule import worker_env

KINDS = ("slurm", "pbs")


def _credentials_dir() -> Path:
    """Where temporary TLS credentials go for the jobs to read, unless the site sets
    ``jobqueue.<kind>.shared-temp-directory``: ``~/.cache/sweepengine/tls`` (mode
    0700; home directories are usually shared with the compute nodes)."""
    d = Path.home() / ".cache" / "sweepengine" / "tls"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    d.chmod(0o700)
    return d


def batch_cluster(kind: str, jobs: int = 1, **overrides: Any):
    """Start a dask-jobqueue cluster of ``kind`` and request ``jobs`` jobs."""
    if kind not in KINDS:
        raise ValueError(f"unknown batch system {kind!r}; valid: {list(KINDS)}")
    try:
        import dask_jobqueue
    except ImportError:
        raise ImportError(
            "batch clusters need dask-jobqueue: pip install 'sweepengine[jobqueue]'"
        ) from None
    import dask

    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    caps = [f"export {k}={v}" for k, v in worker_env().items()]
    # the caller's prologue replaces the configured one (as in dask-jobqueue); the caps
    # are added to either, last, so a site's module loads cannot undo them
    prologue = overrides.get("job_script_prologue")
    if prologue is None:
        prologue = dask.config.get(f"jobqueue.{kind}.job-script-prologue", None) or []
    overrides["job_script_prologue"] = [*prologue, *caps]
    if overrides.get("security") is None:
        from distributed.security import Security

        site = Security()
        has_site = site.tls_ca_file and site.tls_scheduler_cert and site.tls_worker_cert
        overrides["security"] = site if has_site else Security.temporary()
        overrides.setdefault("protocol", "tls://")
        if not has_site and overrides.get("shared_temp_directory") is None:
            configured = dask.config.get(f"jobqueue.{kind}.shared-temp-directory", None)
            overrides["shared_temp_directory"] = configured or str(_credentials_dir())
    cluster = cls(**overrides)
    if jobs:
        cluster.scale(jobs=jobs)
    return cluster

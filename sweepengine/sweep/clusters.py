"""Batch-system clusters (SLURM, PBS) through dask-jobqueue.

Everything site-specific (queue, account, cores, memory, walltime, modules to
load) comes from dask's configuration, ``jobqueue.slurm.*`` / ``jobqueue.pbs.*``
(for example ``~/.config/dask/jobqueue.yaml``); see docs/clusters.md. We only
add the thread caps every sweep worker needs, so workers x threads <= cores.
"""

from __future__ import annotations

from typing import Any

from .schedule import worker_env

KINDS = ("slurm", "pbs")


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
    cluster = cls(**overrides)
    if jobs:
        cluster.scale(jobs=jobs)
    return cluster

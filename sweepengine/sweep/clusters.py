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
We also keep the requested number of jobs: dask-jobqueue submits a job once and
never replaces it, so without :class:`JobKeeper` a sweep whose jobs all reach
their walltime (or are cancelled) waits forever with no workers.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from .schedule import worker_env

log = logging.getLogger(__name__)

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
        JobKeeper(cluster, jobs).start()
    return cluster


class JobKeeper:
    """Keep ``jobs`` batch jobs running: replace every job that has ended.

    A job counts as ended once one of its workers has joined the scheduler and
    then all have left it and stayed away ``distributed.deploy.lost-worker-timeout``
    (15 s by default: a nanny restarting its worker comes back sooner), as when
    the job reaches its walltime, is cancelled (``scancel``/``qdel``) or its node
    dies. Its spec is dropped (dask-jobqueue then cancels the job, in case
    it is still listed) and a new job is submitted in its place. A job that never
    started a worker is left alone: it may still be queued.

    Runs every ``interval`` seconds on the cluster's event loop, until the
    cluster closes. ``replaced`` counts the jobs replaced so far.
    """

    def __init__(self, cluster: Any, jobs: int, interval: float = 2.0):
        import dask
        from dask.utils import parse_timedelta

        self.cluster, self.jobs, self.interval = cluster, jobs, interval
        self.grace = parse_timedelta(dask.config.get("distributed.deploy.lost-worker-timeout"))
        self.joined: set[str] = set()  # names of the workers that have joined
        self.away: dict[str, float] = {}  # job -> when it was first seen with no worker
        self.job_ids: dict[str, str] = {}  # job name -> batch job id
        self.replaced = 0
        self._pc: Any = None

    def start(self) -> JobKeeper:
        from distributed.diagnostics.plugin import SchedulerPlugin
        from tornado.ioloop import PeriodicCallback

        joined = self.joined

        class _Joined(SchedulerPlugin):
            """Every worker name that has joined: a job whose workers come and go
            between two checks has still started."""

            name = "sweepengine-job-keeper"

            def add_worker(self, scheduler: Any, worker: str) -> None:
                joined.add(str(scheduler.workers[worker].name))

        self.cluster.scheduler.add_plugin(_Joined())
        self._pc = PeriodicCallback(self.check, self.interval * 1000)
        self.cluster.loop.add_callback(self._pc.start)
        self.cluster._sweepengine_keeper = self  # lives as long as the cluster
        return self

    def check(self) -> None:
        from distributed.core import Status

        c = self.cluster
        if c.status in (Status.closing, Status.closed, Status.failed):
            self._pc.stop()
            return
        if c.status != Status.running:
            return
        present = {str(ws.name) for ws in c.scheduler.workers.values()}
        now = time.monotonic()
        ended = []
        for name, spec in list(c.worker_spec.items()):
            job_id = getattr(c.workers.get(name), "job_id", None)
            if job_id:  # dask-jobqueue forgets a job's Job once its workers are lost
                self.job_ids[name] = job_id
            members = {f"{name}{suffix}" for suffix in spec.get("group", [""])}
            if members & present or not members & self.joined:
                self.away.pop(name, None)
            elif now - self.away.setdefault(name, now) >= self.grace:
                ended.append(name)
        if not ended:
            return
        for name in ended:
            log.warning(
                "batch job %s (%s) has ended: its workers left %.0f s ago; submitting "
                "a replacement", self.job_ids.pop(name, "?"), name, self.grace,
            )  # fmt: skip
            del c.worker_spec[name]
            self.away.pop(name, None)
        self.replaced += len(ended)
        c.scale(jobs=self.jobs)

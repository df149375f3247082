"""Run a sweep on Dask: plan chunks, stream them to workers, record results, resume.

Flow: spec -> index ranges of runs not yet in OUT -> chunks, each a range of
one shape (``Spec.shape_blocks``) -> Dask tasks (``worker.train_range``: the
spec, pickled once, and a range) -> the worker builds its runs, trains them and
writes the chunk's Parquet parts into OUT itself when it sees OUT (a shared file
system; the lock file holds this process's token), returning a small summary;
otherwise it returns the Arrow tables and this process, which holds the results
directory's lock, writes them. Nothing here is done per run: a chunk costs this
process the same whatever its number of runs. At most ``max_in_flight`` chunks
are submitted at a time, so neither this process nor the scheduler ever holds a
task per run, whatever the size of the sweep.

Chunk ids name the range (``r<spec hash>-<start>-<stop>``, ``range_chunk_id``)
and chunks are cut at fixed offsets of each shape block, so a retried or redone
chunk has the id it had before and replaces its part: nothing is ever written
twice. Every row still carries its run id (a content hash, computed by the worker).

Resume is by id: the runs to train are the spec's runs minus the runs done in
OUT (never a count), so rows of another spec or another package version never
count as this spec's. When every committed part and every failure record of OUT
is a range chunk of this spec (and their row counts match their ranges), the
done and failed runs are read from the chunk ids, without hashing a run; any
other content (parts of other chunk ids, older layouts, overlapping ranges)
makes this process hash every run id of the spec and compare, as before.

Faults: a worker that dies mid-chunk has its task re-run elsewhere by Dask
(and a chunk whose workers keep dying, ``KilledWorker``, is submitted again up
to ``retries`` more times); a finished chunk is on disk before it counts,
so killing this process loses nothing finished and a rerun trains only what is
missing. A chunk whose training raised is tried again
up to ``retries`` times when the error may not recur (not for errors that
follow from the inputs, ``PERMANENT_ERRORS``); what still fails is recorded
(by this process) in ``OUT/failed/`` (never written as results, never counted
as done), skipped by later runs unless ``retry_failed``, and leaves the sweep
incomplete.

Security: the embedded cluster talks TLS with temporary credentials made for
it (``distributed.security.Security.temporary``), held in memory by this
process and its workers only, so no other local user can connect to it and
run code as the sweep's owner; a ``tls://`` scheduler is joined with the
site's credentials from dask's configuration.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _version
from ..store import open_store
from .notices import IGNORE_SIGINT, CompileNotice
from .spec import Run, Spec

log = logging.getLogger(__name__)

TARGET_CHUNK_S = 2.0  # aim for chunks of about this much compute
# Runs per chunk at most. Short runs need big chunks: a chunk costs the client and the
# scheduler a few ms whatever its size (results/scheduler.md), so a chunk of small nets
# must hold seconds of compute for one client to keep many workers busy. Memory stays
# bounded: a chunk's curves by CURVE_BYTES, its runs table at ~1.7 KB a run (28 MB for
# 16,384), written by its worker where it sees OUT, else received one at a time.
MAX_CHUNK = 16384
CHUNKS_PER_WORKER = 8  # at least this many chunks per worker, for load balance
MIN_CHUNK = 16  # ... but not below one lock-step block of runs (unless runs are costly)
CURVE_BYTES = 64 * 2**20  # a chunk's recorded losses (B x records x 8 bytes) at most
# distributed keeps the last `low-level-log-length` (default 1000) messages of every
# comm for debugging, and a compute-task message holds a whole chunk of Run objects:
# the (in-process) scheduler then grows by ~1 KB per run, up to 1000 chunks per worker
# (~250 MB per worker for small nets). Keep a few for debugging, not thousands.
COMM_LOG = {"distributed.admin.low-level-log-length": 20}
# The embedded scheduler sends each task to a worker when it is submitted instead of
# holding it until a worker is free (queuing, for root tasks): run_sweep already keeps
# at most 2 x workers + 2 chunks in flight, and queuing leaves a worker idle for a
# round trip between chunks (measured: a 10,008-run sweep of 54 chunks, 12.0 s
# queued against 10.8 s).
NO_QUEUING = {"distributed.scheduler.worker-saturation": float("inf")}
# An embedded cluster with no worker for this long is stopped (run_sweep returns, the
# rest is left for a rerun): a worker process killed while its nanny is still starting
# it is not restarted, and with none left the sweep would otherwise wait for ever.
NO_WORKER_S = 120.0
# The embedded cluster runs its workers as threads of this process (``in_process``: no
# worker processes to start, about 2 s less fixed cost, results/startup.md; the kernels
# release the GIL) for a sweep of at most this many estimated core-seconds of training
# (``estimated_cost_s``) whose kernels are compiled already; longer sweeps, and the first
# on a machine (two processes compile side by side), get worker processes.
IN_PROCESS_MAX_S = 60.0
# Errors that follow from a chunk's inputs: trying again gives the same error.
PERMANENT_ERRORS = frozenset({
    "ValueError", "TypeError", "KeyError", "IndexError", "ZeroDivisionError",
    "AssertionError", "NotImplementedError", "SpecError", "LinAlgError",
})  # fmt: skip


def worth_retrying(error: str) -> bool:
    """Whether a chunk that failed with ``error`` (``"Type: message"``, as the worker
    records it) is worth trying again: anything but ``PERMANENT_ERRORS``
    (MemoryError, OSError, a Numba cache error, a worker killed under it...)."""
    name = error.split(":", 1)[0].strip().rsplit(".", 1)[-1]
    return name not in PERMANENT_ERRORS


@dataclass
class SweepReport:
    """What a call to :func:`run_sweep` did."""

    out_dir: str
    n_runs: int
    already_done: int  # runs of this spec done before (by id)
    trained: int = 0
    chunks: int = 0
    failed_chunks: list[str] = field(default_factory=list)  # this call's, still failing
    failed_runs: int = 0  # runs of this spec recorded as failed (this call's or skipped)
    skipped_failed: int = 0  # runs failed before and not retried (see ``retry_failed``)
    retried: int = 0  # chunk attempts repeated after an error that may not recur
    not_in_spec: int = 0  # run ids done in OUT that are not this spec's
    written_by_workers: int = 0  # chunks whose parts their worker wrote (shared FS)
    resumed_by: str = "ranges"  # "ranges": done runs read from chunk ids; "ids": hashed
    wall_s: float = 0.0
    dashboard: str | None = None
    in_process: bool = False  # the embedded cluster's workers were threads of this process

    @property
    def complete(self) -> bool:
        """Every run id of the spec is done (none failed, none left)."""
        return (
            self.already_done + self.trained == self.n_runs
            and not self.failed_chunks
            and not self.failed_runs
        )


def step_cost_s(dims: tuple[int, ...]) -> float:
    """Rough seconds per training step: ~6 chain products of (d_k, d_{k-1}) x (d_{k-1}, d_0)."""
    d0 = dims[0]
    flops = 6 * sum(dims[k + 1] * dims[k] * d0 for k in range(len(dims) - 1))
    return 3e-7 + flops / 2e9


def _cost_sample(spec: Spec, sample: int = 256) -> tuple[list[Run], list[float]]:
    """``sample`` runs spread evenly over the sweep and their estimated seconds."""
    n = spec.n_runs
    k = max(1, min(n, sample))
    runs = [r for i in sorted({j * (n - 1) // max(1, k - 1) for j in range(k)})
            for r in spec.runs(i, i + 1)]  # fmt: skip
    return runs, [r.max_steps * step_cost_s(r.dims) for r in runs] or [1.0]


def estimated_cost_s(spec: Spec, n_runs: int, sample: int = 256) -> float:
    """Rough core-seconds of training for ``n_runs`` runs of ``spec`` (at max_steps)."""
    costs = _cost_sample(spec, sample)[1]
    return n_runs * sum(costs) / len(costs)


def in_process_auto(spec: Spec, n_runs: int) -> bool:
    """Whether the embedded cluster of a sweep training ``n_runs`` runs of ``spec`` runs
    in this process (see ``IN_PROCESS_MAX_S``)."""
    from .compile_lock import sweep_warm

    runs, costs = _cost_sample(spec)
    if n_runs * sum(costs) / len(costs) > IN_PROCESS_MAX_S:  # estimated_cost_s
        return False
    return sweep_warm(any(r.linear for r in runs), not all(r.linear for r in runs))


def chunk_size(spec: Spec, n_workers: int, sample: int = 256) -> int:
    """Runs per chunk: about TARGET_CHUNK_S of compute for the costliest runs, enough
    chunks of that cost for every worker (CHUNKS_PER_WORKER of the sweep's estimated
    total cost each, but at least MIN_CHUNK runs), and at most CURVE_BYTES of
    recorded losses.

    Costs are estimated from ``sample`` runs spread evenly over the sweep.
    """
    n = spec.n_runs
    runs, costs = _cost_sample(spec, sample)
    per_run, mean = max(costs), sum(costs) / len(costs)
    records = max((r.max_steps // (r.record_every or r.max_steps) + 1 for r in runs), default=1)
    by_cost = max(1, int(TARGET_CHUNK_S / per_run))
    share = n * (mean / per_run) / (CHUNKS_PER_WORKER * max(1, n_workers))
    by_balance = math.ceil(share * (1 - 1e-12))  # the mean carries rounding
    by_balance = max(MIN_CHUNK, by_balance)
    by_memory = max(1, CURVE_BYTES // (8 * records))
    return max(1, min(MAX_CHUNK, by_cost, by_balance, by_memory))


def worker_env() -> dict[str, str]:
    """BLAS single-threaded in every worker process.

    Numba's threads are capped per task instead (``numba.set_num_threads`` to
    the worker's thread count, in ``worker.train_chunk``): pinning
    NUMBA_NUM_THREADS in the environment breaks once Numba's pool exists.
    """
    return {
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def site_security(address: str | None = None) -> Any:
    """The site's Dask security settings (``distributed.comm.tls.*`` in dask's
    configuration). For a ``tls://`` address, refuses clearly when they hold no
    client credentials."""
    from distributed.security import Security

    sec = Security()
    if address is not None and address.startswith("tls://"):
        if not (sec.tls_ca_file and sec.tls_client_cert):
            raise ValueError(
                f"scheduler {address} uses TLS, but dask's configuration has no client "
                "credentials: set distributed.comm.tls.ca-file, distributed.comm.tls."
                "client.cert and .key (e.g. in ~/.config/dask/distributed.yaml or "
                "DASK_DISTRIBUTED__COMM__TLS__CA_FILE=...); see docs/clusters.md"
            )
    return sec


@contextlib.contextmanager
def connect(
    scheduler: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    client: Any = None,
    tls: bool = True,
    in_process: bool = False,
) -> Iterator[Any]:
    """A Dask client: the given one, one joined to ``scheduler``, or an embedded LocalCluster.

    The local cluster has ``n_workers`` processes (default: cores // threads) of
    ``threads_per_worker`` threads, so workers x threads <= cores, and (``tls``,
    the default) talks TLS with temporary credentials of its own, so only this
    process and its workers can connect. With ``in_process`` it is one worker in this
    process with n_workers x threads_per_worker threads (default: cores), talking over
    in-process queues (``inproc://``): nothing listens on a port. ``scheduler`` may be ``tcp://`` or
    ``tls://`` (with the site's credentials, see :func:`site_security`). While the
    block runs, comms created in this process keep short message logs (``COMM_LOG``).
    """
    import dask
    from distributed import Client, LocalCluster

    if client is not None:  # e.g. a batch cluster whose scheduler runs in this process
        with dask.config.set(COMM_LOG):
            yield client
        return
    if scheduler is not None:
        sec = site_security(scheduler)
        with dask.config.set(COMM_LOG), Client(scheduler, security=sec) as c:
            yield c
        return
    if in_process:
        from threadpoolctl import threadpool_limits

        with (
            dask.config.set({**COMM_LOG, **NO_QUEUING}),
            LocalCluster(
                n_workers=1,
                threads_per_worker=n_workers * threads_per_worker
                if n_workers
                else max(1, os.cpu_count() or 1),
                processes=False,
                preload=["sweepengine.sweep.worker"],
                dashboard_address="127.0.0.1:0",
            ) as cluster,
            Client(cluster) as c,
            # as worker_env() does for worker processes: chunks side by side, each on one
            # thread, so BLAS (NumPy's and SciPy's, loaded by the preload) starts no pool
            threadpool_limits(1, user_api="blas"),
        ):
            yield c
        return
    security = None
    if tls:
        from distributed.security import Security

        security = Security.temporary()  # in memory; needs the `cryptography` package
    # Workers import the trainer while they start (``preload``); each compiles or
    # loads it in its first task, one process at a time (``worker.warm_up``).
    cores = os.cpu_count() or 1
    threads = max(1, int(threads_per_worker))
    n = n_workers or max(1, cores // threads)
    with (
        dask.config.set({**COMM_LOG, **NO_QUEUING}),
        LocalCluster(
            n_workers=n,
            threads_per_worker=threads,
            processes=True,
            env={**worker_env(), IGNORE_SIGINT: "1"},  # Ctrl-C is the client's (cli)
            preload=["sweepengine.sweep.worker"],
            host="127.0.0.1",  # a private cluster: listen on loopback only
            dashboard_address="127.0.0.1:0",  # ":0" would bind every interface
            security=security,
        ) as cluster,
        Client(cluster, security=security) as c,
    ):
        yield c


def _train_chunk(chunk_id: str, runs: list[Run], sweep: str) -> Any:
    """The Dask task, ``worker.train_chunk``: imported on the worker only, so the
    client, which plans and writes but never trains, does not load Numba or SciPy."""
    from .worker import train_chunk

    return train_chunk(chunk_id, runs, sweep)


def _count_workers(c: Any) -> int:
    """Workers now connected to the scheduler (at least 1)."""
    return max(1, len(c.scheduler_info(n_workers=-1).get("workers", {})))


@contextlib.contextmanager
def _watchdog(c: Any, embedded: bool) -> Iterator[None]:
    """For the embedded cluster: close the client when no worker has been connected for
    ``NO_WORKER_S`` seconds, so the sweep stops (as for a lost scheduler) instead of
    waiting for ever. Batch and external clusters may legitimately wait for workers."""
    if not embedded:
        yield
        return
    import threading

    stop = threading.Event()

    def watch() -> None:
        since = None
        while not stop.wait(min(5.0, NO_WORKER_S / 4)):
            try:
                n = len(c.scheduler_info(n_workers=-1).get("workers", {}))
            except Exception:  # noqa: BLE001 (closing: nothing to watch)
                return
            if n:
                since = None
                continue
            since = since or time.monotonic()
            if time.monotonic() - since >= NO_WORKER_S:
                log.error("the embedded Dask cluster has had no worker for %.0f s (a worker "
                          "killed while starting is not restarted): stopping; rerun to "
                          "finish the sweep", NO_WORKER_S)  # fmt: skip
                c.close()
                return

    t = threading.Thread(target=watch, name="sweepengine-no-worker-watchdog", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(10)


def _train_range(*args: Any) -> dict:
    """The Dask task, ``worker.train_range`` (imported on the worker only)."""
    from .worker import train_range

    return train_range(*args)


# -- chunks as index ranges of the spec ------------------------------------------------

Ranges = list[tuple[int, int]]


def range_chunk_id(spec_hash: str, start: int, stop: int) -> str:
    """The id of the chunk of runs ``start .. stop - 1`` of the spec with this hash
    (``Store.spec_hash``): the same in every process and every rerun, so a retried
    or redone chunk replaces its part instead of adding one."""
    return f"r{spec_hash[:12]}-{start}-{stop}"


def _parse_range(chunk_id: Any, prefix: str) -> tuple[int, int] | None:
    """(start, stop) of a range chunk id with ``prefix`` (``r<hash12>-``), else None."""
    if not isinstance(chunk_id, str) or not chunk_id.startswith(prefix):
        return None
    a, _, b = chunk_id[len(prefix) :].partition("-")
    if not (a.isdigit() and b.isdigit()) or str(int(a)) != a or str(int(b)) != b:
        return None
    start, stop = int(a), int(b)
    return (start, stop) if start < stop else None


def _merge(ranges: Ranges) -> Ranges:
    """Sorted, coalesced union of half-open ranges."""
    out: Ranges = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _subtract(ranges: Ranges, minus: Ranges) -> Ranges:
    """``ranges`` without ``minus`` (both sorted and coalesced)."""
    out: Ranges = []
    j = 0
    for a, b in ranges:
        while j < len(minus) and minus[j][1] <= a:
            j += 1
        k = j
        while a < b and k < len(minus) and minus[k][0] < b:
            if minus[k][0] > a:
                out.append((a, minus[k][0]))
            a = max(a, minus[k][1])
            k += 1
        if a < b:
            out.append((a, b))
    return out


def _length(ranges: Ranges) -> int:
    return sum(b - a for a, b in ranges)


def _by_ranges(store: Any, spec: Spec, prefix: str) -> tuple[Ranges, Ranges] | None:
    """Done and failed (not done) index ranges read from chunk ids alone, or None when
    the directory holds rows or failure records that range chunk ids of this spec do
    not explain (parts of other chunk ids, rows of older versions' ``failed`` status,
    overlapping ranges): then only ids tell what is done (:func:`_by_ids`)."""
    done: Ranges = []
    for chunks, rows, old_failed in store.committed_chunks():
        rs = [_parse_range(c, prefix) for c in chunks]
        if old_failed or None in rs or _length(rs) != rows:
            return None
        done += rs
    done.sort()
    if any(b > spec.n_runs for _, b in done):
        return None
    if any(a < prev_b for (_, prev_b), (a, _) in zip(done, done[1:], strict=False)):
        return None  # overlapping chunks: the same run in two units
    done = _merge(done)
    failed: Ranges = []
    for rec in store.failures():
        r = _parse_range(rec.get("chunk_id"), prefix)
        if r is None or r[1] > spec.n_runs or len(set(rec["run_ids"])) != r[1] - r[0]:
            return None
        failed.append(r)
    return done, _subtract(_merge(failed), done)


def _by_ids(store: Any, spec: Spec) -> tuple[Ranges, Ranges, int]:
    """Done and failed (not done) index ranges of the spec by run id (hashing every
    run of the spec), and the number of run ids done in OUT that are not the spec's."""
    done_ids, failed_ids = store.done_run_ids(), store.failed_run_ids()
    done: Ranges = []
    failed: Ranges = []
    for i, r in enumerate(spec.runs()):
        into = done if r.run_id in done_ids else failed if r.run_id in failed_ids else None
        if into is None:
            continue
        if into and into[-1][1] == i:
            into[-1] = (into[-1][0], i + 1)
        else:
            into.append((i, i + 1))
    return done, failed, len(done_ids) - _length(done)


def plan_chunks(blocks: Ranges, size: int, pending: Ranges) -> Iterator[tuple[int, int]]:
    """Chunks ``(start, stop)`` of at most ``size`` runs of one shape: each shape block
    is cut at ``block start + k * size`` and the pieces are intersected with the
    ``pending`` ranges (sorted, coalesced), so a rerun with the same ``size`` cuts
    what is left exactly where the first run did. Streams: nothing per run."""
    j = 0
    for bs, be in blocks:
        for cs in range(bs, be, size):
            ce = min(be, cs + size)
            while j < len(pending) and pending[j][1] <= cs:
                j += 1
            k = j
            while k < len(pending) and pending[k][0] < ce:
                a, b = max(cs, pending[k][0]), min(ce, pending[k][1])
                if a < b:
                    yield (a, b)
                k += 1


def run_sweep(
    spec: Spec,
    out_dir: str | os.PathLike,
    *,
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    max_chunk: int | None = None,
    retries: int = 2,
    retry_failed: bool = False,
    allow_version_change: bool = False,
    progress: bool = True,
    worker_writes: bool = True,
    in_process: bool | None = None,
) -> SweepReport:
    """Run every run of ``spec`` whose id is not done in ``out_dir``; see the module
    docstring. ``retries``: further attempts of a chunk after an error that may not
    recur (in training, or of the task: ``KilledWorker``). ``retry_failed``: train runs recorded as
    failed too. ``allow_version_change``: accept a directory made by another
    package version, moving its results aside (see ``store.open_store``).
    ``in_process``: the embedded cluster's workers are threads of this process (True),
    processes (False), or (None) threads for a short sweep whose kernels are compiled
    already (``in_process_auto``). Ignored with ``client`` or ``scheduler``."""
    import pickle

    from distributed import as_completed
    from tqdm.auto import tqdm

    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if max_chunk is not None and (
        isinstance(max_chunk, bool) or not isinstance(max_chunk, int) or max_chunk < 1
    ):
        raise ValueError(f"max_chunk must be a positive integer, got {max_chunk!r}")
    t0 = time.perf_counter()
    store = open_store(out_dir, spec.source, allow_version_change=allow_version_change)
    with store.lock():
        prefix = range_chunk_id(store.spec_hash, 0, 1)[:-3]  # "r<hash12>-"
        fast = _by_ranges(store, spec, prefix)
        if fast is not None:
            (done, failed_r), not_in_spec = fast, 0
        else:
            log.info("%s holds results that are not range chunks of this spec: "
                     "resuming by run id", out_dir)  # fmt: skip
            done, failed_r, not_in_spec = _by_ids(store, spec)
        ours, failed = _length(done), _length(failed_r)
        report = SweepReport(str(out_dir), spec.n_runs, ours, not_in_spec=not_in_spec)
        report.resumed_by = "ranges" if fast is not None else "ids"
        if report.not_in_spec:
            log.warning("%s holds %d runs that are not this spec's: ignored",
                        out_dir, report.not_in_spec)  # fmt: skip
        skip = done
        if failed and not retry_failed:
            report.failed_runs = report.skipped_failed = failed
            skip = _merge(done + failed_r)
            log.warning("%d runs failed before and are skipped: rerun with --retry-failed "
                        "(retry_failed=True) to train them again", failed)  # fmt: skip
        if ours + report.skipped_failed >= spec.n_runs:
            log.info("%s: nothing to train (%d of %d runs done, %d failed)",
                     out_dir, ours, spec.n_runs, report.skipped_failed)  # fmt: skip
            report.wall_s = time.perf_counter() - t0
            return report
        pending_ranges = _subtract([(0, spec.n_runs)], skip)
        # the task's arguments, the same for every chunk: the spec, pickled once, and
        # where (and with which token, see worker.train_range) workers may write
        spec_blob = pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
        spec_key = f"{store.spec_hash}-{hashlib.sha256(spec_blob).hexdigest()[:16]}"
        where = (str(Path(out_dir).resolve()), store.lock_token) if worker_writes else (None, None)
        version = _version.package_version()  # the run ids' (the worker checks it has it)
        embedded = client is None and scheduler is None
        if embedded and in_process is None:
            in_process = in_process_auto(spec, spec.n_runs - ours - report.skipped_failed)
        report.in_process = bool(embedded and in_process)
        with (
            connect(
                scheduler, n_workers, threads_per_worker, client, in_process=report.in_process
            ) as c,  # fmt: skip
            _watchdog(c, embedded=embedded),
        ):
            report.dashboard = c.dashboard_link
            log.info("Dask dashboard: %s", c.dashboard_link)
            if progress:
                tqdm.write(f"Dask dashboard: {c.dashboard_link}")
            workers = _count_workers(c)
            size = max_chunk or chunk_size(spec, workers)
            # batch jobs and adaptive clusters add workers after the start: recount
            # (at most once a second) so the stream widens as they join
            cap = {"n": 2 * workers + 2, "at": time.monotonic()}

            def max_in_flight() -> int:
                if time.monotonic() - cap["at"] > 1.0:
                    cap["n"], cap["at"] = 2 * _count_workers(c) + 2, time.monotonic()
                return cap["n"]

            bar = tqdm(
                total=spec.n_runs, initial=ours, unit="run", disable=not progress,
                desc=spec.name, smoothing=0.1, dynamic_ncols=True,
            )  # fmt: skip
            notice = CompileNotice(c, bar)  # "compiling kernels, one-time, ..." while they do
            chunks = plan_chunks(spec.shape_blocks(), size, pending_ranges)
            pending = as_completed()
            in_flight: set[str] = set()
            tasks: dict[str, tuple[str, int, int, int]] = {}  # key -> cid, start, stop, attempt

            def submit(cid: str, a: int, b: int, attempt: int) -> None:
                key = f"chunk-{cid}" if attempt == 1 else f"chunk-{cid}-try{attempt}"
                tasks[key] = (cid, a, b, attempt)
                in_flight.add(cid)
                fut = c.submit(_train_range, spec_blob, spec_key, a, b, cid, *where,
                               store.spec_hash, version, key=key, pure=False)  # fmt: skip
                pending.add(fut)

            def submit_next() -> bool:
                nxt = next(chunks, None)
                if nxt is None:
                    return False
                submit(range_chunk_id(store.spec_hash, *nxt), *nxt, 1)
                return True

            def give_up(cid: str, a: int, b: int, error: str, attempt: int,
                        run_ids: list[str] | None = None) -> None:  # fmt: skip
                log.error("chunk %s (%d runs) failed after %d attempt(s): %s",
                          cid, b - a, attempt, error)  # fmt: skip
                if run_ids is None:  # the task never returned (e.g. KilledWorker)
                    run_ids = [r.run_id for r in spec.runs(a, b)]
                store.write_failure(cid, run_ids, error, attempt)
                report.failed_chunks.append(cid)
                report.failed_runs += b - a

            while len(in_flight) < max_in_flight() and submit_next():
                pass
            lost = False  # the client closed (scheduler gone): new tasks would never finish
            for fut in pending:
                cid, a, b, attempt = tasks.pop(fut.key)
                try:
                    res = fut.result()
                except Exception as e:  # worker died too often, or the task raised
                    if not lost and c.status in ("closing", "closed"):
                        lost = True
                        log.error("lost the Dask scheduler: stopping; rerun to finish the sweep")
                    err = "".join(traceback.format_exception_only(e)).strip()
                    if lost:  # not the chunk's fault: left pending for a rerun
                        log.error("chunk %s is left for a rerun: %s", cid, err)
                        report.failed_chunks.append(cid)
                    elif attempt <= retries and worth_retrying(err):  # e.g. KilledWorker
                        log.warning("chunk %s failed (%s): trying again (attempt %d of %d)",
                                    cid, err, attempt + 1, retries + 1)  # fmt: skip
                        report.retried += 1
                        fut.release()
                        in_flight.discard(cid)
                        submit(cid, a, b, attempt + 1)
                        continue
                    else:
                        give_up(cid, a, b, err, attempt)
                else:
                    if res["status"] == "ok":
                        if res["written"]:  # by the worker, into this directory
                            store.record_written(res["entries"])
                            report.written_by_workers += 1
                        else:
                            store.write_chunk(cid, res["runs"], res["stalls"], res["curves"])
                        report.trained += res["rows"]
                        report.chunks += 1
                        bar.update(res["rows"])
                    elif attempt <= retries and worth_retrying(res["error"]) and not lost:
                        log.warning("chunk %s failed (%s): trying again (attempt %d of %d)",
                                    cid, res["error"], attempt + 1, retries + 1)  # fmt: skip
                        report.retried += 1
                        fut.release()
                        in_flight.discard(cid)
                        submit(cid, a, b, attempt + 1)
                        continue
                    else:
                        give_up(cid, a, b, res["error"], attempt, res["run_ids"])
                fut.release()
                in_flight.discard(cid)
                while not lost and len(in_flight) < max_in_flight() and submit_next():
                    pass
            notice.close()
            bar.close()
        store.prune_failures()
    report.wall_s = time.perf_counter() - t0
    return report

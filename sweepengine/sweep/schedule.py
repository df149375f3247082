"""Run a sweep on Dask: plan chunks, stream them to workers, write results, resume.

Flow: spec -> runs not yet in OUT -> chunks of one shape (bounded stream) ->
Dask tasks (``worker.train_chunk``) -> Arrow tables -> Parquet parts written by
this process, which holds the results directory's lock. At most
``max_in_flight`` chunks are submitted at a time, so neither this process nor the
scheduler ever holds a task per run, whatever the size of the sweep.

Faults: a worker that dies mid-chunk has its task re-run elsewhere by Dask
(up to ``retries`` more times); a finished chunk is on disk before it counts,
so killing this process loses nothing finished and a rerun trains only what is
missing. Chunk ids hash their run ids and a part is replaced, never appended,
so nothing is ever written twice.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..store import open_store
from .notices import IGNORE_SIGINT, CompileNotice
from .spec import Run, Spec, chunk_runs

log = logging.getLogger(__name__)

TARGET_CHUNK_S = 2.0  # aim for chunks of about this much compute
MAX_CHUNK = 1024  # runs per chunk at most (short runs: few tasks, few Parquet parts)
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


@dataclass
class SweepReport:
    """What a call to :func:`run_sweep` did."""

    out_dir: str
    n_runs: int
    already_done: int
    trained: int = 0
    chunks: int = 0
    failed_chunks: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    dashboard: str | None = None

    @property
    def complete(self) -> bool:
        return self.already_done + self.trained >= self.n_runs and not self.failed_chunks


def step_cost_s(dims: tuple[int, ...]) -> float:
    """Rough seconds per training step: ~6 chain products of (d_k, d_{k-1}) x (d_{k-1}, d_0)."""
    d0 = dims[0]
    flops = 6 * sum(dims[k + 1] * dims[k] * d0 for k in range(len(dims) - 1))
    return 3e-7 + flops / 2e9


def chunk_size(spec: Spec, n_workers: int, sample: int = 256) -> int:
    """Runs per chunk: about TARGET_CHUNK_S of compute for the costliest runs, enough
    chunks of that cost for every worker (CHUNKS_PER_WORKER of the sweep's estimated
    total cost each, but at least MIN_CHUNK runs), and at most CURVE_BYTES of
    recorded losses.

    Costs are estimated from ``sample`` runs spread evenly over the sweep.
    """
    n = spec.n_runs
    k = max(1, min(n, sample))
    runs = [r for i in sorted({j * (n - 1) // max(1, k - 1) for j in range(k)})
            for r in spec.runs(i, i + 1)]  # fmt: skip
    costs = [r.max_steps * step_cost_s(r.dims) for r in runs] or [1.0]
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


@contextlib.contextmanager
def connect(
    scheduler: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    client: Any = None,
) -> Iterator[Any]:
    """A Dask client: the given one, one joined to ``scheduler``, or an embedded LocalCluster.

    The local cluster has ``n_workers`` processes (default: cores // threads) of
    ``threads_per_worker`` threads, so workers x threads <= cores. While the
    block runs, comms created in this process keep short message logs (``COMM_LOG``).
    """
    import dask
    from distributed import Client, LocalCluster

    if client is not None:  # e.g. a batch cluster whose scheduler runs in this process
        with dask.config.set(COMM_LOG):
            yield client
        return
    if scheduler is not None:
        with dask.config.set(COMM_LOG), Client(scheduler) as c:
            yield c
        return
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
        ) as cluster,
        Client(cluster) as c,
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


def _pending(spec: Spec, done: set[str]) -> Iterator[Run]:
    return (r for r in spec.runs() if r.run_id not in done)


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
    progress: bool = True,
) -> SweepReport:
    """Run every run of ``spec`` not already in ``out_dir``; see the module docstring."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    store = open_store(out_dir, spec.source)
    with store.lock():
        done = store.done_run_ids()
        report = SweepReport(str(out_dir), spec.n_runs, len(done))
        if len(done) >= spec.n_runs:
            log.info("%s: all %d runs already done", out_dir, spec.n_runs)
            report.wall_s = time.perf_counter() - t0
            return report
        with connect(scheduler, n_workers, threads_per_worker, client) as c:
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
                total=spec.n_runs, initial=len(done), unit="run", disable=not progress,
                desc=spec.name, smoothing=0.1, dynamic_ncols=True,
            )  # fmt: skip
            notice = CompileNotice(c, bar)  # "compiling kernels, one-time, ..." while they do
            chunks = chunk_runs(_pending(spec, done), size)
            pending = as_completed()
            sizes: dict[str, int] = {}

            def submit_next() -> bool:
                nxt = next(chunks, None)
                if nxt is None:
                    return False
                cid, runs = nxt
                sizes[cid] = len(runs)
                fut = c.submit(
                    _train_chunk, cid, runs, spec.name, key=f"chunk-{cid}",
                    retries=retries, pure=False,
                )  # fmt: skip
                pending.add(fut)
                return True

            while len(sizes) < max_in_flight() and submit_next():
                pass
            lost = False  # the client closed (scheduler gone): new tasks would never finish
            for fut in pending:
                cid = fut.key.removeprefix("chunk-")
                try:
                    res = fut.result()
                except Exception as e:  # worker died too often, or the task raised
                    log.error("chunk %s failed and is left for a rerun: %r", cid, e)
                    report.failed_chunks.append(cid)
                    if not lost and c.status in ("closing", "closed"):
                        lost = True
                        log.error("lost the Dask scheduler: stopping; rerun to finish the sweep")
                else:
                    store.write_chunk(res.chunk_id, res.runs, res.stalls, res.curves)
                    report.trained += res.runs.num_rows
                    report.chunks += 1
                    bar.update(res.runs.num_rows)
                fut.release()
                sizes.pop(cid, None)
                while not lost and len(sizes) < max_in_flight() and submit_next():
                    pass
            notice.close()
            bar.close()
    report.wall_s = time.perf_counter() - t0
    return report

"""What one chunk costs the Dask scheduler and the client: the scale-out limits of one sweep.

    python benchmarks/bench_scheduler.py [--workers 16] [--chunks 0,2,4] [--tasks 400]
                                         [--repeat 3] [--quick] [--render]

Chunks travel as index ranges of the spec (``worker.train_range``: the pickled
spec and a range) and workers that see the results directory write their own
Parquet parts; the client plans ranges, submits them, receives a small summary
and records it. This measures each piece:

1. Real chunks (one thread, no Dask): chunks of small nets (whitened d = 4 and
   d = 8, 300 GD steps per run from a small init, curves every 10 steps) of
   1,024, 4,096 and 16,384 runs, and of a large net (d = 64, depth 3), of the
   size ``chunk_size`` picks for a 1,000-worker cluster and of 128 runs, trained
   with ``worker.train_chunk`` as a worker would: compute seconds per chunk; and
   what the worker adds to it: building the chunk's runs from the spec
   (``Spec.runs``, run ids included) and writing its parts (``store.write_unit``:
   3 Parquet files, fsync, rename, digests), CPU and wall time.
2. The client's cost per chunk outside Dask: planning (``plan_chunks`` over the
   spec's shape blocks, range chunk ids), recording a worker's summary
   (``Store.record_written``: the verified log, the manifest's throttled
   update), and, for a cluster without a shared file system, the old path:
   unpickling a result and ``Store.write_chunk`` in the client.
3. The scheduler's and the client's cost per chunk in Dask: a ``dask scheduler``
   process and ``--workers`` worker processes of one thread each (``dask worker
   --nworkers``), all on 127.0.0.1 (more workers than cores on purpose: the
   workers do nothing but return a real chunk summary, see ``_sched_task.py``).
   A client streams chunks the way ``run_sweep`` does (plans the next range,
   submits it with the spec's pickled bytes, at most 2 x workers + 2 in flight,
   receives the summary, records it in a real locked results directory).
   Scheduler CPU per chunk (psutil on its process), client CPU per chunk (this
   process: plan + submit + receive + bookkeeping), wall time per chunk, and
   submission-to-result latency, under that load and one at a time.

``--chunks`` picks chunk kinds by their index in ``CHUNKS``, ``--tasks`` sets
the chunks streamed per kind under load (a tenth of them one at a time),
``--repeat`` the repeats of the timings of parts 1 and 2; the options used are
written into the results. Writes results/scheduler.md and results/scheduler.json;
docs/clusters.md projects from them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "scheduler"


def spec_text(name: str, d: int, depth: int, seeds: int) -> str:
    sv = [round(3.0 * 0.8**i, 6) for i in range(d)]
    return f"""
name = "{name}"
seeds = {{ range = [0, {seeds}] }}
max_steps = 300
record_every = 10

[problem]
name = "whitened"
d_x = {d}
d_y = {d}
m = {4 * d}
singular_values = {sv}
seed = 0

[architecture]
depth = {depth}
width = {d}

[init]
scheme = "gaussian"
scale = 1e-2

[optimizer]
name = "gd"
lr = 0.05
"""


# (label, d, depth, runs per chunk or None for chunk_size's choice at 1,000 workers for
# a sweep of 10^9 runs, big enough that the cost target, not load balance, sets it)
CHUNKS = [
    ("small d=4, 1,024 runs", 4, 2, 1024),
    ("small d=4, 4,096 runs", 4, 2, 4096),
    ("small d=4, 16,384 runs", 4, 2, 16384),
    ("small d=8, 1,024 runs", 8, 3, 1024),
    ("large d=64", 64, 3, None),  # chunk_size's choice: 2 runs
    ("large d=64, 128 runs", 64, 3, 128),
    ("small d=4, chunk_size's choice", 4, 2, None),
]
QUICK = [0, 2, 4]


def best(fn, repeat: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``repeat`` calls."""
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def _with_chunk_id(t, cid: str):
    import pyarrow as pa

    i = t.schema.get_field_index("chunk_id")
    return t.set_column(i, "chunk_id", pa.array([cid] * t.num_rows, pa.string()))


def part_chunks(tmp: Path, chunks, repeat: int) -> list[dict]:
    """Train each chunk for real, then time what a worker adds: building the runs from
    the spec and writing the chunk's parts; keep its result and summary (pickled)."""
    import numba

    from sweepengine.store import open_store, write_unit
    from sweepengine.sweep import chunk_size, load_spec
    from sweepengine.sweep.worker import train_chunk, warm_up

    numba.set_num_threads(1)
    warm_up()
    out = []
    for label, d, depth, size in chunks:
        text = spec_text(f"sched-d{d}", d, depth, 10**6)
        spec = load_spec(text)
        size = size or chunk_size(load_spec(big_sweep(text)), 1000)
        label = label.replace("chunk_size's choice", f"{size:,} runs (chunk_size's choice)")
        build = best(lambda s=spec, n=size: list(s.runs(0, n)), repeat)
        runs = list(spec.runs(0, size))
        C.log.info("training %s: %d runs", label, len(runs))
        train_chunk("warm", runs[:8], spec.name)  # data and reference cached, as on a worker
        w0, c0 = time.perf_counter(), time.process_time()
        res = train_chunk("bench", runs, spec.name)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        # the worker's write: write_unit into a results directory (fresh chunk ids)
        store = open_store(tmp / f"worker-store-{len(out)}", spec.source)
        k = max(3, min(10, int(40_000 / size)))
        walls, cpus, entries = [], [], {}
        for j in range(k):
            cid = f"w{j:03d}-{len(out)}"
            tables = (_with_chunk_id(res.runs, cid), res.stalls, res.curves)
            w1, c1 = time.perf_counter(), time.process_time()
            entries = write_unit(store.out_dir, cid, *tables, store.spec_hash)
            walls.append(time.perf_counter() - w1)
            cpus.append(time.process_time() - c1)
        summary = {
            "chunk_id": "bench", "rows": res.runs.num_rows, "wall_s": wall, "compile_s": 0.0,
            "status": "ok", "stall_rows": res.stalls.num_rows,
            "curve_rows": res.curves.num_rows if res.curves is not None else 0,
            "written": True, "entries": entries, "write_s": statistics.median(walls),
        }  # fmt: skip
        blob = pickle.dumps(res, protocol=5)
        path = tmp / f"result-{len(out)}.pkl"
        path.write_bytes(blob)
        spath = tmp / f"summary-{len(out)}.pkl"
        sblob = pickle.dumps(summary, protocol=5)
        spath.write_bytes(sblob)
        steps = res.runs.column("steps").to_pylist()
        out.append({
            "label": label, "d": d, "depth": depth, "runs": len(runs), "spec": text,
            "train_wall_s": wall, "train_cpu_s": cpu, "mean_steps": statistics.fmean(steps),
            "stall_rows": res.stalls.num_rows,
            "curve_rows": res.curves.num_rows if res.curves is not None else 0,
            "result_bytes": len(blob), "summary_bytes": len(sblob),
            "spec_bytes": len(pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)),
            "worker": {
                "build_wall_s": build[0], "build_cpu_s": build[1],
                "write_wall_s": statistics.median(walls), "write_cpu_s": statistics.median(cpus),
                "writes": k,
            },
            "result_path": str(path), "summary_path": str(spath),
        })  # fmt: skip
        C.log.info("chunk %s: %s", label, {k: v for k, v in out[-1].items() if k != "spec"})
    return out


def big_sweep(text: str) -> str:
    """The same sweep with 10^9 seeds: enough chunks of any size to plan and stream."""
    return text.replace("range = [0, 1000000]", "range = [0, 1000000000]")


def _planner(spec, size: int):
    """The client's planning of a whole sweep, chunk after chunk, as run_sweep does it."""
    from sweepengine.sweep.schedule import plan_chunks, range_chunk_id

    h = "0" * 64
    for a, b in plan_chunks(spec.shape_blocks(), size, [(0, spec.n_runs)]):
        yield range_chunk_id(h, a, b), a, b


def part_client(tmp: Path, chunks: list[dict], repeat: int) -> None:
    """Per chunk: plan it, record a worker's summary; and the client-writes path:
    unpickle its result, write it (real tables, fresh store)."""
    import itertools

    from sweepengine.store import open_store
    from sweepengine.sweep import load_spec

    for i, c in enumerate(chunks):
        spec = load_spec(c["spec"])
        n = c["runs"]
        n_plan = 2000
        # planning a sweep big enough for n_plan chunks; a fresh spec each time (its
        # shape blocks are found once per sweep, and counted here)
        fresh = iter([load_spec(big_sweep(c["spec"])) for _ in range(repeat)])

        def plan(n=n, fresh=fresh, n_plan=n_plan):
            for _ in itertools.islice(_planner(next(fresh), n), n_plan):
                pass

        plan_t = best(plan, repeat)
        big = load_spec(big_sweep(c["spec"]))
        n_planned = sum(1 for _ in itertools.islice(_planner(big, n), n_plan))
        summary = pickle.loads(Path(c["summary_path"]).read_bytes())
        store = open_store(tmp / f"record-store-{i}", spec.source)
        rec_walls, rec_cpus = [], []
        with store.lock():
            for j in range(200):
                entries = {f"{k.split('/')[0]}/part-x{j}.parquet": v
                           for k, v in summary["entries"].items()}  # fmt: skip
                w0, c0 = time.perf_counter(), time.process_time()
                store.record_written(entries)
                rec_walls.append(time.perf_counter() - w0)
                rec_cpus.append(time.process_time() - c0)
        blob = Path(c["result_path"]).read_bytes()
        unpickle = best(lambda b=blob: pickle.loads(b), repeat)
        res = pickle.loads(blob)
        k = max(3, min(10, int(40_000 / n)))
        copies = [(f"bench{j:03d}-{i}", res) for j in range(k)]
        store = open_store(tmp / f"store-{i}", spec.source)
        walls, cpus = [], []
        with store.lock():
            for cid, r in copies:
                runs = _with_chunk_id(r.runs, cid)
                w0, c0 = time.perf_counter(), time.process_time()
                store.write_chunk(cid, runs, r.stalls, r.curves)
                walls.append(time.perf_counter() - w0)
                cpus.append(time.process_time() - c0)
        c["client"] = {
            "plan_wall_s": plan_t[0] / n_planned, "plan_cpu_s": plan_t[1] / n_planned,
            "planned_chunks": n_planned,
            "record_wall_s": statistics.median(rec_walls),
            "record_cpu_s": statistics.median(rec_cpus),
            "unpickle_wall_s": unpickle[0], "unpickle_cpu_s": unpickle[1],
            "write_wall_s": statistics.median(walls), "write_cpu_s": statistics.median(cpus),
            "writes": k,
        }  # fmt: skip
        C.log.info("client %s: %s", c["label"], c["client"])


@contextlib.contextmanager
def dask_procs(tmp: Path, n_workers: int):
    """A ``dask scheduler`` process and ``n_workers`` one-thread worker processes on loopback."""
    import psutil

    from sweepengine.sweep import worker_env

    env = {
        **os.environ, **worker_env(),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT),
                                       os.environ.get("PYTHONPATH", "")]),
        # as sweepengine's own schedulers: short comm logs (sweepengine.sweep.COMM_LOG)
        "DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH": "20",
        "DASK_LOGGING__DISTRIBUTED": "error",
    }  # fmt: skip
    dask = [str(Path(sys.executable).with_name("dask"))]
    if not Path(dask[0]).exists():
        dask = [sys.executable, "-m", "dask"]
    sfile = tmp / "scheduler.json"
    log = open(tmp / "dask.log", "wb")  # noqa: SIM115
    sched = subprocess.Popen(
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(sfile)], env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    workers = None
    try:
        deadline = time.monotonic() + 120
        while not sfile.exists():
            if time.monotonic() > deadline or sched.poll() is not None:
                raise RuntimeError((tmp / "dask.log").read_text())
            time.sleep(0.1)
        workers = subprocess.Popen(
            [*dask, "worker", "--scheduler-file", str(sfile), "--nworkers", str(n_workers),
             "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
             "--local-directory", str(tmp / "workers"), "--memory-limit", "0"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        yield psutil.Process(sched.pid), json.loads(sfile.read_text())["address"]
    finally:
        for p in (workers, sched):
            if p is not None:
                p.terminate()
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        log.close()


def stream(client, job: dict, n_tasks: int, cap: int, sched) -> dict:
    """Stream ``n_tasks`` chunks as run_sweep does (at most ``cap`` in flight): plan the
    next range, submit it, receive the summary, record it in a locked store; time it."""
    from _sched_task import echo_summary
    from distributed import as_completed

    submitted: dict[str, float] = {}
    latencies = []
    pending = as_completed()
    plan, store, n = job["plan"], job["store"], {"i": 0}

    def submit_next() -> bool:
        if n["i"] >= n_tasks:
            return False
        n["i"] += 1
        cid, a, b = next(plan)
        key = f"chunk-{cid}-{job['round']}"
        submitted[key] = time.perf_counter()
        fut = client.submit(
            echo_summary, job["blob"], job["key"], a, b, cid, job["out"], store.lock_token,
            store.spec_hash, job["summary_path"], key=key, pure=False,
        )  # fmt: skip
        pending.add(fut)
        return True

    t0 = time.perf_counter()
    c0 = time.process_time()
    s0 = sum(sched.cpu_times()[:2])
    trained = 0
    while len(submitted) < cap and submit_next():
        pass
    for fut in pending:
        res = fut.result()
        if res["written"]:
            store.record_written(res["entries"])
        trained += res["rows"]
        latencies.append(time.perf_counter() - submitted.pop(fut.key))
        fut.release()
        while len(submitted) < cap and submit_next():
            pass
    wall = time.perf_counter() - t0
    job["round"] += 1
    return {
        "tasks": n_tasks, "in_flight": cap, "wall_s": wall,
        "sched_cpu_s": sum(sched.cpu_times()[:2]) - s0,
        "client_cpu_s": time.process_time() - c0,
        "latency_p50_s": statistics.median(latencies),
        "latency_p90_s": statistics.quantiles(latencies, n=10)[-1],
    }  # fmt: skip


def part_scheduler(tmp: Path, chunks: list[dict], n_workers: int, n_tasks: int) -> dict:
    import hashlib

    from distributed import Client

    from sweepengine.store import open_store
    from sweepengine.sweep import load_spec

    out = {"workers": n_workers, "cores": os.cpu_count(), "tasks": n_tasks, "rows": []}
    with dask_procs(tmp, n_workers) as (sched, address), Client(address, timeout=120) as client:
        client.wait_for_workers(n_workers, timeout=300)
        time.sleep(5)
        s0, t0 = sum(sched.cpu_times()[:2]), time.perf_counter()
        time.sleep(10)  # the scheduler with its workers connected and nothing to do
        out["idle_sched_cores"] = (sum(sched.cpu_times()[:2]) - s0) / (time.perf_counter() - t0)
        cap = 2 * n_workers + 2
        for i, c in enumerate(chunks):
            spec = load_spec(big_sweep(c["spec"]))  # enough chunks for every task
            blob = pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
            store = open_store(tmp / f"stream-store-{i}", spec.source)
            with store.lock():
                job = {
                    "plan": _planner(spec, c["runs"]),
                    "blob": blob, "key": hashlib.sha256(blob).hexdigest()[:16],
                    "out": str(store.out_dir.resolve()), "store": store,
                    "summary_path": c["summary_path"], "round": 0,
                }  # fmt: skip
                stream(client, job, min(n_tasks, 2 * cap), cap, sched)  # warm up
                loaded = stream(client, job, n_tasks, cap, sched)
                one = stream(client, job, max(20, n_tasks // 10), 1, sched)
            row = {"label": c["label"], "runs": c["runs"], "task_bytes": len(blob),
                   "loaded": loaded, "one_at_a_time": one}  # fmt: skip
            C.log.info("scheduler %s: %s", c["label"], row)
            out["rows"].append(row)
    return out


def per_task(r: dict, key: str, idle: float = 0.0) -> float:
    """CPU seconds per task; with ``idle`` (cores the scheduler uses doing nothing: its
    workers' heartbeats, monitoring), that background is taken out first."""
    return max(0.0, r[key] - idle * r["wall_s"]) / r["tasks"]


def heartbeats_per_s(n: int) -> float:
    """Worker heartbeats a scheduler receives per second (distributed's
    ``heartbeat_interval``: 0.5 s up to 10 workers, 1 s below 50, 2 s below 200,
    then n / 200 + 1 s, so at most 200 a second)."""
    interval = 0.5 if n <= 10 else 1 if n < 50 else 2 if n < 200 else n / 200 + 1
    return n / interval


def busy(compute: float, cost: float, per_heartbeat: float) -> float:
    """Workers n at which one core is full: n chunks every ``compute`` s, each costing
    ``cost`` CPU s, plus ``per_heartbeat`` CPU s for each heartbeat of n workers."""
    lo, hi = 0.0, compute / cost
    for _ in range(60):  # bisection: the load grows with n
        n = (lo + hi) / 2
        load = n * cost / compute + per_heartbeat * heartbeats_per_s(max(1, round(n)))
        lo, hi = (n, hi) if load <= 1 else (lo, n)
    return lo


def projection(res: dict) -> list[dict]:
    """Workers one sweep keeps busy before its client process saturates one core.

    A worker core is busy for a chunk's compute plus what the worker adds (building
    the runs, writing the parts). With ``--cluster slurm|pbs`` the scheduler runs
    inside ``sweepengine run``, so one process pays, per chunk, the scheduler's
    work and the client's (plan, submit, receive the summary, record it); with
    ``--scheduler`` the two are processes of their own and the busier one bounds.
    """
    rows = []
    sched = res["scheduler"]
    idle = sched["idle_sched_cores"]
    per_heartbeat = idle / heartbeats_per_s(sched["workers"])
    chunks = {c["label"]: c for c in res["chunks"]}
    for r in sched["rows"]:
        c = chunks[r["label"]]
        s, w, cl = r["loaded"], c["worker"], c["client"]
        sched_s, client_s = per_task(s, "sched_cpu_s", idle), per_task(s, "client_cpu_s")
        worker_s = c["train_cpu_s"] + w["build_cpu_s"] + w["write_cpu_s"]
        n = busy(worker_s, sched_s + client_s, per_heartbeat)
        n_ext = min(busy(worker_s, sched_s, per_heartbeat), busy(worker_s, client_s, 0.0))
        # no shared file system: the client also unpickles and writes every result
        # (the scheduler's relay of the result tables is not measured here: at most)
        writes_s = cl["unpickle_cpu_s"] + cl["write_cpu_s"]
        n_cw = busy(c["train_cpu_s"] + w["build_cpu_s"], sched_s + client_s + writes_s,
                    per_heartbeat)  # fmt: skip
        rows.append({
            "label": r["label"], "runs": c["runs"], "compute_s": c["train_cpu_s"],
            "worker_extra_s": w["build_cpu_s"] + w["write_cpu_s"], "worker_s": worker_s,
            "scheduler_s": sched_s, "client_s": client_s,
            "client_process_s": sched_s + client_s,
            "workers_busy": n, "runs_per_s": n * c["runs"] / worker_s,
            "workers_busy_external_scheduler": n_ext,
            "runs_per_s_external_scheduler": n_ext * c["runs"] / worker_s,
            "workers_busy_client_writes_at_most": n_cw,
        })  # fmt: skip
    return rows


def render(res: dict, command: str) -> str:
    ms = lambda s: f"{s * 1e3:.2f}"  # noqa: E731
    us = lambda s: f"{s * 1e6:.1f}"  # noqa: E731
    sched = res["scheduler"]
    lines = ["# Scale-out: what one chunk costs the scheduler and the client\n\n"]
    lines.append(C.machine_md(res["machine"], command))
    o = res["options"]
    lines.append(
        f"- options: chunk kinds {o['chunks']} of `CHUNKS`, {o['tasks']} chunks streamed per "
        f"kind under load ({max(20, o['tasks'] // 10)} one at a time), timings of parts 1-2 "
        f"repeated {o['repeat']} times (medians).\n"
        f"- {sched['workers']} Dask worker processes of one thread on {sched['cores']} cores "
        "(oversubscribed on purpose: they only return prepared summaries), a `dask "
        "scheduler` process and this client, all on 127.0.0.1.\n"
        f"- wall time of the whole benchmark: {res['wall_seconds']:.0f} s; other processes "
        f"were using {res.get('foreign_load_before', float('nan')):.2f} of the "
        f"{sched['cores']} cores when part 2 started (a shared machine: CPU times are the "
        "figures to trust, wall times and latencies are inflated).\n"
        "- task format: the spec pickled once (bytes, cached per worker process) and a "
        "range of run indices; workers that see the results directory write their parts and "
        "return a summary.\n\n"
    )
    lines.append("## 1. Real chunks on one thread, and what the worker adds\n\n")
    rows = []
    for c in res["chunks"]:
        w = c["worker"]
        extra = w["build_cpu_s"] + w["write_cpu_s"]
        rows.append([c["label"], f"{c['runs']:,}", f"{c['mean_steps']:.0f}",
                     f"{c['train_cpu_s']:.3f}", f"{c['train_cpu_s'] / c['runs'] * 1e6:.0f}",
                     f"{ms(w['build_cpu_s'])} ({ms(w['build_wall_s'])})",
                     f"{ms(w['write_cpu_s'])} ({ms(w['write_wall_s'])})",
                     f"{extra / c['runs'] * 1e6:.1f}", f"{extra / c['train_cpu_s'] * 100:.1f}",
                     f"{c['curve_rows']:,}", f"{c['summary_bytes']:,}",
                     f"{c['result_bytes'] / 1e6:.2f}"])  # fmt: skip
    lines.append(C.table(
        ["chunk", "runs", "mean steps", "compute s (CPU)", "us per run",
         "build runs ms (wall)", "write parts ms (wall)", "worker adds us per run",
         "worker adds % of compute", "curve rows", "summary bytes (pickled)",
         "result MB (pickled, client-writes path)"], rows))  # fmt: skip
    lines.append(
        "\nCPU ms, wall in brackets. Build: `Spec.runs` over the chunk's range (run ids "
        "included); write: `store.write_unit` (3 Parquet files, fsync, rename, sha256 "
        "digests) into a results directory on local disk, median of several chunks.\n"
    )
    lines.append("\n## 2. The client's cost per chunk outside Dask (CPU; wall in brackets)\n\n")
    rows = []
    for c in res["chunks"]:
        cl = c["client"]
        rows.append([c["label"], f"{us(cl['plan_cpu_s'])} ({us(cl['plan_wall_s'])})",
                     f"{us(cl['record_cpu_s'])} ({us(cl['record_wall_s'])})",
                     f"{ms(cl['unpickle_cpu_s'])} ({ms(cl['unpickle_wall_s'])})",
                     f"{ms(cl['write_cpu_s'])} ({ms(cl['write_wall_s'])})",
                     f"{cl['write_cpu_s'] / c['runs'] * 1e6:.1f}"])  # fmt: skip
    lines.append(C.table(
        ["chunk", "plan us (plan_chunks + id)", "record summary us (Store.record_written)",
         "client writes: unpickle ms", "client writes: Store.write_chunk ms",
         "client writes: us per run"], rows))  # fmt: skip
    lines.append(
        "\nPlanning: a whole sweep's chunks (shape blocks found once), per chunk, over "
        "2,000 chunks. Recording: appending the files' digests to the verified log, "
        "median of 200. The last three columns are the path for workers without a shared "
        "file system, where the client receives and writes the tables (as before).\n"
    )
    lines.append("\n## 3. The scheduler's and the client's cost per chunk in Dask\n\n")
    rows = []
    idle = sched["idle_sched_cores"]
    for r in sched["rows"]:
        s, o = r["loaded"], r["one_at_a_time"]
        rows.append([r["label"], s["tasks"], f"{r['task_bytes']:,}",
                     f"{ms(per_task(s, 'sched_cpu_s', idle))} ({ms(per_task(s, 'sched_cpu_s'))})",
                     ms(per_task(s, "client_cpu_s")), ms(per_task(s, "wall_s")),
                     f"{ms(s['latency_p50_s'])} / {ms(s['latency_p90_s'])}",
                     ms(per_task(o, "sched_cpu_s")), ms(o["latency_p50_s"])])  # fmt: skip
    lines.append(C.table(
        ["chunk", "tasks", "spec bytes per task", "scheduler CPU ms / chunk (raw)",
         "client CPU ms / chunk", "wall ms / chunk", "latency p50 / p90 ms",
         "one at a time: scheduler CPU ms", "one at a time: latency p50 ms"], rows))  # fmt: skip
    lines.append(
        f"\nThe scheduler idle, its {sched['workers']} workers connected: "
        f"{idle * 1e3:.0f} ms of CPU per second (heartbeats, monitoring); the scheduler's "
        "CPU per chunk is given with that background taken out (its share of each "
        "measurement's wall time), then as measured (raw), in brackets. Loaded: "
        f"{2 * sched['workers'] + 2} chunks in flight (run_sweep's cap for "
        f"{sched['workers']} workers); latency = submission to result in the client. One at "
        "a time: the same with one chunk in flight. The client's CPU is everything it does "
        "per chunk: planning the next range, submitting it, receiving the summary and "
        "recording it (verified log, manifest) in a locked results directory.\n"
    )
    lines.append("\n## 4. Projection: workers one sweep keeps busy\n\n")
    rows = []
    for p in res["projection"]:
        rows.append([p["label"], f"{p['compute_s']:.3f}", ms(p["worker_extra_s"]),
                     ms(p["scheduler_s"]), ms(p["client_s"]), ms(p["client_process_s"]),
                     f"{p['workers_busy']:,.0f}", f"{p['runs_per_s']:,.0f}",
                     f"{p['workers_busy_external_scheduler']:,.0f}",
                     f"{p['runs_per_s_external_scheduler']:,.0f}",
                     f"{p['workers_busy_client_writes_at_most']:,.0f}"])  # fmt: skip
    lines.append(C.table(
        ["chunk", "compute s", "worker adds ms", "scheduler ms", "client ms",
         "client process ms / chunk (--cluster)", "workers busy (--cluster)", "runs/s",
         "workers busy (--scheduler)", "runs/s (--scheduler)",
         "workers busy, no shared FS (--cluster, at most)"], rows))  # fmt: skip
    lines.append(
        "\nWorkers busy: the number n of one-core workers at which the client process "
        "uses one full core: n chunks per worker-time-per-chunk (compute plus what the "
        "worker adds), each costing the CPU above, plus the scheduler's heartbeat load at n "
        "workers (the idle figure of section 3 per heartbeat received, times distributed's "
        "heartbeat rate at n workers). `--cluster`: scheduler and client in one process "
        "(their costs add up); `--scheduler`: the scheduler is a process of its own, the "
        "bound is the busier of the two. No shared FS: the client also unpickles and "
        "writes every result (section 2), the scheduler's relay of the result tables not "
        "counted, so at most. See docs/clusters.md for the assumptions.\n"
    )
    return "".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=16)
    p.add_argument(
        "--chunks", default=None, help="comma-separated indices of CHUNKS to measure (default: all)"
    )
    p.add_argument("--tasks", type=int, default=400, help="chunks streamed per kind")
    p.add_argument("--repeat", type=int, default=3, help="repeats of part 1-2 timings")
    p.add_argument(
        "--quick", action="store_true", help=f"chunk kinds {QUICK}, 100 tasks, 2 repeats"
    )
    p.add_argument(
        "--render", action="store_true",
        help="only recompute the projection and the Markdown from results/scheduler.json",
    )  # fmt: skip
    args = p.parse_args()
    C.setup_logging()
    if args.render:
        res = json.loads(OUT.with_suffix(".json").read_text())
        res["projection"] = projection(res)
        C.write_atomic(OUT.with_suffix(".json"), json.dumps(res, indent=1))
        C.write_atomic(OUT.with_suffix(".md"), render(res, res["command"]))
        return 0
    if args.quick:
        picked, tasks, repeat = QUICK, 100, 2
    else:
        picked, tasks, repeat = list(range(len(CHUNKS))), args.tasks, args.repeat
    if args.chunks:
        picked = [int(i) for i in args.chunks.split(",")]
    t_start = time.perf_counter()
    command = (
        "python benchmarks/bench_scheduler.py"
        + (f" --workers {args.workers}" if args.workers != 16 else "")
        + (" --quick" if args.quick else "")
        + (f" --chunks {args.chunks}" if args.chunks else "")
        + (f" --tasks {args.tasks}" if args.tasks != 400 and not args.quick else "")
        + (f" --repeat {args.repeat}" if args.repeat != 3 and not args.quick else "")
    )
    res: dict = {"machine": C.machine_info(), "command": command,
                 "options": {"chunks": picked, "tasks": tasks, "repeat": repeat}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-sched-") as d:
        tmp = Path(d)
        res["chunks"] = part_chunks(tmp, [CHUNKS[i] for i in picked], repeat)
        res["foreign_load_before"] = C.wait_quiet(10)
        part_client(tmp, res["chunks"], repeat)
        res["scheduler"] = part_scheduler(tmp, res["chunks"], args.workers, tasks)
    for c in res["chunks"]:
        c.pop("result_path")
        c.pop("summary_path")
    res["projection"] = projection(res)
    C.write_report(res, str(OUT), render, command, t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())

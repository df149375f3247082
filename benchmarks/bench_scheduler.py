"""What one chunk costs the Dask scheduler and the client: the scale-out limits of one sweep.

    python benchmarks/bench_scheduler.py [--workers 16] [--quick]

1. Real chunks (one thread, no Dask): chunks of small nets (whitened d = 4 and
   d = 8, 300 GD steps per run from a small init, curves every 10 steps) of
   1,024, 4,096 and 16,384 runs, and of a large net (d = 64, depth 3), of the
   size ``chunk_size`` picks for a 1,000-worker cluster, trained with
   ``worker.train_chunk`` as a worker would: compute seconds per chunk.
2. The client's cost per chunk written, on those real tables: planning the
   chunk (``Spec.runs`` + ``chunk_runs``), unpickling the result, and
   ``Store.write_chunk`` (conform, 3 Parquet files, fsync, rename); CPU and wall
   time per chunk.
3. The scheduler's cost per chunk: a ``dask scheduler`` process and ``--workers``
   worker processes of one thread each (``dask worker --nworkers``), all on
   127.0.0.1 (more workers than cores on purpose: the workers do nothing but
   return a real chunk result, see ``_sched_task.py``). A client streams chunks
   the way ``run_sweep`` does (at most 2 x workers + 2 in flight, results
   gathered through the scheduler, Dask's default). Scheduler CPU per chunk
   (psutil on its process), client CPU per chunk (this process), wall time per
   chunk, and submission-to-result latency, under that load and one at a time.

Writes results/scheduler.md and results/scheduler.json; docs/clusters.md
projects from them.
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


# (label, d, depth, runs per chunk or None for chunk_size's choice at 1,000 workers)
CHUNKS = [
    ("small d=4, 1,024 runs", 4, 2, 1024),
    ("small d=4, 4,096 runs", 4, 2, 4096),
    ("small d=4, 16,384 runs", 4, 2, 16384),
    ("small d=8, 1,024 runs", 8, 3, 1024),
    ("large d=64", 64, 3, None),
    ("large d=64, 128 runs", 64, 3, 128),
]
QUICK = [CHUNKS[0], CHUNKS[2], CHUNKS[4]]
# the same chunk with its Run objects pickled to one bytes object by the client: the
# scheduler then passes them on without unpickling and repickling every Run
AS_BYTES = "small d=4, 16,384 runs"


def best(fn, repeat: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``repeat`` calls."""
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def part_chunks(tmp: Path, chunks) -> list[dict]:
    """Train each chunk for real; keep its result (pickled) for the other parts."""
    import numba

    from sweepengine.sweep import chunk_runs, chunk_size, load_spec
    from sweepengine.sweep.worker import train_chunk, warm_up

    numba.set_num_threads(1)
    warm_up()
    out = []
    for label, d, depth, size in chunks:
        text = spec_text(f"sched-d{d}", d, depth, 10**6)
        spec = load_spec(text)
        size = size or chunk_size(spec, 1000)
        _, runs = next(chunk_runs(spec.runs(0, size), size))
        C.log.info("training %s: %d runs", label, len(runs))
        train_chunk("warm", runs[:8], spec.name)  # data and reference cached, as on a worker
        w0, c0 = time.perf_counter(), time.process_time()
        res = train_chunk("bench", runs, spec.name)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        blob = pickle.dumps(res, protocol=5)
        path = tmp / f"result-{len(out)}.pkl"
        path.write_bytes(blob)
        steps = res.runs.column("steps").to_pylist()
        out.append({
            "label": label, "d": d, "depth": depth, "runs": len(runs), "spec": text,
            "train_wall_s": wall, "train_cpu_s": cpu, "mean_steps": statistics.fmean(steps),
            "stall_rows": res.stalls.num_rows,
            "curve_rows": res.curves.num_rows if res.curves is not None else 0,
            "result_bytes": len(blob), "runs_bytes": len(pickle.dumps(runs, protocol=5)),
            "result_path": str(path),
        })  # fmt: skip
    return out


def part_client(tmp: Path, chunks: list[dict], quick: bool) -> None:
    """Per chunk: plan it, unpickle its result, write it (real tables, fresh store)."""
    import pyarrow as pa

    from sweepengine.store import open_store
    from sweepengine.sweep import chunk_runs, load_spec

    for i, c in enumerate(chunks):
        spec = load_spec(c["spec"])
        n = c["runs"]
        plan = best(lambda s=spec, n=n: next(chunk_runs(s.runs(0, n), n)), 3 if quick else 5)
        blob = Path(c["result_path"]).read_bytes()
        unpickle = best(lambda b=blob: pickle.loads(b), 5)
        res = pickle.loads(blob)
        k = max(3, min(30, int(60_000 / n)))
        copies = []
        for j in range(k):
            cid = f"bench{j:03d}-{i}"
            runs = res.runs.set_column(
                res.runs.schema.get_field_index("chunk_id"), "chunk_id",
                pa.array([cid] * res.runs.num_rows, pa.string()),
            )  # fmt: skip
            copies.append((cid, runs))
        store = open_store(tmp / f"store-{i}", spec.source)
        walls, cpus = [], []
        with store.lock():
            for cid, runs in copies:
                w0, c0 = time.perf_counter(), time.process_time()
                store.write_chunk(cid, runs, res.stalls, res.curves)
                walls.append(time.perf_counter() - w0)
                cpus.append(time.process_time() - c0)
        c["client"] = {
            "plan_wall_s": plan[0], "plan_cpu_s": plan[1],
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


def stream(
    client, args_list: list[tuple], n_tasks: int, cap: int, sched, as_bytes: bool = False
) -> dict:
    """Submit ``n_tasks`` chunks, at most ``cap`` in flight (as run_sweep); time them."""
    from _sched_task import echo_chunk
    from distributed import as_completed

    submitted: dict[str, float] = {}
    latencies = []
    it = iter(range(n_tasks))
    pending = as_completed()

    def submit_next() -> bool:
        i = next(it, None)
        if i is None:
            return False
        cid, runs, sweep, path = args_list[i % len(args_list)]
        if as_bytes:
            runs = pickle.dumps(runs, protocol=5)
        key = f"chunk-{cid}-{i}"
        submitted[key] = time.perf_counter()
        pending.add(client.submit(echo_chunk, cid, runs, sweep, path, key=key, pure=False))
        return True

    t0 = time.perf_counter()
    c0 = time.process_time()
    s0 = sum(sched.cpu_times()[:2])
    while len(submitted) < cap and submit_next():
        pass
    for fut in pending:
        fut.result()
        latencies.append(time.perf_counter() - submitted.pop(fut.key))
        fut.release()
        while len(submitted) < cap and submit_next():
            pass
    wall = time.perf_counter() - t0
    return {
        "tasks": n_tasks, "in_flight": cap, "wall_s": wall,
        "sched_cpu_s": sum(sched.cpu_times()[:2]) - s0,
        "client_cpu_s": time.process_time() - c0,
        "latency_p50_s": statistics.median(latencies),
        "latency_p90_s": statistics.quantiles(latencies, n=10)[-1],
    }  # fmt: skip


def part_scheduler(tmp: Path, chunks: list[dict], n_workers: int, quick: bool) -> dict:
    from distributed import Client

    from sweepengine.sweep import chunk_runs, load_spec

    payloads = []
    tiny = dict(chunks[0], label="tiny: 1 run of d=4", runs=1)
    for c in [tiny, *chunks]:
        spec = load_spec(c["spec"])
        runs = next(chunk_runs(spec.runs(0, c["runs"]), c["runs"]))[1]
        if c is tiny:  # a real one-run result: train it here, where the kernels are warm
            from sweepengine.sweep.worker import train_chunk

            path = tmp / "result-tiny.pkl"
            path.write_bytes(pickle.dumps(train_chunk("tiny", runs, spec.name), protocol=5))
            tiny["result_path"] = str(path)
        args = [(f"c{i}", runs, spec.name, c["result_path"]) for i in range(4)]
        payloads.append((c, args))
    out = {"workers": n_workers, "cores": os.cpu_count(), "rows": []}
    variants = [(c, args, False) for c, args in payloads]
    variants += [(dict(c, label=c["label"] + ", Runs as bytes"), args, True)
                 for c, args in payloads if c["label"] == AS_BYTES]  # fmt: skip
    with dask_procs(tmp, n_workers) as (sched, address), Client(address, timeout=120) as client:
        client.wait_for_workers(n_workers, timeout=300)
        time.sleep(5)
        s0, t0 = sum(sched.cpu_times()[:2]), time.perf_counter()
        time.sleep(10)  # the scheduler with its workers connected and nothing to do
        out["idle_sched_cores"] = (sum(sched.cpu_times()[:2]) - s0) / (time.perf_counter() - t0)
        cap = 2 * n_workers + 2
        for c, args, as_bytes in variants:
            n = c["runs"]
            n_tasks = int(max(40, min(1000, 2e6 / (n * 1000 / 1024 + 500))))
            if quick:
                n_tasks = max(20, n_tasks // 4)
            stream(client, args, min(n_tasks, 2 * cap), cap, sched, as_bytes)  # warm up
            loaded = stream(client, args, n_tasks, cap, sched, as_bytes)
            one = stream(client, args, max(20, n_tasks // 10), 1, sched, as_bytes)
            row = {"label": c["label"], "runs": n, "loaded": loaded, "one_at_a_time": one}
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

    With ``--cluster slurm|pbs`` the scheduler runs inside ``sweepengine run``,
    so one process pays, per chunk: planning, the scheduler's work, the client's
    Dask work (submit, receive, unpickle) and the Parquet write. A worker core
    is busy for the chunk's compute time; at most ``1 / cost`` chunks per second
    get through, so ``compute / cost`` cores are kept busy.
    """
    rows = []
    sched = res["scheduler"]
    idle = sched["idle_sched_cores"]
    per_heartbeat = idle / heartbeats_per_s(sched["workers"])
    chunks = {c["label"]: c for c in res["chunks"]}
    for r in sched["rows"]:
        c = chunks.get(r["label"].removesuffix(", Runs as bytes"))
        if c is None:  # the tiny chunk: no real compute to set against it
            continue
        s, cl = r["loaded"], c["client"]
        costs = {
            "plan": cl["plan_cpu_s"],
            "scheduler": per_task(s, "sched_cpu_s", idle),
            "client_dask": per_task(s, "client_cpu_s"),
            "write": cl["write_cpu_s"],
        }
        total = sum(costs.values())
        compute = c["train_cpu_s"]
        n = busy(compute, total, per_heartbeat)
        rows.append({
            "label": r["label"], "runs": c["runs"], "compute_s": compute,
            "costs_s": costs, "client_process_s": total,
            "workers_busy": n, "runs_per_s": n * c["runs"] / compute,
            "workers_busy_external_scheduler": min(
                busy(compute, costs["scheduler"], per_heartbeat),
                busy(compute, total - costs["scheduler"], 0.0)),
        })  # fmt: skip
    return rows


def render(res: dict, command: str) -> str:
    ms = lambda s: f"{s * 1e3:.2f}"  # noqa: E731
    lines = ["# Scale-out: what one chunk costs the scheduler and the client\n\n"]
    lines.append(C.machine_md(res["machine"], command))
    lines.append(
        f"- {res['scheduler']['workers']} Dask worker processes of one thread on "
        f"{res['scheduler']['cores']} cores (oversubscribed on purpose: they only return "
        "prepared results), a `dask scheduler` process and this client, all on 127.0.0.1.\n"
        f"- wall time of the whole benchmark: {res['wall_seconds']:.0f} s; other processes "
        f"were using {res.get('foreign_load_before', float('nan')):.2f} of the "
        f"{res['scheduler']['cores']} cores when part 2 started (a shared machine: CPU "
        "times are the figures to trust, wall times and latencies are inflated).\n\n"
    )
    lines.append("## 1. Real chunks, trained on one thread\n\n")
    rows = [[c["label"], f"{c['runs']:,}", f"{c['mean_steps']:.0f}",
             f"{c['train_cpu_s']:.3f}", f"{c['train_cpu_s'] / c['runs'] * 1e6:.0f}",
             f"{c['curve_rows']:,}", f"{c['result_bytes'] / 1e6:.2f}",
             f"{c['runs_bytes'] / 1e6:.2f}"] for c in res["chunks"]]  # fmt: skip
    lines.append(C.table(
        ["chunk", "runs", "mean steps", "compute s (CPU)", "us per run", "curve rows",
         "result MB (pickled)", "task args MB (pickled Runs)"], rows))  # fmt: skip
    lines.append("\n## 2. The client's cost per chunk written (CPU ms; wall in brackets)\n\n")
    rows = []
    for c in res["chunks"]:
        cl = c["client"]
        rows.append([c["label"], f"{ms(cl['plan_cpu_s'])} ({ms(cl['plan_wall_s'])})",
                     f"{ms(cl['unpickle_cpu_s'])} ({ms(cl['unpickle_wall_s'])})",
                     f"{ms(cl['write_cpu_s'])} ({ms(cl['write_wall_s'])})",
                     f"{cl['write_cpu_s'] / c['runs'] * 1e6:.1f}"])  # fmt: skip
    lines.append(C.table(
        ["chunk", "plan: Spec.runs + chunk_runs", "unpickle the result",
         "Store.write_chunk (3 files, fsync)", "write us per run (CPU)"], rows))  # fmt: skip
    lines.append(
        "\nMedians (planning and unpickling of 3-5 repeats, writes of 3-30 chunks into a "
        "fresh results directory).\n"
    )
    lines.append("\n## 3. The scheduler's cost per chunk\n\n")
    rows = []
    for r in res["scheduler"]["rows"]:
        s, o = r["loaded"], r["one_at_a_time"]
        idle = res["scheduler"]["idle_sched_cores"]
        rows.append([r["label"], s["tasks"],
                     f"{ms(per_task(s, 'sched_cpu_s', idle))} ({ms(per_task(s, 'sched_cpu_s'))})",
                     ms(per_task(s, "client_cpu_s")), ms(per_task(s, "wall_s")),
                     f"{ms(s['latency_p50_s'])} / {ms(s['latency_p90_s'])}",
                     ms(per_task(o, "sched_cpu_s")), ms(o["latency_p50_s"])])  # fmt: skip
    lines.append(C.table(
        ["chunk", "tasks", "scheduler CPU ms / chunk (raw)", "client CPU ms / chunk",
         "wall ms / chunk", "latency p50 / p90 ms", "one at a time: scheduler CPU ms",
         "one at a time: latency p50 ms"], rows))  # fmt: skip
    lines.append(
        f"\nThe scheduler idle, its {res['scheduler']['workers']} workers connected: "
        f"{res['scheduler']['idle_sched_cores'] * 1e3:.0f} ms of CPU per second (heartbeats, "
        "monitoring); the scheduler's CPU per chunk is given with that background taken out "
        "(its share of each measurement's wall time), then as measured (raw), in brackets."
        f" Loaded: {2 * res['scheduler']['workers'] + 2} chunks in flight (run_sweep's cap for "
        f"{res['scheduler']['workers']} workers); latency = submission to result in the "
        "client. One at a time: the same with one chunk in flight. The client's CPU includes "
        "pickling the task (its Run objects) and receiving and unpickling the result, which "
        "Dask relays through the scheduler.\n"
    )
    lines.append("\n## 4. Projection: workers one sweep keeps busy\n\n")
    rows = []
    for p in res["projection"]:
        k = p["costs_s"]
        rows.append([p["label"], f"{p['compute_s']:.3f}", ms(k["plan"]), ms(k["scheduler"]),
                     ms(k["client_dask"]), ms(k["write"]), ms(p["client_process_s"]),
                     f"{p['workers_busy']:,.0f}", f"{p['runs_per_s']:,.0f}",
                     f"{p['workers_busy_external_scheduler']:,.0f}"])  # fmt: skip
    lines.append(C.table(
        ["chunk", "compute s", "plan ms", "scheduler ms", "client Dask ms", "write ms",
         "client process ms / chunk", "workers busy (--cluster)", "runs/s",
         "workers busy (--scheduler)"], rows))  # fmt: skip
    lines.append(
        "\nWorkers busy: the number n of one-core workers at which the client process "
        "uses one full core: n chunks per chunk-compute-time, each costing the CPU above, "
        "plus the scheduler's heartbeat load at n workers (the idle figure of section 3 per "
        "heartbeat received, times distributed's heartbeat rate at n workers). "
        "`--cluster`: scheduler, client and writer in one process (their costs add up); "
        "`--scheduler`: the scheduler is a process of its own, the bound is the busier "
        "of the two. See docs/clusters.md for the assumptions.\n"
    )
    return "".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--quick", action="store_true", help="fewer chunk sizes and tasks")
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
    t_start = time.perf_counter()
    command = (
        "python benchmarks/bench_scheduler.py"
        + (f" --workers {args.workers}" if args.workers != 16 else "")
        + (" --quick" if args.quick else "")
    )
    res: dict = {"machine": C.machine_info(), "command": command}
    with tempfile.TemporaryDirectory(prefix="bench-sched-") as d:
        tmp = Path(d)
        res["chunks"] = part_chunks(tmp, QUICK if args.quick else CHUNKS)
        res["foreign_load_before"] = C.wait_quiet(10)
        part_client(tmp, res["chunks"], args.quick)
        res["scheduler"] = part_scheduler(tmp, res["chunks"], args.workers, args.quick)
    for c in res["chunks"]:
        c.pop("result_path")
    res["projection"] = projection(res)
    C.write_report(res, str(OUT), render, command, t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cold start of a sweep: what the workers of a 2-core machine pay before the first chunk.

    python benchmarks/bench_coldstart.py [--cores 0,1] [--out results/coldstart]

Each case starts fresh processes on an empty ``NUMBA_CACHE_DIR`` and an empty
compile-lock directory (``XDG_RUNTIME_DIR``), pinned to the given cores (default:
the first two, i.e. a 2-core machine however many this one has), and times
``sweep.worker.warm_up`` in each: what a worker of ``sweepengine run`` does before
its first chunk (``warm_up(driver)``: the reference kernels and the driver the chunk
uses; ``sweepengine warmup`` warms every unit). Cases:

- one worker, lock-step driver (the quick sweep's chunks): everything in one process;
- two workers side by side, lock-step driver (``sweepengine run`` on 2 cores): one
  compiles the driver while the other compiles the reference kernels
  (``compile_lock.compile_units``), then each loads what the other compiled;
- every unit in one process (``sweepengine warmup``);
- the same two workers again on the cache the first pair wrote (warm start).

"ready" is the time until the last worker of the case has finished its warm-up
(wall); CPU seconds are each process's own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import machine_info, machine_md  # noqa: E402

CHILD = """
import json, resource, sys, time
t = time.perf_counter()
from sweepengine.sweep import worker
t_import = time.perf_counter() - t
s = worker.warm_up(None if sys.argv[1] == "all" else sys.argv[1])
r = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"import_s": t_import, "warm_up_s": s, "cpu_s": r.ru_utime + r.ru_stime,
                  "wall_s": time.perf_counter() - t}))
"""


def run_case(n: int, unit: str, cores: list[int], cache: str, runtime: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "XDG_RUNTIME_DIR": runtime,
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # fmt: skip

    def pin() -> None:
        if cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cores)

    t0 = time.perf_counter()
    cmd = [sys.executable, "-c", CHILD, unit]
    procs = [subprocess.Popen(cmd, env=env, text=True, stdout=subprocess.PIPE, preexec_fn=pin)
             for _ in range(n)]  # fmt: skip
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    ready = time.perf_counter() - t0
    return {"workers": n, "unit": unit, "ready_s": ready, "procs": outs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", default="0,1", help="cores to pin to ('' for no pinning)")
    ap.add_argument("--out", default=str(ROOT / "results" / "coldstart"))
    ap.add_argument("--cases", default="", help="indices of the cases to run (default: all)")
    args = ap.parse_args()
    cores = [int(c) for c in args.cores.split(",") if c != ""]
    load0 = os.getloadavg()[0]
    rows = []
    cases = [("one worker, lock-step driver", 1, "lockstep", True),
             ("two workers, lock-step driver", 2, "lockstep", True),
             ("two workers again, warm cache", 2, "lockstep", False),
             ("every unit, one process (sweepengine warmup)", 1, "all", True)]  # fmt: skip
    if args.cases:
        keep = {int(i) for i in args.cases.split(",")}
        cases = [c for i, c in enumerate(cases) if i in keep]
    with tempfile.TemporaryDirectory() as tmp:
        cache = runtime = None
        for i, (label, n, unit, fresh) in enumerate(cases):
            if fresh:
                cache = tempfile.mkdtemp(dir=tmp, prefix=f"cache{i}-")
                runtime = tempfile.mkdtemp(dir=tmp, prefix=f"run{i}-")
            r = run_case(n, unit, cores, cache, runtime)
            r["label"] = label
            rows.append(r)
            print(f"{label}: ready after {r['ready_s']:.1f} s; CPU "
                  + ", ".join(f"{p['cpu_s']:.1f}" for p in r["procs"]), flush=True)  # fmt: skip
    load1 = os.getloadavg()[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/bench_coldstart.py"
    if args.cores != "0,1":
        command += f" --cores {args.cores}"
    if args.cases:
        command += f" --cases {args.cases}"
    meta = {"command": command, "cores": cores, "load_start": load0, "load_end": load1,
            "machine": machine_info()}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = ["# Cold start: a sweep worker's compile before its first chunk", "",
             f"`{meta['command']}`; processes pinned to cores {cores or 'any'}; "
             f"1-minute load average {load0:.1f} at the start, {load1:.1f} at the end.", "",
             machine_md(meta["machine"], meta["command"]),
             "| case | workers | ready (s, wall) | warm_up per worker (s) | CPU per worker (s) |",
             "| --- | ---: | ---: | --- | --- |"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['workers']} | {r['ready_s']:.1f} | "
            + ", ".join(f"{p['warm_up_s']:.1f}" for p in r["procs"]) + " | "
            + ", ".join(f"{p['cpu_s']:.1f}" for p in r["procs"]) + " |"
        )  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"-> {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()

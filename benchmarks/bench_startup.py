"""Fixed cost of ``sweepengine run`` with a warm Numba cache: imports, cluster, shutdown.

    python benchmarks/bench_startup.py [--repeats 5]

Writes results/startup.md and results/startup.json. Each measurement is a fresh
process (the command as a user runs it), median of ``--repeats``:

- ``sweepengine --help``: interpreter + the CLI module (standard library only);
- ``python -c 'import ...'`` of what the client imports to plan and schedule;
- ``sweepengine run`` of a sweep that is already complete: spec, results
  directory, no cluster, the report rewritten;
- ``sweepengine run`` of a one-run sweep of one step: the whole fixed cost,
  embedded LocalCluster started and closed, the worker's warm-up (cache load)
  included; by default (a short sweep on a warm cache: worker threads in the
  command's process, ``--in-process``), then with worker processes
  (``--processes``, ``--workers 2`` and ``--workers 1``), each ``--no-report``;
- the default one-run sweep with its report (what the report adds).

The kernel cache is warmed first (``sweepengine warmup``). Target (issue 11): at
most 2.5 s for the one-run sweep on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
SPEC = """
name = "startup"
seeds = { range = [0, 1] }
max_steps = 1
[problem]
name = "whitened"
d_x = 3
d_y = 3
m = 8
singular_values = [2.0, 1.0, 0.5]
seed = 0
[architecture]
depth = 1
width = 3
[init]
scale = 0.1
[optimizer]
name = "gd"
lr = 0.1
"""


PHASES = """
import time
t0 = time.perf_counter()
from sweepengine.sweep import connect, load_spec
from sweepengine.sweep.schedule import _train_chunk
from sweepengine.sweep.spec import chunk_runs
if __name__ == "__main__":
    t1 = time.perf_counter()
    spec = load_spec("startup.toml")
    with connect(n_workers=2, in_process=IN_PROCESS) as c:
        t2 = time.perf_counter()
        cid, runs = next(chunk_runs(spec.runs(), 8))
        c.submit(_train_chunk, cid, runs, spec.name, pure=False).result()
        t3 = time.perf_counter()
    t4 = time.perf_counter()
    print("PHASES", t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""
PHASE_NAMES = [
    "client imports (sweep, store, distributed)",
    "LocalCluster start, 2 worker processes / threads (workers import the trainer: preload)",
    "first chunk (worker warm-up: cache load of the units it needs; data, training, tables)",
    "client and cluster shutdown",
]


def phases(work: Path, repeats: int, in_process: bool) -> list[float]:
    """Median seconds of each phase of a one-run sweep, timed inside one process."""
    (work / "phases.py").write_text(f"IN_PROCESS = {in_process}\n" + PHASES)
    rows = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "phases.py"], cwd=work, env=_env(),
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        line = next(x for x in out.splitlines() if x.startswith("PHASES "))
        rows.append([float(x) for x in line.split()[1:]])
    return [statistics.median(col) for col in zip(*rows, strict=True)]


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("sweepengine")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sweepengine.cli"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[v] = "1"
    return env


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="se-startup-"))
    (work / "startup.toml").write_text(SPEC)
    timed([*_cli(), "warmup"], work)
    timed([*_cli(), "run", "startup.toml", "--out", "done", "-q"], work)
    client_imports = (
        "import sweepengine.cli, sweepengine.sweep, sweepengine.store, distributed, tqdm"
    )
    cases = {
        "sweepengine --help": lambda i: [*_cli(), "--help"],
        "import the client's modules (sweep, store, distributed, tqdm)": lambda i: [
            sys.executable,
            "-c",
            client_imports,
        ],  # fmt: skip
        "run, sweep already complete (no cluster)": lambda i: [
            *_cli(),
            "run",
            "startup.toml",
            "--out",
            "done",
            "-q",
        ],  # fmt: skip
        "run --no-report, one run of one step (default: in-process, 2 threads)": lambda i: [
            *_cli(),
            "run",
            "startup.toml",
            "--out",
            f"ip-{i}",
            "-q",
            "--no-report",
        ],  # fmt: skip
        "run --no-report, one run of one step, --processes, 2 workers": lambda i: [
            *_cli(),
            "run",
            "startup.toml",
            "--out",
            f"w2-{i}",
            "-q",
            "--processes",
            "--workers",
            "2",
            "--no-report",
        ],  # fmt: skip
        "run --no-report, one run of one step, --processes, 1 worker": lambda i: [
            *_cli(),
            "run",
            "startup.toml",
            "--out",
            f"w1-{i}",
            "-q",
            "--processes",
            "--workers",
            "1",
            "--no-report",
        ],  # fmt: skip
        "run, one run of one step, with its report (the default)": lambda i: [
            *_cli(),
            "run",
            "startup.toml",
            "--out",
            f"rep-{i}",
            "-q",
        ],  # fmt: skip
    }
    load0 = os.getloadavg()[0]
    res = {}
    for name, cmd in cases.items():
        times = [timed(cmd(i), work) for i in range(args.repeats)]
        res[name] = {"median": statistics.median(times), "min": min(times), "all": times}
        print(f"{name:60s} median {res[name]['median']:.2f} s  min {min(times):.2f} s", flush=True)
    split = {mode: phases(work, args.repeats, mode == "in-process")
             for mode in ("in-process", "processes")}  # fmt: skip
    load1 = os.getloadavg()[0]
    shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "startup.json").write_text(
        json.dumps(
            {
                "load": [load0, load1],
                "cores": os.cpu_count(),
                "results": res,
                "phases": {m: dict(zip(PHASE_NAMES, t, strict=True)) for m, t in split.items()},
            },
            indent=2,
        )
        + "\n"
    )
    lines = [
        "# Start-up: the fixed cost of `sweepengine run` (warm Numba cache)",
        "",
        f"`python benchmarks/bench_startup.py --repeats {args.repeats}`; {os.cpu_count()} "
        f"cores; 1-minute load average {load0:.1f} at the start, {load1:.1f} at the end "
        "(above 1 on 2 cores: other processes competed). Seconds per fresh process; "
        "target: at most 2.5 s for the one-run sweep on 2 cores (the default: in-process; "
        "the report, written after the sweep, is timed on its own in the last row).",
        "",
        "| command | median (s) | min (s) |",
        "| --- | ---: | ---: |",
    ]
    for name, r in res.items():
        lines.append(f"| {name} | {r['median']:.2f} | {r['min']:.2f} |")
    lines += [
        "",
        "Where the one-run sweep's time goes (timed inside one process, median):",
        "",
        "| phase | in-process (s) | processes (s) |",
        "| --- | ---: | ---: |",
    ]
    lines += [
        f"| {n} | {a:.2f} | {b:.2f} |"
        for n, a, b in zip(PHASE_NAMES, split["in-process"], split["processes"], strict=True)
    ]
    lines.append("")
    (RESULTS / "startup.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / 'startup.md'}")


if __name__ == "__main__":
    main()

"""The README's main command, first run on a machine (cold kernel cache) and again (warm).

    python benchmarks/bench_firstrun.py [--repeats 2]

Runs ``sweepengine run sweeps/quick.toml`` (report included, as the README runs
it) in fresh processes: first with an empty ``NUMBA_CACHE_DIR`` and an empty
compile-lock directory (``XDG_RUNTIME_DIR``), as on a new machine, then
``--repeats`` times on the cache the first run wrote, each into a fresh results
directory. The difference between the cold run and the median warm run is what
compiling costs a new user (issue 11: at most 45 s on an idle 2-core machine).
Writes results/firstrun.md and results/firstrun.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import machine_info, machine_md, write_atomic  # noqa: E402

COMMAND = "python benchmarks/bench_firstrun.py"


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("sweepengine")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sweepengine.cli"]


def run(out: Path, env: dict[str, str]) -> dict:
    t0 = time.perf_counter()
    cmd = [*_cli(), "run", str(ROOT / "sweeps" / "quick.toml"), "--out", str(out), "-q"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}")
    m = re.search(r"(\d+) runs trained in (\d+) chunks, ([\d.]+) s", proc.stdout)
    return {"wall_s": wall, "sweep_s": float(m[3]), "runs": int(m[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Path(tmp) / "runtime"
        runtime.mkdir(mode=0o700)
        env = {**os.environ, "NUMBA_CACHE_DIR": str(Path(tmp) / "cache"),
               "XDG_RUNTIME_DIR": str(runtime)}  # fmt: skip
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        cold = run(Path(tmp) / "cold", env)
        print(f"cold: {cold['wall_s']:.1f} s", flush=True)
        warm = [run(Path(tmp) / f"warm{i}", env) for i in range(args.repeats)]
        print("warm: " + ", ".join(f"{w['wall_s']:.1f}" for w in warm) + " s", flush=True)
    load1 = os.getloadavg()[0]
    warm_s = statistics.median(w["wall_s"] for w in warm)
    compile_s = cold["wall_s"] - warm_s
    command = COMMAND + (f" --repeats {args.repeats}" if args.repeats != 2 else "")
    info = machine_info()
    res = {"command": command, "load": [load0, load1], "cold": cold, "warm": warm,
           "compile_s": compile_s, "machine": info}  # fmt: skip
    out = ROOT / "results" / "firstrun"
    write_atomic(out.with_suffix(".json"), json.dumps(res, indent=2) + "\n")
    lines = [
        "# First run: the README's main command with a cold and a warm kernel cache",
        "",
        machine_md(info, command),
        f"- 1-minute load average {load0:.1f} at the start, {load1:.1f} at the end (2 cores: "
        "above 1 means other processes competed).",
        "",
        "`sweepengine run sweeps/quick.toml` (144 runs, report included) in fresh processes: "
        "first with an empty Numba cache and compile-lock directory, then on the cache it "
        "wrote. Seconds, wall clock; `sweep` is the command's own `trained in` figure.",
        "",
        "| run | command (s) | sweep (s) |",
        "| --- | ---: | ---: |",
        f"| cold cache (first run on a machine) | {cold['wall_s']:.1f} | {cold['sweep_s']:.1f} |",
    ]
    lines += [f"| warm cache, repeat {i + 1} | {w['wall_s']:.1f} | {w['sweep_s']:.1f} |"
              for i, w in enumerate(warm)]  # fmt: skip
    lines += [
        "",
        f"Compiling costs the first run {compile_s:.1f} s (cold minus the median warm run); "
        f"target (issue 11): at most 45 s on an idle 2-core machine: "
        f"{'met' if compile_s <= 45 else 'NOT met'}.",
        "",
    ]
    write_atomic(out.with_suffix(".md"), "\n".join(lines))
    print(f"-> {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()

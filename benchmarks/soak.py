"""Soak: a sweep of tiny nets while workers and the client are killed; then compare.

    python benchmarks/soak.py [--seeds 5000] [--kill-every 3] [--client-kills 2]

1. A clean run: ``sweepengine run`` of 4 x SEEDS runs (whitened d = 2, depth
   1-2, width 2, two init scales, GD, 200 steps, curves every 50 steps) on the
   embedded cluster (2 workers, chunks of ``--chunk`` runs) into OUT/clean.
2. The same sweep into OUT/soak, while a killer SIGKILLs a random worker
   process of the sweep every KILL_EVERY seconds once it is training and all
   its worker processes have been up for MIN_AGE_S (its nanny starts a new
   one and Dask reruns its chunks elsewhere; a worker killed while its nanny
   is still starting it is not restarted, and a first version of this script
   that killed such workers left the embedded cluster with no worker and the
   sweep waiting: see results/soak.md), and SIGKILLs the whole client (``run``
   process, its nannies and workers) CLIENT_KILLS times, each time after
   another share of the runs is on disk; the sweep is then started again, as
   a user would, until it exits 0.
3. Afterwards: every table of OUT/soak equals OUT/clean's per run_id
   (placement columns excluded: chunk, worker, wall and compile time), with
   exactly one row per run.

Writes results/soak.md (and prints it). ``soak()`` is also what the slow test
(tests/test_soak.py) runs, smaller.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
PLACEMENT = ["chunk_id", "worker", "wall_time_s", "compile_time_s"]
MIN_AGE_S = 15.0  # a worker process younger than this may still be starting: spared


def spec_text(seeds: int, max_steps: int = 200) -> str:
    return f"""
name = "soak"
seeds = {{ range = [0, {seeds}] }}
max_steps = {max_steps}
record_every = 50

[problem]
name = "whitened"
d_x = 2
d_y = 2
m = 8
singular_values = [2.0, 1.0]

[architecture]
depth = [1, 2]
width = 2

[init]
scale = [0.05, 0.3]

[optimizer]
name = "gd"
lr = 0.1
"""


def _cli(spec: Path, out: Path, chunk: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_LOGGING__DISTRIBUTED": "error",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "sweepengine.cli", "run", str(spec), "--out", str(out), "-q",
         "--workers", str(workers), "--chunk", str(chunk), "--processes"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _workers(pid: int) -> list[psutil.Process]:
    """The sweep's worker processes: children spawned by its nannies."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for k in kids:
        try:
            if "spawn_main" in " ".join(k.cmdline()):
                out.append(k)
        except psutil.Error:
            pass
    return out


def _parts_on_disk(out: Path) -> int:
    d = out / "runs"
    return len(list(d.glob("*.parquet"))) if d.is_dir() else 0


def soak(root: Path, seeds: int = 5000, kill_every: float = 3.0, client_kills: int = 2,
         chunk: int = 100, workers: int = 2, seed: int = 0,
         max_steps: int = 200) -> dict:  # fmt: skip
    """Run the clean and the soak sweep under ``root``; returns the numbers and checks."""
    import pandas as pd

    from sweepengine.store import read_curves, read_runs, read_stalls
    from sweepengine.sweep import load_spec

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    spec_path = root / "soak.toml"
    spec_path.write_text(spec_text(seeds, max_steps))
    n_runs = load_spec(spec_path).n_runs

    t = time.monotonic()
    clean = _cli(spec_path, root / "clean", chunk, workers)
    _, err = clean.communicate(timeout=3600)
    assert clean.returncode == 0, err
    clean_s = time.monotonic() - t

    out = root / "soak"
    kills = {"worker": 0, "client": 0, "starts": 0}
    thresholds = [n_runs * (k + 1) // (client_kills + 2) for k in range(client_kills)]
    t0 = time.monotonic()
    while True:
        proc = _cli(spec_path, out, chunk, workers)
        kills["starts"] += 1
        stop = threading.Event()

        def killer(proc=proc, stop=stop) -> None:
            # kill workers only once this start is training (a part written since it
            # began): a worker killed while the cluster starts fails the start itself
            start_parts = _parts_on_disk(out)
            while not stop.wait(0.2) and _parts_on_disk(out) == start_parts:
                pass
            next_kill = time.monotonic() + kill_every
            while not stop.wait(0.2):
                if thresholds and _parts_on_disk(out) * chunk >= thresholds[0]:
                    thresholds.pop(0)
                    os.killpg(proc.pid, signal.SIGKILL)  # client, nannies, workers
                    kills["client"] += 1
                    return
                if time.monotonic() >= next_kill:
                    # a worker killed while its nanny still starts it is not restarted
                    # (distributed logs "Failed to restart worker"): kill only when every
                    # worker process has been up for MIN_AGE_S, so it has joined
                    victims = _workers(proc.pid)
                    if len(victims) < workers or any(
                        time.time() - v.create_time() < MIN_AGE_S for v in victims
                    ):
                        continue
                    next_kill = time.monotonic() + kill_every
                    if victims:
                        try:
                            rng.choice(victims).kill()
                            kills["worker"] += 1
                        except psutil.NoSuchProcess:
                            pass

        th = threading.Thread(target=killer, daemon=True)
        th.start()
        _, err = proc.communicate(timeout=3600)
        stop.set()
        th.join()
        (root / f"soak-start-{kills['starts']}.log").write_text(err)
        if proc.returncode == 0:
            break
        if proc.returncode != -signal.SIGKILL:
            raise AssertionError(f"run exited {proc.returncode}:\n{err[-3000:]}")
    soak_s = time.monotonic() - t0

    def frame(read, keys, where):
        df = read(where).to_pandas()
        df = df.drop(columns=[c for c in PLACEMENT if c in df.columns])
        return df.sort_values(keys).reset_index(drop=True)

    runs = read_runs(out).to_pandas()
    result = {
        "runs": n_runs,
        "rows": len(runs),
        "distinct_run_ids": runs.run_id.nunique(),
        "worker_kills": kills["worker"],
        "client_kills": kills["client"],
        "client_starts": kills["starts"],
        "clean_s": clean_s,
        "soak_s": soak_s,
        "parts": len(list((out / "runs").glob("*.parquet"))),
    }
    for name, read, keys in (("runs", read_runs, ["run_id"]),
                             ("stalls", read_stalls, ["run_id", "stall_index"]),
                             ("curves", read_curves, ["run_id", "step"])):  # fmt: skip
        a, b = frame(read, keys, out), frame(read, keys, root / "clean")
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
        result[f"{name}_rows"] = len(a)
    result["identical"] = True
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=5000)
    p.add_argument("--kill-every", type=float, default=3.0)
    p.add_argument("--client-kills", type=int, default=2)
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--root", default="/tmp/sweepengine-soak")
    args = p.parse_args()
    import shutil

    shutil.rmtree(args.root, ignore_errors=True)
    r = soak(Path(args.root), args.seeds, args.kill_every, args.client_kills, args.chunk,
             max_steps=args.max_steps)  # fmt: skip
    cmd = (f"python benchmarks/soak.py --seeds {args.seeds} --kill-every {args.kill_every} "
           f"--client-kills {args.client_kills} --chunk {args.chunk} "
           f"--max-steps {args.max_steps}")  # fmt: skip
    lines = [
        "# Soak: a sweep while workers and the client are killed",
        "",
        f"Run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} with `{cmd}` on "
        f"{os.cpu_count()} cores (shared with other work), embedded cluster of 2 workers.",
        "",
        "| | |",
        "|---|---|",
        f"| runs in the spec | {r['runs']:,} |",
        f"| rows in OUT/runs afterwards | {r['rows']:,} ({r['distinct_run_ids']:,} distinct "
        "run ids) |",
        f"| stalls rows, curves rows | {r['stalls_rows']:,}, {r['curves_rows']:,} |",
        f"| worker processes killed (SIGKILL, every {args.kill_every:g} s) | {r['worker_kills']} |",
        f"| client killed (SIGKILL of `run` with its nannies and workers) | {r['client_kills']} |",
        f"| `run` started | {r['client_starts']} times |",
        f"| Parquet parts | {r['parts']} |",
        f"| clean run | {r['clean_s']:.1f} s |",
        f"| soak (all starts) | {r['soak_s']:.1f} s |",
        "",
        "Afterwards every table equals the clean run's per run_id (runs, stalls and curves "
        "compared exactly with pandas, placement columns chunk_id, worker, wall_time_s and "
        "compile_time_s excluded), with exactly one row per run: "
        f"{'yes' if r['identical'] else 'NO'}.",
        "",
        f"A worker is killed only when every worker process of the sweep has been up for "
        f"{MIN_AGE_S:g} s (so it has joined; hence fewer kills than one per "
        f"{args.kill_every:g} s). Found on the way: a worker process killed while its nanny "
        "is still starting it is not restarted (distributed's nanny logs \"Failed to restart "
        'worker after its process exited" and stays up without a worker). Two first '
        "attempts of this soak that killed such workers left the embedded cluster with no "
        "worker at all, and the sweep waited (no error, no progress) until it was stopped "
        "by hand. Since then, `run` stops an embedded cluster that has had no worker for "
        "`NO_WORKER_S` (120 s) and exits 1; a rerun finishes the sweep "
        "(tests/test_sweep_faults.py).",
        "",
    ]
    (ROOT / "results" / "soak.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

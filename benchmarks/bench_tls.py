"""What TLS costs at start-up: the embedded cluster started and shut down, with and without.

    python benchmarks/bench_tls.py [--repeats 3] [--workers 2]

Each sample is one ``sweepengine.sweep.schedule.connect(n_workers=W, tls=...)``
block that submits one tiny task (so every worker has joined and one task has
crossed the wire) and closes: temporary credentials (``Security.temporary()``,
an RSA-2048 key and a self-signed certificate, only with TLS), scheduler, W
worker processes (which import the trainer module, ``preload``), client,
shutdown. TLS and plain samples alternate, so background load hits both alike.
Also timed alone: ``Security.temporary()``. Writes results/security.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(tls: bool, workers: int) -> tuple[float, float]:
    """One start + task + shutdown in a fresh process (no warm imports carried over):
    (wall seconds, CPU seconds of the process and its reaped children, the workers)."""
    code = (
        "import time, logging, resource; logging.disable(logging.WARNING)\n"
        "t0 = time.perf_counter()\n"
        "from sweepengine.sweep.schedule import connect\n"
        f"with connect(n_workers={workers}, tls={tls}) as c:\n"
        "    assert c.submit(sum, [1, 2], pure=False).result() == 3\n"
        "    assert c.scheduler.address.startswith('tls://' if "
        f"{tls} else 'tcp://')\n"
        "wall = time.perf_counter() - t0\n"
        "cpu = sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, "
        "resource.RUSAGE_CHILDREN) for f in ('ru_utime', 'ru_stime'))\n"
        "print(wall, cpu)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_LOGGING__DISTRIBUTED": "error"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=300, check=True)  # fmt: skip
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def keygen(n: int = 5) -> list[float]:
    from distributed.security import Security

    times = []
    for _ in range(n):
        t = time.perf_counter()
        Security.temporary()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    one(True, args.workers)  # warm the OS page cache for both
    samples: dict[bool, list[float]] = {True: [], False: []}
    cpus: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeats):
        for tls in (False, True):
            wall, cpu = one(tls, args.workers)
            samples[tls].append(wall)
            cpus[tls].append(cpu)
    keys = keygen()
    load = os.getloadavg()
    med = {k: statistics.median(v) for k, v in samples.items()}
    cmed = {k: statistics.median(v) for k, v in cpus.items()}
    spread = max(max(v) - min(v) for v in samples.values())
    if abs(med[True] - med[False]) < spread:
        verdict = (f"The wall-time difference ({med[True] - med[False]:+.2f} s) is within the "
                   f"spread of the samples ({spread:.2f} s): not measurable here. ")  # fmt: skip
    else:
        verdict = f"TLS adds {med[True] - med[False]:+.2f} s of wall time. "
    lines = [
        "# Security: what TLS costs at start-up",
        "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} with "
        f"`python benchmarks/bench_tls.py --repeats {args.repeats} --workers {args.workers}` "
        f"on {os.cpu_count()} cores ({platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}), load average {load[0]:.1f} at the end "
        "(a machine shared with other work: samples alternate TLS / plain so both see it).",
        "",
        "One sample = a fresh process: import, `connect(n_workers=W, tls=...)` (the "
        "embedded LocalCluster: scheduler, W worker processes that preload the trainer "
        "module, client), one tiny task, shutdown.",
        "",
        "| cluster | wall, samples (s) | wall, median (s) | CPU, median (s) |",
        "|---|---|---|---|",
        f"| plain tcp:// | {', '.join(f'{x:.2f}' for x in samples[False])} | {med[False]:.2f} "
        f"| {cmed[False]:.2f} |",
        f"| TLS (temporary credentials) | {', '.join(f'{x:.2f}' for x in samples[True])} "
        f"| {med[True]:.2f} | {cmed[True]:.2f} |",
        "",
        "CPU = user + system seconds of the process and its worker processes (less "
        "sensitive to other load than wall time). "
        + verdict
        + f"CPU: {cmed[True] - cmed[False]:+.2f} s with TLS. Making the credentials "
        f"(`Security.temporary()`: RSA-2048 key, self-signed certificate) takes "
        f"{statistics.median(keys) * 1e3:.0f} ms (median of {len(keys)}); the rest of TLS's "
        "cost is handshakes between client, scheduler, nannies and workers, small next to "
        "starting worker processes that import the trainer. Once the cluster is up, each "
        "task carries a chunk of runs, so encryption per message does not show in sweep "
        "throughput.",
        "",
    ]
    out = ROOT / "results" / "security.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

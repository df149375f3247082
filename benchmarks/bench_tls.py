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


def one(tls: bool, workers: int) -> float:
    """One start + task + shutdown in a fresh process (no warm imports carried over)."""
    code = (
        "import time, logging; logging.disable(logging.WARNING)\n"
        "t0 = time.perf_counter()\n"
        "from sweepengine.sweep.schedule import connect\n"
        f"with connect(n_workers={workers}, tls={tls}) as c:\n"
        "    assert c.submit(sum, [1, 2], pure=False).result() == 3\n"
        "    assert c.scheduler.address.startswith('tls://' if "
        f"{tls} else 'tcp://')\n"
        "print(time.perf_counter() - t0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_LOGGING__DISTRIBUTED": "error"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=300, check=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


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
    for _ in range(args.repeats):
        for tls in (False, True):
            samples[tls].append(one(tls, args.workers))
    keys = keygen()
    load = os.getloadavg()
    med = {k: statistics.median(v) for k, v in samples.items()}
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
        "| cluster | samples (s) | median (s) |",
        "|---|---|---|",
        f"| plain tcp:// | {', '.join(f'{x:.2f}' for x in samples[False])} | {med[False]:.2f} |",
        f"| TLS (temporary credentials) | {', '.join(f'{x:.2f}' for x in samples[True])} "
        f"| {med[True]:.2f} |",
        "",
        f"TLS adds {med[True] - med[False]:+.2f} s to the median start + shutdown "
        f"({100 * (med[True] / med[False] - 1):+.0f}%). Of that, making the credentials "
        f"(`Security.temporary()`: RSA-2048 key, self-signed certificate) takes "
        f"{statistics.median(keys) * 1e3:.0f} ms (median of {len(keys)}); the rest is TLS "
        "handshakes between client, scheduler, nannies and workers. Against a sweep of "
        "minutes it is noise; once the cluster is up, tasks carry chunks of runs, so the "
        "per-message cost of encryption is not visible in sweep throughput.",
        "",
    ]
    out = ROOT / "results" / "security.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Spec planning speed: load a million-run spec, list its first runs, reach its last.

    python benchmarks/bench_spec.py

Writes results/spec.md. The timings once asserted by tests/test_spec.py (load
< 0.5 s, first 1,000 runs < 2 s) live here: tests assert no wall-clock times.
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sweepengine.sweep import load_spec  # noqa: E402
from tests.test_spec import MILLION  # noqa: E402

CASES = {"grid": "", "random (1,000 samples)": 'combine = "random"\nsamples = 1000\n'}


def measure(extra: str) -> dict[str, float]:
    t0 = time.perf_counter()
    s = load_spec(extra + MILLION)
    t1 = time.perf_counter()
    first = list(itertools.islice(s.runs(), 1000))
    t2 = time.perf_counter()
    s.run(s.n_runs - 1)
    t3 = time.perf_counter()
    assert s.n_runs == 1_000_000 and len(first) == 1000
    return {"load": t1 - t0, "first 1,000 runs": t2 - t1, "last run": t3 - t2}


def main() -> None:
    load = os.getloadavg()[0]
    lines = [
        "# Spec planning: a million-run spec",
        "",
        f"`python benchmarks/bench_spec.py`; median of 5, seconds; 1-minute load average "
        f"{load:.1f} at the start (2 cores). Targets: load < 0.5 s, first 1,000 runs < 2 s.",
        "",
        "| spec | load (s) | first 1,000 runs (s) | last run (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, extra in CASES.items():
        runs = [measure(extra) for _ in range(5)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        lines.append(
            f"| {name} | {med['load']:.3f} | {med['first 1,000 runs']:.3f} | "
            f"{med['last run']:.4f} |"
        )
        print(name, med, flush=True)
    (ROOT / "results" / "spec.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

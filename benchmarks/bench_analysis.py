"""Analysis at scale: every helper on a synthetic 1,000,000-run version-2 results directory.

    PYTHONPATH=. python benchmarks/bench_analysis.py [--runs 1000000] [--n-boot 1000]
        [--dir /tmp/bench-analysis] [--keep] [--report]

Writes the directory with pyarrow (``sweepengine.analysis.synthetic``: realistic
distributions, ~3.6 stall rows per run, 32 Parquet parts), then times ``load``
and each helper once, in this process, in the order a user would call them.
Memory: peak resident set size during each step, sampled every 5 ms by a thread
from /proc/self/statm (Arrow's allocations included, which tracemalloc does not
see), and the process peak (``resource.getrusage``). Results go to
results/analysis.json and results/analysis.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _cpu() -> float:
    """CPU seconds of this process (all threads), user + system."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Peak:
    """Peak RSS while the block runs (a sampling thread)."""

    def __enter__(self):
        self.start = rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        self.t0 = time.perf_counter()
        self.c0 = _cpu()
        return self

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.cpu = _cpu() - self.c0
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--dir", default="/tmp/bench-analysis")
    ap.add_argument("--keep", action="store_true", help="reuse an existing directory")
    ap.add_argument("--report", action="store_true", help="also time write_report")
    ap.add_argument("--out", default=str(ROOT / "results" / "analysis"))
    args = ap.parse_args()

    from sweepengine import analysis as A
    from sweepengine.analysis.report import summary_text, write_report
    from sweepengine.analysis.synthetic import synthetic_directory

    out = Path(args.dir)
    steps: list[dict] = []

    def step(name, fn):
        with Peak() as p:
            value = fn()
        steps.append({"step": name, "seconds": round(p.seconds, 3), "cpu_s": round(p.cpu, 3),
                      "rss_start_mib": round(p.start / 2**20, 1),
                      "rss_peak_mib": round(p.peak / 2**20, 1),
                      "rss_added_mib": round((p.peak - p.start) / 2**20, 1)})  # fmt: skip
        print(f"{name:<55} {p.seconds:8.2f} s  cpu {p.cpu:8.2f} s  "
              f"peak {p.peak / 2**20:8.1f} MiB", flush=True)  # fmt: skip
        return value

    if not (args.keep and (out / "runs").is_dir()):
        shutil.rmtree(out, ignore_errors=True)
        step(f"write synthetic directory ({args.runs:,} runs)",
             lambda: synthetic_directory(out, args.runs, seed=0, curves=40, parts=32))  # fmt: skip
    size = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    res = step("load(DIR)", lambda: A.load(out))
    nb = args.n_boot
    calls = [
        ("saddle_frequency(by=depth)", lambda: A.saddle_frequency(res, "depth")),
        ("saddle_frequency(by=depth, init_scale, optimizer)",
         lambda: A.saddle_frequency(res, ["depth", "init_scale", "optimizer"])),
        ("saddle_frequency(strict_saddle, by=widths)",
         lambda: A.saddle_frequency(res, "widths", "strict_saddle")),
        (f"time_shares(by=(), n_boot={nb})", lambda: A.time_shares(res, (), n_boot=nb)),
        (f"time_shares(by=depth, n_boot={nb})", lambda: A.time_shares(res, "depth", n_boot=nb)),
        ("time_shares(by=depth, n_boot=200)", lambda: A.time_shares(res, "depth", n_boot=200)),
        ("time_to_target(by=depth) + split", lambda: A.time_to_target(res, "depth")),
        ("slowdown(by=depth, init_scale)", lambda: A.slowdown(res, ["depth", "init_scale"])),
        ("scale_scaling(by=depth)", lambda: A.scale_scaling(res, "depth")),
        ("depth_scaling(by=init_scale)", lambda: A.depth_scaling(res, "init_scale")),
        ("survival(by=stall_class)", lambda: A.survival(res)),
        ("survival(by=stall_class, depth)", lambda: A.survival(res, ["stall_class", "depth"])),
        ("outcomes(by=depth, optimizer)", lambda: A.outcomes(res, ["depth", "optimizer"])),
        ("summary_text (n_boot=200)", lambda: summary_text(res, n_boot=200)),
    ]  # fmt: skip
    for name, fn in calls:
        step(name, fn)
    if args.report:
        step("write_report (n_boot=200)", lambda: write_report(out, n_boot=200))
    info = {
        "runs": res.runs.num_rows, "stall_rows": res.stalls.num_rows,
        "parquet_bytes": size, "n_boot": nb, "steps": steps,
        "process_peak_rss_mib": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "load_avg_at_end": os.getloadavg()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip
    Path(args.out + ".json").write_text(json.dumps(info, indent=2))
    lines = [
        "# Analysis at scale",
        "",
        f"`PYTHONPATH=. python benchmarks/bench_analysis.py --runs {args.runs}` on "
        f"{info['date']}: {info['runs']:,} runs, {info['stall_rows']:,} stall rows, "
        f"{size / 2**20:.0f} MiB of Parquet (synthetic version-2 directory, "
        f"`sweepengine.analysis.synthetic`). {info['machine']['cpus']} CPUs shared with "
        f"other work (load average at the end {info['machine']['load_avg_at_end'][0]:.1f}): "
        "wall times are upper bounds for an idle machine; CPU s (user + system, all "
        "threads of this process) is the work done. One call each, in one process, in "
        "this order (pandas columns are converted once and cached, so the first helper "
        "to need a column pays for it); memory is the peak resident set size during the "
        "step (sampled every 5 ms).",
        "",
        "| step | wall s | CPU s | peak RSS (MiB) | added (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in steps:
        lines.append(f"| {s['step']} | {s['seconds']:.2f} | {s['cpu_s']:.2f} | "
                     f"{s['rss_peak_mib']:.0f} | "
                     f"{s['rss_added_mib']:.0f} |")  # fmt: skip
    lines += ["", f"Process peak RSS: {info['process_peak_rss_mib']:.0f} MiB.", ""]
    Path(args.out + ".md").write_text("\n".join(lines))
    print(f"-> {args.out}.md, {args.out}.json")


if __name__ == "__main__":
    main()

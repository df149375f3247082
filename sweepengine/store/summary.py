"""A compact text summary of a results directory, grouped by depth and optimizer.

Exact and order-free: rows are sorted by ``run_id`` before aggregating and the
medians are exact (the mean of the two middle values for an even count), so two
directories holding the same runs, however chunked or compacted, print the same.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .directory import read_runs

_COLUMNS = ["run_id", "depth", "optimizer", "status", "steps", "steps_in_bad_saddle",
            "steps_in_strict_saddle", "n_stalls"]  # fmt: skip
_KEYS = [("depth", "ascending"), ("optimizer", "ascending")]


def summary_table(out_dir: str | os.PathLike) -> pa.Table:
    """Per (depth, optimizer): runs (``steps_count``), converged fraction, exact median
    steps (``steps_median``), mean steps in bad and strict saddles, mean stalls."""
    t = read_runs(out_dir, columns=_COLUMNS)
    t = t.sort_by([*_KEYS, ("run_id", "ascending")])
    t = t.append_column("converged", pc.cast(pc.equal(t["status"], "converged"), pa.float64()))
    g = t.group_by(["depth", "optimizer"], use_threads=False).aggregate([
        ("steps", "count"), ("converged", "mean"), ("steps_in_bad_saddle", "mean"),
        ("steps_in_strict_saddle", "mean"), ("n_stalls", "mean"),
    ])  # fmt: skip
    g = g.sort_by(_KEYS)
    # t is sorted by the same keys: groups are consecutive row ranges, in g's order
    steps = t["steps"].to_numpy(zero_copy_only=False).astype(np.float64)
    ends = np.cumsum(g["steps_count"].to_numpy())
    starts = ends - g["steps_count"].to_numpy()
    medians = [float(np.median(steps[a:b])) if b > a else float("nan")
               for a, b in zip(starts, ends, strict=True)]  # fmt: skip
    return g.append_column("steps_median", pa.array(medians, pa.float64()))


def format_summary(out_dir: str | os.PathLike) -> str:
    g = summary_table(out_dir).to_pylist()
    head = (f"{'depth':>5} {'optimizer':<10} {'runs':>6} {'conv%':>6} {'med steps':>9} "
            f"{'bad-saddle steps':>16} {'strict steps':>12} {'stalls':>6}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in g:
        med = r["steps_median"]
        med_text = f"{med:.0f}" if med == int(med) else f"{med:.1f}"
        lines.append(
            f"{r['depth']:>5} {r['optimizer']:<10} {r['steps_count']:>6} "
            f"{100 * r['converged_mean']:>6.1f} {med_text:>9} "
            f"{r['steps_in_bad_saddle_mean']:>16.1f} {r['steps_in_strict_saddle_mean']:>12.1f} "
            f"{r['n_stalls_mean']:>6.2f}"
        )
    return "\n".join(lines)

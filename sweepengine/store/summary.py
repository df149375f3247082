"""A compact text summary of a results directory, grouped by depth and optimizer."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc

from .directory import read_runs

_COLUMNS = ["depth", "optimizer", "status", "steps", "steps_in_bad_saddle",
            "steps_in_strict_saddle", "n_stalls"]  # fmt: skip


def summary_table(out_dir: str | os.PathLike) -> pa.Table:
    """Per (depth, optimizer): runs, converged fraction, median steps, mean steps in stalls."""
    t = read_runs(out_dir, columns=_COLUMNS)
    t = t.append_column("converged", pc.cast(pc.equal(t["status"], "converged"), pa.float64()))
    g = t.group_by(["depth", "optimizer"]).aggregate([
        ("steps", "count"), ("converged", "mean"), ("steps", "approximate_median"),
        ("steps_in_bad_saddle", "mean"), ("steps_in_strict_saddle", "mean"), ("n_stalls", "mean"),
    ])  # fmt: skip
    return g.sort_by([("depth", "ascending"), ("optimizer", "ascending")])


def format_summary(out_dir: str | os.PathLike) -> str:
    g = summary_table(out_dir).to_pylist()
    head = (f"{'depth':>5} {'optimizer':<10} {'runs':>6} {'conv%':>6} {'med steps':>9} "
            f"{'bad-saddle steps':>16} {'strict steps':>12} {'stalls':>6}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in g:
        lines.append(
            f"{r['depth']:>5} {r['optimizer']:<10} {r['steps_count']:>6} "
            f"{100 * r['converged_mean']:>6.1f} {r['steps_approximate_median']:>9.0f} "
            f"{r['steps_in_bad_saddle_mean']:>16.1f} {r['steps_in_strict_saddle_mean']:>12.1f} "
            f"{r['n_stalls_mean']:>6.2f}"
        )
    return "\n".join(lines)

"""Run the shipped reproductions and write their reports and write-ups.

    PYTHONPATH=. python benchmarks/reproduce.py [STUDY ...] [--size small|full]
        [--scratch sweep-out/reproductions] [--workers N]

Studies (specs under sweeps/): ``saxe_plateau`` (Saxe et al. 2014 plateau timing),
``shamir_depth`` (Shamir 2019, exponential-in-depth stall of scalar chains),
``kawaguchi_class`` (Kawaguchi 2016, stall class of H = 1 vs H >= 2), ``iris``
(real data), ``nonlinear`` (issue 14: activations and weight decay at the same
shapes). ``--size small`` (default) shrinks the seeds (for shamir_depth also
the depths and the step budget) so that each study runs on 2 cores in minutes;
``--size full`` runs the spec as written. For each study: ``sweepengine run``
into the scratch directory, then its report is copied to
``results/reproductions/<study>/report/`` (``--dest``) and the write-up template
``benchmarks/reproductions/<study>.md`` is filled from the report's numbers into
``results/reproductions/<study>/README.md``. The Parquet
data stay in the scratch directory (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "benchmarks" / "reproductions"

#: study -> (spec file, overrides for --size small: key -> TOML value text)
STUDIES = {
    "saxe_plateau": ("sweeps/saxe_plateau.toml", {"seeds": "{ range = [0, 8] }"}),
    "shamir_depth": ("sweeps/shamir_depth.toml", {
        "seeds": "{ range = [0, 32] }", "depth": "[1, 2, 3, 4, 5, 6, 7, 8]",
        "max_steps": "100_000"}),
    "kawaguchi_class": ("sweeps/kawaguchi_class.toml", {"seeds": "{ range = [0, 8] }"}),
    "iris": ("sweeps/iris.toml", {"seeds": "{ range = [0, 4] }"}),
    "nonlinear": ("sweeps/nonlinear.toml", {"seeds": "{ range = [0, 3] }"}),
}  # fmt: skip


def spec_text(study: str, size: str) -> str:
    """The spec of ``study``, with the small-size overrides applied to its ``key = value`` lines."""
    path, small = STUDIES[study]
    text = (ROOT / path).read_text()
    if size == "small":
        for key, value in small.items():
            text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
            if n != 1:
                raise ValueError(f"{path}: no line '{key} = ...' to override")
        text = re.sub(r'^name = "(.*)"$', r'name = "\1-small"', text, count=1, flags=re.M)
    return text


def _fmt(x, pct=False) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "n/a"
    return f"{100 * x:.1f} %" if pct else f"{x:.4g}"


def _table(df) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) if isinstance(v, float) else str(v)
                                       for v in row) + " |")  # fmt: skip
    return "\n".join(lines)


#: Saxe study: the second fit uses the init scales at or below this (the plateau law is
#: the small-scale limit; the descent after the plateau adds a scale-free time).
SMALL_SCALE = 0.1


def _scaling_table(sc, res) -> str:
    """scale_scaling's rows with a verdict. For K >= 3 the theory is a slope: agreement
    means it lies in the 95 % interval. For K = 2 the law is t = c ln(1/a) + t0 (t0 >= 0,
    the descent after the plateau), whose log-log slope -c / (c ln(1/a) + t0) lies in
    [-1 / ln(1/a_max), 0): agreement means the interval overlaps that range and the slope
    is negative."""
    import numpy as np

    a_max = float(np.max(res.runs.column("init_scale").to_numpy()))
    lowest = -1.0 / np.log(1.0 / a_max)
    verdict = []
    for s, lo, hi, th in zip(sc["slope"], sc["lo"], sc["hi"], sc["theory"], strict=True):
        if s != s or lo != lo:
            verdict.append("n/a")
        elif th == 0:  # the log law
            ok = s < 0 and lo <= 0 and hi >= lowest
            verdict.append(f"{'agrees' if ok else 'disagrees'} (log law: [{lowest:.3g}, 0))")
        else:
            verdict.append("agrees" if lo <= th <= hi else "disagrees")
    sc = sc.assign(verdict=verdict)
    return _table(sc[["depth", "n", "levels", "slope", "lo", "hi", "theory", "theory_note",
                      "verdict"]])  # fmt: skip


def study_numbers(study: str, out: Path) -> dict[str, str]:
    """The numbers each write-up template uses, as Markdown snippets."""
    from sweepengine import analysis as A
    from sweepengine.analysis.report import summary_table

    res = A.load(out)
    summary = json.loads((out / "report" / "summary.json").read_text())
    nums = {
        "headline": (out / "report" / "headline.txt").read_text().strip(),
        "schema_version": str(res.schema_version),
        "n_runs": str(res.runs.num_rows),
        "notes": "\n".join(f"- {n}" for n in res.notes) or "- none",
        "per_depth": _table(summary_table(res, "depth", n_boot=1000)),
        "figures": "\n".join(f"![{f}](report/{f}.png)" for f in summary["figures"]),
        "skipped": "\n".join(f"- {s['figure']}: {s['why']}" for s in summary["skipped"])
        or "- none",
    }
    if study in ("saxe_plateau", "kawaguchi_class"):
        nums["scaling"] = _scaling_table(A.scale_scaling(res, "depth"), res)
    if study == "saxe_plateau":
        import dataclasses

        import pyarrow.compute as pc

        small = dataclasses.replace(
            res, runs=res.runs.filter(pc.less_equal(res.runs["init_scale"], SMALL_SCALE)),
            _cache={}, _disk={})  # fmt: skip
        nums["scaling_small"] = _scaling_table(A.scale_scaling(small, "depth"), small)
        nums["small_scale"] = f"{SMALL_SCALE:g}"
    if study == "shamir_depth":
        dsc = A.depth_scaling(res, "init_scale")
        nums["depth_fit"] = _table(dsc[["init_scale", "n", "levels", "slope", "lo", "hi"]])
        tt = A.time_to_target(res, "depth", split=None)
        nums["time_by_depth"] = _table(tt)
    if study == "kawaguchi_class":
        rows = []
        for cls in ("bad_saddle", "strict_saddle"):
            f = A.saddle_frequency(res, ["depth", "init_scale"], cls)
            f.insert(0, "class", cls)
            rows.append(f)
        import pandas as pd

        nums["class_table"] = _table(pd.concat(rows, ignore_index=True))
    if study == "nonlinear":
        nums.update(_nonlinear_numbers(res))
    if res.stalls.num_rows:
        nums["escape"] = _table(A.survival_summary(res, ["stall_class", "depth"]))
    else:
        nums["escape"] = "no stalls"
    return nums


def _nonlinear_numbers(res) -> dict[str, str]:
    """The nonlinear study's tables: per activation and weight decay, the stall classes
    per (activation, weight decay, depth), the time to the best loss at each shape, the
    independence measures and whether they predict saddle stalls."""
    from sweepengine import analysis as A
    from sweepengine.analysis.report import summary_table
    from sweepengine.analysis.tables import (
        independence_summary,
        stall_prediction,
        stall_prediction_by,
    )

    out = {a: _table(summary_table(res, a, n_boot=1000)) for a in ("activation", "weight_decay")}
    by = ["activation", "weight_decay", "depth"]
    cls = A.saddle_frequency(res, by, "strict_saddle")[[*by, "n", "fraction"]]
    cls = cls.rename(columns={"fraction": "strict_saddle"})
    for c in ("bad_saddle", "minimum", "minimum_above_best", "unresolved"):
        cls[c] = A.saddle_frequency(res, by, c)["fraction"].to_numpy()
    gap = A.tables.runs_frame(res, by, columns=["status", "gap_to_best", "gap_scale",
                                                 "final_gap_rel"])  # fmt: skip
    gap = gap[gap["status"] != "failed"].assign(rel=gap["gap_to_best"] / gap["gap_scale"])
    g = gap.groupby(by, sort=True)
    cls["median final_gap_rel"] = g["final_gap_rel"].median().to_numpy()
    cls["median gap to best (rel.)"] = g["rel"].median().to_numpy()
    out["per_activation"], out["per_weight_decay"] = out.pop("activation"), out.pop("weight_decay")
    out["class_by_net"] = _table(cls)
    from sweepengine.analysis.report import _format_ttb, _net_keys

    ttb = A.time_to_best(res, _net_keys(res), q=(0.25, 0.5, 0.75))
    out["time_to_best"] = _table(_format_ttb(ttb))
    out["independence_table"] = _table(independence_summary(res, ["activation", "depth"]))
    summ, bins = stall_prediction(res, "input_dependence")
    out["prediction"] = (
        f"point-biserial r = {_fmt(summ['r'])} (95 % CI {_fmt(summ['lo'])} to "
        f"{_fmt(summ['hi'])}) over n = {summ['n']} relu / leaky_relu runs, {summ['k']} with "
        f"a saddle stall\n\n"
        + _table(bins)
        + "\n\nWithin each depth:\n\n"
        + _table(stall_prediction_by(res, ["depth"], "input_dependence"))
    )
    return out


def write_up(study: str, out: Path, dest: Path, **extra: str) -> Path:
    """Copy ``out``'s report to ``dest/report``; fill the study's template into dest/README.md."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest / "report", ignore_errors=True)
    shutil.copytree(out / "report", dest / "report")
    nums = study_numbers(study, out)
    nums.update(extra)
    text = (TEMPLATES / f"{study}.md").read_text()
    (dest / "README.md").write_text(text.format(**nums))
    return dest / "README.md"


def run_study(study: str, size: str, scratch: Path, workers: int | None, dest: Path) -> dict:
    scratch.mkdir(parents=True, exist_ok=True)
    spec = scratch / f"{study}-{size}.toml"
    out = scratch / f"{study}-{size}"
    text = spec_text(study, size)
    if not spec.is_file() or spec.read_text() != text:  # a changed spec starts afresh
        shutil.rmtree(out, ignore_errors=True)
    spec.write_text(text)
    cmd = [sys.executable, "-m", "sweepengine.cli", "run", str(spec), "--out", str(out), "-q"]
    if workers:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, text=True, capture_output=True)
    wall = time.time() - t0
    print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n")
    if proc.returncode != 0 or not (out / "report" / "index.html").is_file():
        raise RuntimeError(f"{study}: the sweep failed (exit {proc.returncode})")
    write_up(
        study,
        out,
        dest / study,
        size=size,
        wall_s=f"{wall:.0f}",
        spec=STUDIES[study][0],
        command=f"PYTHONPATH=. python benchmarks/reproduce.py {study} --size {size}",
    )
    return {"study": study, "size": size, "wall_s": wall, "exit": proc.returncode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("studies", nargs="*", help=f"any of {list(STUDIES)} (default: all)")
    ap.add_argument("--size", choices=["small", "full"], default="small")
    ap.add_argument("--scratch", default=str(ROOT / "sweep-out" / "reproductions"))
    ap.add_argument("--workers", type=int)
    ap.add_argument("--dest", default=str(ROOT / "results" / "reproductions"),
                    help="where the reports and write-ups go")  # fmt: skip
    args = ap.parse_args()
    unknown = set(args.studies) - set(STUDIES)
    if unknown:
        ap.error(f"unknown stud(ies) {sorted(unknown)}; choose from {list(STUDIES)}")
    args.studies = args.studies or list(STUDIES)
    done = [run_study(s, args.size, Path(args.scratch), args.workers, Path(args.dest))
            for s in args.studies]  # fmt: skip
    print(json.dumps(done, indent=2))


if __name__ == "__main__":
    main()

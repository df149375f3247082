"""Loss+gradient and Hessian-vector product per call: sweepengine vs NumPy, JAX, PyTorch.

    python benchmarks/bench_kernels.py [--quick] [--threads 1,2]

Writes results/kernels.md and results/kernels.json. Each framework is timed in
its own worker process with every thread pool capped (and, for the 1-thread
table, pinned to one CPU with taskset: current jaxlib ignores XLA's thread
flags). The first (compiling) call is never timed; compile time is measured
separately in fresh processes with an empty and then a warm Numba cache.
JAX and PyTorch are optional: without them their columns read "n/a".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

SCRIPT = Path(__file__).resolve()
IMPLS = ("sweepengine", "numpy", "jax", "torch")
MODULE = {"sweepengine": "sweepengine", "numpy": "numpy", "jax": "jax", "torch": "torch"}


# ---------------------------------------------------------------- worker side


def worker(impl: str, quick: bool, sizes, npz_dir: str) -> dict:
    import importlib

    import numpy as np

    mod = importlib.import_module(f"_impl_{impl}")
    min_time, batches = (0.004, 3) if quick else (0.05, 5)
    out = {"impl": impl, "threads": C.worker_threads(), "sizes": {}}
    for d, m, H in sizes:
        p = C.make_problem(d, m, H)
        t0 = time.perf_counter()
        res = mod.kernel_cases(p)
        setup = time.perf_counter() - t0
        cases, checks = res[0], res[1]
        first = res[2] if len(res) > 2 else {name: C.first_call(fn) for name, fn in cases.items()}
        times = {}
        for name, fn in cases.items():
            t = C.time_call(fn, min_time, batches)
            times[name] = t.median
        np.savez(Path(npz_dir) / f"{impl}-{p.id}.npz", **checks)
        out["sizes"][p.id] = {"times": times, "first": first, "setup": setup}
    return out


def compile_worker() -> dict:
    t0 = time.perf_counter()
    import _impl_sweepengine as S

    t = {"import sweepengine (+ numba, numpy)": time.perf_counter() - t0}
    t.update(S.compile_probe())
    t.update(S.train_compile_probe())
    return {"times": t}


# ---------------------------------------------------------------- driver side


def _relerr(a, b) -> float:
    import numpy as np

    nb = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b)) / (nb if nb > 0 else 1.0)


def cross_check(npz_dir: Path, size_ids) -> dict:
    """Max relative difference of each peer's loss, gradient and HVP from sweepengine's."""
    import numpy as np

    out = {}
    for sid in size_ids:
        ref_path = npz_dir / f"sweepengine-{sid}.npz"
        if not ref_path.exists():
            continue
        ref = np.load(ref_path)
        row = {}
        for impl in IMPLS[1:]:
            path = npz_dir / f"{impl}-{sid}.npz"
            if not path.exists():
                continue
            got = np.load(path)
            for key in got.files:
                base = key.replace("_double_backward", "")
                row[f"{impl}:{key}"] = _relerr(got[key], ref[base])
        out[sid] = row
    return out


def _get(results, impl, sid, case):
    try:
        return results[impl]["sizes"][sid]["times"][case]
    except (KeyError, TypeError):
        return None


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def _min(*vals):
    vals = [v for v in vals if v is not None]
    return min(vals) if vals else None


def render(res: dict, command: str) -> str:
    info = res["machine"]
    sids = res["size_ids"]
    r1 = res["threads"]["1"]
    us, x = C.fmt_us, C.fmt_x
    md = ["# Kernel benchmarks: loss+gradient and HVP per call\n"]
    md.append(C.machine_md(info, command))
    md.append(
        "- threads: the main tables run with **1 thread for everything** "
        "(NUMBA_NUM_THREADS, OMP/OPENBLAS/MKL_NUM_THREADS = 1, torch.set_num_threads(1), "
        "XLA_FLAGS as requested, and every worker pinned to one CPU with `taskset`, "
        "because jaxlib " + info["versions"]["jaxlib"] + " ignores "
        "`--xla_cpu_multi_thread_eigen=false` and would otherwise use all cores).\n"
        "- timing: `time.perf_counter` around n calls (n adaptive, ~50 ms a batch), median of "
        "5 batches; the first (compiling) call untimed. One framework per process.\n"
        "- problem: all widths d (d_x = d_y = d), data X (d, m) with X X^T ~ I, "
        "Y = A X + noise, orthogonal start weights; `K = H + 1` weight matrices. "
        "Peers get the same arrays (float64).\n"
    )
    for note in res.get("notes", []):
        md.append(f"- note: {note}\n")
    md.append(C.load_md(res))
    md.append("\n## Targets\n\n")
    md.append(C.table(["target", "result", "detail"], res["targets"], "lll"))

    # -- gradient
    md.append("\n## Loss + gradient, microseconds per call (1 thread)\n\n")
    md.append(
        "`kernel` = compiled kernel with a preallocated workspace (what the trainer and "
        "Lanczos call); `API` = `sweepengine.loss_and_gradient` (validation, flattening, "
        "allocation). `stats` = sufficient-statistics form (Cxx, Cyx, yy), cost free of m; "
        "`data` = from X, Y. JAX and PyTorch compute the data form layer by layer as their "
        "users write it (`h = W @ h`), the stats form from the product P.\n\n"
    )
    hdr = ["size"]
    for form in ("stats", "data"):
        hdr += [f"{form}: kernel", "API", "NumPy", "JAX", "Torch"]
    rows = []
    for sid in sids:
        row = [sid]
        for form in ("stats", "data"):
            row += [
                us(_get(r1, "sweepengine", sid, f"kernel:{form}/grad")),
                us(_get(r1, "sweepengine", sid, f"api:{form}/grad")),
                us(_get(r1, "numpy", sid, f"{form}/grad")),
                us(_get(r1, "jax", sid, f"{form}/grad")),
                us(_get(r1, "torch", sid, f"{form}/grad")),
            ]
        rows.append(row)
    md.append(C.table(hdr, rows))
    md.append(
        "\nSpeedup of sweepengine over each peer (peer time / sweepengine time, same form; "
        "**bold** below 1 = sweepengine slower):\n\n"
    )
    hdr = ["size"]
    for form in ("stats", "data"):
        hdr += [f"{form} kernel vs NumPy", "vs JAX", "vs Torch", "API vs best peer"]
    rows = []
    for sid in sids:
        row = [sid]
        for form in ("stats", "data"):
            k = _get(r1, "sweepengine", sid, f"kernel:{form}/grad")
            a = _get(r1, "sweepengine", sid, f"api:{form}/grad")
            peers = [_get(r1, i, sid, f"{form}/grad") for i in ("numpy", "jax", "torch")]
            row += [x(_ratio(pt, k)) for pt in peers] + [x(_ratio(_min(*peers), a))]
        rows.append(row)
    md.append(C.table(hdr, rows))

    # -- HVP
    for form in ("stats", "data"):
        md.append(f"\n## Hessian-vector product, {form} form, microseconds per call (1 thread)\n\n")
        if form == "stats":
            md.append(
                "`prepared` = `hvp_prepared` alone at a point whose prefix products and "
                "errors are already in the workspace (each Lanczos iteration pays this); "
                "`grad+HVP` = `loss_grad_*` then `hvp_prepared` (the same work as "
                "`jvp(grad)`, which also returns the gradient); `API` = `sweepengine.hvp`. "
                "JAX `jvp(grad)` = `jit(jvp(grad(loss)))`; JAX `linearized` = "
                "`jit(jax.linearize(grad(loss), W)[1])` applied to V (the analogue of "
                "`prepared`); Torch `func` = `torch.func.jvp(torch.func.grad(loss))`, "
                "`2xbwd` = double backward. NumPy = the analytic formulas from scratch.\n\n"
            )
        else:
            md.append(
                "Data form: the kernel's prepared HVP uses Cxx = X X^T computed once (as "
                "Lanczos does); the API recomputes X X^T on every call.\n\n"
            )
        hdr = ["size", "prepared", "grad+HVP", "API", "NumPy", "JAX jvp(grad)",
               "JAX linearized", "Torch func", "Torch 2xbwd"]  # fmt: skip
        rows = []
        for sid in sids:
            rows.append(
                [
                    sid,
                    us(_get(r1, "sweepengine", sid, "kernel:hvp_prepared")),
                    us(_get(r1, "sweepengine", sid, f"kernel:{form}/grad+hvp")),
                    us(_get(r1, "sweepengine", sid, f"api:{form}/hvp")),
                    us(_get(r1, "numpy", sid, f"{form}/hvp")),
                    us(_get(r1, "jax", sid, f"{form}/hvp")),
                    us(_get(r1, "jax", sid, f"{form}/hvp_linearized")),
                    us(_get(r1, "torch", sid, f"{form}/hvp")),
                    us(_get(r1, "torch", sid, f"{form}/hvp_double_backward")),
                ]
            )
        md.append(C.table(hdr, rows))
        md.append("\nSpeedups (peer / sweepengine) and HVP cost relative to a gradient:\n\n")
        hdr = ["size", "grad+HVP vs NumPy", "vs JAX jvp(grad)", "vs best Torch",
               "prepared vs JAX linearized", "API vs best peer",
               "HVP/grad: prepared / kernel grad", "JAX jvp(grad)/grad",
               "Torch best/grad"]  # fmt: skip
        rows = []
        for sid in sids:
            gh = _get(r1, "sweepengine", sid, f"kernel:{form}/grad+hvp")
            pr = _get(r1, "sweepengine", sid, "kernel:hvp_prepared")
            api = _get(r1, "sweepengine", sid, f"api:{form}/hvp")
            kg = _get(r1, "sweepengine", sid, f"kernel:{form}/grad")
            npv = _get(r1, "numpy", sid, f"{form}/hvp")
            jv = _get(r1, "jax", sid, f"{form}/hvp")
            jl = _get(r1, "jax", sid, f"{form}/hvp_linearized")
            tv = _min(_get(r1, "torch", sid, f"{form}/hvp"),
                      _get(r1, "torch", sid, f"{form}/hvp_double_backward"))  # fmt: skip
            best = _min(npv, jv, tv, jl)
            jg = _get(r1, "jax", sid, f"{form}/grad")
            tg = _get(r1, "torch", sid, f"{form}/grad")
            f2 = lambda r: "n/a" if r is None else f"{r:.2f}"  # noqa: E731
            rows.append(
                [
                    sid,
                    x(_ratio(npv, gh)),
                    x(_ratio(jv, gh)),
                    x(_ratio(tv, gh)),
                    x(_ratio(jl, pr)),
                    x(_ratio(best, api)),
                    f2(_ratio(pr, kg)),
                    f2(_ratio(jv, jg)),
                    f2(_ratio(tv, tg)),
                ]  # fmt: skip
            )
        md.append(C.table(hdr, rows))

    # -- cross-check
    md.append("\n## Cross-check: max relative difference from sweepengine (1-thread run)\n\n")
    hdr = ["size", "NumPy", "JAX", "Torch"]
    rows = []
    for sid in sids:
        row = [sid]
        for impl in ("numpy", "jax", "torch"):
            errs = [v for k, v in res["cross_check"].get(sid, {}).items() if k.startswith(impl)]
            row.append(f"{max(errs):.1e}" if errs else "n/a")
        rows.append(row)
    md.append(
        "Relative 2-norm difference ||x - x_se|| / ||x_se||, maximum over loss, gradient and "
        "HVP in both forms.\n\n"
    )
    md.append(C.table(hdr, rows))

    # -- compile
    md.append("\n## Compile time (fresh process, seconds of each first call, in order)\n\n")
    comp = res.get("compile") or {}
    cold = (comp.get("cold") or {}).get("times", {})
    warm = (comp.get("warm") or {}).get("times", {})
    rows = [[k, f"{cold[k]:.2f}", f"{warm.get(k, float('nan')):.2f}"] for k in cold]
    if rows:
        rows.append(["total", f"{sum(cold.values()):.2f}", f"{sum(warm.values()):.2f}"])
    md.append(
        "Empty Numba cache (`NUMBA_CACHE_DIR` = a new temporary directory) vs a second fresh "
        "process on the warm on-disk cache. Each line's first call also compiles whatever "
        "earlier lines did not.\n\n"
    )
    md.append(C.table(["first call", "empty cache (s)", "warm cache (s)"], rows, "lrr"))
    jf = [(sid, r1.get("jax", {}).get("sizes", {}).get(sid, {}).get("first", {})) for sid in sids]
    if any(f for _, f in jf):
        md.append("\nFor comparison, JAX's first call (trace + XLA compile) per size, seconds:\n\n")
        keys = ["stats/grad", "stats/hvp", "data/grad", "data/hvp"]
        md.append(
            C.table(
                ["size"] + keys,
                [[sid] + [f"{f[k]:.2f}" if k in f else "n/a" for k in keys] for sid, f in jf],
            )
        )

    # -- 2 threads
    r2 = res["threads"].get("2")
    if r2:
        md.append("\n## 2 threads (microseconds per call)\n\n")
        md.append(
            "Same runs with every pool capped at 2 threads and no pinning. sweepengine's "
            "kernels are serial (their BLAS calls for big products may use 2 threads). "
            "A 2-thread BLAS call stalls whenever another process holds one of the two "
            "cores (a 128x128 product then takes ~16 ms instead of ~0.07 ms, in NumPy and "
            "Numba alike), so read these numbers with the load line above.\n\n"
        )
        hdr = ["size", "kernel grad (stats)", "kernel grad (data)", "NumPy (data)",
               "JAX (data)", "Torch (data)", "prepared HVP", "grad+HVP (data)",
               "JAX jvp(grad) (data)", "Torch func (data)"]  # fmt: skip
        rows = []
        for sid in sids:
            rows.append(
                [sid]
                + [us(_get(r2, "sweepengine", sid, c))
                   for c in ("kernel:stats/grad", "kernel:data/grad")]
                + [us(_get(r2, i, sid, "data/grad")) for i in ("numpy", "jax", "torch")]
                + [us(_get(r2, "sweepengine", sid, c))
                   for c in ("kernel:hvp_prepared", "kernel:data/grad+hvp")]
                + [us(_get(r2, i, sid, "data/hvp")) for i in ("jax", "torch")]
            )  # fmt: skip
        md.append(C.table(hdr, rows))
    return "".join(md)


def targets(res: dict) -> list[list[str]]:
    """Honest pass/fail for the three performance targets (1-thread tables)."""
    r1 = res["threads"]["1"]
    sids = res["size_ids"]
    slower = []
    for sid in sids:
        for form in ("stats", "data"):
            k = _get(r1, "sweepengine", sid, f"kernel:{form}/grad")
            gh = _get(r1, "sweepengine", sid, f"kernel:{form}/grad+hvp")
            for impl in ("numpy", "jax", "torch"):
                pg = _get(r1, impl, sid, f"{form}/grad")
                if k and pg and pg < k:
                    slower.append(f"{impl} {form} grad at {sid} ({pg / k:.2f}x)")
                ph = _min(_get(r1, impl, sid, f"{form}/hvp"),
                          _get(r1, impl, sid, f"{form}/hvp_double_backward"))  # fmt: skip
                if gh and ph and ph < gh:
                    slower.append(f"{impl} {form} HVP at {sid} ({ph / gh:.2f}x)")
            pr = _get(r1, "sweepengine", sid, "kernel:hvp_prepared")
            jl = _get(r1, "jax", sid, f"{form}/hvp_linearized")
            if pr and jl and jl < pr:
                slower.append(f"JAX linearized {form} HVP at {sid} ({jl / pr:.2f}x)")
    small = []
    worst = None
    for sid in sids:
        if int(sid.split("-")[0].split("=")[1]) > 32:
            continue
        for form in ("stats", "data"):
            for op, kcase in (("grad", f"kernel:{form}/grad"), ("hvp", f"kernel:{form}/grad+hvp")):
                s = _ratio(
                    _get(r1, "numpy", sid, f"{form}/{op}"), _get(r1, "sweepengine", sid, kcase)
                )
                if s is None:
                    continue
                worst = s if worst is None else min(worst, s)
                if s < 3:
                    small.append(f"{form} {op} at {sid} ({s:.1f}x)")
    ratios = []
    for sid in sids:
        pr = _get(r1, "sweepengine", sid, "kernel:hvp_prepared")
        for form in ("stats", "data"):
            kg = _get(r1, "sweepengine", sid, f"kernel:{form}/grad")
            if pr and kg:
                ratios.append((pr / kg, f"{form} at {sid}"))
    over = [f"{n} ({r:.2f})" for r, n in ratios if r > 2.5]
    rmax = max(ratios) if ratios else (float("nan"), "")
    have_peers = all(i in r1 for i in ("jax", "torch"))
    return [
        [
            "kernel faster than every peer at every size (grad and HVP, both forms)",
            ("met" if not slower else "NOT met") + ("" if have_peers else " (JAX/Torch missing)"),
            "; ".join(slower) if slower else "no peer faster anywhere",
        ],
        [
            ">= 3x NumPy at d <= 32 (kernel; grad and grad+HVP, both forms)",
            "met" if worst is not None and not small else "NOT met",
            ("; ".join(small) if small else f"smallest speedup {worst:.1f}x")
            if worst is not None else "n/a",
        ],
        [
            "HVP <= 2.5x a gradient (prepared HVP / kernel grad, same size)",
            "met" if ratios and not over else "NOT met",
            "; ".join(over) if over else f"largest ratio {rmax[0]:.2f} ({rmax[1]})",
        ],
    ]  # fmt: skip


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    ap.add_argument("--threads", default=None, help="thread settings, e.g. 1 or 1,2")
    ap.add_argument("--sizes", default=None, help="size ids to run, e.g. d=8-m=64-H=1")
    ap.add_argument("--out", default=str(C.RESULTS / "kernels"), help="output path stem")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--impl", help=argparse.SUPPRESS)
    ap.add_argument("--npz", help=argparse.SUPPRESS)
    ap.add_argument("--compile-probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sizes = [s for s in C.SIZES if args.sizes is None or C.size_id(*s) in args.sizes.split(",")]

    if args.worker:
        if args.compile_probe:
            res = compile_worker()
        else:
            res = worker(args.impl, args.quick, sizes, args.npz)
        print(json.dumps(res))
        return

    C.setup_logging()
    t_start = time.perf_counter()
    threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    command = "python benchmarks/bench_kernels.py " + " ".join(argv or sys.argv[1:])
    res = {"machine": C.machine_info(), "size_ids": [C.size_id(*s) for s in sizes],
           "threads": {}, "notes": []}  # fmt: skip
    impls = [i for i in IMPLS if C.have(MODULE[i])]
    for i in IMPLS:
        if i not in impls:
            res["notes"].append(f"{i} not installed: its columns read n/a "
                                "(`pip install -e '.[bench]'`)")  # fmt: skip
    wargs = ["--sizes", ",".join(res["size_ids"])] + (["--quick"] if args.quick else [])
    with tempfile.TemporaryDirectory(prefix="bench-kernels-") as tmp:
        cache = {"NUMBA_CACHE_DIR": str(Path(tmp) / "numba-cache")}
        res["compile"] = {
            name: C.run_worker(SCRIPT, ["--compile-probe"], 1, 600, cache, retries=0)
            for name in ("cold", "warm")
        }
        for nt in threads:
            npz = Path(tmp) / f"t{nt}"
            npz.mkdir()
            res["threads"][str(nt)] = {}
            for impl in impls:
                out = C.run_worker(SCRIPT, wargs + ["--impl", impl, "--npz", str(npz)], nt, 900,
                                   cache)  # fmt: skip
                if out is not None:
                    res["threads"][str(nt)][impl] = out
            if nt == threads[0]:
                res["cross_check"] = cross_check(npz, res["size_ids"])
    if "1" not in res["threads"]:
        res["threads"]["1"] = res["threads"][str(threads[0])]
    res["targets"] = targets(res)
    C.write_report(res, args.out, render, command, t_start)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()

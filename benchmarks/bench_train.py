"""Full-batch GD training throughput: sweepengine's fused trainer vs JAX and PyTorch.

    python benchmarks/bench_train.py [--quick]

Single run (1 thread: steps per second) and a batch of B runs (2 threads:
run-steps per second), at the sizes of bench_kernels. sweepengine: the public
``train_batch`` (gd, stop_at_target=False, final_probe=False, record_every=1,
stall probes off, ``ref`` precomputed). JAX: ``lax.scan`` over steps (chunks of
steps per jitted call), ``vmap`` of it over runs. PyTorch: a Python loop of
backward + ``torch.optim.SGD``; runs batched through ``torch.bmm``. Peers run
both the data form (X, Y: as their users write it) and the statistics form
(the same algorithm as sweepengine). Every implementation starts from the
same weights with the same lr; final losses after a few hundred steps are
cross-checked. Also: the cost of one stall probe (Lanczos) in training steps.
Writes results/train.md and results/train.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

SCRIPT = Path(__file__).resolve()
IMPLS = ("sweepengine", "jax", "torch")
CHECK_STEPS = 300
BATCH = 64
BATCH_BIG = 8  # runs per batch at d = 128
SINGLE_THREADS, BATCH_THREADS = 1, 2
BLAS_1 = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _batch_size(d: int) -> int:
    return BATCH_BIG if d >= 128 else BATCH


def _trainer(impl, p, inits, form, threads):
    if impl == "sweepengine":
        import _impl_sweepengine as S

        return S.Trainer(p, inits, threads), 1
    if impl == "jax":
        import _impl_jax as J

        chunk = 20 if p.d >= 128 else CHECK_STEPS
        return J.Trainer(p, inits, form, chunk), chunk
    import _impl_torch as T

    return T.Trainer(p, inits, form), 1


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _measure(tr, chunk: int, check_steps: int, target: float, reps: int) -> dict:
    """Compile (untimed), a cross-check run of `check_steps`, then timed runs of ~target s."""
    compile_s = tr.compile() if hasattr(tr, "compile") else _timed(tr.run, chunk)
    t0 = time.perf_counter()
    check = tr.run(check_steps)
    per_step = (time.perf_counter() - t0) / check_steps
    steps = max(chunk, int(target / per_step) // chunk * chunk)
    t = statistics.median(_timed(tr.run, steps) for _ in range(reps))
    return {
        "steps": steps,
        "seconds": t,
        "compile_s": compile_s,
        "check_steps": check_steps,
        "check_losses": [float(v) for v in check],
    }


def worker(impl: str, mode: str, quick: bool, sizes) -> dict:
    threads = C.worker_threads()
    target, reps = (0.03, 1) if quick else (0.3, 3)
    out = {"impl": impl, "mode": mode, "threads": threads, "cases": {}}
    for d, m, H in sizes:
        p = C.make_problem(d, m, H)
        B = 1 if mode == "single" else _batch_size(d)
        inits = [p.weights] if B == 1 else C.batch_inits(p, B)
        forms = ("stats",) if impl == "sweepengine" else ("stats", "data")
        for form in forms:
            C.log.info("%s %s %s %s", impl, mode, p.id, form)
            tr, chunk = _trainer(impl, p, inits, form, threads)
            check_steps = CHECK_STEPS if (B == 1 or d < 128) else 20
            case = _measure(tr, chunk, check_steps, target, reps)
            case.update(size=p.id, form=form, B=B, lr=p.lr)
            case["run_steps_per_s"] = B * case["steps"] / case["seconds"]
            if impl == "sweepengine":
                case["overhead_s"] = min(_timed(tr.run, 1) for _ in range(3))
                if B == 1:
                    case["reference_s"] = tr.reference_seconds()
                    import _impl_sweepengine as S

                    case["probe"] = S.probe_costs(p, 1 if d >= 128 or quick else 3)
            out["cases"][f"{p.id}/{form}"] = case
    return out


# ---------------------------------------------------------------- report


def _case(res, mode, impl, sid, form):
    try:
        return res[mode][impl]["cases"][f"{sid}/{form}"]
    except (KeyError, TypeError):
        return None


def render(res: dict, command: str) -> str:
    info = res["machine"]
    sids = res["size_ids"]
    md = ["# Training benchmarks: full-batch GD throughput\n"]
    md.append(C.machine_md(info, command))
    md.append(
        f"- single run: **1 thread** for everything (Numba, BLAS, torch.set_num_threads(1), "
        f"every worker pinned to one CPU with `taskset`, since jaxlib ignores XLA's thread "
        f"flags). Batch: B = {BATCH} runs ({BATCH_BIG} at d = 128), **2 threads** everywhere, "
        "no pinning (sweepengine: 2 Numba threads over runs, BLAS 1 thread).\n"
        "- sweepengine: public `train_batch(..., 'gd', stop_at_target=False, final_probe=False, "
        "record_every=1)` with stall probes switched off (`min_length` beyond the run) and "
        "`ref=` precomputed; the time includes validation, X X^T and result building. The "
        "fused kernel uses the statistics form (cost free of m).\n"
        "- JAX: `jit(lax.scan)` of value_and_grad + update, in chunks of steps per call "
        "(300, or 20 at d = 128), `vmap` of it for the batch. PyTorch: Python loop of "
        "zero_grad / forward / backward / `torch.optim.SGD.step`, loss kept each step; the "
        "batch as (B, d, d) tensors through `torch.bmm`. `data` = from X, Y layer by layer "
        "(how users write it); `stats` = from Cxx, Cyx, yy (sweepengine's algorithm).\n"
        "- rate = runs x steps / wall seconds, median of 3 timed runs, after an untimed "
        "compiling run. Same start weights and lr everywhere.\n"
    )
    md.append(C.load_md(res))
    md.append("\n## Targets\n\n")
    md.append(C.table(["target", "result", "detail"], res["targets"], "lll"))
    for mode, title in (("single", "Single run, 1 thread: steps per second"),
                        ("batch", "Batch, 2 threads: run-steps per second")):  # fmt: skip
        if mode not in res:
            continue
        md.append(f"\n## {title}\n\n")
        pitfall = mode == "batch" and "sweepengine_blas2" in res[mode]
        if mode == "batch":
            md.append(
                "sweepengine: `train_batch(threads=2)` with BLAS capped at 1 thread (it "
                "parallelises over runs; what a sweep worker should set). `se, BLAS 2` = the "
                "same with OpenBLAS left at 2 threads: each of the 2 Numba threads then "
                "calls a 2-thread OpenBLAS (oversubscription).\n\n"
            )
        hdr = ["size", "B", "sweepengine"] + (["se, BLAS 2"] if pitfall else []) + [
               "JAX stats", "JAX data", "Torch stats", "Torch data",
               "vs best JAX", "vs best Torch", "agree (max rel diff, steps)"]  # fmt: skip
        rows = []
        for sid in sids:
            se = _case(res, mode, "sweepengine", sid, "stats")
            extra = ([C.fmt_rate(C.rate(_case(res, mode, "sweepengine_blas2", sid, "stats")))]
                     if pitfall else [])  # fmt: skip
            peers = {(i, f): _case(res, mode, i, sid, f)
                     for i in ("jax", "torch") for f in ("stats", "data")}  # fmt: skip
            bj = max((C.rate(peers[("jax", f)]) or 0) for f in ("stats", "data")) or None
            bt = max((C.rate(peers[("torch", f)]) or 0) for f in ("stats", "data")) or None
            agree = [C.agree(c, se) for c in peers.values()]
            agree = [a for a in agree if a is not None]
            steps = se["check_steps"] if se else "?"
            rows.append(
                [sid, se["B"] if se else "?", C.fmt_rate(C.rate(se))] + extra
                + [C.fmt_rate(C.rate(peers[k])) for k in
                   (("jax", "stats"), ("jax", "data"), ("torch", "stats"), ("torch", "data"))]
                + [C.fmt_x(C.ratio(C.rate(se), bj)), C.fmt_x(C.ratio(C.rate(se), bt)),
                   f"{max(agree):.1e} ({steps})" if agree else "n/a"]
            )  # fmt: skip
        md.append(C.table(hdr, rows))
    if "single" in res:
        md.append("\n## Stall probe cost (sweepengine, 1 thread)\n\n")
        md.append(
            "One probe = `loss_grad_stats` + `lanczos_extremes` with the default `StallConfig` "
            "(at most 120 iterations, tol 1e-8, full re-orthogonalisation) at the start point, "
            "what the trainer's probe runs; `API` = "
            "`hessian_extremes_info(method='lanczos')`. `steps` = probe time / one training "
            "step of the single-run table. `reference` = `training.reference()` (L*, lam_ref), "
            "which `train_batch` runs on every call unless given `ref=`; `call overhead` = "
            "a 1-step `train_batch` call.\n\n"
        )
        hdr = ["size", "params", "Lanczos iters", "probe (ms)", "= steps", "API probe (ms)",
               "step (us)", "reference (ms)", "call overhead (us)"]  # fmt: skip
        rows = []
        for sid in sids:
            c = _case(res, "single", "sweepengine", sid, "stats")
            if not c:
                continue
            pr = c["probe"]
            step = c["seconds"] / c["steps"]
            d, H = int(sid.split("-")[0][2:]), int(sid.split("-")[2][2:])
            rows.append([
                sid, d * d * (H + 1), pr["iterations"], f"{pr['probe_kernel'] * 1e3:.2f}",
                f"{pr['probe_kernel'] / step:,.0f}", f"{pr['probe_api'] * 1e3:.2f}",
                C.fmt_us(step), f"{c['reference_s'] * 1e3:.1f}", C.fmt_us(c["overhead_s"]),
            ])  # fmt: skip
        md.append(C.table(hdr, rows))
        md.append("\nCompile / first call, seconds (JAX: scan chunk + final loss, per size):\n\n")
        hdr = ["size", "sweepengine (single)", "JAX stats", "JAX data", "Torch stats", "Torch data"]
        rows = []
        for sid in sids:
            row = [sid]
            for impl, form in (("sweepengine", "stats"), ("jax", "stats"), ("jax", "data"),
                               ("torch", "stats"), ("torch", "data")):  # fmt: skip
                c = _case(res, "single", impl, sid, form)
                row.append(f"{c['compile_s']:.2f}" if c else "n/a")
            rows.append(row)
        md.append(C.table(hdr, rows))
    return "".join(md)


def _madds_per_step(sid: str) -> int:
    """Multiply-adds of one statistics-form step: 3K - 2 products of d^3 (K = H + 1)."""
    d, _, H = (int(part.split("=")[1]) for part in sid.split("-"))
    return (3 * (H + 1) - 2) * d**3


def targets(res: dict) -> list[list[str]]:
    slower, worst_agree = [], 0.0
    jax3 = {"data": [], "stats": []}
    for mode in ("single", "batch"):
        for sid in res["size_ids"]:
            se = C.rate(_case(res, mode, "sweepengine", sid, "stats"))
            ref = _case(res, mode, "sweepengine", sid, "stats")
            for impl in ("jax", "torch"):
                for form in ("stats", "data"):
                    c = _case(res, mode, impl, sid, form)
                    r = C.rate(c)
                    a = C.agree(c, ref)
                    if a is not None:
                        worst_agree = max(worst_agree, a)
                    if se and r and r > se:
                        slower.append(f"{impl} {form} {mode} at {sid} ({se / r:.2f}x)")
                    if (impl == "jax" and se and r and int(sid.split("-")[0][2:]) <= 32
                            and se / r < 3):  # fmt: skip
                        need = 3 * r * _madds_per_step(sid) / (1 if mode == "single" else 2) / 1e9
                        jax3[form].append(f"{mode} at {sid} ({se / r:.1f}x; 3x needs "
                                          f"{need:.0f} multiply-adds/ns per core)")  # fmt: skip
    return [
        ["faster than every peer at every size (single and batch)",
         "met" if not slower else "NOT met", "; ".join(slower) or "no peer faster anywhere"],
        [">= 3x JAX at d <= 32, JAX as its users write it (loss from X, Y), single and batch",
         "met" if not jax3["data"] else "NOT met", "; ".join(jax3["data"]) or "all >= 3x"],
        [">= 3x JAX at d <= 32, JAX given sweepengine's algorithm (statistics form)",
         "met" if not jax3["stats"] else "NOT met", "; ".join(jax3["stats"]) or "all >= 3x"],
        ["final losses agree (~1e-8 relative)", "met" if worst_agree < 1e-8 else "NOT met",
         f"largest relative difference {worst_agree:.1e}"],
    ]  # fmt: skip


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short timed runs (smoke test)")
    ap.add_argument("--sizes", default=None, help="size ids to run, e.g. d=8-m=64-H=1")
    ap.add_argument("--modes", default="single,batch")
    ap.add_argument("--out", default=str(C.RESULTS / "train"), help="output path stem")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--impl", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sizes = [s for s in C.SIZES if args.sizes is None or C.size_id(*s) in args.sizes.split(",")]
    if args.worker:
        C.setup_logging()
        print(json.dumps(worker(args.impl, args.mode, args.quick, sizes)))
        return

    C.setup_logging()
    t_start = time.perf_counter()
    command = "python benchmarks/bench_train.py " + " ".join(argv or sys.argv[1:])
    res = {"machine": C.machine_info(), "size_ids": [C.size_id(*s) for s in sizes]}
    impls = [i for i in IMPLS if C.have(i)]
    wargs = ["--sizes", ",".join(res["size_ids"])] + (["--quick"] if args.quick else [])
    for mode in args.modes.split(","):
        nt = SINGLE_THREADS if mode == "single" else BATCH_THREADS
        res[mode] = {}
        runs = [(impl, impl, None) for impl in impls]
        if mode == "batch":
            # sweepengine parallelises over runs, so its BLAS must stay single-threaded
            # (what a sweep worker sets); the default 2-thread BLAS is kept as a pitfall.
            runs[0] = ("sweepengine", "sweepengine", BLAS_1)
            runs.insert(1, ("sweepengine", "sweepengine_blas2", None))
        for impl, key, env in runs:
            out = C.run_worker(SCRIPT, wargs + ["--impl", impl, "--mode", mode], nt, 900, env)
            if out is not None:
                out["label"] = key
                res[mode][key] = out
    res["targets"] = targets(res)
    C.write_report(res, args.out, render, command, t_start)


if __name__ == "__main__":
    main()

"""Compile time of every public kernel and both trainer drivers, cold and cached.

    python benchmarks/bench_compile.py [--only NAME,...]

Writes results/compile.md and results/compile.json. Each probe runs in a fresh
process twice: first with ``NUMBA_CACHE_DIR`` set to a new, empty directory
(cold: everything the kernel calls is compiled in that process), then in a second
fresh process on the cache the first one wrote (cached: load only). A probe sets
up its inputs first (untimed, except where noted) and times only the first call
of its kernel. The trainer probes compute the reference quantities before
the timed call, so their cold time is the driver's own compile plus the
sub-kernels it shares with nothing computed before. Optimizers, stall settings
and shapes are run-time arguments of one type signature: nothing is compiled per
optimizer or per architecture (the ``per optimizer`` probes check that a second
optimizer compiles nothing).

The ``sweep warm-up`` probe is ``worker.warm_up()`` in one process: every linear
compile unit (both drivers, the reference and the stall examination; a sweep worker
needs one driver, and two workers share the units: results/coldstart.md);
``all landscape kernels`` is the public landscape API in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"

SETUP = """
import time, numpy as np
t_import = time.perf_counter()
import sweepengine as se
from sweepengine import landscape as L
from sweepengine._layout import dims_of, flatten
from sweepengine.kernels import objective as O, hvp as HV, spectrum as SP
rng = np.random.default_rng(0)
dims = np.array([4, 6, 6, 3], dtype=np.int64)
Ws = [rng.standard_normal((dims[k + 1], dims[k])) for k in range(3)]
theta = flatten(Ws)
X = rng.standard_normal((4, 16)); Y = rng.standard_normal((3, 16))
Cxx = X @ X.T; Cyx = Y @ X.T; yy = float((Y * Y).sum())
n = theta.size
def ws():
    return np.zeros(O.ws_size(dims))
g = np.empty(n); R = np.empty((3, 16)); out = np.empty(n)
t_import = time.perf_counter() - t_import
"""

TRAIN_SETUP = """
from sweepengine.training import reference, train_flat
from sweepengine.kernels import lockstep
from sweepengine.stats import Stats
ref = reference(Stats(Cxx, Cyx, yy), dims)
def drive(B, opt):
    th = np.repeat(theta[None, :] * 0.1, B, axis=0)
    return train_flat(X, Y, th, dims, opt, 0.01, 20, threads=1, ref=ref)
"""

# name -> (extra setup, timed statement, what it covers)
PROBES: dict[str, tuple[str, str, str]] = {
    "loss_stats": ("", "O.loss_stats(theta, dims, Cxx, Cyx, yy, ws())", "se.loss(stats=)"),
    "loss_data": ("", "O.loss_data(theta, dims, X, Y, ws(), R)", "se.loss(X, Y)"),
    "loss_grad_stats": (
        "",
        "O.loss_grad_stats(theta, dims, Cxx, Cyx, yy, ws(), g)",
        "se.loss_and_gradient / gradient (stats=)",
    ),  # fmt: skip
    "loss_grad_data": (
        "",
        "O.loss_grad_data(theta, dims, X, Y, ws(), R, g)",
        "se.loss_and_gradient / gradient (X, Y)",
    ),  # fmt: skip
    "hvp_prepared": (
        "w = ws(); O.loss_grad_stats(theta, dims, Cxx, Cyx, yy, w, g)",
        "HV.hvp_prepared(theta, dims, Cxx, w, theta.copy(), out)",
        "se.hvp (after loss_grad_stats)",
    ),  # fmt: skip
    "hessian_prepared": (
        "w = ws(); O.loss_grad_stats(theta, dims, Cxx, Cyx, yy, w, g); H = np.empty((n, n))",
        "HV.hessian_prepared(theta, dims, Cxx, w, H)",
        "se.hessian (after loss_grad_stats)",
    ),  # fmt: skip
    "lanczos_extremes": (
        "w = ws(); O.loss_grad_stats(theta, dims, Cxx, Cyx, yy, w, g); o = np.zeros(5)",
        "SP.lanczos_extremes(theta, dims, Cxx, w, 50, 1e-10, 0, o)",
        "se.hessian_extremes(method='lanczos') (after loss_grad_stats)",
    ),  # fmt: skip
    "init_weights": ("", "se.init_weights([4, 6, 6, 3], 'gaussian', 0.1, seed=0)", "init kernels"),
    "all landscape kernels": (
        "",
        "se.loss(Ws, X, Y); se.gradient(Ws, X, Y); se.gradient(Ws, stats=se.Stats(Cxx, Cyx, yy));"
        " se.hvp(Ws, X, Y, Ws); se.hessian(Ws, X, Y);"
        " se.hessian_extremes_info(Ws, X, Y, method='lanczos')",
        "every public landscape function, one process",
    ),
    "trainer: per-run driver (gd)": (
        TRAIN_SETUP,
        "drive(1, 'gd')",
        "kernels.trainer.train_batch (after reference)",
    ),
    "trainer: per-run driver (gd, then adam)": (
        TRAIN_SETUP + "drive(1, 'gd')",
        "drive(1, 'adam')",
        "second optimizer, same process",
    ),
    "trainer: lock-step driver (gd)": (
        TRAIN_SETUP,
        "drive(lockstep.MIN_BATCH, 'gd')",
        "kernels.lockstep.train_batch_lockstep (after reference)",
    ),  # fmt: skip
    "trainer: lock-step driver (gd, then adam)": (
        TRAIN_SETUP + "drive(lockstep.MIN_BATCH, 'gd')",
        "drive(lockstep.MIN_BATCH, 'adam')",
        "second optimizer, same process",
    ),  # fmt: skip
    "nonlinear trainer (tanh gd)": (
        "from sweepengine.nltraining import train_flat_nonlinear\nth = theta[None, :] * 0.1",
        "train_flat_nonlinear(X, Y, th, 'gd', 0.01, 20, dims=dims, activation='tanh', "
        "lam_ref=1.0, threads=1)",
        "kernels.nltrainer.train_batch: every activation, weight decay, stall examination "
        "(Newton-MR, Lanczos, the higher-order test)",
    ),
    "nonlinear trainer (tanh then relu)": (
        "from sweepengine.nltraining import train_flat_nonlinear\n"
        "th = theta[None, :] * 0.1\n"
        "train_flat_nonlinear(X, Y, th, 'gd', 0.01, 20, dims=dims, activation='tanh', "
        "lam_ref=1.0, threads=1)",
        "train_flat_nonlinear(X, Y, th, 'gd', 0.01, 20, dims=dims, activation='relu', "
        "lam_ref=1.0, threads=1)",
        "second activation, same process (a run-time argument: nothing compiled)",
    ),
    "sweep warm-up (both drivers)": (
        "from sweepengine.sweep.worker import warm_up",
        "warm_up()",
        "sweep.worker.warm_up(): every linear compile unit (both drivers), one process",
    ),
}


def probe_script(setup: str, stmt: str) -> str:
    return (
        SETUP
        + setup
        + "\nt0, c0 = time.perf_counter(), time.process_time()\n"
        + stmt
        + "\nt, c = time.perf_counter() - t0, time.process_time() - c0\nimport json\n"
        + "print('RESULT', json.dumps({'first_call_s': t, 'first_call_cpu_s': c, "
        + "'import_s': t_import}))\n"
    )


def run_probe(setup: str, stmt: str, cache_dir: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "PYTHONPATH": str(ROOT)}
    env.pop("NUMBA_DISABLE_JIT", None)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", probe_script(setup, stmt)],
        env=env, capture_output=True, text=True, cwd=tempfile.gettempdir(),
    )  # fmt: skip
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"probe failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return {**json.loads(line[7:]), "process_s": wall}


def load_line() -> str:
    try:
        one, five, _ = os.getloadavg()
        return f"load average {one:.2f} (1 min), {five:.2f} (5 min) at the start"
    except OSError:
        return "load average unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated probe names (default: all)")
    args = ap.parse_args()
    names = list(PROBES) if not args.only else [n.strip() for n in args.only.split(",")]
    env_line = (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, {load_line()}"
    )
    old = RESULTS / "compile.json"
    rows = {}
    if args.only and old.exists():  # keep the other probes' rows, each with its own load
        prev = json.loads(old.read_text())
        rows = {k: {"env": prev["env"], **v} for k, v in prev["probes"].items()}
    for name in names:
        setup, stmt, what = PROBES[name]
        with tempfile.TemporaryDirectory(prefix="se-numba-cache-") as cache:
            cold = run_probe(setup, stmt, cache)
            warm = run_probe(setup, stmt, cache)
        rows[name] = {"covers": what, "cold": cold, "cached": warm}
        rows[name]["env"] = env_line
        print(f"{name:45s} cold {cold['first_call_s']:7.2f} s ({cold['first_call_cpu_s']:.1f} s "
              f"CPU)   cached {warm['first_call_s']:6.3f} s", flush=True)  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compile.json").write_text(
        json.dumps({"env": env_line, "probes": rows}, indent=2) + "\n"
    )
    lines = [
        "# Compile time per kernel, cold and cached",
        "",
        f"`python benchmarks/bench_compile.py`; {env_line}.",
        "",
        "Each probe is a fresh process with `NUMBA_CACHE_DIR` a new empty directory "
        "(cold), then a second fresh process on the cache the first wrote (cached). "
        "Seconds of the first call of the kernel only; inputs and, for the trainer, "
        "the reference quantities are computed before the timed call. Cold times "
        "include every sub-kernel the kernel calls (shared sub-kernels are compiled "
        "again in each process), so they do not add up.",
        "",
        "CPU seconds (the probe process's own) are what the compile costs whatever "
        "else runs on the machine; wall seconds grow with the load (in the last column).",
        "",
        "| probe | covers | cold CPU (s) | cold wall (s) | cached wall (s) | measured |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for name in PROBES:
        if name not in rows:
            continue
        r = rows[name]
        cpu = r["cold"].get("first_call_cpu_s")
        lines.append(
            f"| {name} | {r['covers']} | {'n/a' if cpu is None else f'{cpu:.1f}'} | "
            f"{r['cold']['first_call_s']:.2f} | {r['cached']['first_call_s']:.3f} | "
            f"{r.get('env', env_line).split(', ', 2)[-1]} |"
        )
    imp = [r["cached"]["import_s"] for r in rows.values()]
    lines += ["", f"Import of sweepengine + numpy in the probes: {min(imp):.2f} s (cached).", ""]
    (RESULTS / "compile.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / 'compile.md'}")


if __name__ == "__main__":
    main()

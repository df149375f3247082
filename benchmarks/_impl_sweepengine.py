"""sweepengine under test: raw compiled kernels, public wrappers, the fused trainer.

``kernel_cases`` returns zero-argument callables. "kernel:*" call the compiled
kernels with preallocated buffers, as the trainer and Lanczos do; "api:*" go
through the public functions (validation, flattening, allocation included).
"""

from __future__ import annotations

import time

import numpy as np

import sweepengine as se
from sweepengine._layout import dims_of, flatten
from sweepengine.kernels.hvp import hvp_prepared
from sweepengine.kernels.objective import loss_grad_data, loss_grad_stats, ws_size
from sweepengine.kernels.spectrum import lanczos_extremes
from sweepengine.training import reference, train_batch

# Stall probes off during throughput runs (measured separately): no stall can
# reach this length, so the per-step stall bookkeeping runs but never probes.
NO_PROBE = {"min_length": 10**9}


def kernel_cases(p):
    """(cases, checks): name -> callable, and flat outputs for the cross-check."""
    theta = flatten(p.weights)
    dims = dims_of(p.weights)
    v = flatten(p.direction)
    ws = np.zeros(ws_size(dims))
    g = np.empty_like(theta)
    out = np.empty_like(theta)
    R = np.empty((p.d, p.m))
    stats = se.Stats(p.Cxx, p.Cyx, p.yy)
    X, Y, Cxx, Cyx, yy = p.X, p.Y, p.Cxx, p.Cyx, p.yy

    def grad_stats():
        return loss_grad_stats(theta, dims, Cxx, Cyx, yy, ws, g)

    def grad_data():
        return loss_grad_data(theta, dims, X, Y, ws, R, g)

    def hvp_only():  # ws holds B and E at theta (prepared by a loss_grad call)
        hvp_prepared(theta, dims, Cxx, ws, v, out)

    def grad_hvp_stats():
        loss_grad_stats(theta, dims, Cxx, Cyx, yy, ws, g)
        hvp_prepared(theta, dims, Cxx, ws, v, out)

    def grad_hvp_data():
        loss_grad_data(theta, dims, X, Y, ws, R, g)
        hvp_prepared(theta, dims, Cxx, ws, v, out)

    cases = {
        "kernel:stats/grad": grad_stats,
        "kernel:data/grad": grad_data,
        "kernel:hvp_prepared": hvp_only,
        "kernel:stats/grad+hvp": grad_hvp_stats,
        "kernel:data/grad+hvp": grad_hvp_data,
        "api:stats/grad": lambda: se.loss_and_gradient(p.weights, stats=stats),
        "api:data/grad": lambda: se.loss_and_gradient(p.weights, X, Y),
        "api:stats/hvp": lambda: se.hvp(p.weights, direction=p.direction, stats=stats),
        "api:data/hvp": lambda: se.hvp(p.weights, X, Y, p.direction),
    }
    checks = {}
    checks["stats/loss"] = np.array([grad_stats()])
    checks["stats/grad"] = g.copy()
    hvp_only()
    checks["stats/hvp"] = out.copy()
    checks["data/loss"] = np.array([grad_data()])
    checks["data/grad"] = g.copy()
    hvp_only()
    checks["data/hvp"] = out.copy()
    return cases, checks


def compile_probe() -> dict[str, float]:
    """Seconds of the first call of each kernel, in order (compile or cache load)."""
    from _common import make_problem

    p = make_problem(4, 16, 2)
    t = {}
    t0 = time.perf_counter()
    cases, _ = kernel_cases(p)  # its first calls compile the loss/grad/HVP kernels
    t["loss_grad_stats + loss_grad_data + hvp_prepared"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for name in ("api:stats/grad", "api:data/hvp"):
        cases[name]()
    t["public wrappers (ws_size, loss_grad_*, hvp_prepared)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    se.hessian_extremes_info(p.weights, p.X, p.Y, method="lanczos")
    t["lanczos_extremes"] = time.perf_counter() - t0
    return t


def train_compile_probe() -> dict[str, float]:
    """Seconds of the first ``train_batch`` call (the fused trainer, parallel=True)."""
    from _common import make_problem

    p = make_problem(4, 16, 2)
    ref = reference(se.Stats(p.Cxx, p.Cyx, p.yy), p.dims)  # compiles the HVP kernels
    t0 = time.perf_counter()
    train_batch(p.X, p.Y, [p.weights], "gd", p.lr, 10, ref=ref, stop_at_target=False,
                final_probe=False, stall=NO_PROBE)  # fmt: skip
    return {"train_batch (fused trainer)": time.perf_counter() - t0}


class Trainer:
    """GD with sweepengine's fused trainer through the public ``train_batch``."""

    name = "sweepengine"

    def __init__(self, p, inits, threads):
        self.p = p
        self.inits = inits
        self.threads = threads
        self.ref = reference(se.Stats(p.Cxx, p.Cyx, p.yy), p.dims)

    def reference_seconds(self) -> float:
        """Cost of ``reference`` (L*, lam_ref), which train_batch pays unless given ref=."""
        t0 = time.perf_counter()
        reference(se.Stats(self.p.Cxx, self.p.Cyx, self.p.yy), self.p.dims)
        return time.perf_counter() - t0

    def run(self, steps: int) -> np.ndarray:
        """Train every start point for `steps` GD steps; return the final losses."""
        res = train_batch(self.p.X, self.p.Y, self.inits, "gd", self.p.lr, steps,
                          seeds=list(range(len(self.inits))), record_every=1,
                          stop_at_target=False, final_probe=False, stall=NO_PROBE,
                          threads=self.threads, ref=self.ref)  # fmt: skip
        for r in res:
            if r.status != "max_steps" or r.steps != steps:
                raise RuntimeError(f"run stopped early: {r.status} after {r.steps} steps")
        return np.array([r.final_loss for r in res])


def probe_costs(p, reps: int) -> dict[str, float]:
    """Seconds of one stall probe at the start point: what the trainer's probe runs
    (``loss_grad_stats`` then ``lanczos_extremes`` with the default StallConfig) and
    the public ``hessian_extremes_info(method="lanczos")``."""
    cfg = se.StallConfig()
    theta = flatten(p.weights)
    dims = dims_of(p.weights)
    ws = np.zeros(ws_size(dims))
    gbuf = np.empty_like(theta)
    out = np.zeros(5)
    stats = se.Stats(p.Cxx, p.Cyx, p.yy)

    def kernel():
        loss_grad_stats(theta, dims, p.Cxx, p.Cyx, p.yy, ws, gbuf)
        lanczos_extremes(theta, dims, p.Cxx, ws, cfg.lanczos_iter, cfg.lanczos_tol, 0, out)

    def api():
        return se.hessian_extremes_info(p.weights, stats=stats, method="lanczos",
                                        maxiter=cfg.lanczos_iter, tol=cfg.lanczos_tol)  # fmt: skip

    kernel()
    api()
    best_k = best_a = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        kernel()
        best_k = min(best_k, time.perf_counter() - t0)
        t0 = time.perf_counter()
        info = api()
        best_a = min(best_a, time.perf_counter() - t0)
    return {
        "probe_kernel": best_k,
        "probe_api": best_a,
        "iterations": int(out[4]),
        "lam_min": float(out[0]),
        "lam_max": float(out[1]),
        "api_iterations": int(info.iterations),
    }

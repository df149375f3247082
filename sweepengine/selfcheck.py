"""A quick end-to-end check of the kernels against analytic results (``sweepengine selfcheck``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import theory
from .initialization import init_weights
from .landscape import gradient, hessian, hessian_extremes_info, loss
from .problems import make_problem
from .training import train


def selfcheck(say: Callable[[str], None] = print) -> bool:
    """Checks that hold exactly in theory; returns True when all pass."""
    X, Y = make_problem("teacher", {"d_x": 5, "d_y": 4, "m": 40, "teacher_widths": [3],
                                    "noise": 0.1, "seed": 0})  # fmt: skip
    checks: list[tuple[str, bool]] = []
    widths = [3, 4]
    Wstar = theory.global_minimizer(X, Y, widths)
    lstar = theory.global_minimum(X, Y, widths)
    checks.append(("loss at global minimizer equals L*", abs(loss(Wstar, X, Y) - lstar) < 1e-9))
    g = gradient(Wstar, X, Y)
    checks.append(("gradient vanishes at global minimizer", max(np.abs(x).max() for x in g) < 1e-8))
    zeros = [np.zeros_like(w) for w in Wstar]
    checks.append(("Hessian at W = 0 is zero for H = 2", not np.any(hessian(zeros, X, Y))))
    W1 = [np.zeros((3, 5)), np.zeros((4, 3))]
    ev = np.linalg.eigvalsh(hessian(W1, X, Y))
    checks.append(("W = 0 is a strict saddle for H = 1", ev[0] < -1e-6))
    W = init_weights([5, 3, 4, 4], "gaussian", 0.5, 1)
    d = hessian_extremes_info(W, X, Y, method="dense")
    la = hessian_extremes_info(W, X, Y, method="lanczos")
    checks.append(("Lanczos lam_min equals dense", abs(d.lam_min - la.lam_min) < 1e-7 * d.lam_max))
    r = train(X, Y, init_weights([5, 3, 4, 4], "balanced", 0.3, 0), "gd", 2e-3, 20000)
    checks.append((f"GD converges to L* ({r.status}, gap {r.final_gap_rel:.1e})",
                   r.status == "converged"))  # fmt: skip
    for name, ok in checks:
        say(f"[{'ok' if ok else 'FAIL'}] {name}")
    return all(ok for _, ok in checks)

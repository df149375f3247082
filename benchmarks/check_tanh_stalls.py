"""Is there a critical point near the probe points of unresolved tanh stalls?

    python benchmarks/check_tanh_stalls.py

Writes results/tanh-stalls.md. The run: the whitened problem of tests/test_stalls.py
(singular values 3, 2, 1, 0.5; d = 4, m = 16), a tanh net of widths [4, 4, 4, 4]
from Gaussian init 0.01 (seed 1), GD at lr = 0.1 / lam_ref for 1500 time units. For
each stall after the first (the W = 0 plateau) the probe point is reproduced (same
run, stopped at the probe step) and Newton's method with the dense exact Hessian
(``se.hessian``; least-squares steps, step halved until ||grad|| falls) is run from
it for 60 steps, an independent check of the trainer's Newton-MR (matrix-free
MINRES, 30 steps): if it does not converge either, the stall is not in the
neighbourhood of a critical point and ``unresolved`` is the right record.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

import sweepengine as se  # noqa: E402
from sweepengine.problems import make_problem  # noqa: E402
from sweepengine.stats import Stats  # noqa: E402
from sweepengine.training import reference  # noqa: E402

DIMS = [4, 4, 4, 4]
STEPS = 60


def _split(theta):
    out, o = [], 0
    for a, b in zip(DIMS[:-1], DIMS[1:], strict=True):
        out.append(theta[o : o + a * b].reshape(b, a))
        o += a * b
    return out


def newton(theta, X, Y):
    """(||grad|| at the start, at the end, distance moved, lambda_min at the end)."""

    def grad(th):
        _, g = se.loss_and_gradient(_split(th), X, Y, activation="tanh")
        return np.concatenate([x.ravel() for x in g])

    th = theta.copy()
    g = grad(th)
    g0 = np.linalg.norm(g)
    for _ in range(STEPS):
        H = se.hessian(_split(th), X, Y, activation="tanh")
        d = -np.linalg.lstsq(H, g, rcond=1e-12)[0]
        a = 1.0
        while a > 1e-6 and not np.linalg.norm(grad(th + a * d)) < np.linalg.norm(g):
            a *= 0.5
        th = th + a * d
        g = grad(th)
        if np.linalg.norm(g) < 1e-13:
            break
    lam = np.linalg.eigvalsh(se.hessian(_split(th), X, Y, activation="tanh"))[0]
    return g0, float(np.linalg.norm(g)), float(np.linalg.norm(th - theta)), float(lam)


def main() -> None:
    X, Y = make_problem(
        "whitened", {"d_x": 4, "d_y": 4, "m": 16, "singular_values": [3.0, 2.0, 1.0, 0.5]}
    )  # fmt: skip
    lam_ref = reference(Stats.from_data(X, Y), DIMS).lam_ref
    W = se.init_weights(DIMS, "gaussian", 0.01, seed=1)
    lr = 0.1 / lam_ref
    run = se.train(X, Y, W, "gd", lr=lr, max_steps=15000, activation="tanh")
    rows = []
    for st in run.stalls[1:]:
        probe = se.train(X, Y, W, "gd", lr=lr, max_steps=st.probe_step, activation="tanh",
                         stall={"polish": False})  # fmt: skip
        theta = np.concatenate([w.ravel() for w in probe.weights])
        g0, g1, dist, lam = newton(theta, X, Y)
        rows.append([f"{st.start_time:.0f}-{st.end_time:.0f}", st.stall_class,
                     f"{st.polish_grad_rel:.1e}", f"{g0:.3g}", f"{g1:.3g}", f"{dist:.2f}",
                     f"{lam / lam_ref:.2e}"])  # fmt: skip
        print(rows[-1], flush=True)
    info = C.machine_info()
    lines = [
        "# Unresolved tanh stalls: dense Newton from their probe points",
        "",
        C.machine_md(info, "python benchmarks/check_tanh_stalls.py"),
        "",
        __doc__.split("\n\n", 2)[2].strip(),
        "",
        C.table(
            [
                "stall (time)",
                "class",
                "Newton-MR ||g|| / g_ref",
                "||g|| at probe",
                f"||g|| after {STEPS} Newton steps",
                "distance moved",
                "lambda_min / lam_ref there",
            ],
            rows,
        ),  # fmt: skip
        "",
    ]
    C.write_atomic(C.RESULTS / "tanh-stalls.md", "\n".join(lines))
    print(f"wrote {C.RESULTS / 'tanh-stalls.md'}")


if __name__ == "__main__":
    main()

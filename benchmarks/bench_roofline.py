"""What one core of this machine can multiply: the ceiling under the speed targets.

    python benchmarks/bench_roofline.py

Writes results/roofline.md and results/roofline.json. One process, every thread
pool at 1 thread, pinned to one CPU (``taskset``) when there is more than one.
Multiply-adds per nanosecond (FMA/ns; 1 FMA/ns = 2 GFLOP/s) of float64 products
C = A B, best of 5 batches of about 50 ms:

- OpenBLAS through NumPy (``np.matmul`` into a preallocated output) at square sizes
  up to 1024 (the machine's practical peak for float64 on one core) and at the
  shapes of the benchmarks: d x d times d x m for (d, m) = (8, 64) and (32, 256)
  (the layers of the nonlinear benchmark) and d x d x d (the statistics form);
- sweepengine's own product kernel (``kernels.linalg.mm``: register-blocked
  4-wide vectors up to 48^3 multiply-adds, BLAS above) at the same shapes, called
  from Python and from a compiled loop (as the trainers call it; at the small shapes
  the call from Python is mostly the call).

The speed targets of issues 11 and 14 are ratios to JAX / NumPy; each implies a
rate of multiply-adds per ns for the products a step or a call cannot avoid (the
"needs" figures of results/nonlinear-train.md and results/overhead.md). A target
whose rate is above the best measured here cannot be met on this machine by any
code that does those products.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from sweepengine.kernels.linalg import mm  # noqa: E402


@njit(cache=False)
def _mm_loop(A, B, out, n):
    for _ in range(n):
        mm(A, B, out)


SQUARE = [32, 64, 128, 256, 512, 1024]
SHAPES = [(8, 8, 64), (32, 32, 256), (8, 8, 8), (32, 32, 32)]  # (m, k, n) of C = A B


def rate(fn, fma: int) -> float:
    """Best FMA/ns over 5 batches of about 50 ms (``_common.time_call``)."""
    fn()
    return fma / C.time_call(fn, min_time=0.05, batches=5).best / 1e9


def main() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[-1]})
    rng = np.random.default_rng(0)
    rows = []
    res = {}
    for m, k, n in [(s, s, s) for s in SQUARE] + SHAPES:
        A, B = rng.standard_normal((m, k)), rng.standard_normal((k, n))
        out = np.empty((m, n))
        fma = m * k * n
        blas = rate(lambda A=A, B=B, out=out: np.matmul(A, B, out=out), fma)
        own = loop = None
        if m <= 256:
            own = rate(lambda A=A, B=B, out=out: mm(A, B, out), fma)
            reps = max(1, 2_000_000 // fma)
            loop = rate(lambda A=A, B=B, out=out, r=reps: _mm_loop(A, B, out, r), fma * reps)
        key = f"{m}x{k}x{n}"
        res[key] = {"fma": fma, "openblas": blas, "sweepengine": own, "sweepengine_loop": loop}
        rows.append([key, f"{fma:,}", f"{blas:.1f}"]
                    + ["n/a" if v is None else f"{v:.1f}" for v in (own, loop)])  # fmt: skip
        print(rows[-1], flush=True)
    peak = max(x for v in res.values() for k, x in v.items() if k != "fma" and x is not None)
    info = C.machine_info()
    C.RESULTS.mkdir(exist_ok=True)
    (C.RESULTS / "roofline.json").write_text(
        json.dumps({"machine": info, "peak_fma_per_ns": peak, "results": res}, indent=2) + "\n"
    )
    lines = [
        "# Roofline: float64 multiply-adds per ns on one core",
        "",
        C.machine_md(info, "python benchmarks/bench_roofline.py"),
        "",
        __doc__.split("\n\n", 2)[2].split("\n\nThe speed targets")[0].strip(),
        "",
        C.table(
            [
                "C = A B (m x k x n)",
                "multiply-adds",
                "OpenBLAS FMA/ns",
                "sweepengine mm FMA/ns",
                "sweepengine mm, compiled loop",
            ],
            rows,
        ),
        "",
        f"**Best measured: {peak:.1f} FMA/ns** ({2 * peak:.0f} GFLOP/s) on one core (any column).",
        "",
    ]
    C.write_atomic(C.RESULTS / "roofline.md", "\n".join(lines))
    print(f"wrote {C.RESULTS / 'roofline.md'}")


if __name__ == "__main__":
    main()

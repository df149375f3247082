"""Call overhead: one-shot and prepared ``gradient`` / ``hvp`` against the kernel and NumPy.

    python benchmarks/bench_overhead.py

Writes results/overhead.md and results/overhead.json. One process, every thread
pool at 1 thread. Per size (d = d_x = d_y = widths, H hidden layers, m samples):

- NumPy: ``benchmarks/_impl_numpy.py`` from X and Y (loss + gradient; loss,
  gradient and H V), as a user who knows the formulas writes it;
- kernel: the compiled kernel with a preallocated workspace, in the form the
  prepared objective picks (statistics when m > d_0); for ``hvp`` the one the
  prepared objective calls, ``loss_grad_hvp_*`` (the loss and gradient pass the HVP
  needs, then the HVP, in one compiled call);
- one-shot: ``se.gradient(W, X, Y)``, ``se.hvp(W, X, Y, V)`` (validation, the form
  chosen per call, allocation, list in and out);
- prepared: ``obj = se.objective(X, Y, dims)``, then ``obj.gradient(theta)`` and
  ``obj.hvp(theta, v)`` on flat vectors (and on lists, for comparison).

Timing: n calls per batch (about 5 ms), 40 rounds in which the cases of one size
and operation take turns; the table shows the best batch (the least disturbed by
other processes on a shared machine) and the median. Targets (issue 11): one-shot
>= 3x NumPy, prepared >= 5x, prepared at most ~1 us above the kernel.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import _impl_numpy as N  # noqa: E402
import numpy as np  # noqa: E402

import sweepengine as se  # noqa: E402
from sweepengine._layout import flatten  # noqa: E402
from sweepengine.kernels.hvp import loss_grad_hvp_data, loss_grad_hvp_stats  # noqa: E402
from sweepengine.kernels.objective import loss_grad_data, loss_grad_stats, ws_size  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "results"
SIZES = [(8, 64, 4), (32, 256, 4)]


def timing(fns: dict, min_time: float = 0.005, rounds: int = 40) -> dict[str, dict]:
    """Per function: seconds per call, best and median over ``rounds`` batches of about
    ``min_time`` each, the functions taking turns batch by batch, so that a burst of load
    from other processes hits them all alike."""
    ns = {}
    for name, fn in fns.items():
        fn()
        n = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            dt = time.perf_counter() - t0
            if dt >= 0.2 * min_time:
                break
            n *= 4
        ns[name] = max(1, round(n * min_time / max(dt, 1e-9)))
    per: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            n = ns[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            per[name].append((time.perf_counter() - t0) / n)
    return {k: {"best": min(v), "median": statistics.median(v)} for k, v in per.items()}


def cases(d: int, m: int, H: int) -> dict:
    p = C.make_problem(d, m, H)
    W, V, X, Y = p.weights, p.direction, p.X, p.Y
    theta, v = flatten(W), flatten(V)
    obj = se.objective(X, Y, p.dims)
    dims = obj.dims
    ws, g, out = np.zeros(ws_size(dims)), np.empty(theta.size), np.empty(theta.size)
    R = np.empty((d, m))
    if obj.form == "stats":

        def kgrad():
            return loss_grad_stats(theta, dims, obj.Cxx, obj.Cyx, obj.yy, ws, g)
    else:

        def kgrad():
            return loss_grad_data(theta, dims, X, Y, ws, R, g)

    if obj.form == "stats":

        def khvp():
            return loss_grad_hvp_stats(theta, dims, obj.Cxx, obj.Cyx, obj.yy, ws, g, v, out)
    else:

        def khvp():
            return loss_grad_hvp_data(theta, dims, X, Y, obj.Cxx, ws, R, g, v, out)

    return obj.form, {
        "gradient": {
            "NumPy": lambda: N.loss_grad_data(W, X, Y),
            "kernel": kgrad,
            "one-shot": lambda: se.gradient(W, X, Y),
            "prepared": lambda: obj.gradient(theta),
            "prepared (lists)": lambda: obj.gradient(W),
        },
        "hvp": {
            "NumPy": lambda: N.hvp_data(W, V, X, Y),
            "kernel": khvp,
            "one-shot": lambda: se.hvp(W, X, Y, V),
            "prepared": lambda: obj.hvp(theta, v),
            "prepared (lists)": lambda: obj.hvp(W, V),
        },
    }


def floor_cases(d: int, m: int, H: int) -> dict:
    """What any one-shot ``gradient(W, X, Y)`` pays besides the arithmetic, measured
    without it: the Python checks of the K + 2 arrays (type, dtype, ndim, layout: what
    decides that the compiled code may take them as they are) and one compiled call that
    takes the weights as a tuple with X and Y and returns K new arrays shaped like them
    (no arithmetic; the cheapest way to hand a list of matrices in and out)."""
    from numba import njit

    p = C.make_problem(d, m, H)
    W, X, Y = p.weights, p.X, p.Y

    @njit(cache=False)
    def round_trip(Ws, X, Y):
        return [np.empty_like(w) for w in Ws]

    def checks():
        for a in (*W, X, Y):
            if not (type(a) is np.ndarray and a.dtype == np.float64 and a.ndim == 2
                    and a.flags.c_contiguous):  # fmt: skip
                raise TypeError

    return {"checks": checks, "list in and out": lambda: round_trip(tuple(W), X, Y)}


def main() -> None:
    load0 = os.getloadavg()[0]
    res = {}
    for d, m, H in SIZES:
        form, by_op = cases(d, m, H)
        size = C.size_id(d, m, H)
        res[size] = {"form": form}
        for op, fns in by_op.items():
            res[size][op] = timing(fns)
            t = res[size][op]
            print(size, op, {k: f"{v['best'] * 1e6:.2f}" for k, v in t.items()}, flush=True)
        res[size]["floor"] = timing(floor_cases(d, m, H))
    load1 = os.getloadavg()[0]
    info = C.machine_info()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overhead.json").write_text(
        json.dumps({"machine": info, "load": [load0, load1], "results": res}, indent=2) + "\n"
    )
    names = ["NumPy", "kernel", "one-shot", "prepared", "prepared (lists)"]
    lines = [
        "# Call overhead: one-shot and prepared gradient / HVP",
        "",
        C.machine_md(info, "python benchmarks/bench_overhead.py"),
        f"- 1-minute load average {load0:.1f} at the start, {load1:.1f} at the end "
        "(2 cores: above 1 means other processes competed for this one's core).",
        "",
        "Microseconds per call, best batch (median in parentheses); `kernel` = the "
        "compiled kernel in the prepared objective's form with a preallocated workspace; "
        "`prepared` on flat vectors. `hvp` rows include the loss and gradient pass the "
        "HVP needs (NumPy's `hvp_data` returns all three).",
        "",
        "| size | form | op | " + " | ".join(names) + " | one-shot vs NumPy | "
        "prepared vs NumPy | prepared - kernel |",
        "| --- | --- | --- | " + " | ".join("---:" for _ in names) + " | ---: | ---: | ---: |",
    ]
    checks = []
    for size, r in res.items():
        for op in ("gradient", "hvp"):
            t = r[op]
            b = {k: v["best"] for k, v in t.items()}
            cells = [f"{b[n] * 1e6:.2f} ({t[n]['median'] * 1e6:.2f})" for n in names]
            one, prep = b["NumPy"] / b["one-shot"], b["NumPy"] / b["prepared"]
            extra = (b["prepared"] - b["kernel"]) * 1e6
            lines.append(
                f"| {size} | {r['form']} | {op} | " + " | ".join(cells)
                + f" | {one:.1f}x | {prep:.1f}x | {extra:.2f} us |"
            )  # fmt: skip
            checks.append((size, op, one, prep, extra))
    lines += [
        "",
        "## Floor of a one-shot call",
        "",
        "What a one-shot `gradient(W, X, Y)` pays besides its arithmetic (`floor_cases`): "
        "the Python checks of the weights, X and Y (type, dtype, ndim, layout), and one "
        "compiled call that takes the weights as a tuple with X and Y and returns new "
        "arrays shaped like the weights, with no arithmetic. `3x NumPy leaves` = NumPy's "
        "gradient / 3, the whole budget of a one-shot call at the target; `kernel` as above.",
        "",
        "| size | checks (us) | list in and out (us) | kernel (us) | sum (us) | "
        "3x NumPy leaves (us) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, r in res.items():
        f = {k: v["best"] * 1e6 for k, v in r["floor"].items()}
        kern, numpy_ = r["gradient"]["kernel"]["best"] * 1e6, r["gradient"]["NumPy"]["best"] * 1e6
        total = f["checks"] + f["list in and out"] + kern
        lines.append(f"| {size} | {f['checks']:.2f} | {f['list in and out']:.2f} | {kern:.2f} | "
                     f"{total:.2f} | {numpy_ / 3:.2f} |")  # fmt: skip
    lines += ["", "## Targets", "", "| target | size | op | value | met |"]
    lines.append("| --- | --- | --- | ---: | --- |")
    for size, op, one, prep, extra in checks:
        for target, value, ok in (
            ("one-shot >= 3x NumPy", f"{one:.1f}x", one >= 3),
            ("prepared >= 5x NumPy", f"{prep:.1f}x", prep >= 5),
            ("prepared <= kernel + ~1 us", f"{extra:.2f} us", extra <= 1.2),
        ):
            lines.append(f"| {target} | {size} | {op} | {value} | {'yes' if ok else 'NO'} |")
    lines.append("")
    C.write_atomic(RESULTS / "overhead.md", "\n".join(lines))
    print(f"wrote {RESULTS / 'overhead.md'}")


if __name__ == "__main__":
    main()

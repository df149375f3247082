"""Shared benchmark machinery: problems, thread caps, timing, machine facts, Markdown.

Every measurement runs in a worker subprocess whose environment caps every
thread pool before NumPy, Numba, JAX or PyTorch is imported; one framework per
process, so no two BLAS or OpenMP pools compete. The driver only orchestrates
and writes ``results/``. Nothing here imports JAX or PyTorch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
log = logging.getLogger("bench")
#: How long ``wait_quiet`` waits at most before each worker (seconds); scripts may raise it.
QUIET_MAX_WAIT = 15.0

# Widths d (d_x = d_y = every hidden width), samples m, hidden layers H.
SIZES: tuple[tuple[int, int, int], ...] = (
    (8, 64, 1),
    (8, 64, 2),
    (8, 64, 4),
    (8, 64, 8),
    (32, 256, 2),
    (32, 256, 4),
    (128, 1024, 4),
)


def size_id(d: int, m: int, H: int) -> str:
    return f"d={d}-m={m}-H={H}"


@dataclasses.dataclass(frozen=True)
class Problem:
    """A benchmark problem: data, its statistics, a start point and a direction."""

    d: int
    m: int
    H: int
    X: object  # (d, m) ndarray
    Y: object
    Cxx: object
    Cyx: object
    yy: float
    weights: list  # [W_1..W_K], orthogonal init
    direction: list  # a random direction shaped like weights
    lr: float

    @property
    def id(self) -> str:
        return size_id(self.d, self.m, self.H)

    @property
    def dims(self) -> list[int]:
        return [self.d] * (self.H + 2)


def make_problem(d: int, m: int, H: int, seed: int = 0) -> Problem:
    """Teacher data Y = A X + noise with X X^T ~ I, orthogonal start weights.

    The learning rate 0.5 / (K ||Cxx||_2 max(1, ||A||_2)) keeps full-batch GD
    stable (no divergence) for every size here, so runs never stop early.
    """
    import numpy as np

    from sweepengine.initialization import init_weights

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((d, m)) / np.sqrt(m)
    A = rng.standard_normal((d, d)) / np.sqrt(d)
    Y = A @ X + 0.1 * rng.standard_normal((d, m)) / np.sqrt(m)
    K = H + 1
    dims = [d] * (K + 1)
    weights = init_weights(dims, "orthogonal", 1.0, seed=seed + 1)
    direction = [rng.standard_normal(w.shape) for w in weights]
    Cxx = X @ X.T
    lr = 0.5 / (K * np.linalg.norm(Cxx, 2) * max(1.0, np.linalg.norm(A, 2)))
    return Problem(d, m, H, X, Y, Cxx, Y @ X.T, float(np.sum(Y * Y)), weights, direction, lr)


def batch_inits(p: Problem, B: int) -> list[list]:
    """B start points of the problem's shape (orthogonal, seeds 1000 + b)."""
    from sweepengine.initialization import init_weights

    return [init_weights(p.dims, "orthogonal", 1.0, seed=1000 + b) for b in range(B)]


# ---------------------------------------------------------------- threads


def thread_env(threads: int) -> dict[str, str]:
    """Environment capping Numba, both OpenBLAS copies, OpenMP, MKL and XLA."""
    n = str(threads)
    env = dict(os.environ)
    env.update(
        NUMBA_NUM_THREADS=n,
        OMP_NUM_THREADS=n,
        OPENBLAS_NUM_THREADS=n,
        MKL_NUM_THREADS=n,
        VECLIB_MAXIMUM_THREADS=n,
        BENCH_THREADS=n,
    )
    if threads == 1:
        # Honoured by older XLA; current jaxlib ignores it, hence taskset below.
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return env


def pin_prefix(threads: int) -> list[str]:
    """``taskset`` onto `threads` CPUs: the only cap XLA's CPU thread pool obeys."""
    cpus = sorted(os.sched_getaffinity(0))
    if shutil.which("taskset") is None or len(cpus) <= threads:
        return []
    return ["taskset", "-c", ",".join(str(c) for c in cpus[:threads])]


def _busy_seconds() -> float:
    """CPU seconds all processes on this machine have spent busy (from /proc/stat)."""
    try:
        f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    ticks = [int(x) for x in f]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_quiet(max_wait: float | None = None, limit: float = 0.15) -> float:
    """Wait (up to ``max_wait`` s, default ``QUIET_MAX_WAIT``) until other processes use
    under ``limit`` cores; return it."""
    max_wait = QUIET_MAX_WAIT if max_wait is None else max_wait
    deadline = time.monotonic() + max_wait
    while True:
        b0, t0 = _busy_seconds(), time.monotonic()
        time.sleep(1.0)
        load = (_busy_seconds() - b0) / (time.monotonic() - t0)
        if load < limit or time.monotonic() > deadline:
            return load
        log.info("machine busy (%.2f cores used by other processes), waiting", load)


def run_worker(script: Path, args: list[str], threads: int, timeout: float, extra_env=None,
               retries: int = 1):  # fmt: skip
    """Run ``script --worker args`` capped to `threads`; return its JSON result (or None).

    The result gains ``foreign_load``: cores used on average by *other* processes
    while the worker ran (machine busy time minus the worker's own CPU time),
    so a timing disturbed by someone else's job can be recognised. A worker
    disturbed by more than 0.3 cores is run again (``retries`` times at most)
    and the least disturbed result kept.
    """
    best = None
    for attempt in range(retries + 1):
        if attempt:
            log.info("worker disturbed by %.2f cores of other load: again", best["foreign_load"])
        out = _run_worker_once(script, args, threads, timeout, extra_env)
        if out is not None and (best is None or out["foreign_load"] < best["foreign_load"]):
            best = out
        if best is None or best["foreign_load"] <= 0.3:
            break
    return best


def _run_worker_once(script, args, threads, timeout, extra_env):
    env = thread_env(threads)
    env.update(extra_env or {})
    cmd = pin_prefix(threads) + [sys.executable, str(script), "--worker", *args]
    wait_quiet()
    log.info("worker: %s", " ".join(args))
    t0, b0, c0 = time.perf_counter(), _busy_seconds(), _children_cpu()
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        log.error("worker %s timed out after %.0f s", args, timeout)
        return None
    wall = time.perf_counter() - t0
    foreign = max(0.0, (_busy_seconds() - b0) - (_children_cpu() - c0)) / wall
    if proc.returncode != 0:
        log.error("worker %s failed (rc %d):\n%s", args, proc.returncode, proc.stderr[-3000:])
        return None
    log.info("worker done in %.1f s (other processes: %.2f cores)", wall, foreign)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return None
    out = json.loads(lines[-1])
    out["foreign_load"] = foreign
    out["wall_s"] = wall
    return out


def worker_threads() -> int:
    return int(os.environ.get("BENCH_THREADS", "1"))


# ---------------------------------------------------------------- timing


@dataclasses.dataclass(frozen=True)
class Timing:
    median: float  # seconds per call
    best: float
    calls: int  # calls per batch
    batches: int


def time_call(fn: Callable[[], object], min_time: float = 0.02, batches: int = 5) -> Timing:
    """Seconds per call of an already-warm ``fn``: median over batches of n calls.

    n is chosen so that one batch takes about ``min_time``; slow calls get n = 1.
    """
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= 0.2 * min_time or n >= 1 << 22:
            break
        n *= 4
    n = max(1, round(n * min_time / max(dt, 1e-9)))
    per = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        per.append((time.perf_counter() - t0) / n)
    return Timing(statistics.median(per), min(per), n, batches)


def first_call(fn: Callable[[], object]) -> float:
    """Wall seconds of one call (the compiling call, reported separately)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- facts


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def machine_info() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "sweepengine"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        commit += " (sweepengine/ has uncommitted changes)" if dirty else ""
    except OSError:
        commit = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": commit,
        "versions": {
            p: _version(p)
            for p in ("sweepengine", "numba", "numpy", "scipy", "jax", "jaxlib", "torch")
        },
    }


def machine_md(info: dict, command: str) -> str:
    v = info["versions"]
    vs = ", ".join(f"{k} {val}" for k, val in v.items())
    return (
        f"- command: `{command}`\n"
        f"- date: {info['date']}; commit {info['commit']}\n"
        f"- CPU: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable); "
        f"Python {info['python']} on {info['platform']}\n"
        f"- versions: {vs}\n"
    )


# ---------------------------------------------------------------- Markdown


def table(header: list[str], rows: list[list[object]], align: str | None = None) -> str:
    """A Markdown table; first column left-aligned, the rest right-aligned."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def fmt_us(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    us = seconds * 1e6
    if us < 10:
        return f"{us:.2f}"
    if us < 1000:
        return f"{us:.1f}"
    return f"{us:,.0f}"


def fmt_x(ratio: float | None) -> str:
    if ratio is None:
        return "n/a"
    return f"**{ratio:.1f}x**" if ratio < 1 else f"{ratio:.1f}x"


def fmt_rate(per_s: float | None) -> str:
    if per_s is None:
        return "n/a"
    if per_s >= 1e6:
        return f"{per_s / 1e6:.2f} M"
    if per_s >= 1e3:
        return f"{per_s / 1e3:.1f} k"
    return f"{per_s:.0f}"


def _worker_results(obj):
    """Every worker result (a dict with ``foreign_load``) nested anywhere in ``obj``."""
    if isinstance(obj, dict):
        if "foreign_load" in obj:
            yield obj
        else:
            for v in obj.values():
                yield from _worker_results(v)


def load_md(res: dict) -> str:
    """One line on how busy the machine was with other processes during the workers."""
    workers = list(_worker_results(res))
    if not workers:
        return ""
    worst = max(w["foreign_load"] for w in workers)
    each = ", ".join(
        f"{w.get('label') or w['impl']}/{w.get('mode') or str(w.get('threads')) + 't'} "
        f"{w['foreign_load']:.2f}"
        for w in workers
        if "impl" in w
    )
    line = (
        f"- load from other processes on this shared machine, in cores, while each worker ran "
        f"(machine busy time minus the worker's own CPU time): {each or f'max {worst:.2f}'}"
    )
    if worst > 0.2:
        line += (
            ". **Above 0.2 the timings of that worker may be disturbed by another job**, "
            "above all 2-thread ones (a parallel region waits for a descheduled thread)"
        )
    return line + ".\n"


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary name, then rename (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_report(
    res: dict, out: str, render: Callable[[dict, str], str], command: str, t_start: float
) -> None:
    """Stamp the wall time, then write ``out``.json (``res``) and ``out``.md (``render``)."""
    res["wall_seconds"] = time.perf_counter() - t_start
    stem = Path(out)
    write_atomic(stem.with_suffix(".json"), json.dumps(res, indent=1))
    write_atomic(stem.with_suffix(".md"), render(res, command))
    log.info("wrote %s.{md,json} in %.0f s", stem, res["wall_seconds"])


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")


# ---------------------------------------------------------------- training reports


def rate(case: dict | None) -> float | None:
    """Runs x steps per second of a training benchmark's case (None if it did not run)."""
    return None if case is None else case["run_steps_per_s"]


def ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else a / b


def agree(case: dict | None, ref: dict | None) -> float | None:
    """Largest relative difference of two cases' cross-check losses (None if either is
    missing or they ran different step counts)."""
    if case is None or ref is None or case["check_steps"] != ref["check_steps"]:
        return None
    pairs = zip(case["check_losses"], ref["check_losses"], strict=True)
    return max(abs(a - b) / abs(b) for a, b in pairs)

"""A chunk's tables, built column by column from kernel arrays, against run-by-run training.

``worker.train_chunk`` initialises a chunk in one ``init_batch`` call, trains it with
``train_flat`` and builds the runs, stalls and curves tables from the output arrays.
The reference here is the slow, obvious path: ``init_weights`` and ``train`` for each
run alone, rows assembled from its ``TrainResult``. Batched training is bit-identical
to single runs, so every number must match exactly.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from sweepengine.initialization import init_batch, init_weights
from sweepengine.problems import make_problem
from sweepengine.sweep import chunk_runs, load_spec
from sweepengine.sweep.worker import train_chunk
from sweepengine.training import train
from tests.conftest import whitened_spec

SPEC = whitened_spec(
    "chunk", seeds=3, max_steps=600, record_every=25,
    problem={"d_x": 4, "d_y": 3, "m": 16, "singular_values": [3.0, 1.0, 0.5]},
    architecture={"depth": [2], "width": [3]},
    init={"scheme": ["gaussian", "orthogonal", "balanced", "zero_perturbed"],
          "scale": [1e-2, 0.2]},
    optimizer={"name": "gd", "lr": [0.05, 0.3]},
)  # fmt: skip


def test_chunk_tables_equal_run_by_run_training():
    spec = load_spec(SPEC)
    [(cid, runs)] = list(chunk_runs(spec.runs(), 1000))
    assert len({r.init_scheme for r in runs}) == 4  # one chunk mixes the schemes
    res = train_chunk(cid, runs, spec.name)
    got = res.runs.to_pandas().set_index("run_id")
    stalls = res.stalls.to_pandas()
    curves = res.curves.to_pandas()
    X, Y = make_problem(runs[0].problem, runs[0].problem_params)
    n_stalls = 0
    for r in runs:
        w0 = init_weights(r.dims, r.init_scheme, r.init_scale, r.init_seed)
        t = train(X, Y, w0, r.optimizer, max_steps=r.max_steps, seed=r.rng_seed,
                  record_every=r.record_every, target_gap=r.target_gap, stall=r.stall)  # fmt: skip
        row = got.loc[r.run_id]
        assert row.status == t.status and row.steps == t.steps
        assert row.final_loss == t.final_loss and row.final_gap == t.final_gap
        assert row.final_gap_rel == t.final_gap_rel and row.global_min == t.global_minimum
        assert row.final_grad_norm == t.grad_norm and row.lam_ref == t.lam_ref
        assert row.final_lam_min == t.lam_min and row.final_lam_max == t.lam_max
        to_target = None if np.isnan(row.steps_to_target) else int(row.steps_to_target)
        assert to_target == t.steps_to_target and row.n_stalls == t.n_stalls
        for cls in ("strict_saddle", "bad_saddle", "minimum", "unresolved"):
            want = sum(s.length for s in t.stalls if s.stall_class == cls)
            assert row[f"steps_in_{cls}"] == want
            time = sum(s.duration for s in t.stalls if s.stall_class == cls)
            assert row[f"time_in_{cls}"] == pytest.approx(time, rel=1e-12, abs=1e-12)
        assert row.time_unit == t.time_unit
        if t.stalls:
            longest = max(t.stalls, key=lambda s: s.duration)
            assert row.first_stall_class == t.stalls[0].stall_class
            assert row.longest_stall_class == longest.stall_class
        assert (row.seed, row.init_scheme, row.init_scale) == (r.seed, r.init_scheme, r.init_scale)
        assert row.lr == r.optimizer.lr and json.loads(row.optimizer_params) == {}
        assert list(row.widths) == [3, 3] and row.n_params == 4 * 3 + 3 * 3 + 3 * 3
        mine = stalls[stalls.run_id == r.run_id].sort_values("stall_index")
        assert list(mine.stall_index) == list(range(len(t.stalls)))
        for (_, s), ref in zip(mine.iterrows(), t.stalls, strict=True):
            assert (s.start_step, s.end_step, s.probe_step) == (ref.start, ref.end, ref.probe_step)
            assert (s.loss, s.gap_rel, s.lam_min, s.lam_max) == (
                ref.loss, ref.gap_rel, ref.lam_min, ref.lam_max)  # fmt: skip
            assert (s.critical_value, s.critical_rank) == (ref.critical_value, ref.critical_rank)
            assert (s.lam_min_err, s.lanczos_iters) == (ref.lam_min_err, ref.lanczos_iters)
            assert list(s.modes) == list(ref.modes) and s.start_time == ref.start_time
            assert (s.local_lam_min, s.local_class) == (ref.local_lam_min, ref.local_class)
            assert (s.rel_lam_min, s.stall_class) == (ref.rel_lam_min, ref.stall_class)
        n_stalls += len(t.stalls)
        c = curves[curves.run_id == r.run_id].sort_values("step")
        keep = ~np.isnan(t.losses)
        np.testing.assert_array_equal(c.step, t.loss_steps[keep])
        np.testing.assert_array_equal(c.loss, t.losses[keep])
    assert n_stalls > 0 and len(stalls) == n_stalls
    assert {"converged", "max_steps"} <= set(got.status)


@pytest.mark.parametrize("scheme", ["gaussian", "orthogonal", "balanced", "zero_perturbed"])
def test_init_batch_rows_are_init_weights(scheme):
    dims, seeds = [3, 5, 4, 2], [0, 7, 2**64 - 1, 12345678901234567]
    scales = [0.5, 2.0, 0.5, [1.0, 1e-3, 1e-6] if scheme == "gaussian" else 3.0]
    theta = init_batch(dims, scheme, scales, seeds)
    assert theta.shape == (4, 3 * 5 + 5 * 4 + 4 * 2)
    for row, scale, seed in zip(theta, scales, seeds, strict=True):
        want = np.concatenate([w.ravel() for w in init_weights(dims, scheme, scale, seed)])
        np.testing.assert_array_equal(row, want)
    assert len({row.tobytes() for row in theta}) == 4  # seeds give different draws


def test_init_stream_is_standard_normal():
    z = init_batch([1, 20000], "gaussian", [1.0, 1.0], [0, 1])
    for row in z:  # mean and variance within ~4 standard errors
        assert abs(row.mean()) < 4 / np.sqrt(row.size)
        assert abs(row.var() - 1) < 4 * np.sqrt(2 / row.size)
    assert abs(np.corrcoef(z)[0, 1]) < 4 / np.sqrt(z.shape[1])


@pytest.mark.parametrize(
    "scales,seeds,match",
    [
        ([0.1], [-1], r"seeds must be integers in \[0, 2\*\*64\)"),
        ([0.1], [2**64], r"seeds must be integers"),
        ([0.1], [1.5], r"seeds must be integers"),
        ([0.1, 0.1], [1], "2 scales for 1 seeds"),
        ([-0.1], [1], "init scale"),
    ],
)
def test_init_batch_bad_input(scales, seeds, match):
    with pytest.raises(ValueError, match=match):
        init_batch([3, 4, 2], "gaussian", scales, seeds)


def test_compile_lock_serialises_cold_processes_and_not_warm_ones(tmp_path, monkeypatch):
    import subprocess
    import sys

    from sweepengine.sweep import compile_lock as cl

    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    lock, marker = cl.lock_paths()
    # per user, never the shared /tmp: a private directory of this user
    assert lock.parent == runtime / "sweepengine" and not marker.exists()
    st = lock.parent.stat()
    assert st.st_uid == os.getuid() and st.st_mode & 0o777 == 0o700
    probe = (  # another process: can it take the lock right now?
        "import fcntl, sys; f = open(sys.argv[1], 'a')\n"
        "try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
        "except BlockingIOError:\n    print('held')\n"
    )

    def other() -> str:
        out = subprocess.run([sys.executable, "-c", probe, str(lock)], capture_output=True,
                             text=True, check=True, timeout=300)  # fmt: skip
        return out.stdout.strip()

    with cl.compile_lock() as warm:  # cold: the lock is held while compiling
        assert other() == "held"
        warm()
    assert marker.exists() and other() == "free"
    with cl.compile_lock():  # warm: no lock, processes load in parallel
        assert other() == "free"


def test_compile_units_skips_a_busy_unit_then_loads_it(tmp_path, monkeypatch):
    """Each unit has its own lock: while another process compiles the driver (first in
    the list), this one compiles the reference instead, then waits for the driver and
    runs it only once the other has warmed it (a load from the cache)."""
    import subprocess
    import sys

    from sweepengine.sweep import compile_lock as cl

    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    lock, marker = cl.lock_paths("lockstep")
    assert lock != cl.lock_paths("reference")[0]
    holder = subprocess.Popen(  # another process: compiling the driver for 3 s
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(3); "
         "open(sys.argv[2], 'w').close()", str(lock), str(marker)],
        stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        order = []

        def unit(name):
            return name, lambda: order.append((name, marker.exists()))

        cl.compile_units([unit("lockstep"), unit("reference")])
        assert order == [("reference", False), ("lockstep", True)]
        assert cl.lock_paths("reference")[1].exists()
    finally:
        holder.wait(timeout=300)
    with pytest.raises(ValueError, match="compile unit names"):
        cl.lock_paths("../x")


def test_compile_units_compile_a_unit_after_the_units_it_needs(tmp_path, monkeypatch, caplog):
    """While another process compiles unit "a", a unit that needs "a" waits for it and a
    unit that does not goes first; "a" is then loaded (the other process warmed it) and
    only then its dependant runs. A unit needing one not listed before it is refused;
    a holder that never finishes is waited for at most the timeout."""
    import subprocess
    import sys

    from sweepengine.sweep import compile_lock as cl

    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    lock, marker = cl.lock_paths("a")
    holder = subprocess.Popen(  # another process: compiling "a" for 2 s
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(2); "
         "open(sys.argv[2], 'w').close(); time.sleep(60)", str(lock), str(marker)],
        stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        order = []

        def unit(name, *needs):
            return name, lambda: order.append((name, marker.exists())), needs

        cl.compile_units([unit("a"), unit("b", "a"), unit("c")])
        assert order == [("c", False), ("a", True), ("b", True)]
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(ValueError, match=r"unit 'b' needs \['x'\], which are neither done"):
        cl.compile_units([unit("b", "x"), unit("x")])
    # a holder that never lets go: after the timeout this process compiles the unit itself
    lock, marker = cl.lock_paths("d")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(lock)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        order.clear()
        with caplog.at_level("WARNING"):
            cl.compile_units([unit("d"), unit("e", "d")], timeout=0.5)
        assert [n for n, _ in order] == ["d", "e"] and marker.exists()
        assert "compile unit 'd' still being compiled by another process" in caplog.text
    finally:
        holder.kill()
        holder.wait()


def test_units_for_a_chunk_include_what_they_call_in_order():
    from sweepengine.sweep import worker

    lock = worker.units_for("lockstep")
    assert lock == ["objective", "lockstep", "hvp", "polish", "lanczos", "modes", "reference",
                    "examine"]  # fmt: skip
    assert "lockstep" not in worker.units_for("per_run")
    assert worker.units_for(None) == list(worker.UNITS) and "nonlinear" not in worker.UNITS
    assert worker.units_for("nonlinear") == ["objective", "hvp", "reference", "nonlinear"]
    for units in (lock, worker.units_for("per_run"), worker.units_for("nonlinear")):
        for i, u in enumerate(units):  # every unit after the ones it needs
            assert set(worker._UNITS[u][1]) <= set(units[:i])
    with pytest.raises(ValueError, match="driver must be one of"):
        worker.warm_up("bogus")


def test_a_linear_chunk_after_a_nonlinear_one_warms_the_rest(monkeypatch):
    """A process that warmed the nonlinear trainer's units (objective, hvp, reference)
    then gets a linear chunk: the units left need those, which are done (a sweep with
    both kinds of runs failed its linear chunks on this once)."""
    from sweepengine.sweep import worker

    worker.warm_up("lockstep")  # cached by the session's warm-up: loads
    monkeypatch.setattr(worker, "_warmed", {"objective", "hvp", "reference", "nonlinear"})
    worker.warm_up("lockstep")
    assert set(worker.units_for("lockstep")) <= worker._warmed


def test_compile_lock_times_out_with_a_clear_message(tmp_path, monkeypatch, caplog):
    """A holder that never lets go (another process, sleeping with the lock) does not
    block a worker forever: after the timeout it logs who holds what and goes on."""
    import subprocess
    import sys
    import time

    from sweepengine.sweep import compile_lock as cl

    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    lock, _ = cl.lock_paths()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
         "os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
         "os.pwrite(fd, str(os.getpid()).encode(), 0); print('ok', flush=True); "
         "time.sleep(60)", str(lock)], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ok"
        t0 = time.monotonic()
        with caplog.at_level("WARNING"), cl.compile_lock(timeout=0.5):
            waited = time.monotonic() - t0
        assert 0.4 < waited < 10
        assert f"compile lock {lock} still held (by pid {holder.pid})" in caplog.text
    finally:
        holder.kill()
        holder.wait()


def test_compile_lock_refuses_a_directory_others_can_write(tmp_path, monkeypatch):
    from sweepengine.sweep import compile_lock as cl

    runtime = tmp_path / "run"
    (runtime / "sweepengine").mkdir(parents=True)
    (runtime / "sweepengine").chmod(0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    with pytest.raises(PermissionError, match="not be writable by others"):
        cl.lock_dir()


def test_embedded_workers_drop_only_closed_comm_get_data_errors():
    """Ctrl-C closes the client of the embedded cluster while a result may be on its way:
    the worker's "failed during get data" traceback for that closed comm is dropped,
    every other record passes."""
    import logging

    from distributed.comm.core import CommClosedError

    from sweepengine.sweep.worker import _QuietShutdown

    def record(msg, err):
        exc = (type(err), err, None) if err is not None else None
        return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, msg,
                                 ("a", "b"), exc)  # fmt: skip

    f = _QuietShutdown()
    get_data = "failed during get data with %s -> %s"
    assert not f.filter(record(get_data, CommClosedError("closed")))
    assert f.filter(record(get_data, OSError("disk full")))  # another cause: kept
    assert f.filter(record("Compute Failed", CommClosedError("closed")))
    assert f.filter(record(get_data, None))

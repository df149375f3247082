"""The ``sweepengine`` command line on a real small results directory.

One module fixture runs ``sweepengine run`` for real (embedded LocalCluster,
one worker, small chunks so there are many parts); the other tests read,
summarise and compact copies of that directory. Exit codes: 0 success, 1 a
sweep left incomplete or a failed self-check, 2 a usage error (bad spec,
locked or mismatched results directory, missing directory, bad option), 130
interrupted. The kernels are compiled once before the first subprocess
(``conftest.compiled``); subprocess timeouts still allow a cold compile.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sweepengine.cli import main
from sweepengine.store import open_store, read_curves, read_runs, read_stalls
from sweepengine.sweep import worker_env
from tests.conftest import whitened_spec

pytestmark = pytest.mark.usefixtures("compiled")

SPEC = whitened_spec(
    "cli-small", seeds=3, max_steps=200, record_every=20,
    problem={"d_x": 3, "d_y": 3, "m": 12, "singular_values": [2.0, 1.0, 0.5]},
    architecture={"depth": [1, 2], "width": 3}, init={"scale": [1e-2, 0.3]},
    optimizer={"name": "gd", "lr": 0.1},
)  # fmt: skip
N_RUNS = 12  # 2 depths x 2 scales x 3 seeds
CHUNK = 2  # -> 6 parts


TIMEOUT = 900  # a cold Numba compile on a loaded 2-core machine fits in it


def _exe() -> list[str]:
    script = Path(sys.executable).with_name("sweepengine")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sweepengine.cli"]


def cli(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    exe = _exe()
    return subprocess.run(
        [*exe, *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **worker_env()},
    )  # fmt: skip


@pytest.fixture
def run_main(monkeypatch):
    """``cli.main`` in-process, without it leaking settings into os.environ."""
    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", "warning")
    return main


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "cli-small.toml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory, spec_file) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("results") / "out"
    proc = cli("run", str(spec_file), "--out", str(out), "--workers", "1",
               "--chunk", str(CHUNK), "-q")  # fmt: skip
    return out, proc


def sorted_tables(out: Path) -> list[pd.DataFrame]:
    keys = (["run_id"], ["run_id", "stall_index"], ["run_id", "step"])
    tables = (read_runs(out), read_stalls(out), read_curves(out))
    return [
        t.to_pandas().sort_values(k).reset_index(drop=True)
        for t, k in zip(tables, keys, strict=True)
    ]


def test_help():
    top = cli("--help")
    assert top.returncode == 0
    for cmd in ("run", "status", "summary", "compact", "warmup", "selfcheck"):
        assert cmd in top.stdout
    run = cli("run", "--help")
    assert run.returncode == 0
    for opt in ("--out", "--scheduler", "--cluster", "--jobs", "--workers", "--threads", "--chunk"):
        assert opt in run.stdout
    assert "{slurm,pbs}" in run.stdout
    assert run.stdout.count(">= 1") == 4  # --jobs, --workers, --threads, --chunk


def test_no_command_is_a_usage_error():
    proc = cli()
    assert proc.returncode == 2 and "sweepengine --help" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--workers", "-1"], "--workers"),
        (["--workers", "0"], "--workers"),
        (["--threads", "0"], "--threads"),
        (["--chunk", "0"], "--chunk"),
        (["--chunk", "-3"], "--chunk"),
        (["--chunk", "two"], "--chunk"),
        (["--jobs", "2"], "--jobs needs --cluster"),
        (["--cluster", "slurm", "--workers", "2"], "--workers"),
        (["--scheduler", "tcp://127.0.0.1:9", "--cluster", "pbs"], "exclude each other"),
        (["--in-process", "--processes"], "not allowed with argument --in-process"),
        (["--scheduler", "tcp://127.0.0.1:9", "--in-process"], "--in-process"),
        (["--cluster", "slurm", "--processes"], "--processes"),
    ],
)
def test_bad_option_is_one_line_exit_2_before_anything_starts(spec_file, tmp_path, args, named):
    out = tmp_path / "out"
    proc = cli("run", str(spec_file), "--out", str(out), *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and named in lines[0], proc.stderr
    assert proc.stdout == "" and not out.exists()


def test_out_naming_a_file_is_a_usage_error(spec_file, tmp_path):
    f = tmp_path / "results.txt"
    f.write_text("not a directory")
    for out in (f, f / "sub"):
        proc = cli("run", str(spec_file), "--out", str(out))
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
        assert "is a file" in proc.stderr and "Traceback" not in proc.stderr
    assert f.read_text() == "not a directory"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_naming_it(spec_file, tmp_path):
    addr = f"tcp://127.0.0.1:{_free_port()}"
    proc = cli("run", str(spec_file), "--out", str(tmp_path / "out"), "--scheduler", addr)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"error: cannot reach the Dask scheduler at {addr}: "
        + (proc.stderr.strip().rsplit(": ", 1)[1])
    )
    assert not (tmp_path / "out").exists()


def test_a_listener_that_is_not_a_scheduler_is_refused(spec_file, tmp_path):
    with socket.socket() as srv:  # accepts connections, never speaks Dask
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        addr = f"tcp://127.0.0.1:{srv.getsockname()[1]}"
        proc = cli("run", str(spec_file), "--out", str(tmp_path / "out"), "--scheduler", addr)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and addr in proc.stderr


@pytest.mark.cluster
def test_run_writes_every_run(results):
    out, proc = results
    assert proc.returncode == 0, proc.stderr
    assert "sweep 'cli-small': 12 runs" in proc.stdout
    assert f"{N_RUNS} runs trained in {N_RUNS // CHUNK} chunks" in proc.stdout
    assert "0 chunks failed" in proc.stdout
    assert "depth optimizer" in proc.stdout  # the per-depth summary
    runs = pd.read_parquet(out / "runs")
    assert len(runs) == N_RUNS and runs.run_id.is_unique
    assert len(list((out / "runs").glob("*.parquet"))) == N_RUNS // CHUNK


@pytest.mark.cluster
def test_rerun_of_complete_sweep_trains_nothing(results, spec_file, run_main, capsys):
    out, _ = results
    assert run_main(["run", str(spec_file), "--out", str(out), "-q"]) == 0
    out_text = capsys.readouterr().out
    assert re.search(
        rf"0 runs trained in 0 chunks, [\d.]+ s \(0.0 runs/s\); {N_RUNS} were already", out_text
    )


@pytest.mark.cluster
def test_status(results):
    out, _ = results
    text = cli("status", str(out))
    assert text.returncode == 0, text.stderr
    assert f"sweep cli-small in {out}: complete" in text.stdout
    assert f"runs: {N_RUNS} expected, {N_RUNS} done (0 failed), 0 remaining" in text.stdout
    proc = cli("status", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["runs_done"] == N_RUNS and sum(info["by_status"].values()) == N_RUNS
    assert (info["expected"], info["done"], info["failed"], info["remaining"]) == (
        N_RUNS,
        N_RUNS,
        0,
        0,
    )
    assert info["complete"] is True
    assert info["by_status"]["failed"] == 0
    assert info["sweep"] == "cli-small" and info["lock"] is None
    assert info["tables"]["runs"] == {
        "parts": N_RUNS // CHUNK,
        "rows": N_RUNS,
        "bytes": sum(p.stat().st_size for p in (out / "runs").glob("*.parquet")),
    }
    assert info["tables"]["curves"]["rows"] == len(read_curves(out))
    assert info["pending_cleanup"] == {"tmp": 0, "hidden": 0, "remove": 0, "quarantine": 0}


@pytest.mark.cluster
def test_status_of_a_partial_sweep(results, tmp_path):
    src, _ = results
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    parts = sorted((out / "runs").glob("*.parquet"))
    parts[0].unlink()  # one chunk (CHUNK runs) missing
    info = json.loads(cli("status", str(out), "--json").stdout)
    assert (info["expected"], info["done"], info["remaining"], info["complete"]) == (
        N_RUNS,
        N_RUNS - CHUNK,
        CHUNK,
        False,
    )
    assert ": incomplete" in cli("status", str(out)).stdout


@pytest.mark.parametrize("command", ["status", "compact", "summary"])
@pytest.mark.parametrize("kind", ["missing", "file", "plain-dir"])
def test_results_command_on_a_non_results_path(tmp_path, command, kind):
    path = tmp_path / "x"
    if kind == "file":
        path.write_text("{}")
    elif kind == "plain-dir":
        path.mkdir()
    proc = cli(command, str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
    assert proc.stdout == ""


@pytest.mark.cluster
def test_summary_has_exact_medians_and_ignores_the_layout(results, tmp_path):
    src, _ = results
    proc = cli("summary", str(src))
    assert proc.returncode == 0, proc.stderr
    runs = pd.read_parquet(src / "runs")
    lines = proc.stdout.split("\n\n")[0].strip().splitlines()[2:]  # the table
    assert len(lines) == runs.groupby(["depth", "optimizer"]).ngroups
    for line in lines:
        depth, opt, n, _, med = line.split()[:5]
        steps = runs[(runs.depth == int(depth)) & (runs.optimizer == opt)].steps
        assert int(n) == len(steps) and float(med) == float(steps.median())
    # the same runs in another layout (one compacted part): the same summary
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    assert cli("compact", str(copy)).returncode == 0
    assert cli("summary", str(copy)).stdout == proc.stdout


@pytest.mark.cluster
def test_ctrl_c_stops_cleanly_with_a_resume_line(spec_file, tmp_path):
    """SIGINT to the whole process group (what a terminal's Ctrl-C does) mid-sweep:
    workers stop, one line says what was saved and how to resume, exit 130."""
    spec = tmp_path / "long.toml"
    spec.write_text(SPEC.replace("max_steps = 200", "max_steps = 400000"))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*_exe(), "run", str(spec), "--out", str(out), "--workers", "1", "--chunk", "1", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, **worker_env()},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT
        while not list(out.glob("runs/*.parquet")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no part written"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    [line] = stderr.strip().splitlines()
    saved = len(read_runs(out))
    assert line == (
        f"interrupted: {saved} runs saved, {N_RUNS - saved} left; resume with: sweepengine "
        f"run {spec} --out {out} --workers 1 --chunk 1"
    )
    assert 1 <= saved < N_RUNS
    assert json.loads(cli("status", str(out), "--json").stdout)["lock"] is None  # released


def test_warmup_command(tmp_path):
    proc = cli("warmup")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("compiling kernels, one-time, about ")
    assert "kernels ready in" in proc.stdout


@pytest.mark.slow  # compiles the nonlinear trainer unless a test before it did
def test_warmup_nonlinear_warms_the_nonlinear_unit(tmp_path):
    """``warmup --nonlinear`` leaves the nonlinear unit's marker: a later process finds
    it warm (``compile_lock.warm``), as sweeps check before choosing a cluster."""
    from sweepengine.sweep import compile_lock

    runtime = tmp_path / "run"  # markers of this test only (the Numba cache is shared)
    runtime.mkdir(mode=0o700)
    env = {**os.environ, **worker_env(), "XDG_RUNTIME_DIR": str(runtime)}
    units = compile_lock.units_for(compile_lock.NONLINEAR)
    check = f"from sweepengine.sweep import compile_lock as c; print(c.warm({units!r}))"

    def warm() -> str:
        out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                             env=env, timeout=TIMEOUT)  # fmt: skip
        return out.stdout.strip() or out.stderr

    assert warm() == "False"
    exe = _exe()
    proc = subprocess.run([*exe, "warmup"], capture_output=True, text=True, env=env,
                          timeout=TIMEOUT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert warm() == "False"  # the linear units only
    proc = subprocess.run([*exe, "warmup", "--nonlinear"], capture_output=True, text=True,
                          env=env, timeout=TIMEOUT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "kernels ready in" in proc.stdout
    assert warm() == "True"


@pytest.mark.cluster
def test_compact_preserves_rows(results, tmp_path):
    src, _ = results
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    before = sorted_tables(out)

    proc = cli("compact", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"units_merged": N_RUNS // CHUNK, "units_created": 1}
    for table in ("runs", "stalls", "curves"):
        assert len(list((out / table).glob("*.parquet"))) == 1
    for a, b in zip(sorted_tables(out), before, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    # plain readers agree, and a second compaction has nothing to do
    assert len(pd.read_parquet(out / "runs")) == N_RUNS
    again = cli("compact", str(out))
    assert json.loads(again.stdout) == {"units_merged": 0, "units_created": 0}
    info = json.loads(cli("status", str(out), "--json").stdout)
    assert info["tables"]["runs"]["parts"] == 1 and info["runs_done"] == N_RUNS


@pytest.mark.cluster
def test_compact_of_locked_dir_is_refused(results, tmp_path, run_main, capsys):
    src, _ = results
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    with open_store(out, create=False).lock():
        assert run_main(["compact", str(out)]) == 2
    assert "locked by another sweep" in capsys.readouterr().err
    assert run_main(["compact", str(out)]) == 0  # free again


@pytest.mark.cluster
def test_run_with_another_spec_is_refused(results, tmp_path, run_main, capsys):
    out, _ = results
    other = tmp_path / "other.toml"
    other.write_text(SPEC.replace("max_steps = 200", "max_steps = 300"))
    assert run_main(["run", str(other), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "different spec" in err and "max_steps" in err


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (("max_steps = 200", "max_step = 200"), ["max_step", "unknown key", "max_steps"]),
        (("lr = 0.1", "lr = -0.1"), ["optimizer.lr"]),
        (("width = 3", "width = [3, 3]"), ["architecture.width[1]", "repeats"]),
        (('name = "gd"', 'name = "newton"'), ["optimizer.name", "unknown optimizer"]),
        (("[init]", "[init\n"), ["not valid TOML"]),
    ],
    ids=["unknown-key", "negative-lr", "repeated-width", "unknown-optimizer", "bad-toml"],
)
def test_bad_spec_is_a_usage_error_naming_the_key(tmp_path, run_main, capsys, edit, named):
    path = tmp_path / "bad.toml"
    path.write_text(SPEC.replace(*edit))
    assert run_main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    for text in named:
        assert text in err
    assert not (tmp_path / "out").exists()  # nothing was created


def test_bad_spec_exit_code_from_the_shell(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(SPEC.replace("max_steps = 200", "max_steps = 0"))
    proc = cli("run", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "max_steps" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_spec_file(tmp_path, run_main, capsys):
    assert run_main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_spec_errors_are_listed_once_with_every_section(tmp_path, run_main, capsys):
    """A problem-level error (checked over whole problem combinations) is reported once,
    and along with errors in other sections."""
    path = tmp_path / "bad.toml"
    text = SPEC.replace("singular_values = [2.0, 1.0, 0.5]", "singular_values = [2, 1, 0.5, 0.1]")
    path.write_text(text.replace("lr = 0.1", "lr = -0.1"))
    assert run_main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("problem.singular_values") == 1 and "optimizer.lr" in err


def test_selfcheck():
    proc = cli("selfcheck")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines and all(line.startswith("[ok]") for line in lines)

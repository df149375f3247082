"""The ``sweepengine`` command line on a real small results directory.

One module fixture runs ``sweepengine run`` for real (embedded LocalCluster,
one worker, small chunks so there are many parts); the other tests read,
summarise and compact copies of that directory. Exit codes: 0 success, 1 a
sweep left incomplete or a failed self-check, 2 a usage error (bad spec,
locked or mismatched results directory, missing directory).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sweepengine.cli import main
from sweepengine.store import open_store, read_curves, read_runs, read_stalls
from sweepengine.sweep import worker_env
from tests.conftest import whitened_spec

SPEC = whitened_spec(
    "cli-small", seeds=3, max_steps=200, record_every=20,
    problem={"d_x": 3, "d_y": 3, "m": 12, "singular_values": [2.0, 1.0, 0.5]},
    architecture={"depth": [1, 2], "width": 3}, init={"scale": [1e-2, 0.3]},
    optimizer={"name": "gd", "lr": 0.1},
)  # fmt: skip
N_RUNS = 12  # 2 depths x 2 scales x 3 seeds
CHUNK = 2  # -> 6 parts


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("sweepengine")
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "sweepengine.cli"]
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
    for cmd in ("run", "status", "compact", "selfcheck"):
        assert cmd in top.stdout
    run = cli("run", "--help")
    assert run.returncode == 0
    for opt in ("--out", "--scheduler", "--cluster", "--jobs", "--workers", "--threads", "--chunk"):
        assert opt in run.stdout
    assert "{slurm,pbs}" in run.stdout


def test_no_command_is_a_usage_error():
    proc = cli()
    assert proc.returncode == 2 and "usage:" in proc.stderr


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
    # (the time is a few hundredths of a second, more on a loaded machine)
    assert re.search(
        rf"0 runs trained in 0 chunks, \d+\.\d s \(0\.0 runs/s\); {N_RUNS} were already done",
        capsys.readouterr().out,
    )


@pytest.mark.cluster
def test_status(results):
    out, _ = results
    proc = cli("status", str(out))
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["runs_done"] == N_RUNS and sum(info["by_status"].values()) == N_RUNS
    assert info["by_status"]["failed"] == 0
    assert info["sweep"] == "cli-small" and info["lock"] is None
    assert info["tables"]["runs"] == {
        "parts": N_RUNS // CHUNK,
        "rows": N_RUNS,
        "bytes": sum(p.stat().st_size for p in (out / "runs").glob("*.parquet")),
    }
    assert info["tables"]["curves"]["rows"] == len(read_curves(out))
    assert info["pending_cleanup"] == {"tmp": 0, "hidden": 0, "remove": 0, "quarantine": 0}


def test_status_of_missing_dir(tmp_path, run_main, capsys):
    assert run_main(["status", str(tmp_path / "nowhere")]) == 2
    assert "error:" in capsys.readouterr().err


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
    info = json.loads(cli("status", str(out)).stdout)
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


def test_selfcheck():
    proc = cli("selfcheck")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines and all(line.startswith("[ok]") for line in lines)

"""The soak (benchmarks/soak.py), smaller: workers and the client killed mid-sweep.

The full soak (20,000 runs, a worker killed every 3 s, the client killed twice)
takes minutes on two cores; it is run by hand and reported in results/soak.md.
This slow test runs the same code on 2,000 runs with a worker killed every 2 s
and the client killed once, and checks the same thing: afterwards every table
equals a clean run's per run_id, one row per run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def test_soak_small(tmp_path):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"
    spec = importlib.util.spec_from_file_location("soak", path)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    r = soak.soak(tmp_path, seeds=500, kill_every=2.0, client_kills=1, chunk=50)
    assert r["identical"] and r["rows"] == r["distinct_run_ids"] == r["runs"] == 2000
    assert r["client_kills"] == 1 and r["client_starts"] == 2

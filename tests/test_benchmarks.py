"""Benchmark bookkeeping that decides what results/ tables say (no timing here)."""

from tests.benchmods import benchmark_module


def _bench_nonlinear():
    return benchmark_module("bench_nonlinear")


def _worker(load, rates):
    cases = {key: {"run_steps_per_s": r, "steps": 10, "round": load} for key, r in rates.items()}
    return {"impl": "jax", "foreign_load": load, "wall_s": 1.0, "cases": cases}


def test_rounds_keep_each_cases_best_round_and_every_rate():
    B = _bench_nonlinear()
    merged = B.merge_rounds(None, _worker(0.05, {"a": 100.0, "b": 50.0}))
    merged = B.merge_rounds(merged, _worker(0.10, {"a": 90.0, "b": 70.0}))
    assert merged["cases"]["a"]["run_steps_per_s"] == 100.0
    assert merged["cases"]["a"]["round"] == 0.05  # the whole case of the best round
    assert merged["cases"]["b"]["run_steps_per_s"] == 70.0
    assert merged["cases"]["b"]["round"] == 0.10
    assert merged["cases"]["a"]["round_rates"] == [100.0, 90.0]
    assert merged["cases"]["b"]["round_rates"] == [50.0, 70.0]
    assert [r["foreign_load"] for r in merged["rounds"]] == [0.05, 0.10]
    assert merged["foreign_load"] == 0.10  # the worst round's load is reported


def test_a_case_missing_from_one_round_keeps_the_other():
    B = _bench_nonlinear()
    merged = B.merge_rounds(None, _worker(0.0, {"a": 100.0}))
    merged = B.merge_rounds(merged, _worker(0.0, {"a": 120.0, "b": 10.0}))
    assert merged["cases"]["a"]["round_rates"] == [100.0, 120.0]
    assert merged["cases"]["b"]["round_rates"] == [10.0]

"""Sweep specs: parsing, validation errors, lazy expansion, run ids, chunking."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sweepengine import _version
from sweepengine._version import package_version
from sweepengine.options import StallConfig, make_optimizer
from sweepengine.sweep import Run, Spec, SpecError, chunk_runs, load_spec, validate
from sweepengine.sweep import spec as spec_mod

SWEEPS = sorted((Path(__file__).parent.parent / "sweeps").glob("*.toml"))

BASE = {
    "name": "t",
    "seeds": [0, 1],
    "max_steps": 100,
    "problem": {
        "name": "whitened",
        "d_x": 4,
        "d_y": 3,
        "m": 8,
        "singular_values": [2.0, 1.0],
    },
    "architecture": {"depth": [1, 2], "width": [2, 3]},
    "init": {"scheme": ["gaussian", "balanced"], "scale": [1e-2, 1e-1]},
    "optimizer": {"name": ["gd", "momentum"], "lr": [0.01, 0.05], "beta": 0.9},
}


def make(**changes) -> dict:
    """BASE with changes; dotted keys reach into tables; a value of None deletes the key."""
    d = copy.deepcopy(BASE)
    for path, value in changes.items():
        *tables, key = path.split(".")
        t = d
        for name in tables:
            t = t.setdefault(name, {})
        if value is None:
            t.pop(key, None)
        else:
            t[key] = value
    return d


def spec_of(**changes) -> Spec:
    return validate(make(**changes))


# ----------------------------------------------------------------------------- example specs


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_example_specs_load_and_expand(path):
    s = load_spec(path)
    assert s.name == path.stem
    assert 0 < s.n_runs <= 5000
    runs = list(s.runs())
    assert len(runs) == s.n_runs
    assert len({r.run_id for r in runs}) == s.n_runs
    assert load_spec(path.read_text()).n_runs == s.n_runs
    assert str(s.n_runs) in s.summary()


def test_expected_example_sweeps_exist():
    assert {p.stem for p in SWEEPS} >= {"quick", "depth", "optimizers", "iris"}
    opt = load_spec(SWEEPS[[p.stem for p in SWEEPS].index("optimizers")])
    assert {r.optimizer.name for r in opt.runs()} == set(spec_mod.OPTIMIZERS)


# ----------------------------------------------------------------------------- expansion


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {
            "combine": "zip",
            "architecture.depth": [1, 2],
            "architecture.width": [2, 3],
            "init.scheme": "gaussian",
            "init.scale": [1e-2, 1e-1],
            "optimizer.name": "gd",
            "optimizer.lr": 0.01,
            "optimizer.beta": None,
        },
        {"combine": "random", "samples": 7, "sample_seed": 3},
        {"seeds": {"range": [5, 12, 3]}},
        {
            "architecture.depth": None,
            "architecture.width": None,
            "architecture.widths": [[], [3], [2, 5]],
        },
    ],
    ids=["grid", "zip", "random", "seed-range", "widths"],
)
def test_n_runs_matches_expansion_and_random_access(changes):
    s = spec_of(**changes)
    runs = list(s.runs())
    assert len(runs) == s.n_runs == s.n_configs * len(s.seeds)
    assert len({r.run_id for r in runs}) == len(runs)
    for i in (0, 1, s.n_runs // 2, s.n_runs - 1):
        assert s.run(i) == runs[i]
    assert list(s.runs(3, 9)) == runs[3:9]
    assert list(s.runs(s.n_runs - 2, s.n_runs + 10)) == runs[-2:]
    with pytest.raises(IndexError):
        s.run(s.n_runs)


def test_grid_counts_and_order():
    s = spec_of()
    # 4 architectures x (gd: 2 lr + momentum: 2 lr x 1 beta) x 2 schemes x 2 scales x 2 seeds
    assert s.n_runs == 4 * 4 * 2 * 2 * 2
    runs = list(s.runs())
    assert [r.seed for r in runs[:4]] == [0, 1, 0, 1]  # seeds innermost
    assert runs[0].dims == (4, 2, 3) and runs[-1].dims == (4, 3, 3, 3)
    assert runs[0].depth == 1 and runs[-1].hidden == (3, 3)
    gd = [r for r in runs if r.optimizer.name == "gd"]
    assert all(r.optimizer.params == () for r in gd)
    mom = [r for r in runs if r.optimizer.name == "momentum"]
    assert all(r.optimizer.params == (("beta", 0.9),) for r in mom)


def test_parameters_that_do_not_apply_do_not_repeat_runs():
    s = spec_of(**{"optimizer.beta": [0.5, 0.9, 0.99], "optimizer.lr": 0.1})
    names = [r.optimizer.name for r in s.runs() if r.seed == 0 and r.dims == (4, 2, 3)]
    assert names.count("gd") == 4 and names.count("momentum") == 12  # 4 = schemes x scales
    s = spec_of(**{"architecture.depth": [0, 1], "architecture.width": [2, 3, 4]})
    assert {r.dims for r in s.runs()} == {(4, 3), (4, 2, 3), (4, 3, 3), (4, 4, 3)}


def test_zip_broadcasts_length_one_and_pairs_the_rest():
    s = spec_of(
        combine="zip",
        **{
            "architecture.depth": [0, 1, 2],
            "architecture.width": 4,
            "optimizer.name": "gd",
            "optimizer.lr": [0.1, 0.2, 0.3],
            "optimizer.beta": None,
            "init.scheme": "gaussian",
            "init.scale": 0.1,
        },
    )
    runs = list(s.runs())
    assert s.n_configs == 3 and len(runs) == 6
    assert [(r.dims, r.optimizer.lr) for r in runs[::2]] == [
        ((4, 3), 0.1),
        ((4, 4, 3), 0.2),
        ((4, 4, 4, 3), 0.3),
    ]


def test_random_is_deterministic_distinct_and_a_subset_of_the_grid():
    grid = {r.run_id for r in spec_of().runs()}
    a = [r.run_id for r in spec_of(combine="random", samples=10, sample_seed=1).runs()]
    b = [r.run_id for r in spec_of(combine="random", samples=10, sample_seed=1).runs()]
    c = [r.run_id for r in spec_of(combine="random", samples=10, sample_seed=2).runs()]
    assert a == b and a != c
    assert len(set(a)) == 20 and set(a) <= grid


def test_problem_axes_combine_like_the_others():
    s = spec_of(**{"problem.m": [8, 16], "problem.singular_values": [[2.0, 1.0], [1.0]]})
    params = {(r.problem_params["m"], r.problem_params["singular_values"]) for r in s.runs()}
    assert params == {(8, (2.0, 1.0)), (8, (1.0,)), (16, (2.0, 1.0)), (16, (1.0,))}
    assert s.axes["problem.m"] == 2 and s.axes["problem.singular_values"] == 2


def test_problem_defaults_are_part_of_params():
    r = next(spec_of().runs())
    assert r.problem == "whitened"
    assert r.problem_params == {
        "d_x": 4,
        "d_y": 3,
        "m": 8,
        "singular_values": (2.0, 1.0),
        "seed": 0,
        "noise": 0.0,
    }


def test_defaults_and_stall_table():
    s = spec_of(stall={"window": 20, "min_length": 40})
    assert s.combine == "grid" and s.record_every == 0 and s.target_gap == 1e-6
    assert s.stall == StallConfig(window=20, min_length=40)
    d = make(seeds=None)
    d["optimizer"] = {"lr": 0.1}
    d["init"] = {"scale": 0.1}
    s = validate(d)
    assert tuple(s.seeds) == (0,)
    r = next(s.runs())
    assert r.optimizer.name == "gd" and r.init_scheme == "gaussian"


# ----------------------------------------------------------------------------- run ids


def test_run_id_stable_and_independent_of_sweep_name():
    a = [r.run_id for r in spec_of().runs()]
    assert a == [r.run_id for r in spec_of().runs()]
    assert a == [r.run_id for r in spec_of(name="other-name").runs()]
    assert all(len(x) == spec_mod.ID_LENGTH and int(x, 16) >= 0 for x in a)


def test_run_id_stable_across_processes():
    code = (
        "from sweepengine.sweep import validate; import json, sys;"
        "s = validate(json.loads(sys.argv[1]));"
        "print(' '.join(f'{r.run_id}:{r.init_seed}:{r.rng_seed}' for r in s.runs()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(BASE)], capture_output=True, text=True, check=True
    ).stdout.split()
    here = [f"{r.run_id}:{r.init_seed}:{r.rng_seed}" for r in spec_of().runs()]
    assert out == here


def _base_run() -> Run:
    return next(spec_of(**{"optimizer.name": "momentum"}).runs())


@pytest.mark.parametrize(
    "field, value",
    [
        (
            "problem_params",
            {"d_x": 4, "d_y": 3, "m": 8, "singular_values": (2.0, 1.0), "seed": 1, "noise": 0.0},
        ),
        ("problem", "gaussian"),
        ("dims", (4, 5, 3)),
        ("init_scheme", "balanced"),
        ("init_scale", 0.5),
        ("optimizer", make_optimizer("momentum", 0.01, beta=0.5)),
        ("optimizer", make_optimizer("momentum", 0.02, beta=0.9)),
        ("optimizer", make_optimizer("nesterov", 0.01, beta=0.9)),
        ("seed", 7),
        ("max_steps", 101),
        ("target_gap", 1e-5),
        ("record_every", 5),
        ("stall", StallConfig(window=51)),
    ],
)
def test_run_id_changes_with_every_result_determining_field(field, value):
    base = _base_run()
    other = dataclasses.replace(base, **{field: value})
    assert other.run_id != base.run_id
    assert dataclasses.replace(base).run_id == base.run_id


def test_run_normalises_numeric_types():
    base = _base_run()
    same = dataclasses.replace(base, dims=list(base.dims), init_scale=0.01, seed=base.seed)
    assert same.run_id == base.run_id
    one = dataclasses.replace(base, init_scale=1)
    assert one.init_scale == 1.0 and one.run_id == dataclasses.replace(base, init_scale=1.0).run_id
    with pytest.raises(ValueError, match="dims"):
        dataclasses.replace(base, dims=(4,))


def test_run_id_includes_package_version(monkeypatch):
    base = _base_run()
    assert base.content()["version"] == package_version()
    monkeypatch.setattr(_version, "package_version", lambda: "999.0")
    assert dataclasses.replace(base).run_id != base.run_id


def test_equivalent_spellings_give_the_same_run():
    a = [r.run_id for r in spec_of().runs()]
    b = [
        r.run_id
        for r in spec_of(
            **{
                "optimizer.lr": [0.01, 0.05],
                "init.scale": [0.01, 0.1],
                "problem.seed": 0,
                "problem.noise": 0,
            }
        ).runs()
    ]
    assert a == b


def test_init_and_rng_seeds_pair_runs_across_optimizer_settings():
    runs = list(spec_of().runs())
    by_key = {}
    for r in runs:
        by_key.setdefault((r.dims, r.seed), set()).add((r.init_seed, r.rng_seed))
    assert all(len(v) == 1 for v in by_key.values())  # same draw for every lr, scale, optimizer
    assert len({v.pop() for v in by_key.values()}) == len(by_key)  # seed and dims matter
    r = runs[0]
    assert 0 <= r.init_seed < 2**63 and 0 <= r.rng_seed < 2**63 and r.init_seed != r.rng_seed


def test_runs_are_hashable_and_picklable():
    import pickle

    r = _base_run()
    assert pickle.loads(pickle.dumps(r)) == r
    assert len({r, dataclasses.replace(r)}) == 1


def test_runs_of_a_spec_equal_runs_built_one_by_one():
    """Spec.runs() derives later seeds' ids from cached JSON text: same ids and seeds."""
    import pickle

    runs = list(spec_of(seeds={"range": [0, 5]}).runs())
    assert len(runs) > 5
    for r in runs:
        fresh = dataclasses.replace(r)  # __post_init__ from scratch
        ids = (r.run_id, r.init_seed, r.rng_seed)
        assert ids == (fresh.run_id, fresh.init_seed, fresh.rng_seed)
        assert r == fresh and r.shape_key() == fresh.shape_key() and r.seed == fresh.seed
        assert pickle.loads(pickle.dumps(r)) == r
    assert len({r.run_id for r in runs}) == len(runs)


# ----------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("max_chunk, max_open", [(1, 256), (3, 256), (5, 1), (1000, 2)])
def test_chunks_group_by_shape_and_cover_every_run_once(max_chunk, max_open):
    runs = list(spec_of().runs())
    chunks = list(chunk_runs(runs, max_chunk, max_open=max_open))
    seen = [r.run_id for _, rs in chunks for r in rs]
    assert sorted(seen) == sorted(r.run_id for r in runs)
    for _, rs in chunks:
        assert 1 <= len(rs) <= max_chunk
        assert len({r.shape_key() for r in rs}) == 1
    ids = [cid for cid, _ in chunks]
    assert len(set(ids)) == len(ids)
    assert ids == [cid for cid, _ in chunk_runs(runs, max_chunk, max_open=max_open)]


def test_shape_key_ignores_per_run_inputs_only():
    runs = list(spec_of().runs())
    keys = {r.shape_key() for r in runs}
    # 4 architectures x 2 optimizer names; lr, beta, scheme, scale, seed vary within
    assert len(keys) == 8
    r = runs[0]
    assert dataclasses.replace(r, init_scale=9.0, seed=99).shape_key() == r.shape_key()
    assert dataclasses.replace(r, max_steps=7).shape_key() != r.shape_key()


def test_chunking_streams_with_bounded_memory():
    s = load_spec(MILLION)
    consumed = 0

    def counted():
        nonlocal consumed
        for r in s.runs():
            consumed += 1
            yield r

    first = next(chunk_runs(counted(), 64))
    assert len(first[1]) == 64 and consumed == 64


def test_chunk_runs_rejects_bad_sizes():
    with pytest.raises(ValueError, match="max_chunk"):
        list(chunk_runs([], 0))
    with pytest.raises(ValueError, match="max_open"):
        list(chunk_runs([], 4, max_open=0))


# ----------------------------------------------------------------------------- validation

BAD = [
    # (changes to BASE, key path the error must name, another fragment it must contain)
    ({"colour": "red"}, "colour", "valid: ['name'"),
    ({"name": "has space"}, "name", "has space"),
    ({"name": None}, "name", "required"),
    ({"seeds": [0, 1, 1]}, "seeds[2]", "repeats seeds[1]"),
    ({"seeds": [0, -1]}, "seeds[1]", "-1"),
    ({"seeds": 3}, "seeds", "must be a list"),
    ({"seeds": []}, "seeds", "at least one value"),
    ({"seeds": {"range": [5, 5]}}, "seeds.range", "empty"),
    ({"seeds": {"range": [0, 4], "step": 2}}, "seeds.step", "unknown key"),
    ({"max_steps": 0}, "max_steps", "integer >= 1"),
    ({"max_steps": 1e5}, "max_steps", "100_000"),
    ({"max_steps": None}, "max_steps", "required"),
    ({"target_gap": 0}, "target_gap", "(0, 1)"),
    ({"target_gap": "small"}, "target_gap", "'small'"),
    ({"record_every": -1}, "record_every", ">= 0"),
    ({"combine": "product"}, "combine", "'grid', 'zip', 'random'"),
    ({"combine": "random"}, "samples", "required"),
    ({"combine": "random", "samples": 10**6}, "samples", "exceeds"),
    ({"samples": 4}, "samples", "only to combine = 'random'"),
    ({"problem": None}, "problem", "required"),
    ({"problem": "whitened"}, "problem", "must be a table"),
    ({"problem.name": "mnist"}, "problem.name", "'mnist'"),
    ({"problem.name": ["whitened"]}, "problem.name", "valid"),
    ({"problem.colour": 1}, "problem.colour", "unknown key"),
    ({"problem.m": None}, "problem.m", "required"),
    ({"problem.m": 2}, "problem.m", "must be >= d_x"),
    ({"problem.m": [8, 2]}, "problem.m", "in the combination"),
    ({"problem.m": [8, 8.5]}, "problem.m[1]", "8.5"),
    ({"problem.d_x": 0}, "problem.d_x", "integer >= 1"),
    ({"problem.singular_values": [3.0, 2.0, 1.0, 0.5]}, "problem.singular_values", "min(d_x, d_y)"),
    ({"problem.singular_values": [[1.0], [-2.0]]}, "problem.singular_values[1]", "-2.0"),
    ({"problem.noise": -1}, "problem.noise", ">= 0"),
    ({"architecture": None}, "architecture", "required"),
    ({"architecture.depth": [1, -1]}, "architecture.depth[1]", "-1"),
    ({"architecture.depth": None}, "architecture.depth", "required"),
    ({"architecture.width": [2, 0]}, "architecture.width[1]", ">= 1"),
    ({"architecture.width": None}, "architecture.width", "required when a depth is above 0"),
    ({"architecture.width": []}, "architecture.width", "at least one value"),
    ({"architecture.widths": [[2]]}, "architecture.widths", "cannot be combined"),
    (
        {"architecture.depth": None, "architecture.width": None, "architecture.widths": [4, 4]},
        "architecture.widths",
        "[[4, 4]]",
    ),
    (
        {"architecture.depth": None, "architecture.width": None, "architecture.widths": [[4], [0]]},
        "architecture.widths[1]",
        "[0]",
    ),
    ({"architecture.height": 3}, "architecture.height", "unknown key"),
    ({"init.scheme": ["gaussian", "xavier"]}, "init.scheme[1]", "xavier"),
    ({"init.scale": [0.1, -0.1]}, "init.scale[1]", "positive"),
    ({"init.scale": [[0.1, 1.0]]}, "init.scale[0]", "per-layer"),
    ({"init.scale": None}, "init.scale", "required"),
    ({"init.scale": [0.1, 0.1]}, "init.scale[1]", "repeats"),
    ({"optimizer.name": ["gd", "lbfgs"]}, "optimizer.name[1]", "lbfgs"),
    ({"optimizer.lr": [0.1, -0.1]}, "optimizer.lr[1]", "positive"),
    ({"optimizer.lr": [0.1, "fast"]}, "optimizer.lr[1]", "'fast'"),
    ({"optimizer.lr": None}, "optimizer.lr", "required"),
    ({"optimizer.lr": []}, "optimizer.lr", "at least one value"),
    ({"optimizer.beta": 1.5}, "optimizer.beta", "[0, 1)"),
    ({"optimizer.name": "adam", "optimizer.beta": 0.9}, "optimizer.beta", "does not apply"),
    ({"optimizer.momentum": 0.9}, "optimizer.momentum", "unknown key"),
    (
        {"optimizer.name": "sgd", "optimizer.beta": None, "optimizer.batch_size": 2.5},
        "optimizer.batch_size",
        "positive integer",
    ),
    ({"stall.window": 0}, "stall.window", "positive time"),
    ({"stall.patience": 3}, "stall.patience", "unknown key"),
    ({"stall": 5}, "stall", "must be a table"),
]


@pytest.mark.parametrize("changes, path, fragment", BAD, ids=[b[1] for b in BAD])
def test_bad_input_names_the_key(changes, path, fragment):
    with pytest.raises(SpecError) as e:
        spec_of(**changes)
    assert any(
        err.startswith(path + " ") or err.startswith(path + ":") for err in e.value.errors
    ), e.value.errors
    assert fragment in str(e.value)
    assert isinstance(e.value, ValueError)


def test_zip_needs_equal_lengths():
    with pytest.raises(SpecError, match="same length or length 1") as e:
        spec_of(combine="zip", **{"architecture.depth": [1, 2, 3]})
    assert "'architecture.depth': 3" in str(e.value)


def test_zip_identical_combinations_are_rejected():
    d = make(
        combine="zip",
        **{
            "optimizer.name": ["gd", "momentum", "gd"],
            "optimizer.lr": [0.1, 0.2, 0.3],
            "optimizer.beta": None,
            "architecture.depth": [1, 1, 1],
            "architecture.width": [2, 3, 2],
            "init.scheme": "gaussian",
            "init.scale": [0.1, 0.1, 0.3],
        },
    )
    validate(d)  # all three differ
    d["optimizer"]["lr"] = [0.1, 0.2, 0.1]
    d["init"]["scale"] = 0.1
    with pytest.raises(SpecError, match="combinations 0 and 2 are the same run"):
        validate(d)


def test_all_errors_are_reported_at_once():
    with pytest.raises(SpecError) as e:
        spec_of(
            **{
                "max_steps": -1,
                "optimizer.lr": [0.1, -1.0],
                "init.scheme": "xavier",
                "problem.d_x": 0,
                "architecture.width": 0,
                "stall.window": 0,
            }
        )
    paths = [err.split(" ")[0].rstrip(":") for err in e.value.errors]
    assert paths == [
        "max_steps",
        "stall.window",
        "problem.d_x",
        "architecture.width",
        "init.scheme",
        "optimizer.lr[1]",
    ]
    assert "6 errors" in str(e.value) and "'t'" in str(e.value)


def test_spec_error_pickles():
    import pickle

    with pytest.raises(SpecError) as e:
        spec_of(max_steps=0)
    again = pickle.loads(pickle.dumps(e.value))
    assert again.errors == e.value.errors and str(again) == str(e.value)


def test_load_spec_errors():
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec("name = = 3\n")
    with pytest.raises(FileNotFoundError):
        load_spec("no/such/spec.toml")
    with pytest.raises(TypeError):
        load_spec(42)
    with pytest.raises(SpecError, match="must be a table"):
        validate([1, 2])


def test_load_spec_from_file_defaults_name_to_stem(tmp_path):
    text = MILLION.replace('name = "million"\n', "", 1)
    path = tmp_path / "my-sweep.toml"
    path.write_text(text)
    assert load_spec(path).name == "my-sweep"
    assert load_spec(str(path)).name == "my-sweep"
    with pytest.raises(SpecError, match="name: is required"):
        load_spec(text)


# ----------------------------------------------------------------------------- scale

# 20 architectures x 2 schemes x 5 scales x 5 learning rates = 1000 configs, x 1000 seeds
MILLION = """
name = "million"
seeds = { range = [0, 1000] }
max_steps = 1000
[problem]
name = "gaussian"
d_x = 4
d_y = 4
m = 16
[architecture]
depth = [1, 2, 3, 4, 5]
width = [2, 4, 8, 16]
[init]
scheme = ["gaussian", "balanced"]
scale = [1e-3, 1e-2, 1e-1, 1.0, 3.0]
[optimizer]
name = "gd"
lr = [0.001, 0.003, 0.01, 0.03, 0.1]
"""


@pytest.mark.parametrize("extra", ["", 'combine = "random"\nsamples = 1000\n'])
def test_million_run_spec_is_lazy(extra):
    """A million-run spec loads without listing its runs (how fast: benchmarks/bench_spec.py)."""
    s = load_spec(extra + MILLION)
    assert s.n_runs == 1_000_000
    first = list(itertools.islice(s.runs(), 1000))
    assert len(first) == 1000
    last = s.run(s.n_runs - 1)
    assert last.seed == 999
    assert list(s.runs(s.n_runs - 3)) == [s.run(s.n_runs - 3), s.run(s.n_runs - 2), last]

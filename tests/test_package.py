"""The package's top level: lazy public names, and a sweep client that never loads Numba."""

import subprocess
import sys
from pathlib import Path

import pytest

import sweepengine as se


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=900,
    )  # fmt: skip
    return set(out.stdout.split())


def test_sweep_client_does_not_load_numba_or_scipy():
    mods = _modules_after(
        "import sweepengine, sweepengine.cli, sweepengine.sweep, sweepengine.sweep.spec, "
        "sweepengine.store; from sweepengine.sweep import load_spec; "
        f"load_spec({str(Path(__file__).parents[1] / 'sweeps' / 'quick.toml')!r})"
    )
    assert "sweepengine.sweep" in mods
    assert not {"numba", "scipy", "sweepengine.training", "sweepengine.sweep.worker"} & mods


def test_public_names_resolve_and_are_listed():
    from sweepengine import trainers, training

    assert se.train is trainers.train  # not the module of the same-named function
    assert se.train_batch is trainers.train_batch and se.TrainResult is training.TrainResult
    assert set(se.__all__) <= set(dir(se))
    for name in se.__all__:
        assert getattr(se, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        se.nope  # noqa: B018


def test_linear_landscape_and_trainer_import_no_nonlinear_kernels():
    """activation= and weight_decay= on the public functions: the deep linear net, with or
    without weight decay, never imports the nonlinear modules or their kernels."""
    code = (
        "import numpy as np, sweepengine as se, sweepengine.trainers\n"
        "rng = np.random.default_rng(0)\n"
        "W = [rng.standard_normal((3, 2)), rng.standard_normal((2, 3))]\n"
        "X, Y = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))\n"
        "for wd in (0.0, 0.5):\n"
        "    se.loss_and_gradient(W, X, Y, weight_decay=wd)\n"
        "    se.hvp(W, X, Y, W, weight_decay=wd)\n"
        "    se.hessian_extremes_info(W, X, Y, method='lanczos', weight_decay=wd)\n"
    )
    exec(code, {})  # here first: the subprocess then loads the kernels from the disk cache
    mods = _modules_after(code)
    assert "sweepengine.landscape" in mods and "sweepengine.training" in mods
    assert "sweepengine.trainers" in mods
    assert not {m for m in mods if m.endswith(("nonlinear", "nltraining", "activation",
                                               "nltrainer"))}  # fmt: skip

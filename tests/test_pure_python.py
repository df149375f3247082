"""The kernels are plain Python: with NUMBA_DISABLE_JIT=1 they still give the same numbers."""

import os
import subprocess
import sys

SCRIPT = r"""
import numpy as np
import sweepengine as se
from tests import naive
rng = np.random.default_rng(0)
dims = (3, 4, 2, 3)
W = [rng.standard_normal((dims[k + 1], dims[k])) for k in range(3)]
X, Y = rng.standard_normal((3, 6)), rng.standard_normal((3, 6))
assert abs(se.loss(W, X, Y) - naive.loss(W, X, Y)) < 1e-10
g = se.gradient(W, X, Y)
assert max(abs(a - b).max() for a, b in zip(g, naive.gradient(W, X, Y))) < 1e-10
H = se.hessian(W, X, Y)
assert abs(H - naive.hessian(W, X, Y)).max() < 1e-9
info = se.hessian_extremes_info(W, X, Y, method="lanczos")
ev = np.linalg.eigvalsh(H)
assert abs(info.lam_min - ev[0]) < 1e-7 * abs(ev[-1])
# the solvers' operators (kernels/operator.py, activation.NetObjective) as plain Python
from sweepengine._layout import flatten
from sweepengine.kernels import activation, chain, objective, operator
theta, d = flatten(W), np.array(dims, dtype=np.int64)
g = np.empty(theta.size)
ws = np.zeros(objective.ws_size(d))
st = (X @ X.T, Y @ X.T, float(np.sum(Y * Y)))
op = operator.StatsObjective(d, chain.param_offsets(d), chain.node_offsets(d), *st, ws)
l_ref, g_ref = se.loss_and_gradient(W, stats=se.Stats(*st))
assert abs(operator.loss_grad_op(op, theta, g) - l_ref) < 1e-10
assert abs(g - flatten(g_ref)).max() < 1e-10
for act, code in (("tanh", activation.TANH), ("relu", activation.RELU)):
    ws = np.zeros(activation.ws_size(d, X.shape[1]))
    op = activation.NetObjective(d, X, Y, code, 0.01, 0.1, ws)
    l_ref, g_ref = se.loss_and_gradient(W, X, Y, activation=act, weight_decay=0.1)
    assert abs(operator.loss_grad_op(op, theta, g) - l_ref) < 1e-10
    assert abs(g - flatten(g_ref)).max() < 1e-10
info = se.hessian_extremes_info(W, X, Y, method="lanczos", activation="tanh")
ev = np.linalg.eigvalsh(se.nonlinear_hessian(W, X, Y, "tanh"))
assert abs(info.lam_min - ev[0]) < 1e-7 * abs(ev[-1])
r = se.train(X, Y, se.init_weights(dims, "gaussian", 0.3, 0), "momentum", 1e-3, 50)
print(r.final_loss)
"""


def test_kernels_run_without_jit():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=root, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # the same run compiled gives the same loss
    import sweepengine as se

    rng = __import__("numpy").random.default_rng(0)
    dims = (3, 4, 2, 3)
    [rng.standard_normal((dims[k + 1], dims[k])) for k in range(3)]
    X, Y = rng.standard_normal((3, 6)), rng.standard_normal((3, 6))
    r = se.train(X, Y, se.init_weights(dims, "gaussian", 0.3, 0), "momentum", 1e-3, 50)
    assert float(out.stdout.strip()) == r.final_loss

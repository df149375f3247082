"""Peers and sweepengine for the nonlinear training benchmark (bench_nonlinear).

    f(X) = W_K s(W_{K-1} ... s(W_1 X)),   L = 1/2 ||f(X) - Y||_F^2

s = relu or tanh on the hidden layers, linear output, full-batch GD, float64.
Each framework is imported only by the function that needs it (one framework
per worker process). JAX and PyTorch are written as their users write them:

- JAX: ``jax.value_and_grad`` of the loss, ``lax.scan`` over steps in jitted
  chunks, ``vmap`` of the scan over runs for a batch (``_impl_jax._chunk``).
- PyTorch: a Python loop of zero_grad / forward / backward /
  ``torch.optim.SGD.step``; a batch of runs as (B, d, d) tensors through
  ``torch.bmm`` (``torch.matmul`` broadcasting X for the first layer).
- sweepengine: ``nltraining.train_flat_nonlinear`` (gd, stall probes off,
  final probe off, no stop at the target, ``lam_ref`` given so the linear
  reference is not computed).
"""

from __future__ import annotations

import numpy as np

# Stall probes off during throughput runs: no stall can reach this length.
NO_PROBE = {"min_length": 10**9}


# ---------------------------------------------------------------- JAX


def jax_trainer(p, inits, act: str, chunk: int):
    import _impl_jax as J
    import jax
    import jax.numpy as jnp

    s = jax.nn.relu if act == "relu" else jnp.tanh

    def loss(Ws, X, Y):
        h = X
        for W in Ws[:-1]:
            h = s(W @ h)
        r = Ws[-1] @ h - Y
        return 0.5 * jnp.sum(r * r)

    return J.Trainer(p, inits, "data", chunk, loss=loss)


# ---------------------------------------------------------------- PyTorch


def torch_trainer(p, inits, act: str):
    import _impl_torch as T
    import torch

    s = torch.relu if act == "relu" else torch.tanh

    def loss(Ws, X, Y):
        h = X
        for W in Ws[:-1]:
            h = s(W @ h)
        r = Ws[-1] @ h - Y
        return 0.5 * (r * r).sum()

    def batched_loss(Ws, X, Y):
        h = s(torch.matmul(Ws[0], X))  # (B, d1, d0) @ (d0, m) broadcasts to (B, d1, m)
        for W in Ws[1:-1]:
            h = s(torch.bmm(W, h))
        r = torch.bmm(Ws[-1], h) - Y
        return 0.5 * (r * r).sum(dim=(1, 2))

    return T.Trainer(p, inits, "data", loss=batched_loss if len(inits) > 1 else loss)


# ---------------------------------------------------------------- sweepengine


class SETrainer:
    """GD through ``train_flat_nonlinear`` (the fused nonlinear trainer)."""

    name = "sweepengine"

    def __init__(self, p, inits, act: str, threads: int):
        import sweepengine as se
        from sweepengine._layout import flatten
        from sweepengine.training import reference

        self.p, self.act, self.threads = p, act, threads
        self.theta0 = np.stack([flatten(w) for w in inits])
        self.dims = p.dims
        # the default lam_ref (the linear problem's), computed once, outside the timing
        self.lam_ref = reference(se.Stats(p.Cxx, p.Cyx, p.yy), p.dims).lam_ref

    def run(self, steps: int) -> np.ndarray:
        from sweepengine.nltraining import train_flat_nonlinear

        out = train_flat_nonlinear(self.p.X, self.p.Y, self.theta0, "gd", self.p.lr, steps,
                                   activation=self.act, dims=self.dims, record_every=1,
                                   seeds=list(range(len(self.theta0))), stop_at_target=False,
                                   final_probe=False, stall=NO_PROBE, threads=self.threads,
                                   lam_ref=self.lam_ref)  # fmt: skip
        bad = (out.status != "max_steps") | (out.runs["steps"] != steps)
        if bad.any():
            b = int(np.flatnonzero(bad)[0])
            raise RuntimeError(f"run {b} stopped early: {out.status[b]} after "
                               f"{int(out.runs['steps'][b])} steps")  # fmt: skip
        return np.asarray(out.runs["loss"], dtype=float)


def _step_products():
    """A compiled loop over one step's products (one call from Python, not 3K - 1)."""
    from numba import njit

    from sweepengine.kernels import linalg

    @njit(cache=False)
    def run(W, X, H, out_w, scratch, K):
        # K forward W A, K gradients D A^T, K - 1 back-propagations W^T D
        for _ in range(K):
            linalg.mm(W, X, H)
            linalg.mm_nt(H, X, out_w, scratch)
        for _ in range(K - 1):
            linalg.mm(W.T, X, H)

    return run


def breakdown(p, act: str, reps: int = 5) -> dict[str, float]:
    """Seconds per call (1 thread) of the kernels one GD step runs: the forward pass with
    the loss (``activation.loss``) and forward + backward (``activation.loss_grad``), each
    with a preallocated workspace; and the dense products alone (``linalg.mm`` /
    ``mm_nt`` on the same shapes, as many as one step calls, in one compiled loop).
    Fastest of ``reps`` batches (the least disturbed by other load)."""
    from _common import time_call

    from sweepengine._layout import dims_of, flatten
    from sweepengine.kernels import activation as A
    from sweepengine.nltraining import _CODES

    theta = flatten(p.weights)
    dims = dims_of(p.weights)
    code = _CODES[act]
    ws = np.zeros(A.ws_size(dims, p.m))
    g = np.empty_like(theta)
    W = np.ascontiguousarray(p.weights[0])
    H = np.empty((p.d, p.m))
    out_w = np.empty((p.d, p.d))
    scratch = np.empty(max(p.d * p.m, p.d * p.d))
    K = p.H + 1
    _products = _step_products()

    def fwd():
        A.loss(theta, dims, p.X, p.Y, code, 0.0, 0.0, ws)

    def fwd_bwd():
        A.loss_grad(theta, dims, p.X, p.Y, code, 0.0, 0.0, ws, g)

    def products():
        _products(W, p.X, H, out_w, scratch, K)

    for f in (fwd, fwd_bwd, products):
        f()
    return {
        "forward_s": time_call(fwd, 0.05, reps).best,
        "loss_grad_s": time_call(fwd_bwd, 0.05, reps).best,
        "products_s": time_call(products, 0.05, reps).best,
        "madds": (3 * K - 1) * p.d * p.d * p.m,
    }

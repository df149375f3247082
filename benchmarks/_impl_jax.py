"""JAX (float64, CPU), written as its users write it.

Weights are a tuple of arrays (a pytree). Gradients by
``jax.jit(jax.value_and_grad(loss))``; HVPs forward-over-reverse,
``jax.jvp(jax.grad(loss), (W,), (V,))``, and also ``jax.linearize`` once at a
point, then the linear map applied per call (what a JAX Lanczos would do, the
analogue of sweepengine's prepared HVP). Training: ``lax.scan`` over steps,
``vmap`` of the scan over runs, run in jitted chunks of steps.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402


def loss_data(Ws, X, Y):
    h = X
    for W in Ws:
        h = W @ h
    r = h - Y
    return 0.5 * jnp.sum(r * r)


def loss_stats(Ws, Cxx, Cyx, yy):
    P = Ws[0]
    for W in Ws[1:]:
        P = W @ P
    return 0.5 * (jnp.sum((P @ Cxx) * P) - 2.0 * jnp.sum(P * Cyx) + yy)


def _hvp(loss):
    """(gradient, H V): both outputs kept, so XLA cannot drop the gradient's work."""

    def hvp(Ws, Vs, *data):
        return jax.jvp(lambda w: jax.grad(loss)(w, *data), (Ws,), (Vs,))

    return jax.jit(hvp)


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(a)) for a in jax.tree_util.tree_leaves(tree)])


def kernel_cases(p):
    """(cases, checks, compile seconds of each case's first call)."""
    import time

    Ws = tuple(jnp.asarray(w) for w in p.weights)
    Vs = tuple(jnp.asarray(v) for v in p.direction)
    data = {
        "data": (jnp.asarray(p.X), jnp.asarray(p.Y)),
        "stats": (jnp.asarray(p.Cxx), jnp.asarray(p.Cyx), jnp.asarray(p.yy)),
    }
    losses = {"data": loss_data, "stats": loss_stats}
    cases, checks, first = {}, {}, {}
    for form, loss in losses.items():
        args = data[form]
        vg = jax.jit(jax.value_and_grad(loss))
        hvp = _hvp(loss)
        _, lin = jax.linearize(lambda w, loss=loss, args=args: jax.grad(loss)(w, *args), Ws)
        lin = jax.jit(lin)
        calls = {
            f"{form}/grad": lambda vg=vg, args=args: jax.block_until_ready(vg(Ws, *args)),
            f"{form}/hvp": lambda hvp=hvp, args=args: jax.block_until_ready(hvp(Ws, Vs, *args)),
            f"{form}/hvp_linearized": lambda lin=lin: jax.block_until_ready(lin(Vs)),
        }
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            first[name] = time.perf_counter() - t0
        cases.update(calls)
        l, g = vg(Ws, *args)
        checks[f"{form}/loss"] = np.array([float(l)])
        checks[f"{form}/grad"] = _flat(g)
        checks[f"{form}/hvp"] = _flat(hvp(Ws, Vs, *args)[1])
    return cases, checks, first


# ---------------------------------------------------------------- training


def _chunk(loss, lr, steps):
    """Jitted ``lax.scan`` of `steps` GD steps: (Ws, data) -> (Ws, losses)."""
    vg = jax.value_and_grad(loss)

    def run(Ws, *data):
        def body(Ws, _):
            l, g = vg(Ws, *data)
            return jax.tree_util.tree_map(lambda w, gw: w - lr * gw, Ws, g), l

        return lax.scan(body, Ws, None, length=steps)

    return run


class Trainer:
    """GD in JAX: one run (scan) or B runs (vmap of the scan), `chunk` steps per call."""

    name = "jax"

    def __init__(self, p, inits, form, chunk, loss=None):
        """``loss``: another loss of (Ws, X, Y) for the data form (default ``loss_data``)."""
        self.form = form
        self.chunk = chunk
        if loss is None:
            loss = loss_data if form == "data" else loss_stats
        if form == "data":
            self.args = (jnp.asarray(p.X), jnp.asarray(p.Y))
        else:
            self.args = (jnp.asarray(p.Cxx), jnp.asarray(p.Cyx), jnp.asarray(p.yy))
        self.batched = len(inits) > 1
        run = _chunk(loss, p.lr, chunk)
        if self.batched:
            nargs = len(self.args)
            run = jax.vmap(run, in_axes=(0,) + (None,) * nargs)
            self.W0 = tuple(jnp.asarray(np.stack(ws)) for ws in zip(*inits, strict=True))
            self.final = jax.jit(jax.vmap(loss, in_axes=(0,) + (None,) * nargs))
        else:
            self.W0 = tuple(jnp.asarray(w) for w in inits[0])
            self.final = jax.jit(loss)
        self.step_fn = jax.jit(run)

    def compile(self) -> float:
        import time

        t0 = time.perf_counter()
        jax.block_until_ready(self.step_fn(self.W0, *self.args))
        jax.block_until_ready(self.final(self.W0, *self.args))
        return time.perf_counter() - t0

    def run(self, steps: int) -> np.ndarray:
        """`steps` (a multiple of the chunk) GD steps from the start; final losses."""
        Ws = self.W0
        for _ in range(steps // self.chunk):
            Ws, losses = self.step_fn(Ws, *self.args)
        jax.block_until_ready(Ws)
        return np.atleast_1d(np.asarray(self.final(Ws, *self.args)))

"""PyTorch (float64, CPU, eager), written as its users write it.

Gradients: leaf tensors with ``requires_grad``, ``loss.backward()`` per call.
HVPs: ``torch.func.jvp(torch.func.grad(loss))`` (forward over reverse) and
double backward (``autograd.grad`` with ``create_graph``, then the gradient of
<g, V>). Training: a Python loop of zero_grad / backward / ``torch.optim.SGD``
for one run; B runs as batched (B, d, d) tensors through ``torch.bmm``.
"""

from __future__ import annotations

import os

import numpy as np
import torch

torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
torch.set_default_dtype(torch.float64)


def loss_data(Ws, X, Y):
    h = X
    for W in Ws:
        h = W @ h
    r = h - Y
    return 0.5 * (r * r).sum()


def loss_stats(Ws, Cxx, Cyx, yy):
    P = Ws[0]
    for W in Ws[1:]:
        P = W @ P
    return 0.5 * (((P @ Cxx) * P).sum() - 2.0 * (P * Cyx).sum() + yy)


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def _flat(parts):
    return np.concatenate([t.detach().numpy().ravel() for t in parts])


def kernel_cases(p):
    leaves = [_t(w).requires_grad_(True) for w in p.weights]
    plain = tuple(_t(w) for w in p.weights)
    Vs = tuple(_t(v) for v in p.direction)
    data = {
        "data": (_t(p.X), _t(p.Y)),
        "stats": (_t(p.Cxx), _t(p.Cyx), p.yy),
    }
    losses = {"data": loss_data, "stats": loss_stats}
    cases, checks = {}, {}
    for form, loss in losses.items():
        args = data[form]

        def grad(loss=loss, args=args):
            for w in leaves:
                w.grad = None
            l = loss(leaves, *args)
            l.backward()
            return l

        def hvp_func(loss=loss, args=args):
            g = torch.func.grad(lambda ws: loss(ws, *args))
            return torch.func.jvp(g, (plain,), (Vs,))[1]

        def hvp_double(loss=loss, args=args):
            l = loss(leaves, *args)
            gs = torch.autograd.grad(l, leaves, create_graph=True)
            return torch.autograd.grad(gs, leaves, grad_outputs=Vs)

        cases[f"{form}/grad"] = grad
        cases[f"{form}/hvp"] = hvp_func
        cases[f"{form}/hvp_double_backward"] = hvp_double
        l = grad()
        checks[f"{form}/loss"] = np.array([float(l)])
        checks[f"{form}/grad"] = _flat([w.grad for w in leaves])
        checks[f"{form}/hvp"] = _flat(hvp_func())
        checks[f"{form}/hvp_double_backward"] = _flat(hvp_double())
    return cases, checks


# ---------------------------------------------------------------- training


def _batched_loss_data(Ws, X, Y):
    h = torch.matmul(Ws[0], X)  # (B, d1, d0) @ (d0, m) broadcasts to (B, d1, m)
    for W in Ws[1:]:
        h = torch.bmm(W, h)
    r = h - Y
    return 0.5 * (r * r).sum(dim=(1, 2))


def _batched_loss_stats(Ws, Cxx, Cyx, yy):
    P = Ws[0]
    for W in Ws[1:]:
        P = torch.bmm(W, P)
    return 0.5 * ((torch.matmul(P, Cxx) * P).sum(dim=(1, 2)) - 2.0 * (P * Cyx).sum(dim=(1, 2)) + yy)


class Trainer:
    """GD in eager PyTorch; batched runs share one (B, ...) tensor per layer."""

    name = "torch"

    def __init__(self, p, inits, form, loss=None):
        """``loss``: another loss of (Ws, X, Y) for the data form (batched: per run)."""
        self.form = form
        self.lr = p.lr
        self.args = (_t(p.X), _t(p.Y)) if form == "data" else (_t(p.Cxx), _t(p.Cyx), p.yy)
        self.batched = len(inits) > 1
        if self.batched:
            self.W0 = [np.stack(ws) for ws in zip(*inits, strict=True)]
            self.loss = _batched_loss_data if form == "data" else _batched_loss_stats
        else:
            self.W0 = [np.asarray(w) for w in inits[0]]
            self.loss = loss_data if form == "data" else loss_stats
        if loss is not None:
            self.loss = loss

    def run(self, steps: int) -> np.ndarray:
        """`steps` GD steps from the start, recording the loss each step; final losses."""
        Ws = [_t(w.copy()).requires_grad_(True) for w in self.W0]
        opt = torch.optim.SGD(Ws, lr=self.lr)
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            l = self.loss(Ws, *self.args)
            total = l.sum() if self.batched else l
            total.backward()
            opt.step()
            losses.append(l.detach())
        with torch.no_grad():
            return np.atleast_1d(self.loss(Ws, *self.args).numpy())

"""Newton-MR polishing, mode occupancy and the escape-time rule against the theory.

Critical points come from ``theory.critical_point_from_stats`` (every subset S,
any depth), Hessians from ``landscape.hessian`` + eigvalsh, stall probes from
``sweepengine.train`` (GD from small initialisation, the weights at the middle of
a plateau). Tolerances, each measured first (``polish`` defaults) and then given a margin:

- ``TOL`` = 1e-10 on ||g|| / g_ref, g_ref = sqrt(lam_ref * gap_scale): reached from
  every constructed point and probe below (measured finals 1e-19 .. 7e-11).
- loss = critical_level(S) to 1e-10 of yy / 2 (measured <= 7e-16).
- occupancies 0 / 1 to 1e-6 (measured <= 2e-10 at constructed, 8e-12 at probe points).
- strict: lambda_min / lam_ref < -1e-3 (measured <= -1.1e-2 for every strict point here).
- PSD: lambda_min / lam_ref >= -PSD_TOL = -1e-5 for H >= 2 points with unused units at
  zero, and at global minima. Newton converges only linearly onto these degenerate sets,
  so a polished point sits ~ TOL^(1/(K-1)) away and its Hessian ~ TOL^((K-2)/(K-1))
  lam_ref from PSD (1e-5 at K = 3); measured from constructed points +-1e-6:
  -8.9e-7 .. 0. At the canonical member (``balance`` then polish) of a probe's family:
  |lambda_min| / lam_ref <= 1e-12; at the point polish alone reaches from a probe, down
  to -1.4e-3 (a strict member of the bad family, see test_canonical_member_...).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sweepengine import landscape, theory
from sweepengine._layout import flatten, unflatten
from sweepengine.initialization import init_weights
from sweepengine.kernels.chain import node_offsets, param_offsets
from sweepengine.kernels.objective import loss_grad_stats, ws_size
from sweepengine.kernels.polish import balance, occupancy, polish, polish_work_size
from sweepengine.kernels.spectrum import lanczos_extremes
from sweepengine.problems import whitened
from sweepengine.stats import Stats
from sweepengine.training import reference, train
from tests import naive

TOL = 1e-10
MAX_NEWTON = 50
MAX_INNER = 100
PSD_TOL = 1e-5
STRICT = -1e-3
S3 = (4.0, 1.0, 0.25)


class Problem:
    """Statistics, reference scales and kernel buffers for one data set and architecture."""

    def __init__(self, X, Y, widths):
        self.X, self.Y = X, Y
        self.st = Stats.from_data(X, Y)
        self.widths = list(widths)
        self.dims = np.array([X.shape[0], *widths, Y.shape[0]], dtype=np.int64)
        self.K = len(widths) + 1
        self.ref = reference(self.st, self.dims)
        self.g_ref = np.sqrt(self.ref.lam_ref * self.ref.gap_scale)
        self.poff, self.noff = param_offsets(self.dims), node_offsets(self.dims)
        self.ws = np.zeros(ws_size(self.dims))
        self.l, self.U, self.G = theory.mode_basis(self.st.Cxx, self.st.Cyx)
        self.p = min(self.dims)
        self.q = min(self.p, self.l.size)  # modes learnable at the global minimum

    def polish(self, weights, tol=TOL, max_newton=MAX_NEWTON, max_inner=MAX_INNER):
        theta = flatten(weights)
        work = np.zeros(polish_work_size(theta.size))
        out = np.zeros(6)
        st = self.st
        polish(theta, self.dims, self.poff, self.noff, st.Cxx, st.Cyx, st.yy, self.ws, work,
               self.g_ref, tol, max_newton, max_inner, out)  # fmt: skip
        return unflatten(theta, self.dims), out

    def canonical(self, weights, rank, max_inner=MAX_INNER):
        """``balance`` to rank |S|, then polish: the canonical member of the critical family."""
        theta = flatten(weights)
        balance(theta, self.dims, self.poff, self.noff, self.ws, rank)
        return self.polish(unflatten(theta, self.dims), max_newton=20, max_inner=max_inner)

    def shadowed(self, probe):
        """The recommended pipeline: polish loosely, S from occupancy, balance, polish again.

        Settings as recommended (results/polish.md): the first polish only has to make the
        occupancies clean (tol 1e-4, 10 Newton steps, 30 MINRES steps each); acceptance
        (TOL, level) and class are read at the canonical point.
        """
        W1, out1 = self.polish(probe, tol=1e-4, max_newton=10, max_inner=30)
        S = theory.learned_modes(self.occupancy(W1), self.l)
        W2, out2 = self.canonical(W1, len(S), max_inner=30)
        return S, W1, out1, W2, out2

    def occupancy(self, weights):
        out = np.zeros(self.l.size)
        occupancy(flatten(weights), self.dims, self.poff, self.noff, self.ws, self.U, self.G, out)
        return out

    def rel_lam_min(self, weights):
        H = landscape.hessian(weights, stats=self.st)
        return float(np.linalg.eigvalsh(0.5 * (H + H.T))[0]) / self.ref.lam_ref

    def level(self, S):
        return theory.critical_level(S, self.l, self.st.yy)

    def critical(self, S, rng=None):
        return theory.critical_point_from_stats(self.st.Cxx, self.st.Cyx, self.widths, list(S),
                                                rng=rng)  # fmt: skip

    def is_bad(self, S):
        """Analytic class of a constructed point: PSD iff H >= 2, S = {0..|S|-1} (distinct l)."""
        return self.K >= 3 and tuple(S) == tuple(range(len(S)))


def whitened_problem(widths, s=S3, d=3, seed=1):
    X, Y = whitened(d, d, 2 * d + 2, list(s), seed=seed)
    return Problem(X, Y, widths)


def raw_problem(widths, seed=5):
    """Raw X (Cxx far from I), Sigma's eigenvalues (249, 34, 2.8): strict saddles at -1e-2."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3, 12)) * np.array([[2.0], [1.0], [0.5]])
    Y = rng.standard_normal((3, 3)) @ X + 0.3 * rng.standard_normal((3, 12))
    return Problem(X, Y, widths)


def subsets(n, p):
    return [S for k in range(min(n, p) + 1) for S in itertools.combinations(range(n), k)]


def check_polished(pb, W, out, S):
    """Converged, at the level of S, occupancies 0/1 giving S back, Hessian of the right class."""
    assert out[3] == 1.0 and out[0] <= TOL, out
    assert abs(out[5] - pb.level(S)) <= 1e-10 * 0.5 * pb.st.yy
    occ = pb.occupancy(W)
    want = np.isin(np.arange(pb.l.size), S).astype(float)
    np.testing.assert_allclose(occ, want, atol=1e-6)
    assert theory.learned_modes(occ, pb.l) == tuple(S)
    lmin = pb.rel_lam_min(W)
    at_min = tuple(S) == tuple(range(pb.q))
    if pb.is_bad(S) or at_min:
        assert -PSD_TOL <= lmin <= 1e-12, (S, lmin)
    else:
        assert lmin < STRICT, (S, lmin)
    return lmin


# ------------------------------------------------------------------------- occupancy


def test_occupancy_kernel_matches_numpy_and_naive(rng):
    pb = raw_problem([4, 2])
    W = [rng.standard_normal((pb.dims[k + 1], pb.dims[k])) for k in range(pb.K)]
    occ = pb.occupancy(W)
    np.testing.assert_allclose(occ, theory.mode_occupancy(W, pb.st), rtol=1e-12, atol=1e-14)
    # from the definition, through pinv and eigh instead of mode_basis
    Cxx, Cyx = pb.X @ pb.X.T, pb.Y @ pb.X.T
    Sigma = Cyx @ np.linalg.pinv(Cxx) @ Cyx.T
    l, U = np.linalg.eigh(Sigma)
    l, U = l[::-1], U[:, ::-1]
    P = naive.product(W)
    ref = np.array([U[:, i] @ P @ Cyx.T @ U[:, i] / l[i] for i in range(3)])
    np.testing.assert_allclose(occ, ref, rtol=1e-9)


@pytest.mark.parametrize("widths", [[3], [3, 3], [2, 4, 3]])
def test_occupancy_is_the_indicator_of_S_at_critical_points(widths):
    for pb in (whitened_problem(widths), raw_problem(widths)):
        for S in subsets(3, pb.p):
            occ = pb.occupancy(pb.critical(S, rng=7))
            want = np.isin(np.arange(3), S).astype(float)
            np.testing.assert_allclose(occ, want, atol=1e-10)
            assert theory.learned_modes(occ, pb.l) == S


def test_mode_basis_drops_null_modes():
    X, Y = whitened(4, 4, 10, [3.0, 1.0], seed=2)
    l, U, G = theory.mode_basis(X @ X.T, Y @ X.T)
    assert l.shape == (2,) and U.shape == (4, 2) and G.shape == (4, 2)
    np.testing.assert_allclose(l, [9.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(U.T @ (Y @ X.T) @ G, np.eye(2), atol=1e-12)


# ------------------------------------------------------------------------- learned_modes


def test_learned_modes_degenerate_cluster_counts_the_sum():
    l = np.array([4.0, 1.0, 1.0 + 1e-9, 0.5])[[0, 2, 1, 3]]  # descending, a tied pair
    assert theory.learned_modes([1.0, 0.3, 0.7, 0.0], l) == (0, 1)
    assert theory.learned_modes([1.0, 0.99, 1.01, 0.0], l) == (0, 1, 2)
    assert theory.learned_modes([0.0, 0.5, 0.5, 1.0], l) == (1, 3)
    # distinct eigenvalues: no pooling, the exact modes come back
    assert theory.learned_modes([1.0, 0.0, 1.0], [2.0, 1.0001, 1.0]) == (0, 2)


def test_learned_modes_flags_points_between_levels():
    l = [4.0, 1.0, 0.25]
    with pytest.raises(theory.LearnedModesError) as e:
        theory.learned_modes([1.0, 0.5, 0.0], l)
    assert e.value.modes in ((0,), (0, 1)) and e.value.defect == pytest.approx(0.5)
    assert theory.learned_modes([1.0, 0.5, 0.0], l, strict=False) in ((0,), (0, 1))
    assert theory.mode_defect([1.0, 0.97, 0.01], l) == pytest.approx(0.03)
    assert theory.learned_modes([1.0, 0.97, 0.01], l) == (0, 1)
    with pytest.raises(theory.LearnedModesError):
        theory.learned_modes([1.0, 1.2, 0.0], l)  # an occupancy above 1 + tol


def test_rotated_critical_point_in_an_eigenspace():
    """P = q q^T B with q anywhere in a 2-D eigenspace: fractional occupancies, S by the sum."""
    pb = whitened_problem([3], s=(2.0, 1.0, 1.0))
    B = pb.st.Cyx @ np.linalg.pinv(pb.st.Cxx)
    q = pb.U[:, 1] * np.cos(0.7) + pb.U[:, 2] * np.sin(0.7)
    P = np.outer(q, q) @ B
    W1 = np.zeros((3, 3))
    W2 = np.zeros((3, 3))
    W1[0], W2[:, 0] = q @ B, q
    assert np.linalg.norm(naive.product([W1, W2]) - P) < 1e-14
    occ = pb.occupancy([W1, W2])
    assert 0.1 < occ[1] < 0.9 and occ[0] == pytest.approx(0, abs=1e-12)
    S = theory.learned_modes(occ, pb.l)
    assert S == (1,)
    assert pb.level(S) == pytest.approx(landscape.loss([W1, W2], stats=pb.st), rel=1e-12)


def test_critical_level_and_kawaguchi_rank():
    l = np.array([16.0, 1.0, 0.0625])
    assert theory.critical_level((), l, 20.0) == 10.0
    assert theory.critical_level((0, 2), l, 20.0) == pytest.approx(0.5 * (20 - 16.0625))
    with pytest.raises(ValueError):
        theory.critical_level((0, 0), l, 20.0)
    rng = np.random.default_rng(0)
    assert theory.kawaguchi_rank([rng.standard_normal((2, 3))]) == 2  # K = 1: p
    assert theory.kawaguchi_rank([np.zeros((4, 3)), np.zeros((2, 4))]) == 4  # K = 2: I_{d_1}
    W = [rng.standard_normal((3, 3)) for _ in range(4)]
    W[1][2] = 1e-7  # a middle layer of numerical rank 2
    assert theory.kawaguchi_rank(W) == 2
    assert theory.kawaguchi_rank([np.zeros((3, 3))] * 3) == 0
    noise = [1e-7 * rng.standard_normal((3, 3)) for _ in range(3)]
    assert theory.kawaguchi_rank(noise) == 3 and theory.kawaguchi_rank(noise, ref=1.0) == 0


# ------------------------------------------------------------------------- constructed points


@pytest.mark.parametrize("H", [1, 2, 3])
@pytest.mark.parametrize("source", ["whitened", "raw"])
def test_polish_at_and_near_constructed_critical_points(H, source):
    pb = whitened_problem([3] * H) if source == "whitened" else raw_problem([3] * H)
    rng = np.random.default_rng(H)
    for S in subsets(3, pb.p):
        W0 = pb.critical(S, rng=11)
        for eps in (0.0, 1e-6):
            start = [w + eps * rng.standard_normal(w.shape) for w in W0]
            W, out = pb.polish(start)
            check_polished(pb, W, out, S)
            if eps == 0.0:
                assert out[1] == 0 and out[4] == 0.0  # already critical: untouched
            assert out[4] < 1e-2  # stayed on this point's family
            if pb.is_bad(S) and len(S) < pb.p:
                ref = pb.l[0] ** ((pb.K - 2) / (2 * pb.K))
                assert theory.kawaguchi_rank(W, ref=ref) == len(S) < pb.p


@pytest.mark.parametrize("H", [2, 3])
def test_zero_and_partial_points_with_unused_units(H):
    """W = 0 and partially learned points padded with zero units, wider than needed."""
    pb = whitened_problem([4] * H)
    rng = np.random.default_rng(5)
    for S in [(), (0,), (0, 1)]:
        W0 = pb.critical(S, rng=3)
        start = [w + 1e-6 * rng.standard_normal(w.shape) for w in W0]
        W, out = pb.polish(start)
        check_polished(pb, W, out, S)


def test_polish_leaves_the_workspace_prepared():
    pb = whitened_problem([3, 3])
    rng = np.random.default_rng(9)
    start = [w + 1e-3 * rng.standard_normal(w.shape) for w in pb.critical((1,), rng=2)]
    W, out = pb.polish(start)
    theta = flatten(W)
    e = np.zeros(5)
    lanczos_extremes(theta, pb.dims, pb.st.Cxx, pb.ws, 200, 1e-12, 0, e)
    H = landscape.hessian(W, stats=pb.st)
    ev = np.linalg.eigvalsh(0.5 * (H + H.T))
    assert e[0] == pytest.approx(ev[0], abs=1e-9 * ev[-1])
    assert e[1] == pytest.approx(ev[-1], rel=1e-9)
    g = np.empty_like(theta)
    loss = loss_grad_stats(theta, pb.dims, pb.st.Cxx, pb.st.Cyx, pb.st.yy, np.zeros_like(pb.ws), g)
    assert loss == out[5] and np.linalg.norm(g) / pb.g_ref == pytest.approx(out[0], rel=1e-12)
    assert np.linalg.norm(theta - flatten(start)) == pytest.approx(out[4], rel=1e-12)


def test_polish_reports_failure_honestly():
    """Too few iterations: converged flag 0 and the gradient norm it reached."""
    pb = whitened_problem([3, 3])
    start = init_weights(pb.dims, "gaussian", 0.3, 1)
    W, out = pb.polish(start, max_newton=1)
    assert out[1] == 1 and out[3] == 0.0 and out[0] > TOL
    g = landscape.gradient(W, stats=pb.st)
    assert np.linalg.norm(flatten(g)) / pb.g_ref == pytest.approx(out[0], rel=1e-9)


# ------------------------------------------------------------------------- stall probes


def plateau_probes(pb, scale, seed=0, lr_factor=0.2, max_steps=40000):
    """(S, weights) at the middle of each plateau of a GD run at the top levels S = {0..r-1}.

    A plateau of level r: the longest stretch of steps whose loss is within a tenth
    of the distance to the neighbouring top levels; at least 50 steps long.
    """
    ref = pb.ref
    lr = lr_factor / ref.lam_ref
    W0 = init_weights(pb.dims, "gaussian", scale, seed)
    opts = dict(final_probe=False, ref=ref, stop_at_target=False, target_gap=0.0)
    L = train(pb.X, pb.Y, W0, "gd", lr, max_steps, **opts).losses
    levels = [pb.level(tuple(range(r))) for r in range(pb.q + 1)]
    out = []
    for r in range(pb.q):
        band = 0.1 * min(levels[r] - levels[r + 1], levels[r - 1] - levels[r] if r else np.inf)
        idx = np.flatnonzero(np.abs(L - levels[r]) <= band)
        if idx.size == 0:
            continue
        runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
        run = max(runs, key=len)
        if run.size < 50:
            continue
        mid = int(run[run.size // 2])
        W = train(pb.X, pb.Y, W0, "gd", lr, mid, **opts).weights if mid else W0
        out.append((tuple(range(r)), W))
    return out


@pytest.mark.parametrize(("H", "scale"), [(1, 1e-3), (2, 1e-2), (2, 1e-1)])
def test_polish_from_stall_probes(H, scale):
    pb = whitened_problem([3] * H)
    probes = plateau_probes(pb, scale)
    found = [S for S, _ in probes]
    assert len(found) >= 2 and all(S in [(), (0,), (0, 1)] for S in found), found
    for S, probe in probes:
        # polish alone: a critical point of the plateau's S, at its level
        W, out = pb.polish(probe)
        assert out[3] == 1.0 and abs(out[5] - pb.level(S)) <= 1e-10 * 0.5 * pb.st.yy
        assert theory.learned_modes(pb.occupancy(W), pb.l) == S
        # the pipeline: its canonical member has the class the theory gives S
        S1, _, out1, Wc, outc = pb.shadowed(probe)
        assert S1 == S
        lmin = check_polished(pb, Wc, outc, S)
        assert (lmin < STRICT) == (H == 1)


def test_canonical_member_of_a_wide_bad_saddle_family():
    """d = 8, data of rank 4: GD leaves the unexcited directions at the init scale, and the
    point polish lands on is a strict member of the bad saddle's family (lambda_min
    ~ -1e-3 lam_ref, shrinking with the init scale); its canonical member is PSD."""
    X, Y = whitened(8, 8, 32, [4.0, 2.0, 1.0, 0.5], seed=1)
    pb = Problem(X, Y, [8, 8])
    probes = plateau_probes(pb, 1e-2, max_steps=6000)
    assert [S for S, _ in probes][:2] == [(), (0,)]
    seen_strict = False
    for S, probe in probes:
        W, out = pb.polish(probe, max_newton=200)  # polish alone: slow, and strict here
        if out[3] == 1.0:
            assert theory.learned_modes(pb.occupancy(W), pb.l) == S
            seen_strict |= pb.rel_lam_min(W) < -1e-4
        S1, _, _, Wc, outc = pb.shadowed(probe)
        assert S1 == S
        check_polished(pb, Wc, outc, S)
        assert outc[1] <= 2  # the canonical point is critical to first order already
        assert theory.kawaguchi_rank(Wc, ref=pb.l[0] ** (1 / 6)) == len(S) < pb.p
    assert seen_strict  # else this test shows nothing


def test_balance_is_the_balanced_factorisation_of_the_product(rng):
    pb = whitened_problem([4, 3, 5])
    W = pb.critical((0, 2), rng=3)
    W = [W[0] * 2.0, W[1] * 0.5, W[2], W[3]]  # unbalanced, rotated: same product
    theta = flatten(W)
    balance(theta, pb.dims, pb.poff, pb.noff, pb.ws, 2)
    Wb = unflatten(theta, pb.dims)
    np.testing.assert_allclose(naive.product(Wb), naive.product(W), atol=1e-12)
    for a, b in zip(Wb[:-1], Wb[1:], strict=True):
        np.testing.assert_allclose(a @ a.T, b.T @ b, atol=1e-12)
    assert not np.any(Wb[0][2:]) and not np.any(Wb[-1][:, 2:])
    g = flatten(landscape.gradient(Wb, stats=pb.st))
    assert np.linalg.norm(g) <= 1e-12 * pb.g_ref  # still the same critical point


def test_close_levels_are_told_apart_by_occupancy():
    """l_2 - l_3 = 2e-4: the levels of {0, 1} and {0, 2} differ by 1e-4, the loss noise of
    a probe 1e-2 away is larger, the occupancies still name the right S."""
    pb = whitened_problem([3], s=(2.0, 1.0001, 1.0))
    rng = np.random.default_rng(3)
    for S in [(0, 1), (0, 2), (1,), (2,)]:
        start = [w + 1e-2 * rng.standard_normal(w.shape) for w in pb.critical(S, rng=1)]
        noise = abs(landscape.loss(start, stats=pb.st) - pb.level(S))
        gap = abs(pb.level((0, 1)) - pb.level((0, 2)))
        assert noise > gap  # the loss alone cannot tell
        W, out = pb.polish(start)
        assert out[3] == 1.0
        assert theory.learned_modes(pb.occupancy(W), pb.l) == S
        assert abs(out[5] - pb.level(S)) <= 1e-10 * 0.5 * pb.st.yy


def test_scale_invariance():
    """X -> a X, Y -> c Y, W_k -> (c/a)^(1/K) W_k: same relative gradients, steps, occupancies."""
    pb = whitened_problem([3, 3])
    (S, probe), *_ = [p for p in plateau_probes(pb, 1e-2) if p[0] == (0,)]
    W, out = pb.polish(probe)
    _, out0 = pb.polish(probe, max_newton=0)
    _, out1 = pb.polish(probe, max_newton=1)
    for a, c in [(3.0, 0.7), (0.01, 50.0)]:
        q = pb.X.copy() * a, pb.Y * c
        ps = Problem(q[0], q[1], pb.widths)
        f = (c / a) ** (1.0 / ps.K)
        probe_s = [f * w for w in probe]
        Ws, outs = ps.polish(probe_s)
        _, outs0 = ps.polish(probe_s, max_newton=0)
        _, outs1 = ps.polish(probe_s, max_newton=1)
        assert outs0[0] == pytest.approx(out0[0], rel=1e-9)  # at the probe
        # after one step ||g|| / g_ref ~ 2e-8 is a difference of O(1) terms: equal to rounding
        assert outs1[0] == pytest.approx(out1[0], abs=1e-11)
        assert outs[1] == out[1] and outs[3] == out[3] == 1.0
        # MINRES's stopping tests are relative: the first solve (from an accurate gradient)
        # takes the same iterations to a tie; the last ones see gradients ~1e-10 g_ref,
        # accurate to a few digits only, and may differ by a few (74 vs 81 measured)
        assert abs(outs1[2] - out1[2]) <= 1
        assert abs(outs[2] - out[2]) <= 0.15 * out[2]
        # where on a degenerate family Newton stops is fixed only to ~TOL^(1/(K-1)) ~ 1e-5
        assert outs[4] / f == pytest.approx(out[4], rel=1e-4)
        assert outs[5] / c**2 == pytest.approx(out[5], rel=1e-9)
        np.testing.assert_allclose(ps.occupancy(Ws), pb.occupancy(W), atol=1e-9)


# ------------------------------------------------------------------------- escape time


def escape_steps(pb, W_saddle, v, r_in, r_out, lr, other, max_steps=100000):
    """GD steps from saddle + r_in v + other until |<theta - saddle, v>| >= r_out."""
    t0 = flatten(W_saddle)
    theta = t0 + r_in * v + other
    g = np.empty_like(theta)
    ws = np.zeros_like(pb.ws)
    st = pb.st
    for n in range(max_steps):
        if abs((theta - t0) @ v) >= r_out:
            return n
        loss_grad_stats(theta, pb.dims, st.Cxx, st.Cyx, st.yy, ws, g)
        theta -= lr * g
    raise AssertionError("no escape")


def test_escape_time_from_a_strict_saddle():
    """n = ln(r_out / r_in) / ln(1 + lr |lam|) steps, about ln(r_out / r_in) / (lr |lam|)."""
    pb = whitened_problem([3])
    W_s = pb.critical((0,), rng=None)
    H = landscape.hessian(W_s, stats=pb.st)
    ev, V = np.linalg.eigh(0.5 * (H + H.T))
    lam, v = ev[0], V[:, 0]
    assert lam / pb.ref.lam_ref < STRICT
    rng = np.random.default_rng(0)
    w = rng.standard_normal(v.size)
    w -= (w @ v) * v
    r_out = 1e-3
    for lr_factor, r_in in itertools.product([0.1, 0.5, 1.0], [1e-9, 1e-6]):
        lr = lr_factor / pb.ref.lam_ref
        other = 1e-7 * w / np.linalg.norm(w)  # a start slightly off the escape direction
        n = escape_steps(pb, W_s, v, r_in, r_out, lr, other)
        exact = np.log(r_out / r_in) / np.log1p(lr * abs(lam))
        flow = np.log(r_out / r_in) / (lr * abs(lam))
        assert n == pytest.approx(exact, rel=0.1), (lr_factor, r_in, n, exact)
        assert n == pytest.approx(flow, rel=0.1), (lr_factor, r_in, n, flow)
        # the old rule 1 / (lr |lam|) misses the log factor ln(r_out / r_in) >= 6.9
        assert n > 5 / (lr * abs(lam))

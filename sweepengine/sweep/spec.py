"""Sweep specs (TOML): validation, lazy expansion into runs, run ids, chunking.

A spec names one problem, and axes of architectures, init schemes and scales,
optimizers and their parameters; ``combine`` turns the axes into
configurations (``grid``: every combination, ``zip``: element-wise, ``random``:
``samples`` distinct grid points), and every configuration runs once per seed.
The format, every key and its default are documented in ``docs/spec.md``.

Everything is checked before anything runs, and every error found is reported
at once (``SpecError.errors``), each naming its key path (``optimizer.lr[1]``),
the value and what would be valid.

Expansion is lazy: ``Spec.n_runs`` is a product of axis lengths, ``Spec.runs()``
a generator that decodes configuration indices (mixed radix, last axis
fastest, seeds innermost), so million-run sweeps never sit in memory.

A run's id is a content address: sha256 of the canonical JSON of everything
that determines its result, package version included and sweep name
excluded, so the same run in two sweeps has one id and one row of results.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import _version
from ..options import OPTIMIZERS, Optimizer, StallConfig, make_optimizer

__all__ = [
    "COMBINE_MODES",
    "Run",
    "Spec",
    "SpecError",
    "canonical_json",
    "chunk_runs",
]

COMBINE_MODES = ("grid", "zip", "random")
# Every default of the spec format, written once; "required" keys have none.
DEFAULTS: dict[str, Any] = {
    "description": "",
    "seeds": [0],
    "target_gap": 1e-6,
    "record_every": 0,
    "combine": "grid",
    "sample_seed": 0,
    "init.scheme": "gaussian",
    "optimizer.name": "gd",
    "architecture.activation": "linear",
    "architecture.alpha": 0.01,
    "optimizer.weight_decay": 0.0,
}
# A configuration's network: (activation, alpha, weight_decay); the default is the
# deep linear network without weight decay (the statistics-form trainer).
LINEAR_NET = ("linear", 0.01, 0.0)
TOP_KEYS = (
    "name",
    "description",
    "seeds",
    "max_steps",
    "target_gap",
    "record_every",
    "combine",
    "samples",
    "sample_seed",
    "problem",
    "architecture",
    "init",
    "optimizer",
    "stall",
)
ID_LENGTH = 16  # hex characters of sha256 kept in run and chunk ids (64 bits)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
_MAX_SEED = 2**63 - 1
_OPT_FIXED = ("optimizer.name", "optimizer.lr")


class SpecError(ValueError):
    """An invalid sweep spec; ``errors`` lists every problem found, each naming its key path."""

    def __init__(self, errors: Sequence[str], name: str | None = None) -> None:
        self.errors = list(errors)
        self.name = name
        where = f"sweep spec {name!r}" if name else "sweep spec"
        n = len(self.errors)
        head = f"invalid {where} ({n} error{'s' if n != 1 else ''}):"
        super().__init__("\n  - ".join([head, *self.errors]))

    def __reduce__(self):
        return type(self), (self.errors, self.name)


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys: the text that run and chunk ids hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _digest(tag: str, obj: Any) -> bytes:
    return hashlib.sha256((tag + canonical_json(obj)).encode()).digest()


# ----------------------------------------------------------------------------- runs


@functools.lru_cache(maxsize=64)
def _stall_dict(stall: StallConfig) -> dict[str, Any]:
    return dataclasses.asdict(stall)


_RUN_TYPES = {
    "init_scale": float,
    "seed": int,
    "max_steps": int,
    "target_gap": float,
    "record_every": int,
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run, fully determined by its fields; ``run_id`` is their content hash.

    ``dims`` = (d_0 = d_x, d_1..d_H hidden widths, d_K = d_y). ``problem_params``
    holds every parameter of the problem, defaults filled in (lists as tuples).
    ``init_seed`` seeds the initial weights and ``rng_seed`` the trainer's own
    randomness (SGD batches, PGD kicks). Both are hashes of (problem, dims, seed)
    only: runs that differ just in optimizer, learning rate or init scale start
    from the same random draw (common random numbers, so comparisons are paired),
    and no run's numbers depend on the worker or chunk that trains it.

    ``activation`` (``sweepengine.ACTIVATIONS``), ``alpha`` (the leaky_relu slope;
    set to its default 0.01 for every other activation, where it means nothing) and
    ``weight_decay`` (L2 penalty wd/2 ||theta||^2 in the loss) enter ``content()``
    only when they differ from the deep linear network without weight decay, so the
    run ids of linear specs are those of earlier versions' (same package version).
    """

    problem: str
    problem_params: dict[str, Any]
    dims: tuple[int, ...]
    init_scheme: str
    init_scale: float
    optimizer: Optimizer
    seed: int
    max_steps: int
    target_gap: float
    record_every: int
    stall: StallConfig
    activation: str = "linear"
    alpha: float = 0.01
    weight_decay: float = 0.0
    run_id: str = dataclasses.field(init=False)
    init_seed: int = dataclasses.field(init=False, repr=False)
    rng_seed: int = dataclasses.field(init=False, repr=False)
    _shape: tuple = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        # plain types, so 1 and 1.0 (or a list and a tuple) give one id
        set_("problem_params", dict(self.problem_params))
        set_("dims", tuple(int(d) for d in self.dims))
        if len(self.dims) < 2:
            raise ValueError(f"dims must hold at least (d_x, d_y), got {self.dims}")
        for key, typ in _RUN_TYPES.items():
            set_(key, typ(getattr(self, key)))
        set_("activation", str(self.activation))
        # alpha means something for leaky_relu only: one value elsewhere, one id
        set_("alpha", float(self.alpha) if self.activation == "leaky_relu" else LINEAR_NET[1])
        set_("weight_decay", float(self.weight_decay) + 0.0)  # -0.0 -> 0.0
        content = self.content()
        set_("run_id", _digest("run:", content).hex()[:ID_LENGTH])
        seeds = _digest("seeds:", {k: content[k] for k in ("problem", "dims", "seed")})
        set_("init_seed", int.from_bytes(seeds[:8], "little") >> 1)
        set_("rng_seed", int.from_bytes(seeds[8:16], "little") >> 1)
        set_("_shape", (self.problem, canonical_json(self.problem_params), self.dims,
                        self.optimizer.name, self.max_steps, self.target_gap,
                        self.record_every, self.stall, self.activation, self.alpha,
                        self.weight_decay))  # fmt: skip

    def __hash__(self) -> int:
        return hash(self.run_id)

    @property
    def hidden(self) -> tuple[int, ...]:
        """Hidden widths d_1..d_H (empty for a single linear map)."""
        return self.dims[1:-1]

    @property
    def depth(self) -> int:
        """H, the number of hidden layers (K = H + 1 weight matrices)."""
        return len(self.dims) - 2

    @property
    def linear(self) -> bool:
        """A deep linear network without weight decay (the statistics-form trainer)."""
        return self.activation == "linear" and self.weight_decay == 0.0

    def content(self) -> dict[str, Any]:
        """Everything that determines the result, as JSON-ready plain data (hashed into run_id).

        ``activation``, ``alpha`` and ``weight_decay`` only where they are not the
        defaults (activation other than linear; alpha for leaky_relu; weight decay
        other than 0): a linear run's content, hence its id, is unchanged by them."""
        out = {
            "version": _version.package_version(),
            "problem": {"name": self.problem, **self.problem_params},
            "dims": list(self.dims),
            "init": {"scheme": self.init_scheme, "scale": self.init_scale},
            "optimizer": {"name": self.optimizer.name, **self.optimizer.as_dict()},
            "seed": self.seed,
            "max_steps": self.max_steps,
            "target_gap": self.target_gap,
            "record_every": self.record_every,
            "stall": dict(_stall_dict(self.stall)),
        }
        if self.activation != "linear":
            out["activation"] = self.activation
            if self.activation == "leaky_relu":
                out["alpha"] = self.alpha
        if self.weight_decay != 0.0:
            out["weight_decay"] = self.weight_decay
        return out

    def shape_key(self) -> tuple:
        """Runs with equal keys can share one batched compiled call.

        Same problem and data, dims, optimizer name, step budget, target, curve
        thinning, stall settings, activation, alpha and weight decay (the nonlinear
        trainer takes one of each per call); init scheme and scale, learning rate,
        optimizer parameters and seeds may differ (they are per-run inputs).
        """
        return self._shape


class _Reseeder:
    """Copies of one Run with other seeds, ids and seeds hashed from cached JSON text.

    The canonical JSON of a run's content differs between seeds only in the seed's
    digits, so the text around them is built once per configuration; the ids are the
    ones ``Run.__post_init__`` computes (a test checks), at a tenth of the cost.
    """

    _MARK = "\x00seed\x00"

    def __init__(self, run: Run) -> None:
        self.run = run
        content = run.content()
        self.run_text = self._split("run:", {**content, "seed": self._MARK})
        picked = {k: content[k] for k in ("problem", "dims")}
        self.seed_text = self._split("seeds:", {**picked, "seed": self._MARK})

    @classmethod
    def _split(cls, tag: str, obj: dict) -> tuple[str, str] | None:
        parts = (tag + canonical_json(obj)).split(canonical_json(cls._MARK))
        return (parts[0], parts[1]) if len(parts) == 2 else None

    def __call__(self, seed: int) -> Run:
        if self.run_text is None or self.seed_text is None:  # the mark occurs elsewhere
            return dataclasses.replace(self.run, seed=seed)
        seed = int(seed)
        digits = str(seed)
        pre, post = self.run_text
        run_id = hashlib.sha256((pre + digits + post).encode()).hexdigest()[:ID_LENGTH]
        pre, post = self.seed_text
        seeds = hashlib.sha256((pre + digits + post).encode()).digest()
        run = object.__new__(Run)  # a shallow copy: the other fields are shared
        run.__dict__.update(
            self.run.__dict__,
            seed=seed,
            run_id=run_id,
            init_seed=int.from_bytes(seeds[:8], "little") >> 1,
            rng_seed=int.from_bytes(seeds[8:16], "little") >> 1,
        )
        return run


def chunk_runs(
    runs: Iterable[Run], max_chunk: int, *, max_open: int = 256
) -> Iterator[tuple[str, list[Run]]]:
    """Group a stream of runs into (chunk_id, runs) with one shape_key and at most max_chunk runs.

    Streams with bounded memory: one buffer per open shape key, emitted when full;
    when more than ``max_open`` keys are open the oldest buffer is emitted early;
    the rest are emitted at the end in order of first appearance. Each run lands
    in exactly one chunk; chunk_id is a hash of the chunk's run ids, so the same
    runs in the same order give the same id in any process.
    """
    if isinstance(max_chunk, bool) or not isinstance(max_chunk, int) or max_chunk < 1:
        raise ValueError(f"max_chunk must be a positive integer, got {max_chunk!r}")
    if isinstance(max_open, bool) or not isinstance(max_open, int) or max_open < 1:
        raise ValueError(f"max_open must be a positive integer, got {max_open!r}")
    open_: dict[tuple, list[Run]] = {}
    for run in runs:
        key = run.shape_key()
        buf = open_.get(key)
        if buf is None:
            if len(open_) >= max_open:
                oldest = next(iter(open_))
                yield _chunk(open_.pop(oldest))
            buf = open_[key] = []
        buf.append(run)
        if len(buf) >= max_chunk:
            yield _chunk(open_.pop(key))
    for buf in open_.values():
        yield _chunk(buf)


def _chunk(runs: list[Run]) -> tuple[str, list[Run]]:
    h = hashlib.sha256(b"chunk:")
    for r in runs:
        h.update(r.run_id.encode())
    return h.hexdigest()[:ID_LENGTH], runs


# ----------------------------------------------------------------------------- configuration spaces
# A configuration is (problem params, (d_x, d_y, m)), hidden widths, net (activation, alpha,
# weight decay), Optimizer, init scheme, init scale. Axis order = chunk-friendly: problem
# outermost, init scale innermost.


class _OptimizerAxis:
    """Lazy grid of optimizers: per name, lr x the given parameters that apply to it."""

    def __init__(self, names: list[str], lrs: list[float], params: dict[str, list[float]]):
        self.segments = []
        self.offsets = [0]
        for name in names:
            keys = [k for k in OPTIMIZERS[name][1] if k in params]
            axes = [lrs] + [params[k] for k in keys]
            self.segments.append((name, keys, axes))
            self.offsets.append(self.offsets[-1] + math.prod(len(a) for a in axes))

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, i: int) -> Optimizer:
        s = bisect.bisect_right(self.offsets, i) - 1
        name, keys, axes = self.segments[s]
        vals = _decode(i - self.offsets[s], [len(a) for a in axes])
        picked = [a[j] for a, j in zip(axes, vals, strict=True)]
        return make_optimizer(name, picked[0], **dict(zip(keys, picked[1:], strict=True)))


def _decode(i: int, lens: Sequence[int]) -> list[int]:
    """Mixed-radix digits of i, last position fastest."""
    out = [0] * len(lens)
    for k in range(len(lens) - 1, -1, -1):
        i, out[k] = divmod(i, lens[k])
    return out


def _odometer(lens: Sequence[int], start: int) -> Iterator[list[int]]:
    """Index tuples of a grid from flat index ``start`` on (nothing materialised)."""
    idx = _decode(start, lens)
    n = math.prod(lens)
    for _ in range(start, n):
        yield idx
        idx = idx.copy()
        k = len(lens) - 1
        while k >= 0:
            idx[k] += 1
            if idx[k] < lens[k]:
                break
            idx[k] = 0
            k -= 1


class _GridSpace:
    def __init__(self, axes: Sequence[Sequence]):
        self.axes = axes
        self.lens = [len(a) for a in axes]

    def __len__(self) -> int:
        return math.prod(self.lens)

    def config(self, i: int) -> tuple:
        return tuple(a[j] for a, j in zip(self.axes, _decode(i, self.lens), strict=True))

    def iter_from(self, start: int) -> Iterator[tuple]:
        for idx in _odometer(self.lens, start):
            yield tuple(a[j] for a, j in zip(self.axes, idx, strict=True))


class _ListSpace:
    def __init__(self, configs: list[tuple]):
        self.configs = configs

    def __len__(self) -> int:
        return len(self.configs)

    def config(self, i: int) -> tuple:
        return self.configs[i]

    def iter_from(self, start: int) -> Iterator[tuple]:
        return iter(self.configs[start:])


class _SampleSpace:
    def __init__(self, grid: _GridSpace, samples: int, seed: int):
        self.grid, self.samples, self.seed = grid, samples, seed

    def __getstate__(self) -> dict:
        # the sampled indices are recomputed where needed (one draw), never shipped
        return {k: v for k, v in self.__dict__.items() if k != "indices"}

    @functools.cached_property
    def indices(self) -> np.ndarray:
        rng = np.random.Generator(np.random.PCG64(self.seed))
        return np.sort(rng.choice(len(self.grid), size=self.samples, replace=False))

    def __len__(self) -> int:
        return self.samples

    def config(self, i: int) -> tuple:
        return self.grid.config(int(self.indices[i]))

    def iter_from(self, start: int) -> Iterator[tuple]:
        for i in range(start, self.samples):
            yield self.config(i)


def _config_shape(config: tuple) -> tuple:
    """What of a configuration enters its runs' shape_key (the rest is the spec's)."""
    (params, (d_x, d_y, _)), hidden, net, opt, _, _ = config
    return (canonical_json(params), d_x, d_y, tuple(hidden), tuple(net), opt.name)


def _grid_block_ids(grid: _GridSpace, index: np.ndarray) -> np.ndarray | None:
    """Per flat grid index, the number of its (problem, architecture, net, optimizer
    name) block; None unless the grid has the axes ``validate`` builds."""
    axes = grid.axes
    if len(axes) != 6 or not isinstance(axes[3], _OptimizerAxis):
        return None
    inner = grid.lens[4] * grid.lens[5]
    n_opt = grid.lens[3]
    offsets = np.asarray(axes[3].offsets)
    q = index // inner
    seg = np.searchsorted(offsets, q % n_opt, side="right") - 1
    return (q // n_opt) * len(axes[3].segments) + seg


def _runs_of_ids(ids: np.ndarray) -> Iterator[tuple[int, int]]:
    """Maximal ranges of equal consecutive values of ``ids``."""
    if not len(ids):
        return
    cut = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    edges = [0, *cut.tolist(), len(ids)]
    yield from zip(edges[:-1], edges[1:], strict=False)


def _config_blocks(space: Any) -> Iterator[tuple[int, int]]:
    """Configuration-index ranges of one shape, in order (see ``Spec.shape_blocks``)."""
    n = len(space)
    if n == 0:
        return
    if isinstance(space, _GridSpace) and _grid_block_ids(space, np.zeros(1, np.int64)) is not None:
        inner = space.lens[4] * space.lens[5]
        offsets, n_opt = space.axes[3].offsets, space.lens[3]
        for outer in range(space.lens[0] * space.lens[1] * space.lens[2]):
            for a, b in zip(offsets[:-1], offsets[1:], strict=True):
                if b > a:
                    yield ((outer * n_opt + a) * inner, (outer * n_opt + b) * inner)
        return
    if isinstance(space, _SampleSpace):
        ids = _grid_block_ids(space.grid, space.indices.astype(np.int64))
        if ids is not None:
            yield from _runs_of_ids(ids)
            return
    start, key = 0, None
    for i, config in enumerate(space.iter_from(0)):
        k = _config_shape(config)
        if i and k != key:
            yield (start, i)
            start = i
        key = k
    yield (start, n)


# ----------------------------------------------------------------------------- spec


@dataclasses.dataclass(frozen=True, eq=False)
class Spec:
    """A validated sweep. Build with :func:`load_spec` or :func:`validate`."""

    name: str
    description: str
    problem: str
    combine: str
    seeds: Sequence[int]  # a tuple, or a range for `seeds = { range = [a, b] }`
    max_steps: int
    target_gap: float
    record_every: int
    stall: StallConfig
    samples: int | None
    sample_seed: int | None
    axes: dict[str, int]  # key path -> number of values given, for every key that is an axis
    source: dict[str, Any] = dataclasses.field(repr=False)  # the input table, as given
    _space: Any = dataclasses.field(repr=False)

    @property
    def n_configs(self) -> int:
        """Number of configurations (each runs once per seed)."""
        return len(self._space)

    @property
    def n_runs(self) -> int:
        """n_configs x number of seeds, computed without expanding anything."""
        return len(self._space) * len(self.seeds)

    def run(self, i: int) -> Run:
        """The i-th run of :meth:`runs`, by random access."""
        if not 0 <= i < self.n_runs:
            raise IndexError(f"run index {i} out of range for {self.n_runs} runs")
        c, s = divmod(i, len(self.seeds))
        return self._make(self._space.config(c), self.seeds[s])

    def runs(self, start: int = 0, stop: int | None = None) -> Iterator[Run]:
        """Lazily yield runs ``start`` .. ``stop - 1`` (all by default), seeds innermost."""
        stop = self.n_runs if stop is None else min(stop, self.n_runs)
        if start >= stop:
            return
        n_seeds = len(self.seeds)
        c0, s0 = divmod(start, n_seeds)
        i = start
        for config in self._space.iter_from(c0):
            reseed = None
            for seed in self.seeds[s0:]:
                if i >= stop:
                    return
                if reseed is None:
                    run = self._make(config, seed)
                    reseed = _Reseeder(run)
                    yield run
                else:
                    yield reseed(seed)
                i += 1
            s0 = 0

    def __getstate__(self) -> dict:
        # a Spec travels to every worker (pickled once per sweep): cached state stays
        return {k: v for k, v in self.__dict__.items() if k != "_config_blocks"}

    @functools.cached_property
    def _config_blocks(self) -> tuple[tuple[int, int], ...]:
        return tuple(_config_blocks(self._space))

    def shape_blocks(self) -> list[tuple[int, int]]:
        """Run-index ranges ``[start, stop)`` that tile ``0 .. n_runs``, in order, each
        of consecutive runs with one ``shape_key()`` (two blocks may share a key).

        Found at configuration level, never per run (seeds are innermost, so a
        configuration's runs share its shape): for a grid from its axes alone (one
        block per problem x architecture x net x optimizer name), for sampled grids from
        the sampled indices, for ``zip`` by one pass over its configurations.
        """
        n = len(self.seeds)
        return [(a * n, b * n) for a, b in self._config_blocks]

    def _make(self, config: tuple, seed: int) -> Run:
        (params, (d_x, d_y, _)), hidden, net, opt, scheme, scale = config
        return Run(
            problem=self.problem,
            problem_params=params,
            dims=(d_x, *hidden, d_y),
            init_scheme=scheme,
            init_scale=scale,
            optimizer=opt,
            seed=seed,
            max_steps=self.max_steps,
            target_gap=self.target_gap,
            record_every=self.record_every,
            stall=self.stall,
            activation=net[0],
            alpha=net[1],
            weight_decay=net[2],
        )

    def summary(self) -> str:
        """A few lines for people: sizes and the axes."""
        axes = ", ".join(f"{k} ({n})" for k, n in self.axes.items() if n > 1) or "none"
        return (
            f"sweep {self.name!r}: {self.n_runs} runs = {self.n_configs} configurations "
            f"({self.combine}) x {len(self.seeds)} seeds; problem {self.problem!r}; "
            f"axes: {axes}"
        )

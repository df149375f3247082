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
import copy
import dataclasses
import functools
import hashlib
import importlib.metadata
import inspect
import itertools
import json
import math
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .options import OPTIMIZERS, Optimizer, StallConfig, check_init, make_optimizer
from .problems import (
    LIST_KINDS,
    PARAM_KINDS,
    PROBLEMS,
    coerce_param,
    param_errors,
    problem_defaults,
    problem_dims,
)

__all__ = [
    "COMBINE_MODES",
    "Run",
    "Spec",
    "SpecError",
    "chunk_runs",
    "load_spec",
    "package_version",
    "validate",
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
}
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
_MAX_PROBLEM_COMBOS = 100_000
_MAX_SEED = 2**63 - 1


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


@functools.cache
def package_version() -> str:
    """The installed sweepengine version (part of every run id)."""
    try:
        return importlib.metadata.version("sweepengine")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _digest(tag: str, obj: Any) -> bytes:
    return hashlib.sha256((tag + _canonical(obj)).encode()).digest()


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
    run_id: str = dataclasses.field(init=False)
    init_seed: int = dataclasses.field(init=False, repr=False)
    rng_seed: int = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        # plain types, so 1 and 1.0 (or a list and a tuple) give one id
        set_("problem_params", dict(self.problem_params))
        set_("dims", tuple(int(d) for d in self.dims))
        if len(self.dims) < 2:
            raise ValueError(f"dims must hold at least (d_x, d_y), got {self.dims}")
        for key, typ in _RUN_TYPES.items():
            set_(key, typ(getattr(self, key)))
        content = self.content()
        set_("run_id", _digest("run:", content).hex()[:ID_LENGTH])
        seeds = _digest("seeds:", {k: content[k] for k in ("problem", "dims", "seed")})
        set_("init_seed", int.from_bytes(seeds[:8], "little") >> 1)
        set_("rng_seed", int.from_bytes(seeds[8:16], "little") >> 1)

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

    def content(self) -> dict[str, Any]:
        """Everything that determines the result, as JSON-ready plain data (hashed into run_id)."""
        return {
            "version": package_version(),
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

    def shape_key(self) -> tuple:
        """Runs with equal keys can share one batched compiled call.

        Same problem and data, dims, optimizer name, step budget, target, curve
        thinning and stall settings; init scheme and scale, learning rate,
        optimizer parameters and seeds may differ (they are per-run inputs).
        """
        return (
            self.problem,
            _canonical(self.problem_params),
            self.dims,
            self.optimizer.name,
            self.max_steps,
            self.target_gap,
            self.record_every,
            self.stall,
        )


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
# A configuration is (problem params, (d_x, d_y, m)), hidden widths, Optimizer, init scheme,
# init scale. Axis order = chunk-friendly: problem outermost, init scale innermost.


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
            for seed in self.seeds[s0:]:
                if i >= stop:
                    return
                yield self._make(config, seed)
                i += 1
            s0 = 0

    def _make(self, config: tuple, seed: int) -> Run:
        (params, (d_x, d_y, _)), hidden, opt, scheme, scale = config
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
        )

    def summary(self) -> str:
        """A few lines for people: sizes and the axes."""
        axes = ", ".join(f"{k} ({n})" for k, n in self.axes.items() if n > 1) or "none"
        return (
            f"sweep {self.name!r}: {self.n_runs} runs = {self.n_configs} configurations "
            f"({self.combine}) x {len(self.seeds)} seeds; problem {self.problem!r}; "
            f"axes: {axes}"
        )


def load_spec(source: str | os.PathLike) -> Spec:
    """Parse and validate a sweep spec from a TOML file path or TOML text.

    A ``str`` holding a newline or ``=`` is TOML text; any other ``str`` (and any
    ``os.PathLike``) is a file path. Without a ``name`` key, a file's stem names
    the sweep.
    """
    default_name = None
    if isinstance(source, str) and ("\n" in source or "=" in source):
        text = source
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"sweep spec file not found: {path}")
        text, default_name = path.read_text(), path.stem
    else:
        raise TypeError(f"load_spec takes a path or TOML text, got {type(source).__name__}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError([f"not valid TOML: {e}"], default_name) from None
    return validate(data, default_name=default_name)


def validate(data: Mapping[str, Any], *, default_name: str | None = None) -> Spec:
    """Check a spec table (as parsed from TOML) and build the :class:`Spec`.

    Raises :class:`SpecError` listing every error found.
    """
    if not isinstance(data, Mapping):
        raise SpecError([f"a spec must be a table, got {type(data).__name__}"])
    v = _Validator(repeats_ok=data.get("combine") == "zip")
    v.unknown("", data, TOP_KEYS)
    name = data.get("name", default_name)
    if name is None:
        v.add("name", "is required (a short name such as 'quick')")
    elif not isinstance(name, str) or not _NAME_RE.match(name):
        v.add("name", f"= {name!r}: must be letters, digits, '_', '.' or '-' (no spaces)")
        name = None
    description = v.scalar("description", data, str, "a string")
    combine = data.get("combine", DEFAULTS["combine"])
    if combine not in COMBINE_MODES:
        v.add("combine", f"= {combine!r}: valid: {list(COMBINE_MODES)}")
    seeds = v.seeds(data.get("seeds", DEFAULTS["seeds"]))
    if isinstance(seeds, list):
        seeds = tuple(seeds)
    max_steps = v.integer("max_steps", data.get("max_steps"), lo=1, required=True)
    target_gap = v.fraction("target_gap", data.get("target_gap", DEFAULTS["target_gap"]))
    record_every = v.integer("record_every", data.get("record_every", DEFAULTS["record_every"]))
    samples = sample_seed = None
    if combine == "random":
        samples = v.integer("samples", data.get("samples"), lo=1, required=True)
        sample_seed = v.integer("sample_seed", data.get("sample_seed", DEFAULTS["sample_seed"]))
    else:
        for key in ("samples", "sample_seed"):
            if key in data:
                v.add(key, f"= {data[key]!r} applies only to combine = 'random'")
    stall = v.stall(data.get("stall", {}))
    problem, p_axes = v.problem(data.get("problem"))
    arch = v.architecture(data.get("architecture"))
    schemes, scales = v.init(data.get("init"))
    opt = v.optimizer(data.get("optimizer"))
    if v.errors:
        raise SpecError(v.errors, name)

    axes = {**p_axes, **arch, "init.scheme": schemes, "init.scale": scales, **opt}
    if combine == "zip":
        space = v.zip_space(problem, axes)
    else:
        grid = _GridSpace(
            [
                v.problem_grid(problem, p_axes),
                _arch_grid(arch),
                _OptimizerAxis(
                    opt["optimizer.name"],
                    opt["optimizer.lr"],
                    {k.split(".", 1)[1]: vals for k, vals in opt.items() if k not in _OPT_FIXED},
                ),
                schemes,
                scales,
            ]
        )
        space = grid
        _check_batch_size(v, opt, v.problem_grid(problem, p_axes))
        if combine == "random":
            if len(grid) > _MAX_SEED:
                v.add("combine", f"random sampling needs a grid below 2^63 points, not {len(grid)}")
            elif samples > len(grid):
                v.add("samples", f"= {samples} exceeds the {len(grid)} grid configurations")
            space = _SampleSpace(grid, samples, sample_seed)
    if v.errors:
        raise SpecError(v.errors, name)
    return Spec(
        name=name,
        description=description if description is not None else DEFAULTS["description"],
        problem=problem,
        combine=combine,
        seeds=seeds,
        max_steps=max_steps,
        target_gap=target_gap,
        record_every=record_every,
        stall=stall,
        samples=samples,
        sample_seed=sample_seed,
        axes={k: len(vals) for k, vals in axes.items()},
        source=copy.deepcopy(dict(data)),
        _space=space,
    )


def _check_batch_size(v: _Validator, opt: dict[str, list], problems: list[tuple]) -> None:
    """A mini-batch cannot be larger than the data set (checked before anything runs)."""
    if "sgd" not in opt["optimizer.name"] or not problems:
        return
    sizes = opt.get("optimizer.batch_size", [OPTIMIZERS["sgd"][1]["batch_size"]])
    m = min(dims[2] for _, dims in problems)
    if max(sizes) > m:
        v.add(
            "optimizer.batch_size",
            f"= {int(max(sizes))} exceeds the number of samples m = {m} of the problem "
            f"(valid: 1..{m})",
        )


_OPT_FIXED = ("optimizer.name", "optimizer.lr")
# optimizer parameter -> the optimizers that take it, in OPTIMIZERS order
_TAKERS: dict[str, list[str]] = {
    key: [name for name, (_, params) in OPTIMIZERS.items() if key in params]
    for key in dict.fromkeys(k for _, params in OPTIMIZERS.values() for k in params)
}


def _valid_name(name: Any, registry: Mapping[str, Any]) -> bool:
    return isinstance(name, str) and name in registry


def _arch_grid(arch: dict[str, list]) -> list[tuple[int, ...]]:
    """Hidden-width tuples: explicit `widths`, else depth x width with depth 0 taken once."""
    if "architecture.widths" in arch:
        return arch["architecture.widths"]
    out: dict[tuple[int, ...], None] = {}
    for d in arch["architecture.depth"]:
        for w in arch.get("architecture.width", [1]):
            out[(w,) * d] = None
    return list(out)


# ----------------------------------------------------------------------------- validation


class _Validator:
    """Collects (path: message) errors; each check returns its coerced value or None."""

    def __init__(self, repeats_ok: bool = False) -> None:
        self.errors: list[str] = []
        # zip pairs axes element-wise, so a value may repeat within one axis; whole
        # combinations are then checked for repeats instead (zip_space)
        self.repeats_ok = repeats_ok

    def add(self, path: str, msg: str) -> None:
        self.errors.append(f"{path} {msg}" if msg.startswith("=") else f"{path}: {msg}")

    def unknown(self, prefix: str, table: Mapping, valid: Iterable[str]) -> None:
        valid = list(valid)
        for key in table:
            if key not in valid:
                self.add(f"{prefix}{key}", f"unknown key (= {table[key]!r}); valid: {valid}")

    def table(self, path: str, value: Any) -> Mapping | None:
        if value is None:
            self.add(path, f"is required (a table [{path}])")
            return None
        if not isinstance(value, Mapping):
            self.add(path, f"= {value!r}: must be a table [{path}]")
            return None
        return value

    def scalar(self, path: str, data: Mapping, typ: type, what: str) -> Any:
        value = data.get(path.rsplit(".", 1)[-1])
        if value is not None and not isinstance(value, typ):
            self.add(path, f"= {value!r}: must be {what}")
            return None
        return value

    def integer(self, path: str, value: Any, lo: int = 0, required: bool = False) -> int | None:
        if value is None:
            if required:
                self.add(path, f"is required (an integer >= {lo})")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= _MAX_SEED:
            hint = " (write 100_000, not 1e5)" if isinstance(value, float) else ""
            self.add(path, f"= {value!r}: must be an integer >= {lo}{hint}")
            return None
        return value

    def fraction(self, path: str, value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            self.add(path, f"= {value!r}: must be a number in (0, 1)")
            return None
        return float(value)

    def seeds(self, value: Any) -> Sequence[int] | None:
        if isinstance(value, Mapping):
            self.unknown("seeds.", value, ["range"])
            r = value.get("range")
            ok = (
                isinstance(r, list)
                and len(r) in (2, 3)
                and all(isinstance(x, int) and not isinstance(x, bool) for x in r)
            )
            if not ok or r[0] < 0 or r[1] > _MAX_SEED or (len(r) == 3 and r[2] < 1):
                self.add(
                    "seeds.range",
                    f"= {r!r}: must be [start, stop] or [start, stop, step]"
                    " of integers, 0 <= start, step >= 1",
                )
                return None
            seeds = range(*r)
            if len(seeds) == 0:
                self.add("seeds.range", f"= {r!r}: is empty (stop must exceed start)")
                return None
            return seeds
        return self.axis("seeds", value, self._seed, scalar_ok=False, repeats_ok=False)

    @staticmethod
    def _seed(s: Any) -> int:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= _MAX_SEED:
            raise ValueError(f"must be an integer in [0, 2^63), got {s!r}")
        return s

    def axis(
        self,
        path: str,
        value: Any,
        coerce,
        *,
        list_valued: bool = False,
        scalar_ok: bool = True,
        repeats_ok: bool | None = None,
    ) -> list | None:
        """A list of values (an axis) or one value; each coerced; no empties, no repeats."""
        if list_valued:
            is_axis = isinstance(value, list) and bool(value) and isinstance(value[0], list)
        else:
            is_axis = isinstance(value, list)
        if not is_axis:
            if not scalar_ok:
                self.add(path, f"= {value!r}: must be a list (or a table {{ range = [a, b] }})")
                return None
            try:
                return [coerce(value)]
            except ValueError as e:
                self.add(path, f"= {value!r}: {e}")
                return None
        if not value:
            self.add(path, "= []: an axis must have at least one value")
            return None
        out, ok = [], True
        for i, item in enumerate(value):
            try:
                out.append(coerce(item))
            except ValueError as e:
                self.add(f"{path}[{i}]", f"= {item!r}: {e}")
                ok = False
        if not ok:
            return None
        if self.repeats_ok if repeats_ok is None else repeats_ok:
            return out
        seen: dict[Any, int] = {}
        for i, c in enumerate(out):
            j = seen.setdefault(c, i)
            if j != i:
                self.add(f"{path}[{i}]", f"= {value[i]!r}: repeats {path}[{j}] (runs would repeat)")
                return None
        return out

    def stall(self, value: Any) -> StallConfig | None:
        table = self.table("stall", value)
        if table is None:
            return None
        valid = [f.name for f in dataclasses.fields(StallConfig)]
        self.unknown("stall.", table, valid)
        ok = True
        for key in valid:
            if key in table:
                try:
                    StallConfig(**{key: table[key]})
                except ValueError as e:
                    self.add(f"stall.{key}", f"= {table[key]!r}: {e}")
                    ok = False
        if not ok or any(k not in valid for k in table):
            return None
        return StallConfig.from_dict(table)

    def problem(self, value: Any) -> tuple[str | None, dict[str, list]]:
        table = self.table("problem", value)
        if table is None:
            return None, {}
        name = table.get("name")
        if not _valid_name(name, PROBLEMS):
            self.add("problem.name", f"= {name!r}: valid: {sorted(PROBLEMS)}")
            return None, {}
        defaults, kinds = problem_defaults(name), PARAM_KINDS[name]
        self.unknown("problem.", table, ["name", *defaults])
        axes: dict[str, list] = {}
        for key, default in defaults.items():
            if key not in table:
                if default is inspect.Parameter.empty:
                    self.add(f"problem.{key}", f"is required for problem {name!r}")
                continue
            kind = kinds[key]
            vals = self.axis(
                f"problem.{key}",
                table[key],
                functools.partial(coerce_param, kind),
                list_valued=kind in LIST_KINDS,
            )
            if vals is not None:
                axes[f"problem.{key}"] = vals
        return name, axes

    def problem_entry(self, name: str, params: dict, where: str = "") -> tuple | None:
        """(normalised params, dims) for one combination, or None after recording errors."""
        norm, errors = param_errors(name, params)
        for key, msg in errors:
            self.add(f"problem.{key}" if key else "problem", msg + where)
        if errors:
            return None
        return norm, problem_dims(name, norm)

    def problem_grid(self, name: str, p_axes: dict[str, list]) -> list[tuple]:
        keys = [k.split(".", 1)[1] for k in p_axes]
        lens = [len(v) for v in p_axes.values()]
        if math.prod(lens) > _MAX_PROBLEM_COMBOS:
            self.add("problem", f"has {math.prod(lens)} combinations, over {_MAX_PROBLEM_COMBOS}")
            return []
        out = []
        many = math.prod(lens) > 1
        for combo in itertools.product(*p_axes.values()):
            params = dict(zip(keys, combo, strict=True))
            where = f" (in the combination {params})" if many else ""
            entry = self.problem_entry(name, params, where)
            if entry is not None:
                out.append(entry)
        return out

    def architecture(self, value: Any) -> dict[str, list]:
        table = self.table("architecture", value)
        if table is None:
            return {}
        self.unknown("architecture.", table, ["depth", "width", "widths"])
        out: dict[str, list] = {}
        if "widths" in table:
            if "depth" in table or "width" in table:
                self.add("architecture.widths", "cannot be combined with depth/width: use one")
            w = table["widths"]
            if isinstance(w, list) and w and not any(isinstance(x, list) for x in w):
                self.add(
                    "architecture.widths",
                    f"= {w!r}: must be a list of hidden-width lists, e.g. [{w!r}] for one net",
                )
                return out
            vals = self.axis(
                "architecture.widths",
                w,
                functools.partial(coerce_param, "widths"),
                list_valued=True,
                scalar_ok=False,
            )
            if vals is not None:
                out["architecture.widths"] = vals
            return out
        if "depth" not in table:
            self.add("architecture.depth", "is required (or give `widths` instead)")
            return out
        depth = self.axis(
            "architecture.depth", table["depth"], functools.partial(coerce_param, "seed")
        )
        if depth is not None:
            out["architecture.depth"] = depth
        if "width" in table:
            width = self.axis(
                "architecture.width", table["width"], functools.partial(coerce_param, "size")
            )
            if width is not None:
                out["architecture.width"] = width
        elif depth is not None and any(d > 0 for d in depth):
            self.add("architecture.width", "is required when a depth is above 0")
        return out

    def init(self, value: Any) -> tuple[list | None, list | None]:
        table = self.table("init", value)
        if table is None:
            return None, None
        self.unknown("init.", table, ["scheme", "scale"])

        def scheme(s: Any) -> str:
            check_init(s, 1.0)
            return s

        def scale(s: Any) -> float:
            if isinstance(s, list):
                raise ValueError("per-layer scale lists are not supported in sweep specs")
            return check_init("gaussian", s)[0]

        schemes = self.axis("init.scheme", table.get("scheme", DEFAULTS["init.scheme"]), scheme)
        if "scale" not in table:
            self.add("init.scale", "is required (a positive number or a list of them)")
            return schemes, None
        return schemes, self.axis("init.scale", table["scale"], scale)

    def optimizer(self, value: Any) -> dict[str, list]:
        table = self.table("optimizer", value)
        if table is None:
            return {}
        self.unknown("optimizer.", table, ["name", "lr", *_TAKERS])

        def name(s: Any) -> str:
            if not _valid_name(s, OPTIMIZERS):
                raise ValueError(f"unknown optimizer; valid: {list(OPTIMIZERS)}")
            return s

        raw = table.get("name", DEFAULTS["optimizer.name"])
        names = self.axis("optimizer.name", raw, name)
        chosen = [
            n for n in (raw if isinstance(raw, list) else [raw]) if _valid_name(n, OPTIMIZERS)
        ]
        out: dict[str, list] = {}
        if names is not None:
            out["optimizer.name"] = names
        if "lr" not in table:
            self.add("optimizer.lr", "is required (a positive number or a list of them)")
        else:
            lrs = self.axis("optimizer.lr", table["lr"], lambda x: make_optimizer("gd", x).lr)
            if lrs is not None:
                out["optimizer.lr"] = lrs
        for key, takers in _TAKERS.items():
            if key not in table:
                continue
            if chosen and not set(chosen) & set(takers):
                self.add(
                    f"optimizer.{key}",
                    f"= {table[key]!r} does not apply to optimizer(s) {chosen}; "
                    f"it applies to {takers}",
                )
                continue

            def coerce(x: Any, key=key, taker=takers[0]) -> float:
                return dict(make_optimizer(taker, 1.0, **{key: x}).params)[key]

            vals = self.axis(f"optimizer.{key}", table[key], coerce)
            if vals is not None:
                out[f"optimizer.{key}"] = vals
        return out

    def zip_space(self, problem: str, axes: dict[str, list]) -> _ListSpace:
        """Element-wise combination: every axis has length L or 1."""
        lengths = {k: len(v) for k, v in axes.items()}
        L = max(lengths.values())
        bad = {k: n for k, n in lengths.items() if n not in (1, L)}
        if bad:
            self.add(
                "combine",
                f"= 'zip' needs every axis to have the same length or length 1; lengths: {lengths}",
            )
            return _ListSpace([])

        def at(key: str, i: int) -> Any:
            vals = axes[key]
            return vals[i if len(vals) > 1 else 0]

        configs, seen = [], {}
        opt_keys = [k.split(".", 1)[1] for k in axes if k.startswith("optimizer.")]
        for i in range(L):
            where = f" (zip combination {i})" if L > 1 else ""
            params = {k.split(".", 1)[1]: at(k, i) for k in axes if k.startswith("problem.")}
            entry = self.problem_entry(problem, params, where)
            if "architecture.widths" in axes:
                hidden = at("architecture.widths", i)
            else:
                d = at("architecture.depth", i)
                hidden = (at("architecture.width", i),) * d if d else ()
            name = at("optimizer.name", i)
            kw = {k: at(f"optimizer.{k}", i) for k in opt_keys if k in OPTIMIZERS[name][1]}
            opt = make_optimizer(name, at("optimizer.lr", i), **kw)
            if entry is None:
                continue
            config = (entry, hidden, opt, at("init.scheme", i), at("init.scale", i))
            key = (_canonical(entry[0]), hidden, opt, config[3], config[4])
            if key in seen:
                self.add("combine", f"= 'zip': combinations {seen[key]} and {i} are the same run")
            seen.setdefault(key, i)
            configs.append(config)
        return _ListSpace(configs)

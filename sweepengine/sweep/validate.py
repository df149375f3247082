"""Reading and validating sweep specs: :func:`load_spec` and :func:`validate`.

``_Validator`` collects every error (each naming its key path, the value and
what would be valid) and coerces each axis; :func:`validate` drives it and
builds the :class:`~sweepengine.sweep.spec.Spec`. This module imports
``spec`` (the data types), never the other way round.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import itertools
import math
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..options import ACTIVATIONS, OPTIMIZERS, StallConfig, check_init, make_optimizer
from ..problems import (
    LIST_KINDS,
    PARAM_KINDS,
    PROBLEMS,
    coerce_param,
    param_errors,
    problem_defaults,
    problem_dims,
)
from .spec import (
    _MAX_SEED,
    _NAME_RE,
    _OPT_FIXED,
    COMBINE_MODES,
    DEFAULTS,
    LINEAR_NET,
    TOP_KEYS,
    Spec,
    SpecError,
    _GridSpace,
    _ListSpace,
    _OptimizerAxis,
    _SampleSpace,
    canonical_json,
)

_MAX_PROBLEM_COMBOS = 100_000


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


# optimizer parameter -> the optimizers that take it, in OPTIMIZERS order
_TAKERS: dict[str, list[str]] = {
    key: [name for name, (_, params) in OPTIMIZERS.items() if key in params]
    for key in dict.fromkeys(k for _, params in OPTIMIZERS.values() for k in params)
}


def _activation(s: Any) -> str:
    if not isinstance(s, str) or s not in ACTIVATIONS:
        raise ValueError(f"unknown activation; valid: {list(ACTIVATIONS)}")
    return s


def _alpha(s: Any) -> float:
    ok = isinstance(s, int | float) and not isinstance(s, bool) and 0.0 <= s < 1.0
    if not ok:
        raise ValueError("must be a number in [0, 1) (the leaky_relu slope for z <= 0)")
    return float(s)


def _weight_decay(s: Any) -> float:
    ok = isinstance(s, int | float) and not isinstance(s, bool) and math.isfinite(s) and s >= 0
    if not ok:
        raise ValueError("must be a finite number >= 0 (the L2 penalty wd/2 ||theta||^2)")
    return float(s) + 0.0


def _net_axis(arch: dict[str, list], opt: dict[str, list]) -> list[tuple[str, float, float]]:
    """(activation, alpha, weight_decay) per configuration: alpha only multiplies
    leaky_relu (other activations take it once, at its default)."""
    out = []
    for act in arch.get("architecture.activation", [LINEAR_NET[0]]):
        alphas = arch.get("architecture.alpha", [LINEAR_NET[1]])
        for alpha in alphas if act == "leaky_relu" else [LINEAR_NET[1]]:
            for wd in opt.get("optimizer.weight_decay", [LINEAR_NET[2]]):
                out.append((act, alpha, wd))
    return out


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
        err = f"{path} {msg}" if msg.startswith("=") else f"{path}: {msg}"
        if err not in self.errors:  # a check reached twice reports once
            self.errors.append(err)

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
        self.unknown("architecture.", table, ["depth", "width", "widths", "activation", "alpha"])
        out: dict[str, list] = {}
        self.net(table, out)
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

    def net(self, table: Mapping, out: dict[str, list]) -> None:
        """``activation`` and ``alpha`` (an axis each), into ``out``."""
        raw = table.get("activation", DEFAULTS["architecture.activation"])
        acts = self.axis("architecture.activation", raw, _activation)
        if acts is not None:
            out["architecture.activation"] = acts
        if "alpha" not in table:  # alpha is read by leaky_relu only (ignored elsewhere)
            return
        alphas = self.axis("architecture.alpha", table["alpha"], _alpha)
        if alphas is not None:
            out["architecture.alpha"] = alphas

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
        self.unknown("optimizer.", table, ["name", "lr", "weight_decay", *_TAKERS])

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
        if "weight_decay" in table:
            wds = self.axis("optimizer.weight_decay", table["weight_decay"], _weight_decay)
            if wds is not None:
                out["optimizer.weight_decay"] = wds
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
            act = at("architecture.activation", i)
            net = (
                act,
                at("architecture.alpha", i) if act == "leaky_relu" and "architecture.alpha" in axes
                else LINEAR_NET[1],
                at("optimizer.weight_decay", i) if "optimizer.weight_decay" in axes
                else LINEAR_NET[2],
            )  # fmt: skip
            if entry is None:
                continue
            config = (entry, hidden, net, opt, at("init.scheme", i), at("init.scale", i))
            key = (canonical_json(entry[0]), hidden, net, opt, config[4], config[5])
            if key in seen:
                self.add("combine", f"= 'zip': combinations {seen[key]} and {i} are the same run")
            seen.setdefault(key, i)
            configs.append(config)
        return _ListSpace(configs)


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
    n_errors = len(v.errors)
    problem, p_axes = v.problem(data.get("problem"))
    problems: list[tuple] = []
    if problem is not None and len(v.errors) == n_errors and combine != "zip":
        # whole-problem checks (e.g. singular values against d_x, d_y) now, so they
        # are reported along with the other sections' errors
        problems = v.problem_grid(problem, p_axes)
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
                problems,
                _arch_grid(arch),
                _net_axis(arch, opt),
                _OptimizerAxis(
                    opt["optimizer.name"],
                    opt["optimizer.lr"],
                    {
                        k.split(".", 1)[1]: vals
                        for k, vals in opt.items()
                        if k not in _OPT_FIXED and k != "optimizer.weight_decay"
                    },
                ),
                schemes,
                scales,
            ]
        )
        space = grid
        _check_batch_size(v, opt, problems)
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

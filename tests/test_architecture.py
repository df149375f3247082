"""The package's shape: no import cycles, and imports only in the direction of the data flow.

Layers, lowest first (docs/architecture.md):

- ``kernels``: pure compiled functions; import nothing of the package but ``_config``;
- the numerical core (every other top-level module but ``cli``): imports kernels and core;
- ``store``: imports the core;
- ``sweep``: imports the core and ``store``;
- ``analysis``: imports the core and ``store``;
- ``cli``: the command line, may import anything.

Every import counts, including those inside functions: a lazy import is still a
dependency, and a lazy cycle is still a cycle. Read from the source with ``ast``,
so the check needs no import of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "sweepengine"

# layer -> the layers it may import (besides itself)
ALLOWED = {
    "kernels": {"config"},
    "config": set(),
    "core": {"kernels", "config"},
    "store": {"core", "kernels", "config"},
    "sweep": {"core", "kernels", "config", "store"},
    "analysis": {"core", "kernels", "config", "store"},
    "cli": {"core", "kernels", "config", "store", "sweep", "analysis"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "core"  # the package's __init__: lazy re-exports of the core
    if parts[1] in ("kernels", "store", "sweep", "analysis", "cli"):
        return parts[1]
    if parts[1] == "_config":
        return "config"
    return "core"


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Package modules that ``module`` imports (at any depth of its code)."""
    is_pkg = path.name == "__init__.py"
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                root = base[: len(base) - node.level + 1]
                target = ".".join(root + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import mod` depends on pkg.mod; `from mod import name` on mod
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target
                     for a in node.names]  # fmt: skip
        else:
            continue
        for name in names:
            if name.split(".")[0] != "sweepengine":
                continue
            while name not in known and "." in name:  # `from pkg import function`
                name = name.rsplit(".", 1)[0]
            if name in known and name != module:
                out.add(name)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, f, set(mods)) for m, f in mods.items()}


def test_layers_import_only_downwards(graph):
    bad = [
        f"{m} ({_layer(m)}) imports {d} ({_layer(d)})"
        for m, deps in graph.items()
        for d in sorted(deps)
        if _layer(d) != _layer(m) and _layer(d) not in ALLOWED[_layer(m)]
    ]
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


def test_no_import_cycles(graph):
    # a package importing its own submodules (re-exports) is not a cycle unless a
    # submodule imports the package back; every other edge counts
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d) :] + [d]))
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_a_cycle_and_a_reverse_import(tmp_path):
    """The checks above can fail: a made-up pair of modules trips both."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    from sweepengine.sweep import spec\n")
    b.write_text("from sweepengine.training import train\n")
    known = {"sweepengine.training", "sweepengine.sweep.spec", "sweepengine.sweep"}
    dep_a = _imports("sweepengine.theory", a, known)
    assert dep_a == {"sweepengine.sweep.spec"}
    assert _layer("sweepengine.sweep.spec") not in ALLOWED[_layer("sweepengine.theory")]
    assert _imports("sweepengine.sweep.spec", b, known) == {"sweepengine.training"}


def test_public_exports_are_listed_once_and_resolve():
    """The lazy export table and the TYPE_CHECKING imports name the same objects."""
    import sweepengine as se

    tree = ast.parse((PKG / "__init__.py").read_text())
    eager = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                for a in imp.names:
                    eager[a.asname or a.name] = imp.module.lstrip(".")
    assert eager == se._EXPORTS
    for name, mod in se._EXPORTS.items():
        assert getattr(se, name) is getattr(__import__(f"sweepengine.{mod}", fromlist=[name]), name)

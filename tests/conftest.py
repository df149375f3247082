import numpy as np
import pytest


@pytest.fixture(scope="session")
def compiled():
    """Compile (or load from the cache) every kernel once per test run, in this process,
    before the first test that starts other processes (the CLI, Dask workers, doc
    snippets): they then load the on-disk cache instead of each compiling for minutes
    inside a subprocess timeout. Requested by test modules (``usefixtures``) and by
    every test marked ``cluster`` (``pytest_collection_modifyitems``)."""
    from sweepengine.selfcheck import selfcheck
    from sweepengine.sweep.worker import warm_up

    warm_up()  # both trainer drivers, under the machine-wide compile lock
    selfcheck(lambda *_: None)  # the landscape kernels


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("cluster") and "compiled" not in item.fixturenames:
            item.fixturenames.insert(0, "compiled")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def random_chain(rng, dims, scale=1.0):
    return [scale * rng.standard_normal((dims[k + 1], dims[k])) for k in range(len(dims) - 1)]


def random_data(rng, d_x, d_y, m):
    return rng.standard_normal((d_x, m)), rng.standard_normal((d_y, m))


def _toml_value(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def whitened_spec(
    name: str,
    *,
    seeds: int,
    max_steps: int,
    record_every: int | None = None,
    problem: dict,
    architecture: dict,
    init: dict,
    optimizer: dict,
) -> str:
    """Sweep spec TOML on a whitened problem (``seed = 0``): seeds ``0 .. seeds-1``.

    ``problem`` holds d_x, d_y, m and singular_values; each table's keys are written
    in order, one ``key = value`` line each (strings quoted, lists as ``[a, b]``).
    """
    head = [f'name = "{name}"', f"seeds = {{ range = [0, {seeds}] }}", f"max_steps = {max_steps}"]
    if record_every is not None:
        head.append(f"record_every = {record_every}")
    tables = {"problem": {"name": "whitened", **problem, "seed": 0},
              "architecture": architecture, "init": init, "optimizer": optimizer}  # fmt: skip
    blocks = ["\n".join(head)] + [
        "\n".join([f"[{table}]"] + [f"{k} = {_toml_value(v)}" for k, v in keys.items()])
        for table, keys in tables.items()
    ]
    return "\n" + "\n\n".join(blocks) + "\n"

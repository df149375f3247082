"""The Dask task of benchmarks/bench_scheduler.py: a chunk that costs no compute.

It takes a chunk's arguments as ``run_sweep`` sends them (chunk id, the chunk's
``Run`` objects, the sweep name) and returns a real chunk result (Arrow tables of
a chunk trained beforehand, read once per worker process from a pickle), so the
scheduler and the client handle messages of the real sizes while the workers
do nothing measurable.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

_RESULTS: dict[str, Any] = {}


def echo_chunk(chunk_id: str, runs: list, sweep: str, result_path: str) -> Any:
    res = _RESULTS.get(result_path)
    if res is None:
        res = _RESULTS[result_path] = pickle.loads(Path(result_path).read_bytes())
    return res

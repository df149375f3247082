"""The Dask task of benchmarks/bench_scheduler.py: a chunk that costs no compute.

It takes a chunk's arguments as ``run_sweep`` sends them to ``worker.train_range``
(the pickled spec, its key, the run range, the chunk id, the results directory,
the lock token, the spec hash) and returns a real chunk summary (that of a chunk
trained and written beforehand by a worker, read once per worker process from a
pickle, with this chunk's id), so the scheduler and the client handle messages of
the real sizes while the workers do nothing measurable.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

_RESULTS: dict[str, Any] = {}


def echo_summary(
    spec_blob: bytes, spec_key: str, start: int, stop: int, chunk_id: str,
    out_dir: str | None, token: str | None, spec_hash: str, summary_path: str,
) -> dict:  # fmt: skip
    res = _RESULTS.get(summary_path)
    if res is None:
        res = _RESULTS[summary_path] = pickle.loads(Path(summary_path).read_bytes())
    stem = f"part-{chunk_id}.parquet"
    entries = {f"{k.split('/')[0]}/{stem}": v for k, v in res["entries"].items()}
    return {**res, "chunk_id": chunk_id, "entries": entries}

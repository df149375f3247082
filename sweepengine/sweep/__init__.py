"""Sweeps: specs, validation, run ids, chunking, Dask scheduling, the worker task.

The client side (``spec``, ``validate``, ``schedule``, ``clusters``) plans and
schedules but never trains, so it never imports Numba; only ``worker`` (run in
Dask worker processes) and ``compile_lock`` touch the numerical core's trainer.
This package uses the numerical core and ``sweepengine.store``; neither uses it.
"""

from __future__ import annotations

from .schedule import SweepReport, chunk_size, connect, run_sweep, worker_env
from .spec import Run, Spec, SpecError, chunk_runs
from .validate import load_spec, validate

__all__ = [
    "Run",
    "Spec",
    "SpecError",
    "SweepReport",
    "chunk_runs",
    "chunk_size",
    "connect",
    "load_spec",
    "run_sweep",
    "validate",
    "worker_env",
]

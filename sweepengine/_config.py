"""JIT options and environment knobs, decided in one place.

Every compiled kernel uses ``@njit(**JIT)``; only the outermost batched
drivers use ``JIT_PARALLEL``. ``cache=True`` keeps compiled machine code on
disk (``NUMBA_CACHE_DIR`` moves it) so Dask workers and later sessions do not
recompile. ``fastmath`` stays off: results must be bit-reproducible.
"""

from __future__ import annotations

JIT = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")
JIT_PARALLEL = dict(JIT, parallel=True)

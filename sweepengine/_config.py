"""JIT options and environment knobs, decided in one place.

Every compiled kernel uses ``@njit(**JIT)``; only the outermost batched
drivers use ``JIT_PARALLEL``. ``cache=True`` keeps compiled machine code on
disk (``NUMBA_CACHE_DIR`` moves it) so Dask workers and later sessions do not
recompile. ``fastmath`` stays off: results must be bit-reproducible.
"""

from __future__ import annotations

JIT = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")
JIT_PARALLEL = dict(JIT, parallel=True)

# Products with m*k*n at most this use hand-written loops; larger ones call BLAS
# through scipy. Measured (1 thread, alone): loops 39 ns vs BLAS 104 ns at 4x4x4,
# 182 vs 164 ns at 8x8x8, 6.9 vs 2.4 us at 32x32x32; inside the batched trainer
# loops at 8x8x8 gave 1.7x the run-steps/s of BLAS (no per-call BLAS overhead).
# Changing this needs the Numba cache cleared (it does not track this global).
SMALL_GEMM = 8 * 8 * 8

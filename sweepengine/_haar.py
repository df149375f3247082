"""Haar-distributed orthonormal frames, the one sampler behind every random rotation."""

from __future__ import annotations

import numpy as np


def haar_orthonormal(z: np.ndarray) -> np.ndarray:
    """(n, k), n >= k, with orthonormal columns, Haar-distributed when ``z`` holds
    independent standard normals: the Q of z = QR with the signs fixed so that
    diag(R) >= 0 (Mezzadri 2007), which makes Q uniform rather than QR-biased."""
    q, r = np.linalg.qr(z)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)

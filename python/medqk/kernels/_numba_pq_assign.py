"""Numba twin of the PQ / k-means assignment (csrc/kernels/scalar/pq_assign_scalar.cpp).

Same float32 operations in the same order as the scalar C++ reference (no FMA, no reassociation), so
codes and distances equal the native scalar ISA bit for bit; SIMD ISAs differ by FMA rounding only.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_ROW_BLOCK = 128


@njit(parallel=True, boundscheck=False, nogil=True)
def pq_assign(x, centroids, codes, dist):
    """codes[i, j] = argmin_c ||c||^2 - 2 <x_ij, c> (lowest c among equal scores), and
    dist[i, j] = max(that minimum + ||x_ij||^2, 0).

    x (n, M * dsub) float32, centroids (M, K, dsub) float32 with K <= 256, codes (n, M) uint8,
    dist (n, M) float32. Blocks of rows run in parallel; within a block, one subspace at a time.
    """
    n = x.shape[0]
    m, k, dsub = centroids.shape
    # transposed centroids and their norms, as the native front end builds them: the c loops below are
    # then unit-stride and vectorize without changing the order of any sum
    ct = np.empty((m, dsub, k), dtype=np.float32)
    norms = np.empty((m, k), dtype=np.float32)
    for j in range(m):
        for c in range(k):
            s = np.float32(0.0)
            for p in range(dsub):
                s += centroids[j, c, p] * centroids[j, c, p]
                ct[j, p, c] = centroids[j, c, p]
            norms[j, c] = s
    blocks = (n + _ROW_BLOCK - 1) // _ROW_BLOCK
    for b in prange(blocks):
        r0 = b * _ROW_BLOCK
        r1 = min(n, r0 + _ROW_BLOCK)
        acc = np.empty(k, dtype=np.float32)
        for j in range(m):
            o = j * dsub
            for i in range(r0, r1):
                xn = np.float32(0.0)
                for p in range(dsub):
                    xn += x[i, o + p] * x[i, o + p]
                x0 = x[i, o]
                for c in range(k):
                    acc[c] = x0 * ct[j, 0, c]
                for p in range(1, dsub):
                    xp = x[i, o + p]
                    for c in range(k):
                        acc[c] += xp * ct[j, p, c]
                best = np.float32(np.inf)
                idx = 0
                for c in range(k):
                    score = norms[j, c] - np.float32(2.0) * acc[c]
                    if score < best:
                        best = score
                        idx = c
                d = best + xn
                if d < 0:
                    d = np.float32(0.0)
                codes[i, j] = idx
                dist[i, j] = d

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


@njit(parallel=True, boundscheck=False, nogil=True)
def pq_anisotropic(x, centroids, codes, eta, passes):
    """Twin of the native pq_anisotropic (csrc/runtime/pq_anisotropic.cpp): score-aware codes by coordinate
    descent on eta * (r . u)^2 + |r - (r . u) u|^2, in place on ``codes`` (n, M) uint8; the same float64
    operations in the same order, so the codes are equal bit for bit."""
    n = x.shape[0]
    m, k, dsub = centroids.shape
    d = m * dsub
    w = eta - 1.0
    ct = np.empty((m, dsub, k), dtype=np.float64)
    cn = np.empty((m, k), dtype=np.float64)
    for j in range(m):
        for c in range(k):
            s = 0.0
            for p in range(dsub):
                v = np.float64(centroids[j, c, p])
                ct[j, p, c] = v
                s += v * v
            cn[j, c] = s
    for i in prange(n):
        u = np.empty(d, dtype=np.float64)
        r = np.empty(d, dtype=np.float64)
        cu = np.empty(k, dtype=np.float64)
        cr = np.empty(k, dtype=np.float64)
        g = np.empty(k, dtype=np.float64)
        gain = np.empty(k, dtype=np.float64)
        nrm2 = 0.0
        for p in range(d):
            nrm2 += np.float64(x[i, p]) * np.float64(x[i, p])
        nrm = np.sqrt(nrm2)
        for p in range(d):
            u[p] = np.float64(x[i, p]) / nrm if nrm > 0.0 else 0.0
        for j in range(m):
            for p in range(dsub):
                r[j * dsub + p] = ct[j, p, codes[i, j]] - np.float64(x[i, j * dsub + p])
        rpar = 0.0
        for p in range(d):
            rpar += r[p] * u[p]
        for _ in range(passes):
            for j in range(m):
                cur = np.int64(codes[i, j])
                for c in range(k):
                    cu[c] = 0.0
                    cr[c] = 0.0
                    g[c] = 0.0
                for p in range(dsub):
                    up = u[j * dsub + p]
                    rp = r[j * dsub + p]
                    qp = ct[j, p, cur]
                    for c in range(k):
                        cu[c] += up * ct[j, p, c]
                        cr[c] += rp * ct[j, p, c]
                        g[c] += qp * ct[j, p, c]
                two_rpar = 2.0 * rpar
                cu_cur = cu[cur]
                cr_cur = cr[cur]
                cn_cur = cn[j, cur]
                for c in range(k):
                    dpar = cu[c] - cu_cur
                    dd = cn[j, c] - 2.0 * g[c] + cn_cur
                    gain[c] = w * dpar * (two_rpar + dpar) + 2.0 * (cr[c] - cr_cur) + dd
                gain[cur] = 0.0
                best = 0
                for c in range(1, k):
                    if gain[c] < gain[best]:
                        best = c
                if best != cur:
                    rpar += cu[best] - cu_cur
                    for p in range(dsub):
                        r[j * dsub + p] += ct[j, p, best] - ct[j, p, cur]
                    codes[i, j] = best


@njit(parallel=True, boundscheck=False, nogil=True)
def pq_centroid_sums(x, codes, sums, counts):
    """Twin of the native pq_centroid_sums: per subspace j and centroid c, the float64 sum of the rows'
    sub-vectors coded c (rows in increasing order) into sums (M, K, dsub), their number into counts (M, K)."""
    n, m = codes.shape
    dsub = sums.shape[2]
    for j in prange(m):
        for c in range(sums.shape[1]):
            counts[j, c] = 0
            for p in range(dsub):
                sums[j, c, p] = 0.0
        for i in range(n):
            c = codes[i, j]
            for p in range(dsub):
                sums[j, c, p] += np.float64(x[i, j * dsub + p])
            counts[j, c] += 1

"""Numba twin of the native W4A8 GEMM (kernels/gemm_w4a8.h): the same integer D bit for bit, and the float
output in the order of the scalar oracle (per output: groups in increasing g, each
``scales[n, g] * float32(D - zeros * asum)`` added to a float32 sum, then ``* row_scale + bias``).

The weights stay unpacked here: ``codes`` uint8 (N, K) and ``levels`` int8 (N, 16). Callers (medqk.kernels)
have validated every argument and preallocate the outputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(boundscheck=False, nogil=True, inline="always")
def _group_d(a, codes, levels, i, j, k0, k1):
    d = np.int32(0)
    for p in range(k0, k1):
        d += np.int32(a[i, p]) * np.int32(levels[j, codes[j, p]])
    return d


@njit(parallel=True, boundscheck=False, nogil=True)
def gemm_w4a8_s32(a, codes, levels, group_size, d):
    """d[m, n, g] = sum over k in group g of a[m, k] * levels[n, codes[n, k]] (exact int32)."""
    m, k = a.shape
    n = codes.shape[0]
    groups = d.shape[2]
    for j in prange(n):
        for i in range(m):
            for g in range(groups):
                d[i, j, g] = _group_d(a, codes, levels, i, j, g * group_size, min(k, (g + 1) * group_size))


@njit(parallel=True, boundscheck=False, nogil=True)
def gemm_w4a8_f32(a, codes, levels, group_size, row_scale, scales, zeros, has_zeros, bias, has_bias, out):
    """out[m, n] = row_scale[m] * sum_g scales[n, g] * float(D - zeros[n, g] * asum[m, g]) + bias[n]."""
    m, k = a.shape
    n = codes.shape[0]
    groups = scales.shape[1]
    asum = np.zeros((m, groups), dtype=np.int32)
    if has_zeros:
        for i in range(m):
            for p in range(k):
                asum[i, p // group_size] += np.int32(a[i, p])
    for j in prange(n):
        for i in range(m):
            total = np.float32(0)
            for g in range(groups):
                d = _group_d(a, codes, levels, i, j, g * group_size, min(k, (g + 1) * group_size))
                if has_zeros:
                    d -= np.int32(zeros[j, g]) * asum[i, g]
                total += scales[j, g] * np.float32(d)
            v = row_scale[i] * total
            out[i, j] = v + bias[j] if has_bias else v

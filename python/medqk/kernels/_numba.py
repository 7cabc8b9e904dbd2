"""Numba twins of the native kernels: same names, same argument order, same integer results.

Used when the native module is missing or ``MEDQK_BACKEND=numba``. Callers (medqk.kernels) have
validated shapes and dtypes already; these functions write into preallocated outputs.
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np
from numba import njit, prange


@contextlib.contextmanager
def threads(count: int):
    """Runs the enclosed kernels on ``count`` threads (0: all of Numba's threads)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS) if count > 0 else numba.config.NUMBA_NUM_THREADS)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@njit(parallel=True, boundscheck=False, nogil=True)
def gemm_s8s8_s32(a, b, out):
    """out (M, N) int32 = a (M, K) int8 @ b (N, K) int8 .T, exact.

    Both operands are widened to int16 first: an int16 x int16 -> int32 multiply-add is the pattern
    LLVM turns into vpmaddwd (AVX2) / smlal (NEON), and |a*b| <= 2**14 keeps every step exact.
    """
    m, k = a.shape
    n = b.shape[0]
    a16 = a.astype(np.int16)
    b16 = b.astype(np.int16)
    for i in prange(m):
        ai = a16[i]
        for j in range(n):
            bj = b16[j]
            s = np.int32(0)
            for p in range(k):
                s += np.int32(ai[p]) * np.int32(bj[p])
            out[i, j] = s


@njit(parallel=True, boundscheck=False, nogil=True)
def quantize_rows_s8(x, q, scales):
    """Per-row symmetric int8 codes of float32 x; same float32 steps as csrc/runtime/quantize.cpp.

    Returns False (and leaves q undefined) if x holds a NaN or Inf.
    """
    m, k = x.shape
    ok = np.ones(m, dtype=np.bool_)
    for i in prange(m):
        amax = np.float32(0.0)
        for p in range(k):
            v = abs(x[i, p])
            if not v <= np.float32(3.4028234663852886e38):
                ok[i] = False
            if v > amax:
                amax = v
        inv = np.float32(127.0) / amax if amax > 0 else np.float32(1.0)
        scales[i] = amax / np.float32(127.0) if amax > 0 else np.float32(1.0)
        for p in range(k):
            v = np.rint(x[i, p] * inv)  # round half to even, then clamp: the order of the C++ code
            v = min(max(v, np.float32(-127.0)), np.float32(127.0))
            q[i, p] = np.int8(v)
    return ok.all()


@njit(parallel=True, boundscheck=False, nogil=True)
def dequantize_s32_f32(acc, row_scale, col_scale, bias, out):
    """out[i, j] = acc[i, j] * (row_scale[i] * col_scale[j]) + bias[j] (bias may be empty: no bias)."""
    m, n = acc.shape
    has_bias = bias.shape[0] == n
    for i in prange(m):
        rs = row_scale[i]
        for j in range(n):
            v = np.float32(acc[i, j]) * (rs * col_scale[j])
            out[i, j] = v + bias[j] if has_bias else v

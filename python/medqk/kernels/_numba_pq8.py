"""Numba twins of the 8-bit PQ search (csrc/runtime/pq8_search.cpp): same tables, same ids and scores."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._numba_search import _heap_push, _heap_sort, quantize_tables


@njit(parallel=True, boundscheck=False, nogil=True)
def pq8_decode_s8(codes, table, out):
    """Twin of the native pq8_decode_s8: out[i, s*dsub:(s+1)*dsub] = table[s, codes[i, s]]."""
    n, m = codes.shape
    dsub = table.shape[2]
    for i in prange(n):
        for s in range(m):
            for j in range(dsub):
                out[i, s * dsub + j] = table[s, codes[i, s], j]


def pq8_quantize_tables(tables, luts, alpha, beta):
    """Twin of the native pq8_quantize_tables: same float32 steps, same uint16 tables."""
    quantize_tables(tables, luts, alpha, beta, 65535.0)


@njit(parallel=True, boundscheck=False, nogil=True)
def pq8_search_topk(luts, codes, alpha, beta, k, scores, ids):
    nq, m, _ = luts.shape
    n = codes.shape[0]
    for q in prange(nq):
        hs = np.empty(k, dtype=np.float32)
        hi = np.empty(k, dtype=np.int64)
        size = 0
        for v in range(n):
            acc = 0
            for s in range(m):
                acc += luts[q, s, codes[v, s]]
            size = _heap_push(hs, hi, size, k, np.float32(acc), v)
        _heap_sort(hs, hi, size)
        for t in range(k):
            if t < size:
                scores[q, t] = alpha[q] * hs[t] + beta[q]
                ids[q, t] = hi[t]
            else:
                scores[q, t] = -np.inf
                ids[q, t] = -1

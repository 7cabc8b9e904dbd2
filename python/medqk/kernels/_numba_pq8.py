"""Numba twins of the 8-bit PQ search (csrc/runtime/pq8_search.cpp): same tables, same ids and scores."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._numba_search import _heap_push, _heap_sort


@njit(parallel=True, boundscheck=False, nogil=True)
def pq8_quantize_tables(tables, luts, alpha, beta):
    nq, m, _ = tables.shape
    for q in prange(nq):
        span = np.float32(0.0)
        offset = np.float32(0.0)
        lo = np.empty(m, dtype=np.float32)
        for s in range(m):
            mn = tables[q, s, 0]
            mx = tables[q, s, 0]
            for c in range(1, 256):
                mn = min(mn, tables[q, s, c])
                mx = max(mx, tables[q, s, c])
            lo[s] = mn
            span = max(span, mx - mn)
            offset = offset + mn
        step = span / np.float32(65535.0) if span > 0 else np.float32(1.0)
        for s in range(m):
            for c in range(256):
                v = np.rint((tables[q, s, c] - lo[s]) / step)
                v = min(max(v, np.float32(0.0)), np.float32(65535.0))
                luts[q, s, c] = np.uint16(v)
        alpha[q] = step
        beta[q] = offset


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

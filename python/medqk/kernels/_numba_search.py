"""Numba twin of the native fused int8 search (csrc/runtime/search_s8.cpp): same scores, same ids."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(inline="always")
def _better(s1, i1, s2, i2):
    """(s1, i1) ranks before (s2, i2): higher score, then lower id."""
    return s1 > s2 or (s1 == s2 and i1 < i2)


@njit(boundscheck=False)
def _swap(hs, hi, a, b):
    hs[a], hs[b] = hs[b], hs[a]
    hi[a], hi[b] = hi[b], hi[a]


@njit(boundscheck=False)
def _sift_down(hs, hi, size, pos):
    # Heap whose root is the worst kept hit: a parent is never better than its children.
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        worst = left
        right = left + 1
        if right < size and _better(hs[worst], hi[worst], hs[right], hi[right]):
            worst = right
        if _better(hs[pos], hi[pos], hs[worst], hi[worst]):
            _swap(hs, hi, pos, worst)
            pos = worst
        else:
            return


@njit(boundscheck=False)
def _sift_up(hs, hi, pos):
    parent = (pos - 1) // 2
    while pos > 0 and _better(hs[parent], hi[parent], hs[pos], hi[pos]):
        _swap(hs, hi, pos, parent)
        pos, parent = parent, (parent - 1) // 2


@njit(boundscheck=False)
def row_allowed(allow, row):
    """Bit row of the allow-bitmap (empty: every row allowed): bit row & 7 of byte row >> 3."""
    return allow.shape[0] == 0 or ((allow[row >> 3] >> (row & 7)) & 1) == 1


@njit(boundscheck=False)
def _heap_push(hs, hi, size, k, s, j):
    """Offers (s, j) to a heap of ``size`` kept hits (ids arrive in increasing order); returns the new size."""
    if size < k:
        hs[size] = s
        hi[size] = j
        _sift_up(hs, hi, size)
        return size + 1
    if s > hs[0]:  # an equal score never beats the worst kept hit: its id is higher
        hs[0] = s
        hi[0] = j
        _sift_down(hs, hi, size, 0)
    return size


@njit(boundscheck=False)
def _heap_sort(hs, hi, size):
    """Heap of kept hits -> best first, in place (repeatedly moves the worst to the end)."""
    for end in range(size - 1, 0, -1):
        _swap(hs, hi, 0, end)
        _sift_down(hs, hi, end, 0)


@njit(boundscheck=False)
def _write_sorted(hs, hi, size, scores, ids):
    """The heap's hits best first into the rows scores / ids (length k), padded with -inf / -1 past size."""
    _heap_sort(hs, hi, size)
    for t in range(scores.shape[0]):
        if t < size:
            scores[t] = hs[t]
            ids[t] = hi[t]
        else:
            scores[t] = -np.inf
            ids[t] = -1


@njit(boundscheck=False, nogil=True, inline="always")
def topk_of_rows(score_of, ctx, n, k, allow, scores, ids):
    """The k best of rows 0..n-1 by score_of(ctx, row) (float32), skipping rows the bitmap ``allow`` clears
    (empty: none), written best first into the rows scores / ids: equal scores -> lower row; missing ->
    -inf / -1. Every search twin's per-query loop: it passes its own scorer and that scorer's arrays."""
    hs = np.empty(k, dtype=np.float32)
    hi = np.empty(k, dtype=np.int64)
    size = 0
    for row in range(n):
        if row_allowed(allow, row):
            size = _heap_push(hs, hi, size, k, score_of(ctx, row), row)
    _write_sorted(hs, hi, size, scores, ids)


@njit(boundscheck=False, inline="always")
def _s8_score(ctx, j):
    a_i, b, al, bias = ctx
    dot = np.int32(0)
    for p in range(a_i.shape[0]):
        dot += np.int32(a_i[p]) * np.int32(b[j, p])
    s = al * np.float32(dot)
    if bias.shape[0] == b.shape[0]:
        s = s + bias[j]
    return s


@njit(parallel=True, boundscheck=False, nogil=True)
def s8_search_topk(a, b, alpha, bias, k, scores, ids, allow):
    """For each query row of int8 a (nq, d): the k best database rows of int8 b (n, d) by
    score = alpha[i] * float32(a_i . b_j) + bias[j] (bias empty: none), written best first into
    scores (nq, k) float32 / ids (nq, k) int64; equal scores -> lower id; missing -> -inf / -1. Rows the
    bitmap ``allow`` clears (empty: none) are skipped (medqk.h: allow-bitmaps)."""
    for i in prange(a.shape[0]):
        topk_of_rows(_s8_score, (a[i], b, alpha[i], bias), b.shape[0], k, allow, scores[i], ids[i])


@njit(parallel=True, boundscheck=False, nogil=True)
def s8_score_candidates(qs, codes, cand, out):
    """Twin of the native s8_score_candidates: the same 16 float32 partial sums, added in the same order."""
    nq, d = qs.shape
    n = codes.shape[0]
    kc = cand.shape[1]
    for q in prange(nq):
        for c in range(kc):
            v = cand[q, c]
            if v < 0 or v >= n:
                out[q, c] = -np.inf
                continue
            s = np.zeros(16, dtype=np.float32)
            j = 0
            while j + 16 <= d:
                for lane in range(16):
                    s[lane] += qs[q, j + lane] * np.float32(codes[v, j + lane])
                j += 16
            for lane in range(d - j):
                s[lane] += qs[q, j + lane] * np.float32(codes[v, j + lane])
            for lane in range(8):
                s[lane] += s[lane + 8]
            for lane in range(4):
                s[lane] += s[lane + 4]
            out[q, c] = (s[0] + s[2]) + (s[1] + s[3])


@njit(parallel=True, boundscheck=False, nogil=True)
def quantize_tables(tables, luts, alpha, beta, top):
    """Float tables (nq, S, E) -> integer tables in [0, top] with one step per query; the twin of the
    native lut4_quantize_tables (top 127): same float32 steps.
    Rows of ``luts`` past S (padding) are set to zero."""
    nq, S, E = tables.shape
    for q in prange(nq):
        span = np.float32(0.0)
        offset = np.float32(0.0)
        lo = np.empty(S, dtype=np.float32)
        for j in range(S):
            mn = tables[q, j, 0]
            mx = tables[q, j, 0]
            for c in range(1, E):
                mn = min(mn, tables[q, j, c])
                mx = max(mx, tables[q, j, c])
            lo[j] = mn
            span = max(span, mx - mn)
            offset = offset + mn
        step = span / np.float32(top) if span > 0 else np.float32(1.0)
        for j in range(S):
            for c in range(E):
                v = np.rint((tables[q, j, c] - lo[j]) / step)
                v = min(max(v, np.float32(0.0)), np.float32(top))
                luts[q, j, c] = v
        for j in range(S, luts.shape[1]):
            for c in range(E):
                luts[q, j, c] = 0
        alpha[q] = step
        beta[q] = offset


@njit(parallel=True, boundscheck=False, nogil=True)
def pq_tables(x, centroids, l2, out):
    """Twin of the native pq_tables: out[q, s, c] = sum_d x[q, s*dsub + d] * centroids[s, c, d] in d order
    (l2: 2 * that - |centroids[s, c]|^2), the same float32 operations in the same order."""
    nq = x.shape[0]
    m, k, dsub = centroids.shape
    norms = np.zeros((m, k), dtype=np.float32)
    if l2:
        for s in range(m):
            for c in range(k):
                nrm = np.float32(0.0)
                for d in range(dsub):
                    nrm += centroids[s, c, d] * centroids[s, c, d]
                norms[s, c] = nrm
    for q in prange(nq):
        for s in range(m):
            for c in range(k):
                acc = np.float32(0.0)
                for d in range(dsub):
                    acc += x[q, s * dsub + d] * centroids[s, c, d]
                out[q, s, c] = np.float32(2.0) * acc - norms[s, c] if l2 else acc

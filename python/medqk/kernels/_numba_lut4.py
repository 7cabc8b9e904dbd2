"""Numba twins of the 4-bit table scan (csrc/runtime/lut4_search.cpp): same layout, same ids."""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.extending import register_jitable

from ._layout import lut4_block_bytes, lut4_code, lut4_even, lut4_row, lut4_shift, lut4_sub_offset
from ._numba_search import quantize_tables, topk_of_rows

# the 4-bit layout (kernels/_layout.py) compiles into the twins where they call it: the plain Python
# functions stay as they are for numpy (register_jitable returns them unchanged)
for _f in (lut4_block_bytes, lut4_code, lut4_even, lut4_row, lut4_shift, lut4_sub_offset):
    register_jitable(_f)


@njit(boundscheck=False, nogil=True)
def lut4_pack(codes, packed):
    """codes (n, d) uint8 in 0..15 -> packed (blocks of 32 vectors; layout of kernels/_layout.py)."""
    n, d = codes.shape
    d_even = lut4_even(d)
    packed[:] = 0
    for v in range(n):
        row = lut4_row(v, d_even)
        shift = lut4_shift(v)
        for s in range(d):
            packed[row + lut4_sub_offset(s)] |= np.uint8((codes[v, s] & 15) << shift)


@njit(boundscheck=False, inline="always")
def _lut4_sum(ctx, v):
    """Vector v's exact table sum (uint32 range, as float32: exact below 2^24) for one query's luts (d, 16)."""
    luts_q, packed, d, d_even = ctx
    row = lut4_row(v, d_even)
    shift = lut4_shift(v)
    acc = 0
    for s in range(d):
        acc += luts_q[s, lut4_code(packed, row, s, shift)]
    return np.float32(acc)


@njit(parallel=True, boundscheck=False, nogil=True)
def lut4_search_topk(luts, packed, n, d, alpha, beta, k, scores, ids, allow):
    """Top-k by exact uint32 table sums (ties -> lower id); scores = alpha[q] * sum + beta[q]; rows the
    bitmap ``allow`` clears (empty: none) are skipped."""
    d_even = lut4_even(d)
    for q in prange(luts.shape[0]):
        topk_of_rows(_lut4_sum, (luts[q], packed, d, d_even), n, k, allow, scores[q], ids[q])
        for t in range(k):  # the sums back to scores (padding stays -inf)
            if ids[q, t] >= 0:
                scores[q, t] = alpha[q] * scores[q, t] + beta[q]


@njit(parallel=True, boundscheck=False, nogil=True)
def lut4_decode_s8(packed, d, sub, dim, table, v0, out):
    """Twin of the native lut4_decode_s8: out[i, dim[j]] += table[j, code of vector v0 + i in sub-code
    sub[j]] (int32 sums clamped to -127..127)."""
    n, d_out = out.shape
    d_even = lut4_even(d)
    for i in prange(n):
        v = v0 + i
        row = lut4_row(v, d_even)
        shift = lut4_shift(v)
        acc = np.zeros(d_out, dtype=np.int32)
        for j in range(sub.shape[0]):
            acc[dim[j]] += table[j, lut4_code(packed, row, sub[j], shift)]
        for c in range(d_out):
            out[i, c] = min(127, max(-127, acc[c]))


def lut4_quantize_tables(tables, luts, alpha, beta):
    """Twin of the native lut4_quantize_tables: same float32 steps, same uint8 tables."""
    quantize_tables(tables, luts, alpha, beta, 127.0)  # kernels/lut4_scan.h: kLut4MaxEntry


@njit(parallel=True, boundscheck=False, nogil=True)
def lut4_score_candidates(tables, packed, cand, scores):
    """Twin of the native lut4_score_candidates: exact float32 sums in subspace order."""
    nq, S, _ = tables.shape
    S_even = lut4_even(S)
    kc = cand.shape[1]
    for q in prange(nq):
        for c in range(kc):
            v = cand[q, c]
            if v < 0:
                scores[q, c] = -np.inf
                continue
            row = lut4_row(v, S_even)
            shift = lut4_shift(v)
            acc = np.float32(0.0)
            for j in range(S):
                acc = acc + tables[q, j, lut4_code(packed, row, j, shift)]
            scores[q, c] = acc

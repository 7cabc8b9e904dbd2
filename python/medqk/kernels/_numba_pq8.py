"""Numba twins of the 8-bit PQ search (csrc/runtime/pq8_search.cpp): same layout, same ids and scores."""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.extending import register_jitable

from ._layout import PQ8_BLOCK as BLOCK
from ._layout import pq8_row, pq8_sub_offset
from ._numba_search import topk_of_rows

# the 8-bit layout (kernels/_layout.py) compiles into the twins where they call it (see _numba_lut4)
for _f in (pq8_row, pq8_sub_offset):
    register_jitable(_f)


@njit(boundscheck=False, nogil=True)
def pq8_pack(codes, packed):
    """codes (n, M) uint8 -> packed (blocks of 64 vectors, M rows of 64 bytes each; kernels/_layout.py)."""
    n, m = codes.shape
    packed[:] = 0
    for v in range(n):
        row = pq8_row(v, m)
        for s in range(m):
            packed[row + pq8_sub_offset(s)] = codes[v, s]


@njit(parallel=True, boundscheck=False, nogil=True)
def pq8_scan(lut, packed, n, thr, sums, masks):
    """Twin of the scan kernel: sums[v] = sum_s lut[s, code_s(v)] (uint16) over the padded blocks,
    masks[b] bit j set when sums[64 b + j] >= thr."""
    m = lut.shape[0]
    nblocks = (n + BLOCK - 1) // BLOCK
    for b in prange(nblocks):
        mask = np.uint64(0)
        for j in range(BLOCK):
            row = pq8_row(b * BLOCK + j, m)
            acc = 0
            for s in range(m):
                acc += lut[s, packed[row + pq8_sub_offset(s)]]
            sums[b * BLOCK + j] = acc
            if acc >= thr:
                mask |= np.uint64(1) << np.uint64(j)
        masks[b] = mask


@njit(boundscheck=False, nogil=True)
def pq8_scan_group(lut_t, packed, n, thr, hits, hit_sums):
    """Twin of the group scan: lut_t (M, 256, 16) query-minor tables of 16 queries; every (vector v,
    query g) over the padded blocks with sum_s lut_t[s, code_s(v), g] >= thr[g] is written to hits
    (v * 16 + g) and hit_sums, in order of v then g; returns the count."""
    m = lut_t.shape[0]
    group = lut_t.shape[2]
    nblocks = (n + BLOCK - 1) // BLOCK
    acc = np.empty(group, dtype=np.int64)
    cnt = 0
    for v in range(nblocks * BLOCK):
        row = pq8_row(v, m)
        acc[:] = 0
        for s in range(m):
            c = packed[row + pq8_sub_offset(s)]
            for g in range(group):
                acc[g] += lut_t[s, c, g]
        for g in range(group):
            if acc[g] >= thr[g]:
                hits[cnt] = v * group + g
                hit_sums[cnt] = acc[g]
                cnt += 1
    return cnt


@njit(boundscheck=False, inline="always")
def _pq8_sum(ctx, v):
    """Vector v's float32 sum of one query's tables (m, 256), in subspace order from 0."""
    tables_q, packed, m = ctx
    row = pq8_row(v, m)
    acc = np.float32(0.0)
    for s in range(m):
        acc += tables_q[s, packed[row + pq8_sub_offset(s)]]
    return acc


@njit(parallel=True, boundscheck=False, nogil=True)
def pq8_search_topk(tables, packed, n, k, scores, ids, allow):
    """Exact ADC top-k: every vector's float32 sum of tables[q, s, code_s] in subspace order from 0
    (ties -> lower id). The native search filters with 8-bit tables first and ends with the same result.
    Rows the bitmap ``allow`` clears (empty: none) are skipped."""
    for q in prange(tables.shape[0]):
        topk_of_rows(_pq8_sum, (tables[q], packed, tables.shape[1]), n, k, allow, scores[q], ids[q])

"""Numba twin of the native IVF front end (csrc/runtime/ivf_search.cpp): same keys, same ids, same order."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._numba_lut4 import lut4_block_bytes, lut4_code, lut4_row, lut4_shift  # jit-callable there
from ._numba_search import row_allowed

LUT_MAX = 127  # largest table entry, as kLutMax in csrc/runtime/ivf_search.cpp


@njit(boundscheck=False, inline="always")
def id_allowed(allow, row, n):
    """row_allowed for a vector's id: an id outside 0..n-1 (n = the stored vectors) is not allowed, the native
    scan's rule."""
    return allow.shape[0] == 0 or (0 <= row < n and row_allowed(allow, row))


@njit(parallel=True, boundscheck=False, nogil=True)
def ivf_lut4_search(luts, probes, probe_keys, packed, list_blocks, list_starts, list_ids, k, keys, ids, allow):
    """Per query: integer keys (table sums + probe key) of every vector of its probed lists; the k best by
    (key desc, storage position asc) written by (key desc, id asc), the key as a float32; -inf / -1 when
    fewer were scanned. Vectors whose ids (list_ids entries) the bitmap ``allow`` clears (empty: none) are
    skipped, as are ids outside it."""
    nq, nlut, d_even, _ = luts.shape
    nprobe = probes.shape[1]
    block_bytes = lut4_block_bytes(d_even)
    for q in prange(nq):
        total = 0
        for p in range(nprobe):
            lst = probes[q, p]
            if lst >= 0:
                for pos in range(list_starts[lst], list_starts[lst + 1]):
                    total += id_allowed(allow, list_ids[pos], list_ids.shape[0])
        qkeys = np.empty(total, dtype=np.int64)
        storage = np.empty(total, dtype=np.int64)
        pos = 0
        for p in range(nprobe):
            lst = probes[q, p]
            if lst < 0:
                continue
            t = 0 if nlut == 1 else p
            base0 = list_blocks[lst] * block_bytes
            for i in range(list_starts[lst + 1] - list_starts[lst]):
                if not id_allowed(allow, list_ids[list_starts[lst] + i], list_ids.shape[0]):
                    continue
                row = base0 + lut4_row(i, d_even)
                shift = lut4_shift(i)
                acc = 0
                for s in range(d_even):
                    acc += luts[q, t, s, lut4_code(packed, row, s, shift)]
                qkeys[pos] = acc + probe_keys[q, p]
                storage[pos] = list_starts[lst] + i
                pos += 1
        by_pos = np.argsort(storage, kind="mergesort")
        # stable: equal keys stay in storage order (the native reservoir's tie rule)
        order = by_pos[np.argsort(-qkeys[by_pos], kind="mergesort")]
        nc = min(k, total)
        kk = np.empty(nc, dtype=np.int64)
        ki = np.empty(nc, dtype=np.int64)
        for c in range(nc):
            kk[c] = qkeys[order[c]]
            ki[c] = list_ids[storage[order[c]]]
        by_id = np.argsort(ki, kind="mergesort")
        by_key = by_id[np.argsort(-kk[by_id], kind="mergesort")]  # equal keys: lower id first
        for r in range(k):
            if r < nc:
                keys[q, r] = np.float32(kk[by_key[r]])
                ids[q, r] = ki[by_key[r]]
            else:
                keys[q, r] = -np.inf
                ids[q, r] = -1


@njit(parallel=True, boundscheck=False, nogil=True)
def ivf_quantize_tables(tables, luts, step, offsets):
    """Twin of the native ivf_quantize_tables: one step per query over its nlut table sets, entries
    rounded from (t - lo) * float32(1 / step), offsets summed in float64; the same uint8 tables."""
    nq, nlut, S, E = tables.shape
    for q in prange(nq):
        lo = np.empty((nlut, S), dtype=np.float32)
        span = np.float32(0.0)
        for lst in range(nlut):
            for j in range(S):
                mn = tables[q, lst, j, 0]
                mx = tables[q, lst, j, 0]
                for c in range(1, E):
                    mn = min(mn, tables[q, lst, j, c])
                    mx = max(mx, tables[q, lst, j, c])
                lo[lst, j] = mn
                span = max(span, mx - mn)
        st = span / np.float32(LUT_MAX) if span > 0 else np.float32(1.0)
        inv = np.float32(1.0) / st
        for lst in range(nlut):
            off = 0.0
            for j in range(S):
                m = lo[lst, j]
                for c in range(E):
                    v = np.rint((tables[q, lst, j, c] - m) * inv)
                    luts[q, lst, j, c] = min(max(v, np.float32(0.0)), np.float32(LUT_MAX))
                off += np.float64(m)
            for j in range(S, luts.shape[2]):
                for c in range(E):
                    luts[q, lst, j, c] = 0
            offsets[q, lst] = off
        step[q] = st

"""Numba twin of the native IVF front end (csrc/runtime/ivf_search.cpp): same keys, same candidates, same
float scores, same ids."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

LUT_MAX = 127  # largest table entry, as kLutMax in csrc/runtime/ivf_search.cpp


@njit(parallel=True, boundscheck=False, nogil=True)
def ivf_lut4_search(luts, tables, probes, probe_keys, probe_bias, packed, list_blocks, list_starts, list_ids, kc, k,
                    scores, ids, rescore=True):
    """Per query: integer keys (table sums + probe key) of every vector of its probed lists, the kc best
    by (key desc, storage position asc), re-scored as probe bias + float table sums (8 partial sums, as native), the k
    best by (score desc, id asc); -inf / -1 when fewer were scanned. rescore=False: the k best keys in that
    order, the key as the score (candidates for a later re-ranking)."""
    nq, nlut, d_even, _ = luts.shape
    d = tables.shape[2]
    nprobe = probes.shape[1]
    block_bytes = 16 * d_even
    for q in prange(nq):
        total = 0
        for p in range(nprobe):
            lst = probes[q, p]
            if lst >= 0:
                total += list_starts[lst + 1] - list_starts[lst]
        keys = np.empty(total, dtype=np.int64)
        probe_of = np.empty(total, dtype=np.int64)
        index_of = np.empty(total, dtype=np.int64)
        pos = 0
        for p in range(nprobe):
            lst = probes[q, p]
            if lst < 0:
                continue
            t = 0 if nlut == 1 else p
            base0 = list_blocks[lst] * block_bytes
            for i in range(list_starts[lst + 1] - list_starts[lst]):
                base = base0 + (i // 32) * block_bytes + i % 16
                shift = 0 if (i % 32) < 16 else 4
                acc = 0
                for s in range(d):
                    acc += luts[q, t, s, (packed[base + 32 * (s // 2) + 16 * (s & 1)] >> shift) & 15]
                keys[pos] = acc + probe_keys[q, p]
                probe_of[pos] = p
                index_of[pos] = i
                pos += 1
        storage = np.empty(total, dtype=np.int64)
        for j in range(total):
            storage[j] = list_starts[probes[q, probe_of[j]]] + index_of[j]
        by_pos = np.argsort(storage, kind="mergesort")
        # stable: equal keys stay in storage order (the native reservoir's tie rule)
        order = by_pos[np.argsort(-keys[by_pos], kind="mergesort")]
        nc = min(kc, total)
        if not rescore:
            for r in range(k):
                if r < nc:
                    j = order[r]
                    scores[q, r] = np.float32(keys[j])
                    ids[q, r] = list_ids[list_starts[probes[q, probe_of[j]]] + index_of[j]]
                else:
                    scores[q, r] = -np.inf
                    ids[q, r] = -1
            continue
        cs = np.empty(nc, dtype=np.float32)
        ci = np.empty(nc, dtype=np.int64)
        part = np.empty(8, dtype=np.float32)
        for c in range(nc):
            j = order[c]
            p = probe_of[j]
            i = index_of[j]
            lst = probes[q, p]
            t = 0 if nlut == 1 else p
            base = (list_blocks[lst] + i // 32) * block_bytes + i % 16
            shift = 0 if (i % 32) < 16 else 4
            part[:] = 0  # the native order: s[j % 8], then pairwise
            for s in range(d):
                part[s % 8] += tables[q, t, s, (packed[base + 32 * (s // 2) + 16 * (s & 1)] >> shift) & 15]
            acc = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]))
            cs[c] = acc + probe_bias[q, p]
            ci[c] = list_ids[list_starts[lst] + i]
        by_id = np.argsort(ci, kind="mergesort")
        by_score = np.argsort(-cs[by_id], kind="mergesort")  # stable: equal scores keep the lower id first
        for r in range(k):
            if r < nc:
                j = by_id[by_score[r]]
                scores[q, r] = cs[j]
                ids[q, r] = ci[j]
            else:
                scores[q, r] = -np.inf
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

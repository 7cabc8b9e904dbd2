"""Numba twins of the 1-bit RaBitQ scan (medqk.quantizers.rabitq): AND-popcount over 64-bit words.

Layout: a vector's sign code and each query bit plane are W = ceil(d / 64) uint64 words (the bytes of
``quantizers.rabitq.pack_bits`` zero-padded to whole words, :func:`to_words`); ``mask`` has the bits of the d
dimensions set, so padding bits of a code are never counted. The integer results are exact:
``ip_int = sum_j 2^j popcount(code & plane_j)`` (< d 2^B) and ``pop = popcount(code & mask)``; the float
score ``add[v] + qa[q] + mult[v] * (c1[q] ip_int + c2[q] pop + c3[q])`` is evaluated in float32 in exactly
that order (no fast-math: numpy gives the same bits, see medqk.quantizers.rabitq.scan_scores; so do the native kernels,
csrc/runtime/rabitq_search.cpp).

The multi-bit codes (rabitq<b>) go through the same twins unchanged: the index hands them one code of b d
dimensions (the b bit planes one after the other), query planes that weight plane k by 2^k, and the code
sums S in place of ``pop`` (medqk.quantizers.rabitq, "Multi-bit scan").
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from ..quantizers.rabitq import scan_scores as scores_reference  # noqa: F401  (the numpy form, for the tests)
from ._numba_search import _heap_push, _write_sorted, row_allowed


@intrinsic
def _popcount64(typingctx, x):
    """llvm.ctpop.i64 (one popcnt instruction where the CPU has it)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


def to_words(packed: np.ndarray, dim: int) -> np.ndarray:
    """(n, ceil(d / 8)) uint8 codes or planes -> (n, ceil(d / 64)) uint64, zero-padded (no copy when d is a
    multiple of 64)."""
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    words = (dim + 63) // 64
    if packed.shape[-1] != words * 8:
        pad = np.zeros(packed.shape[:-1] + (words * 8,), dtype=np.uint8)
        pad[..., : packed.shape[-1]] = packed
        packed = pad
    return packed.view(np.uint64)


def dim_mask(dim: int) -> np.ndarray:
    """(ceil(d / 64),) uint64 with the bits of the d dimensions set."""
    ones = np.packbits(np.ones((1, dim), dtype=bool), axis=1, bitorder="little")
    return to_words(ones, dim)[0].copy()


@njit(parallel=True, boundscheck=False, nogil=True)
def rabitq_popcounts(codes, mask, pop):
    """pop[v] = popcount(codes[v] & mask): the number of positive signs of each vector."""
    n, w_count = codes.shape
    for v in prange(n):
        p = np.uint64(0)
        for w in range(w_count):
            p += _popcount64(codes[v, w] & mask[w])
        pop[v] = np.int32(p)


@njit(boundscheck=False, nogil=True, inline="always")
def _and_popcount_dot(codes, v, planes, q):
    """sum_j 2^j popcount(codes[v] & planes[q, j])."""
    acc = np.uint64(0)
    for j in range(planes.shape[1]):
        s = np.uint64(0)
        for w in range(codes.shape[1]):
            s += _popcount64(codes[v, w] & planes[q, j, w])
        acc += s << np.uint64(j)
    return acc


@njit(parallel=True, boundscheck=False, nogil=True)
def rabitq_scan_ints(codes, planes, ip_out):
    """ip_out[q, v] = sum_j 2^j popcount(codes[v] & planes[q, j]) (int32; planes are 0 past d)."""
    n = codes.shape[0]
    for q in prange(planes.shape[0]):
        for v in range(n):
            ip_out[q, v] = np.int32(_and_popcount_dot(codes, v, planes, q))


@njit(parallel=True, boundscheck=False, nogil=True)
def rabitq_search_topk(codes, pop, planes, qa, c1, c2, c3, mult, add, k, scores, ids, allow):
    """Top-k of the float32 scores of the module doc over the n vectors the allow-bitmap lets in (empty: all;
    medqk.index._ids), ties -> lower id; rows end with (-inf, -1) when fewer than k pass."""
    n = codes.shape[0]
    for q in prange(planes.shape[0]):
        hs = np.empty(k, dtype=np.float32)
        hi = np.empty(k, dtype=np.int64)
        size = 0
        for v in range(n):
            if not row_allowed(allow, v):
                continue
            ip = np.float32(_and_popcount_dot(codes, v, planes, q))
            t = c1[q] * ip + c2[q] * np.float32(pop[v]) + c3[q]
            s = add[v] + qa[q] + mult[v] * t
            if size < k or s > hs[0]:  # the heap's own test, ahead of the call: most vectors stop here
                size = _heap_push(hs, hi, size, k, s, v)
        _write_sorted(hs, hi, size, scores[q], ids[q])

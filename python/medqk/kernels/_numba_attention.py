"""Numba twin of the fused self-attention (csrc/kernels/scalar/attention_scalar.cpp): the same float32
operations in the same order (dot products in order d, exponentials and sums in order j), one (sequence,
head) per parallel task. Float results equal the scalar kernel's up to the exp of each library.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, boundscheck=False, nogil=True, cache=True)
def attention_f32(q, k, v, lengths, heads, scale, out):
    """out[rows of sequence b, columns of head h] = softmax(scale * q k^T) v over the lengths[b] first rows of
    the sequence (keys past it take no part); rows past lengths[b] are 0. q, k, v, out: (batch * length,
    heads * dh) float32; lengths (batch,) int64; scale float32."""
    batch = lengths.shape[0]
    length = q.shape[0] // batch
    dh = q.shape[1] // heads
    for t in prange(batch * heads):
        b = t // heads
        c0 = (t % heads) * dh
        r0 = b * length
        n = lengths[b]
        for i in range(n, length):
            for d in range(dh):
                out[r0 + i, c0 + d] = np.float32(0.0)
        p = np.empty(max(n, 1), dtype=np.float32)
        for i in range(n):
            best = np.float32(-np.inf)
            for j in range(n):
                dot = np.float32(0.0)
                for d in range(dh):
                    dot += q[r0 + i, c0 + d] * k[r0 + j, c0 + d]
                p[j] = scale * dot
                best = max(best, p[j])
            total = np.float32(0.0)
            for j in range(n):
                p[j] = np.float32(math.exp(p[j] - best))
                total += p[j]
            for d in range(dh):
                acc = np.float32(0.0)
                for j in range(n):
                    acc += p[j] * v[r0 + j, c0 + d]
                out[r0 + i, c0 + d] = acc
            inv = np.float32(1.0) / total
            for d in range(dh):
                out[r0 + i, c0 + d] *= inv

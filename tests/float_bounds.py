"""Rounding-error bounds for float32 results, so that tests compare with a float64 reference by a tolerance
derived from the computation instead of a guessed rtol.

A float32 sum of n products computed in any order (any BLAS kernel, thread split, SIMD width or FMA use)
differs from the exact sum by at most gamma(n) * sum |terms|, gamma(n) = n u / (1 - n u), u = 2**-24
(Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., section 3.1; gamma(a) + gamma(b) +
gamma(a) gamma(b) <= gamma(a + b), lemma 3.3). Two float32 computations of one value in different orders
(OpenBLAS sgemm rounds a row differently with the batch size and the thread count) differ by at most the
sum of their two bounds.
"""

from __future__ import annotations

import math  # noqa: F401

import numpy as np

U32 = 2.0**-24  # unit roundoff of float32


def gamma(n: int) -> float:
    """Higham's gamma_n for float32: the relative error bound of n chained float32 operations."""
    return n * U32 / (1 - n * U32)


def pq_adc_reference(codec, q: np.ndarray, codes: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact (float64) scores of the PQ / OPQ codes (..., M) against queries q (nq, d) as an index reports
    them (ip: q . x_hat; l2: |q - x_hat|^2), and for each the bound on the error of any float32 evaluation.

    The float32 path is: q' = q @ R (OPQ only: d products per entry), per subspace the table entry
    q'_m . c (l2: 2 q'_m . c - |c|^2: 2 dsub + 1 operations), the sum of the M entries, and for l2
    |q|^2 (d products) minus that sum (one operation). Each step's error is at most gamma of its
    operation count times the magnitudes it combines, each <= (1 + gamma(K)) S with S = sum_j |q R|_j |y_j|
    for ip, S = |q|^2 + sum_j (2 |q R|_j |y_j| + y_j^2) for l2 (|q R| = |q| @ |R|, y: the codes'
    centroids in the rotated space); adding the steps (lemma 3.3),
    |float32 - exact| <= gamma(K) (1 + gamma(K)) S, K = (d for R) + (2 dsub + 1) + M (+ d + 1 for l2).
    codes has shape (nq, k, M) (one row of candidates per query); returns two (nq, k) float64 arrays.
    """
    from medqk.quantizers.pq import PQCodec

    nq, k, M = codes.shape
    d = q.shape[1]
    rotation = getattr(codec, "rotation", None)
    r64 = np.eye(d) if rotation is None else rotation.astype(np.float64)
    q64 = q.astype(np.float64)
    qr, qr_mag = q64 @ r64, np.abs(q64) @ np.abs(r64)  # (nq, d)
    y = PQCodec.decode_sub(codec, codes.reshape(-1, M)).astype(np.float64).reshape(nq, k, d)  # rotated space
    cross = np.einsum("qd,qkd->qk", qr, y)
    cross_mag = np.einsum("qd,qkd->qk", qr_mag, np.abs(y))
    ops = (0 if rotation is None else d) + 2 * codec.dsub + 1 + M
    if metric == "ip":
        return cross, gamma(ops) * (1 + gamma(ops)) * cross_mag
    qn = (q64 * q64).sum(1)[:, None]
    score = qn - 2 * cross + (y * y).sum(-1)
    ops += d + 1
    return score, gamma(ops) * (1 + gamma(ops)) * (qn + 2 * cross_mag + (y * y).sum(-1))


def sqnorm_of_product(y: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact (float64) |y_i @ m|^2 per row of y (n, d) and the bound on any float32 evaluation of it
    (the product by an sgemm in any order, then the sum of squares): with x = y @ m and a = |y| @ |m|,
    the product's error is <= gamma(d) a_j per entry, and the sum of d squares adds gamma(d) sum x_j^2,
    so |float32 - exact| <= gamma(3 d) sum_j (2 |x_j| a_j + a_j^2) (|x_j| <= a_j)."""
    y64, m64 = y.astype(np.float64), m.astype(np.float64)
    x, a = y64 @ m64, np.abs(y64) @ np.abs(m64)
    return (x * x).sum(1), gamma(3 * y.shape[1]) * (2 * np.abs(x) * a + a * a).sum(1)


ATTENTION_EXP_REL_ERROR = 4e-7  # kernels/attention.h: kAttentionExpRelError (SIMD exp); libm's is below it


def attention_reference(q, k, v, lengths, heads, scale):
    """The exact result (float64) and, per entry, the bound on any float32 evaluation of it.

    Each score scale * <q_i, k_j> is a sum of dh products, off by at most e_j = gamma(dh + 1) * scale *
    sum |q_d k_jd|. The softmax's weights depend on the differences of scores only; perturbing every log-weight
    by at most D changes each weight by a factor in [e^-2D, e^2D], so sum_j |w^_j - w_j| |v_jd| <= (e^2D - 1)
    max_j |v_jd|, with D = 2 max e_j (a score and the max) + 87 u (the rounding of s_j - max, |.| <= 87 where
    exp is not flushed) + the exp's relative error + gamma(len + 2) (the sum of weights, the division). The
    weighted sum of v adds gamma(len + 3) e^2D max_j |v_jd|; flushed weights (exp(x) < 2^-125) at most
    len * 2^-125 max |v|.
    """
    out = np.zeros(q.shape)
    bound = np.zeros(q.shape)
    length = q.shape[0] // len(lengths)
    dh = q.shape[1] // heads
    for b, n in enumerate(lengths):
        for h in range(heads):
            rows, cols = slice(b * length, b * length + n), slice(h * dh, (h + 1) * dh)
            if n == 0:
                continue
            qq, kk, vv = (t[rows, cols].astype(np.float64) for t in (q, k, v))
            s = scale * qq @ kk.T
            w = np.exp(s - s.max(axis=1, keepdims=True))
            w /= w.sum(axis=1, keepdims=True)
            out[rows, cols] = w @ vv
            e = gamma(dh + 1) * abs(scale) * (np.abs(qq) @ np.abs(kk).T)
            d = 2 * e.max(axis=1) + 87 * U32 + ATTENTION_EXP_REL_ERROR + gamma(n + 2)
            grow = np.exp(2 * d)[:, None]
            vmax = np.abs(vv).max(axis=0)[None, :]
            bound[rows, cols] = ((grow - 1) + gamma(n + 3) * grow) * vmax + n * 2.0**-125 * vmax
    return out, bound


def gelu_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact GELU (float64 erf) and the bound on the float32 evaluation kernels/gelu.h describes: the A&S tail
    is off by at most 1.5e-7 (absolute); its float32 evaluation (z, t, 5 Horner steps, the product with exp)
    by gamma(16) plus the exp's relative error times its size (<= 1); the last step by gamma(3) of the result."""
    x64 = x.astype(np.float64)
    erf = np.vectorize(math.erf)(x64 / math.sqrt(2))
    exact = 0.5 * x64 * (1 + erf)
    tail = 1 - np.vectorize(math.erf)(np.abs(x64) / math.sqrt(2))
    bound = 0.5 * np.abs(x64) * (1.5e-7 + (gamma(16) + ATTENTION_EXP_REL_ERROR) * tail * 2) + gamma(3) * np.abs(exact)
    return exact, bound + 1e-45

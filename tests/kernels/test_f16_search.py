"""fp16 search kernel (f16_search_topk) on every ISA: the ids of a float64 reference on the float16-rounded
vectors, the tie rule (equal scores -> lower id, duplicates split between threads included), the scalar
ISA's documented float32 order bit for bit, and every ISA's scores within a bound derived from d.

score(i, j) = alpha * (q_i . float(x_j)) + bias[j] (csrc/runtime/search_f16.cpp). The scalar kernel adds the
products in order p = 0..d-1, multiply and add apart (the library is built with -ffp-contract=off); SIMD
kernels add in other orders (tests/float_bounds.py: gamma).
"""

from __future__ import annotations

import numpy as np
import pytest

import medqk
from medqk import _backend

from ..float_bounds import gamma

pytestmark = pytest.mark.skipif(_backend._core is None, reason="native module not built")


def grid_halves(rng, shape):
    """Multiples of 1/8 in [-2, 2]: float16 holds them, and float32 every product (a multiple of 1/64) and
    every sum of up to 2^12 of them, so all ISAs and orders give the exact score and true ties."""
    return (rng.integers(-16, 17, shape) / 8).astype(np.float16)


def exact_scores(q, x16, alpha, bias):
    """float64 scores of the float16 vectors (nq, n), and S = alpha * |q| . |x| + |bias|, the magnitude the
    float32 roundings scale with."""
    q64, x64 = q.astype(np.float64), x16.astype(np.float64)
    b = 0.0 if bias is None else bias.astype(np.float64)[None, :]
    return alpha * (q64 @ x64.T) + b, abs(alpha) * (np.abs(q64) @ np.abs(x64).T) + np.abs(b)


def ranked(scores, k):
    """ids of the k best of each row, larger first, equal scores -> lower id."""
    n = scores.shape[1]
    return np.lexsort((np.broadcast_to(np.arange(n), scores.shape), -scores), axis=1)[:, :k]


def scalar_order(q, x16, alpha, bias):
    """The scalar kernel's float32 operations: products added from p = 0, then alpha *, then + bias."""
    x32 = x16.astype(np.float32)
    acc = np.zeros((q.shape[0], x16.shape[0]), np.float32)
    for p in range(q.shape[1]):
        acc += q[:, p, None] * x32[None, :, p]
    acc = np.float32(alpha) * acc
    return acc if bias is None else acc + bias[None, :]


def search(q, x16, alpha, bias, k, threads):
    return _backend._core.f16_search_topk(q, x16.view(np.uint16), alpha, bias, k, threads)


# (nq, n, d, k, threads): one vector; k past n (padding); blocks of 32 queries and 512 vectors with tails; and
# nq * n * d >= 2^20 with one query block, where 2 threads split the vectors and merge their lists
TIE_CASES = [(3, 1, 5, 4, 1), (5, 60, 8, 60, 2), (4, 60, 3, 70, 1), (37, 1100, 9, 25, 2), (2, 6000, 96, 40, 2)]


@pytest.mark.parametrize("nq,n,d,k,threads", TIE_CASES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_ties_and_ids_exact_on_every_isa(nq, n, d, k, threads, with_bias):
    """Exact arithmetic (grid_halves): ids equal the float64 ranking, ties by lower id, scores exact; k may
    exceed the number of distinct scores (a zero query: every score equal) and the number of vectors."""
    rng = np.random.default_rng(n * 31 + d)
    x16 = grid_halves(rng, (n, d))
    if n >= 8:
        x16[n - n // 4 :] = x16[: n // 4]  # duplicates at far-apart ids (other thread's half when split)
        x16[n // 2] = x16[n - 1]
    q = grid_halves(rng, (nq, d)).astype(np.float32)
    q[0] = 0.0  # every score is the bias: the k best are the ids of the largest biases, lowest first
    bias = (rng.integers(-4, 5, n) / 8).astype(np.float32) if with_bias else None
    alpha = 2.0 if with_bias else 1.0
    exact, _ = exact_scores(q, x16, alpha, bias)
    m = min(k, n)
    want_i = ranked(exact, m)
    want_s = np.take_along_axis(exact, want_i, axis=1).astype(np.float32)
    if m > 9:  # the zero query scores the bias (at most 9 values) or 0: k is past its distinct scores
        assert len(np.unique(exact[0])) < m
    for isa in medqk.available_isas():
        with medqk.use_isa(isa):
            s, i = search(q, x16, alpha, bias, k, threads)
        np.testing.assert_array_equal(i[:, :m], want_i, err_msg=isa)
        np.testing.assert_array_equal(s[:, :m], want_s, err_msg=isa)
        assert (i[:, m:] == -1).all() and np.isneginf(s[:, m:]).all()


@pytest.mark.parametrize("d", [1, 3, 8, 9, 17, 64, 385])
@pytest.mark.parametrize("with_bias", [False, True])
def test_scores_within_the_bound_and_scalar_order(d, with_bias):
    """Random halves: the scalar ISA equals its documented float32 order bit for bit, ids included (ties of
    rounded scores -> lower id); every ISA's scores are within gamma(d + 2) S of the float64 score (d
    products and sums, alpha *, + bias) and its ids are the float64 ranking wherever that bound cannot
    reorder the k + 1 best."""
    rng = np.random.default_rng(d)
    nq, k = 37, 10  # 530 vectors: a block of 512 and a tail; distinct rows (equal scores: the test above)
    x16 = np.unique(rng.standard_normal((530, d)).astype(np.float16), axis=0)
    x16 = x16[rng.permutation(len(x16))]
    n = len(x16)
    q = rng.standard_normal((nq, d)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
    alpha = 2.0 if with_bias else 1.0
    exact, mag = exact_scores(q, x16, alpha, bias)
    bound = gamma(d + 2) * (1 + gamma(d + 2)) * mag
    scalar = scalar_order(q, x16, alpha, bias)
    assert (np.abs(scalar - exact) <= bound).all()  # the bound holds for the documented order itself
    want_i = ranked(exact, k)
    # rows whose k + 1 best exact scores are further apart than the bounds of both: no rounding reorders them
    top = np.take_along_axis(exact, ranked(exact, k + 1), axis=1)
    slack = np.take_along_axis(bound, ranked(exact, k + 1), axis=1)
    clear = ((top[:, :-1] - slack[:, :-1]) > (top[:, 1:] + slack[:, 1:])).all(axis=1)
    assert clear.mean() >= 0.85, clear.mean()  # a property of the data: the id check covers most rows
    for isa in medqk.available_isas():
        with medqk.use_isa(isa):
            s, i = search(q, x16, alpha, bias, k, 2)
        if isa == "scalar":
            order = ranked(scalar, k)
            np.testing.assert_array_equal(i, order)
            np.testing.assert_array_equal(s, np.take_along_axis(scalar, order, axis=1))
        assert (np.abs(s - np.take_along_axis(exact, i, axis=1)) <= np.take_along_axis(bound, i, axis=1)).all(), isa
        np.testing.assert_array_equal(i[clear], want_i[clear], err_msg=isa)
        assert (np.diff(s, axis=1) <= 0).all()

"""The +rerank:int8 step: re-scoring 200 candidates per query (a MedQuAD-sized int8 store, 384-d) and keeping
the best 10, fused natively (s8_rerank_topk, ISA kernel s8_score_candidates) on every ISA, against the Numba
twin of the scores plus numpy's lexsort, which is what the Numba backend runs.

Checked exactly, ids and scores: every ISA's s8_score_candidates and its Numba twin add in one documented
order (medqk.h, kernels/s8_score.h: 16 partial sums by j mod 16, then a fixed tree), which `lane_scores`
repeats in numpy, so the floats are the same bits everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
from _checks import ISAS

import medqk
from medqk import _backend

NQ, KC, K, D, N = 512, 200, 10, 384, 15825


@pytest.fixture(scope="module")
def operands():
    rng = np.random.default_rng(0)
    qs = rng.standard_normal((NQ, D)).astype(np.float32)
    codes = rng.integers(-128, 128, (N, D), dtype=np.int8)
    cand = np.stack([rng.choice(N, KC, replace=False) for _ in range(NQ)]).astype(np.int64)
    cand[::7, 3] = -1  # the padding an IVF base leaves: scores -inf
    qbias = rng.standard_normal(NQ).astype(np.float32)
    sqnorms = (rng.random(N) * 4 * D).astype(np.float32)
    return qs, codes, cand, qbias, sqnorms


def lane_scores(qs, codes, cand):
    """s8_score_candidates in numpy, in its order: lane l = j mod 16 adds q[j] * float(code[j]) in increasing
    j (multiply, then add), then s[l] += s[l + 8], s[l] += s[l + 4], (s0 + s2) + (s1 + s3); id -1 -> -inf."""
    valid = cand >= 0
    rows = np.where(valid, cand, 0)
    s = np.zeros((16,) + cand.shape, np.float32)
    for j in range(qs.shape[1]):
        s[j % 16] += qs[:, j, None] * codes[rows, j].astype(np.float32)
    s[:8] += s[8:]
    s[:4] += s[4:8]
    return np.where(valid, (s[0] + s[2]) + (s[1] + s[3]), np.float32(-np.inf))


@pytest.fixture(scope="module")
def scores_ref(operands):
    qs, codes, cand, _, _ = operands
    return lane_scores(qs, codes, cand)


def rerank_reference(scores, cand, qbias, sqnorms):
    """s8_rerank_topk's steps on the candidates' scores: + qbias, then (l2) 2 v - sqnorms, in float32; the best K
    by (score desc, id asc)."""
    v = scores + qbias[:, None]
    if sqnorms is not None:
        v = np.where(cand >= 0, 2 * v - sqnorms[np.where(cand >= 0, cand, 0)], v)
    order = np.lexsort((cand, -v), axis=1)[:, :K]
    return np.take_along_axis(v, order, axis=1), np.take_along_axis(cand, order, axis=1)


def numba_rerank(qs, codes, cand, qbias):
    from medqk.kernels import _numba_search

    s = np.empty(cand.shape, np.float32)
    _numba_search.s8_score_candidates(qs, codes, cand, s)
    s = s + qbias[:, None]
    order = np.lexsort((cand, -s), axis=1)[:, :K]
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(cand, order, axis=1)


@pytest.mark.benchmark(group="s8_rerank_topk 512 x 200 candidates")
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("isa", ISAS)
def test_rerank_int8(benchmark, operands, scores_ref, isa, metric):
    qs, codes, cand, qbias, sqnorms = operands
    norms = sqnorms if metric == "l2" else None
    benchmark.extra_info["isa"] = isa
    with medqk.use_isa(isa):
        scores, ids = benchmark(_backend._core.s8_rerank_topk, qs, codes, cand, qbias, norms, K, 1)
    want_s, want_i = rerank_reference(scores_ref, cand, qbias, norms)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(scores, want_s)


@pytest.mark.benchmark(group="s8_rerank_topk 512 x 200 candidates")
def test_rerank_int8_numba(benchmark, operands, scores_ref):
    qs, codes, cand, qbias, _ = operands
    numba_rerank(qs[:1], codes, cand[:1], qbias[:1])  # compile
    scores, ids = benchmark(numba_rerank, qs, codes, cand, qbias)
    want_s, want_i = rerank_reference(scores_ref, cand, qbias, None)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(scores, want_s)


@pytest.mark.benchmark(group="s8_score_candidates 512 x 200 candidates")
@pytest.mark.parametrize("isa", ISAS)
def test_s8_score_candidates(benchmark, operands, scores_ref, isa):
    qs, codes, cand, _, _ = operands
    with medqk.use_isa(isa):
        scores = benchmark(_backend._core.s8_score_candidates, qs, codes, cand, 1)
    np.testing.assert_array_equal(scores, scores_ref)
    assert np.isneginf(scores[::7, 3]).all()


def test_reference_order_matters(operands, scores_ref):
    """The reference's summation order is not a formality: a plain float32 dot of the same rows differs from it
    in the last bits for many candidates, so an ISA kernel that changed its order would fail the checks above."""
    qs, codes, cand, _, _ = operands
    rows = codes[np.maximum(cand[:8], 0)].astype(np.float32)
    plain = np.einsum("qd,qcd->qc", qs[:8], rows)
    assert (plain[cand[:8] >= 0] != scores_ref[:8][cand[:8] >= 0]).mean() > 0.1

"""fp16 flat index on every backend: the ids of a float64 reference on the float16-rounded vectors, the tie rule
(equal scores -> lower id) across the native fused kernel (batches of at most 256 queries), the blockwise
float32 path (larger batches, and the Numba backend) and its merge of database blocks; scores within a bound
derived from d."""

from __future__ import annotations

import numpy as np
import pytest

import medqk.index as mi
from medqk.index import flat

from ..float_bounds import gamma

D = 12


def reference(q, x16, metric, k):
    """float64 scores (ip: q . x; l2: |q - x|^2) of the float16 vectors, best k ids (ties -> lower id), and
    the magnitudes the float32 roundings scale with (ip: |q| . |x|; l2: |q|^2 + 2 |q| . |x| + |x|^2)."""
    q64, x64 = q.astype(np.float64), x16.astype(np.float64)
    cross, cross_mag = q64 @ x64.T, np.abs(q64) @ np.abs(x64).T
    if metric == "ip":
        score, mag, key = cross, cross_mag, -cross
    else:
        qn, xn = (q64**2).sum(1)[:, None], (x64**2).sum(1)[None, :]
        score, mag = qn - 2 * cross + xn, qn + 2 * cross_mag + xn
        key = score
    ids = np.lexsort((np.broadcast_to(np.arange(len(x16)), key.shape), key), axis=1)[:, :k]
    return ids, np.take_along_axis(score, ids, axis=1), score, mag


def _searches(index, q, k, monkeypatch):
    """The index's search of q by each path it has: as it chooses, then over database blocks of 7 vectors
    (the blockwise path merges them, ties kept), then with q repeated past 256 queries (natively the
    blockwise float32 path instead of the fused fp16 kernel)."""
    yield "default", index.search(q, k)
    big = np.concatenate([q] * (257 // len(q) + 1))
    s, i = index.search(big, k)
    yield "257 queries", (s[: len(q)], i[: len(q)])
    monkeypatch.setattr(flat, "_DB_BLOCK", 7)
    yield "blocks of 7", index.search(q, k)
    s, i = index.search(big, k)
    yield "257 queries, blocks of 7", (s[: len(q)], i[: len(q)])


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_fp16_ids_and_ties_exact(backend, metric, monkeypatch):
    """Multiples of 1/8 in [-2, 2]: float16 holds them and float32 every product, sum and norm, so every
    path's scores are exact: ids equal the reference (duplicates and other equal scores: lower id first),
    scores equal it, for k = ntotal and for k past the number of distinct scores of a zero query."""
    rng = np.random.default_rng(4)
    x = (rng.integers(-16, 17, (90, D)) / 8).astype(np.float32)
    x[60:] = x[:30]  # duplicates
    x[45] = x[89]
    q = (rng.integers(-16, 17, (6, D)) / 8).astype(np.float32)
    q[0] = 0.0  # ip: every score 0, the k best are ids 0..k-1; l2: the smallest norms, lower id first
    index = mi.create("fp16", D, metric).add(x[:50]).add(x[50:])
    x16 = x.astype(np.float16)
    for k in (90, 37, 1):
        want_i, want_s, _, _ = reference(q, x16, metric, k)
        if k > 1:  # the zero query: k past its distinct scores
            assert len(np.unique(want_s[0])) < k
        for path, (s, i) in _searches(index, q, k, monkeypatch):
            np.testing.assert_array_equal(i, want_i, err_msg=f"{backend} k={k} {path}")
            np.testing.assert_array_equal(s, want_s.astype(np.float32), err_msg=f"{backend} k={k} {path}")
        monkeypatch.undo()


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("d", [7, 64])
def test_fp16_scores_within_the_bound(backend, metric, d, monkeypatch):
    """Random vectors: every path's scores are within gamma(d + 2) of the magnitudes of the float64 score of the
    float16-rounded vectors (d products and sums; l2: the norms, 2 q . x - |x|^2 and |q|^2 minus it), and its
    ids are the reference's wherever that bound cannot reorder the k + 1 best."""
    rng = np.random.default_rng(d)
    x = np.unique(rng.standard_normal((300, d)).astype(np.float16), axis=0).astype(np.float32)
    x = x[rng.permutation(len(x))]
    q = rng.standard_normal((20, d)).astype(np.float32)
    k = 10
    index = mi.create("fp16", d, metric).add(x)
    want_i, _, exact, mag = reference(q, x.astype(np.float16), metric, k + 1)
    bound = gamma(d + 2) * (1 + gamma(d + 2)) * mag
    top, slack = np.take_along_axis(exact, want_i, axis=1), np.take_along_axis(bound, want_i, axis=1)
    if metric == "l2":
        top = -top  # larger is better below
    clear = ((top[:, :-1] - slack[:, :-1]) > (top[:, 1:] + slack[:, 1:])).all(axis=1)
    assert clear.mean() >= 0.85, clear.mean()  # a property of the data: the id check covers most rows
    for path, (s, i) in _searches(index, q, k, monkeypatch):
        err = np.abs(s - np.take_along_axis(exact, i, axis=1))
        assert (err <= np.take_along_axis(bound, i, axis=1)).all(), f"{backend} {path}"
        np.testing.assert_array_equal(i[clear], want_i[clear, :k], err_msg=f"{backend} {path}")

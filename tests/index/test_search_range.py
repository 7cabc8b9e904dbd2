"""Index.search_range: every vector within a threshold, faiss's (lims, scores, ids) layout, for each flat index
kind and metric, with own ids, removals and filters; refused where the index scores only part of itself."""

from __future__ import annotations

import numpy as np
import pytest

import medqk.index as mi

from .test_flat import data

FLAT = ["float32", "fp16", "int8", "cb4", "pq12x4fs", "pq12x8", "rabitq", "pq12x4fs+rerank:int8"]


def _threshold(scores: np.ndarray, metric: str) -> float:
    """A threshold passing about 5% of the scores, away from any score (no rounding decides membership)."""
    t = np.quantile(scores, 0.05 if metric == "l2" else 0.95)
    gaps = np.sort(np.abs(scores.ravel() - t))
    return float(t + (gaps[0] + gaps[1]) / 2 if gaps[0] < 1e-4 else t)


def _expected(index, q, threshold):
    """Brute force from the index's final-stage scores of every live row: (query, id, score) best first."""
    live = index._allowed_rows(None)  # None: every stored row is live
    rows = np.arange(index._rows.rows) if live is None else np.flatnonzero(live)
    s = np.asarray(index._score_rows(q, rows), dtype=np.float64)
    ids = index._rows.to_user(rows)
    out = []
    for i in range(q.shape[0]):
        if index.metric == "l2":
            d = np.maximum(np.einsum("j,j->", q[i], q[i]) - s[i], 0)
            keep = np.flatnonzero(d <= threshold)
            out.append(sorted(zip(d[keep], ids[keep])))
        else:
            keep = np.flatnonzero(s[i] >= threshold)
            out.append(sorted(zip(-s[i][keep], ids[keep])))
    return out


@pytest.mark.parametrize("metric", ["ip", "l2", "cos"])
@pytest.mark.parametrize("spec", FLAT)
def test_equals_brute_force_over_the_final_scores(backend, spec, metric):
    x, q = data(n=601, nq=7, d=48, seed=3, normalize=metric != "l2")
    index = mi.create(spec, 48, metric).train(x)
    ids = np.arange(601, dtype=np.int64) * 7 + 5  # own ids, not in row order after the removal below
    index.add(x, ids=ids[::-1].copy())
    index.remove(ids[::10])
    full = index.search(q, len(index))[0]
    t = _threshold(full, metric)
    lims, scores, got = index.search_range(q, t)
    assert lims.shape == (8,) and lims[0] == 0 and lims[-1] == scores.size == got.size
    assert scores.dtype == np.float32 and got.dtype == np.int64
    want = _expected(index, q, t)
    for i in range(7):
        rows = slice(lims[i], lims[i + 1])
        assert list(got[rows]) == [int(j) for _, j in want[i]], (spec, metric, i)
        sign = 1 if metric == "l2" else -1
        np.testing.assert_allclose(scores[rows], [sign * s for s, _ in want[i]], rtol=1e-5, atol=1e-5)
        assert not set(got[rows].tolist()) & set(ids[::10].tolist())  # removed ids never come back
    assert 0 < scores.size < 7 * len(index)  # the threshold keeps some and drops some: the check can fail


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_float32_is_the_exact_range_search(metric):
    x, q = data(n=400, nq=9, d=32, seed=5, normalize=False)
    index = mi.create("float32", 32, metric).add(x)
    exact = q.astype(np.float64) @ x.T.astype(np.float64)
    if metric == "l2":
        exact = (q.astype(np.float64) ** 2).sum(1)[:, None] - 2 * exact + (x.astype(np.float64) ** 2).sum(1)[None]
    t = _threshold(exact, metric)
    lims, scores, ids = index.search_range(q, t)
    for i in range(9):
        want = np.flatnonzero(exact[i] <= t) if metric == "l2" else np.flatnonzero(exact[i] >= t)
        want = want[np.lexsort((want, exact[i][want] if metric == "l2" else -exact[i][want]))]
        np.testing.assert_array_equal(ids[lims[i] : lims[i + 1]], want)
        np.testing.assert_allclose(scores[lims[i] : lims[i + 1]], exact[i][want], rtol=1e-4, atol=1e-4)


def test_filter_single_query_and_empty_results():
    x, q = data(n=200, nq=3, d=16, seed=1)
    index = mi.create("int8", 16).train(x).add(x)
    lims, scores, ids = index.search_range(q[0], -1.0)  # every vector passes
    assert lims.tolist() == [0, 200] and sorted(ids.tolist()) == list(range(200))
    assert (np.diff(scores) <= 0).all()
    allow = np.arange(0, 200, 3)
    lims, _, ids = index.search_range(q, -1.0, filter=allow)
    assert lims.tolist() == [0, 67, 134, 201] and set(ids.tolist()) == set(allow.tolist())
    lims, scores, ids = index.search_range(q, 2.0)  # unit vectors: nothing reaches 2
    assert lims.tolist() == [0, 0, 0, 0] and scores.size == ids.size == 0


@pytest.mark.parametrize("spec", ["hnsw", "ivf4,pq8x4fs"])
def test_refused_where_only_part_is_scored(spec):
    x, q = data(n=300, nq=2, d=16, seed=2)
    index = mi.create(spec, 16).train(x).add(x)
    with pytest.raises(TypeError, match="search_range needs a flat index"):
        index.search_range(q, 0.5)


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), "0.5", True, None])
def test_bad_threshold_names_it(threshold):
    x, q = data(n=50, nq=2, d=16, seed=2)
    index = mi.create("float32", 16).add(x)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        index.search_range(q, threshold)


def test_bad_queries_and_empty_index():
    index = mi.create("float32", 16)
    with pytest.raises(RuntimeError, match="the index is empty"):
        index.search_range(np.zeros((1, 16), np.float32), 0.5)
    index.add(data(n=10, d=16)[0])
    with pytest.raises(ValueError, match="q"):
        index.search_range(np.zeros((1, 15), np.float32), 0.5)
    with pytest.raises(ValueError, match="q"):
        index.search_range(np.full((1, 16), np.nan, np.float32), 0.5)

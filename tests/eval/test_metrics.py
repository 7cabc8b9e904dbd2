"""Every metric against a direct computation on small handmade cases."""

from __future__ import annotations

import numpy as np
import pytest

from medqk.eval import metrics as M


def test_recall_counts_ties_at_kth_score():
    ref = np.array([[0.9, 0.8, 0.7]])
    # returned: two true top-3, plus an id whose exact score equals the 3rd reference score (a tie)
    got = np.array([[0.9, 0.7, 0.7]])
    assert M.recall_at_k(got, ref, 3)[0] == 1.0
    got_worse = np.array([[0.9, 0.8, 0.69]])
    assert M.recall_at_k(got_worse, ref, 3)[0] == pytest.approx(2 / 3)
    assert M.recall_at_k(got_worse, ref, 1)[0] == 1.0


def test_recall_padding_counts_as_miss():
    ref = np.array([[3.0, 2.0, 1.0, 0.5]])
    got = np.array([[3.0, 2.0, -np.inf, -np.inf]])
    assert M.recall_at_k(got, ref, 4)[0] == 0.5


def test_duplicates_in_the_corpus():
    # doc 0 and doc 1 are identical: either may be returned for the top-1 without loss
    docs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    q = np.array([[1.0, 0.2]])
    exact = q @ docs.T
    ref = np.sort(exact, axis=1)[:, ::-1]
    for returned in ([0, 1], [1, 0]):
        got = exact[:, returned]
        assert M.recall_at_k(got, ref, 2)[0] == 1.0


def test_threshold_recall_epsilon():
    ref = np.array([[1.0, 0.9]])
    got = np.array([[1.0, 0.8995]])  # within 1e-3 of the 2nd reference score
    assert M.threshold_recall(got, ref, 2)[0] == 1.0
    assert M.recall_at_k(got, ref, 2)[0] == 0.5
    got2 = np.array([[1.0, 0.898]])
    assert M.threshold_recall(got2, ref, 2)[0] == 0.5


def test_relevance_metrics_by_hand():
    ids = np.array([[5, 3, 9, 1], [7, 8, 2, 0], [1, 2, 3, 4]])
    qrels = [[3, 1], [0], []]  # third query has no judgements: excluded
    out = M.relevance_metrics(ids, qrels, k=4)
    assert out["mask"].tolist() == [True, True, False]
    # query 0: hits at ranks 2 and 4
    assert out["mrr"][0] == pytest.approx(1 / 2)
    dcg = 1 / np.log2(3) + 1 / np.log2(5)
    idcg = 1 / np.log2(2) + 1 / np.log2(3)
    assert out["ndcg"][0] == pytest.approx(dcg / idcg)
    assert out["precision"][0] == pytest.approx(2 / 4)
    assert out["recall"][0] == pytest.approx(1.0)
    assert out["f1"][0] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    # query 1: hit at rank 4 only
    assert out["mrr"][1] == pytest.approx(1 / 4)
    assert out["ndcg"][1] == pytest.approx((1 / np.log2(5)) / 1.0)
    assert out["precision"][1] == pytest.approx(1 / 4) and out["recall"][1] == 1.0
    assert len(out["mrr"]) == 2


def test_relevance_no_hits():
    out = M.relevance_metrics(np.array([[1, 2]]), [[9]], k=2)
    for name in ("mrr", "ndcg", "precision", "recall", "f1"):
        assert out[name][0] == 0.0


def test_k_larger_than_results():
    # padded results (-1) never match a relevant doc
    out = M.relevance_metrics(np.array([[4, -1, -1]]), [[4]], k=3)
    assert out["mrr"][0] == 1.0 and out["precision"][0] == pytest.approx(1 / 3)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(0)
    v = rng.random(300)
    a = M.bootstrap_mean_ci(v, seed=3)
    b = M.bootstrap_mean_ci(v, seed=3)
    assert a == b
    mean, lo, hi = a
    assert lo < mean < hi and mean == pytest.approx(v.mean())
    assert hi - lo == pytest.approx(2 * 1.96 * v.std() / np.sqrt(len(v)), rel=0.25)
    d, lo, hi = M.paired_bootstrap_ci(v + 0.1, v, seed=1)
    assert d == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    assert np.isnan(M.bootstrap_mean_ci(np.array([]))[0])


def test_paired_bootstrap_resamples_queries_not_schemes():
    # Two schemes on the same 400 queries: per-query values spread over [0, 1] (easy and hard queries), and
    # the second scheme loses 0.02 +- 0.02 (normal) on each query. Paired, the mean loss is known to within
    # 1.96 * 0.02 / sqrt(400) = 0.002: the CI excludes 0. Unpaired, the query spread (sd 0.29) swamps it.
    rng = np.random.default_rng(11)
    n, loss, noise = 400, 0.02, 0.02
    a = rng.uniform(0.0, 1.0, n)
    b = a - loss + noise * rng.standard_normal(n)
    diff = a - b
    d, lo, hi = M.paired_bootstrap_ci(a, b, n_resamples=1000, seed=7)
    assert d == pytest.approx(diff.mean(), rel=1e-12)
    # paired = the bootstrap CI of the mean per-query difference, with the same resamples
    assert (d, lo, hi) == M.bootstrap_mean_ci(diff, n_resamples=1000, seed=7)
    # The differences are normal, so their resampled means are normal around the mean with sd se (the
    # plug-in standard error), and the percentile bounds sit at mean -+ 1.96 se. Each bound, an order
    # statistic of 1000 resamples, is off by sqrt(p (1 - p) / 1000) / pdf(1.96) = 0.085 se (p = 0.025) in
    # standard deviation: 5 of those is a bound no seed should cross.
    se = diff.std() / np.sqrt(n)
    tol = 5 * np.sqrt(0.025 * 0.975 / 1000) / (np.exp(-1.96**2 / 2) / np.sqrt(2 * np.pi)) * se
    assert lo == pytest.approx(d - 1.96 * se, abs=tol) and hi == pytest.approx(d + 1.96 * se, abs=tol)
    assert 0 < lo and hi - lo < 0.005
    # the premise: what the schemes' own spreads give (unpaired) includes 0 and is ten times wider
    unpaired = 1.96 * np.sqrt(a.var() / n + b.var() / n)
    assert d - unpaired < 0 < d + unpaired and 2 * unpaired > 10 * (hi - lo)

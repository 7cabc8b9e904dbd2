"""Retrieval metrics, per query, so that confidence intervals can be bootstrapped over queries.

Against the exact float reference (``ref_scores`` sorted best first, exact float64 scores of the
returned ids in ``got_scores``; higher is better -- pass negated distances for l2):

- ``recall_at_k``: fraction of the reference top-k found, tie-aware: a returned id whose exact score
  is at least the k-th reference score (within 1e-6 relative) counts, so exact ties in the data never
  show up as a loss.
- ``threshold_recall``: ann-benchmarks' distance-threshold recall: returned results whose score is within
  ``epsilon`` (1e-3, additive) of the k-th reference score.

Against relevance judgements (binary; queries with no relevant document are excluded and counted):
MRR@k, nDCG@k (gain 1 / log2(rank + 1)), precision@k, recall@k, F1@k.
"""

from __future__ import annotations

import numpy as np

TIE_RTOL = 1e-6


def recall_at_k(got_scores: np.ndarray, ref_scores: np.ndarray, k: int) -> np.ndarray:
    """Per-query tie-aware recall@k; got_scores (nq, >=k) exact scores of returned ids (-inf for padding)."""
    kth = ref_scores[:, k - 1 : k]
    thresh = kth - TIE_RTOL * np.maximum(1.0, np.abs(kth))
    return (got_scores[:, :k] >= thresh).sum(axis=1) / k


def threshold_recall(got_scores: np.ndarray, ref_scores: np.ndarray, k: int, epsilon: float = 1e-3) -> np.ndarray:
    kth = ref_scores[:, k - 1 : k]
    return (got_scores[:, :k] >= kth - epsilon).sum(axis=1) / k


def relevance_metrics(ids: np.ndarray, qrels: list[list[int]], k: int = 10) -> dict[str, np.ndarray]:
    """Per-query MRR@k, nDCG@k, P@k, R@k, F1@k over queries with at least one relevant document.

    Returns arrays aligned with ``mask`` (also returned): the queries that have judgements.
    """
    nq = ids.shape[0]
    mask = np.array([len(r) > 0 for r in qrels[:nq]], dtype=bool)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    out = {name: np.zeros(nq) for name in ("mrr", "ndcg", "precision", "recall", "f1")}
    for q in range(nq):
        rel = set(qrels[q])
        if not rel:
            continue
        hits = np.array([int(i) in rel for i in ids[q, :k]], dtype=bool)
        n_hit = int(hits.sum())
        first = np.flatnonzero(hits)
        out["mrr"][q] = 1.0 / (first[0] + 1) if first.size else 0.0
        ideal = discounts[: min(len(rel), k)].sum()
        out["ndcg"][q] = discounts[: len(hits)][hits].sum() / ideal
        p = n_hit / k
        r = n_hit / len(rel)
        out["precision"][q], out["recall"][q] = p, r
        out["f1"][q] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {name: v[mask] for name, v in out.items()} | {"mask": mask}


def bootstrap_mean_ci(values: np.ndarray, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95):
    """(mean, low, high): percentile bootstrap CI of the mean over queries (seeded)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = _resampled_means(values, rng, n_resamples)
    alpha = (1 - level) / 2
    return float(values.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_bootstrap_ci(a: np.ndarray, b: np.ndarray, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95):
    """(mean(a - b), low, high): CI of the mean paired difference, resampling queries (seeded)."""
    return bootstrap_mean_ci(np.asarray(a, np.float64) - np.asarray(b, np.float64), n_resamples=n_resamples,
                             seed=seed, level=level)


def _resampled_means(values: np.ndarray, rng: np.random.Generator, n_resamples: int) -> np.ndarray:
    n = values.size
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 64):  # bounded memory for large query sets
        stop = min(n_resamples, start + 64)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    return means

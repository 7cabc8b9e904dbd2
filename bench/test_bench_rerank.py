"""The +rerank:int8 step: re-scoring 200 candidates per query (a MedQuAD-sized int8 store, 384-d) and keeping
the best 10, fused natively (s8_rerank_topk, ISA kernel s8_score_candidates) against the Numba twin of the
scores plus numpy's lexsort, which is what the Numba backend runs."""

from __future__ import annotations

import numpy as np
import pytest

import medqk
from medqk import _backend

NQ, KC, K, D, N = 512, 200, 10, 384, 15825


@pytest.fixture(scope="module")
def operands():
    rng = np.random.default_rng(0)
    qs = rng.standard_normal((NQ, D)).astype(np.float32)
    codes = rng.integers(-128, 128, (N, D), dtype=np.int8)
    cand = np.stack([rng.choice(N, KC, replace=False) for _ in range(NQ)]).astype(np.int64)
    qbias = rng.standard_normal(NQ).astype(np.float32)
    return qs, codes, cand, qbias


def reference(qs, codes, cand, qbias):
    s = np.einsum("qd,qcd->qc", qs.astype(np.float64), codes[cand].astype(np.float64)) + qbias[:, None]
    return np.take_along_axis(cand, np.argsort(-s, axis=1, kind="stable")[:, :K], axis=1)


def numba_rerank(qs, codes, cand, qbias):
    from medqk.kernels import _numba_search

    s = np.empty(cand.shape, np.float32)
    _numba_search.s8_score_candidates(qs, codes, cand, s)
    s = s + qbias[:, None]
    order = np.lexsort((cand, -s), axis=1)[:, :K]
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(cand, order, axis=1)


@pytest.mark.parametrize("backend", ["native", "numba"])
def test_rerank_int8(benchmark, operands, backend):
    qs, codes, cand, qbias = operands
    if backend == "native":
        if _backend._core is None:
            pytest.skip("native module unavailable")
        run = lambda: _backend._core.s8_rerank_topk(qs, codes, cand, qbias, None, K, 1)  # noqa: E731
    else:
        pytest.importorskip("numba")
        run = lambda: numba_rerank(qs, codes, cand, qbias)  # noqa: E731
    benchmark.extra_info["isa"] = medqk.info()["isa"] if backend == "native" else "numba"
    _, ids = benchmark(run)
    # float32 against float64: the ids agree except at near-ties
    assert (ids == reference(qs, codes, cand, qbias)).mean() > 0.99

"""8-bit PQ search (pq<M>x8, exact ADC): the native search on each ISA and the Numba twin.

M = 48 byte codes (pq48x8 of 384-d embeddings), N = 262,144 random codes, Gaussian tables, k = 10;
nq = 1 (latency: memory-bound) and nq = 32 (a batch: lookup-bound). bench/compare_pq.py has faiss beside it.
"""

from __future__ import annotations

import numpy as np
import pytest

import medqk
from medqk import _backend
from medqk.index import pq8

M, N, K = 48, 262_144, 10


def operands(nq, seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (N, M), dtype=np.uint8)
    tables = rng.standard_normal((nq, M, 256)).astype(np.float32)
    return codes, tables


def check(tables, codes, scores, ids):
    # the first query against numpy: float32 sums in subspace order, the same ids and scores
    acc = np.zeros(N, np.float32)
    for s in range(M):
        acc += tables[0, s, codes[:, s]]
    want = np.lexsort((np.arange(N), -acc))[:K]
    np.testing.assert_array_equal(ids[0], want)
    np.testing.assert_array_equal(scores[0], acc[want])


@pytest.mark.benchmark(group="pq48x8 search N=262144")
@pytest.mark.parametrize("nq", [1, 32])
@pytest.mark.parametrize("isa", medqk.available_isas() if _backend._core is not None else [])
def test_pq8_search_native(benchmark, isa, nq):
    codes, tables = operands(nq)
    with medqk.use_backend("native"), medqk.use_isa(isa):
        packed = pq8.pack(codes)
        scores, ids = benchmark(pq8.search_topk, tables, packed, N, K, 1)
    check(tables, codes, scores, ids)


@pytest.mark.benchmark(group="pq48x8 search N=262144")
@pytest.mark.parametrize("nq", [1, 32])
def test_pq8_search_numba(benchmark, nq):
    pytest.importorskip("numba")
    codes, tables = operands(nq)
    with medqk.use_backend("numba"):
        packed = pq8.pack(codes)
        pq8.search_topk(tables[:1], packed, 64, K, 1)  # compile
        scores, ids = benchmark(pq8.search_topk, tables, packed, N, K, 1)
    check(tables, codes, scores, ids)

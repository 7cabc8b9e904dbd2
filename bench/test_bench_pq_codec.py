"""The portable PQ codec kernels (no ISA dispatch): pq_tables (a query's lookup tables), pq_centroid_sums
(the k-means update) and pq_anisotropic (score-aware codes), each checked exactly against its contract in
medqk.h: the tables' float32 sums in d order without FMA (repeated in numpy), the centroid sums as
numpy.bincount adds them, and the anisotropic codes against the Numba twin, documented to give the same codes.
"""

from __future__ import annotations

import numpy as np
import pytest

from medqk import _backend

SHAPES = [(96, 16, 4), (48, 256, 8)]  # pq96x4fs and pq48x8 on 384-d embeddings
IDS = [f"M{m}xK{k}xd{d}" for m, k, d in SHAPES]


def centroids(m, k, dsub, seed=0):
    return np.random.default_rng(seed).standard_normal((m, k, dsub)).astype(np.float32)


@pytest.mark.benchmark(group="pq_tables 256 queries")
@pytest.mark.parametrize("l2", [False, True], ids=["ip", "l2"])
@pytest.mark.parametrize("m,k,dsub", SHAPES, ids=IDS)
def test_pq_tables(benchmark, m, k, dsub, l2):
    cents = centroids(m, k, dsub)
    q = np.random.default_rng(1).standard_normal((256, m * dsub)).astype(np.float32)
    out = benchmark(_backend._core.pq_tables, q, cents, l2, 1)
    # out[q, s, c] = sum_d q[s * dsub + d] * c[d], multiply then add, in d order from 0 (l2: 2 that - |c|^2,
    # |c|^2 summed the same way)
    qs = q.reshape(256, m, dsub)
    want = np.zeros((256, m, k), np.float32)
    norms = np.zeros((m, k), np.float32)
    for d in range(dsub):
        want += qs[:, :, d, None] * cents[None, :, :, d]
        norms += cents[:, :, d] * cents[:, :, d]
    if l2:
        want = np.float32(2) * want - norms
    np.testing.assert_array_equal(out, want)


@pytest.mark.benchmark(group="pq_centroid_sums n=65536")
@pytest.mark.parametrize("m,k,dsub", SHAPES, ids=IDS)
def test_pq_centroid_sums(benchmark, m, k, dsub):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((65536, m * dsub)).astype(np.float32)
    codes = rng.integers(0, k - 1, (65536, m), dtype=np.uint8)  # centroid k - 1 stays empty
    sums, counts = benchmark(_backend._core.pq_centroid_sums, x, codes, k, 1)
    # float64 sums in increasing row order, as numpy.bincount with weights adds them
    columns = np.ascontiguousarray(x.T, dtype=np.float64).reshape(m, dsub, 65536)
    want = np.empty((m, k, dsub))
    for j in range(m):
        for p in range(dsub):
            want[j, :, p] = np.bincount(codes[:, j], weights=columns[j, p], minlength=k)
    np.testing.assert_array_equal(sums, want)
    np.testing.assert_array_equal(counts, np.stack([np.bincount(codes[:, j], minlength=k) for j in range(m)]))
    assert (counts[:, -1] == 0).all()


@pytest.mark.benchmark(group="pq_anisotropic n=4096, 3 passes")
def test_pq_anisotropic(benchmark):
    # the shape it runs at: score-aware codes are the default of the 4-bit PQ codecs for inner products
    from medqk.kernels import _numba_pq_assign

    m, k, dsub = SHAPES[0]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4096, m * dsub)).astype(np.float32)
    x[5] = 0  # a zero vector: plain squared error
    cents = centroids(m, k, dsub)
    start = rng.integers(0, k, (4096, m), dtype=np.uint8)
    codes = benchmark(_backend._core.pq_anisotropic, x, cents, start, 4.0, 3, 1)
    want = start.copy()
    _numba_pq_assign.pq_anisotropic(x, cents, want, 4.0, 3)
    assert (codes != start).mean() > 0.5  # the descent moved most codes: the comparison is not of the input
    np.testing.assert_array_equal(codes, want)

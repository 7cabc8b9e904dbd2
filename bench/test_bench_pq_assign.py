"""PQ / k-means assignment: pq_assign (native, Numba) against the numpy code it replaced in PQCodec._assign.

The numpy version threads through BLAS: run with OPENBLAS_NUM_THREADS=1 (or 2) to compare like with like.
"""

from __future__ import annotations

import numpy as np
import pytest

import medqk

SHAPES = [(96, 16, 4), (48, 256, 8)]  # pq96x4fs and pq48x8 on 384-d embeddings
IDS = [f"M{m}xK{k}xd{d}" for m, k, d in SHAPES]
N = 65536


def numpy_assign(xs: np.ndarray, cents: np.ndarray):
    """The former PQCodec._assign: a small GEMM per subspace plus an argmin, in row chunks."""
    n, m = xs.shape[0], cents.shape[0]
    codes = np.empty((n, m), dtype=np.int64)
    dist = np.empty((n, m), dtype=np.float32)
    cn = np.einsum("mkd,mkd->mk", cents, cents)
    step = max(1, (1 << 22) // (m * cents.shape[1]))
    for i in range(0, n, step):
        x = xs[i : i + step]
        d2 = np.matmul(x.transpose(1, 0, 2), cents.transpose(0, 2, 1)).transpose(1, 0, 2)  # (b, M, K)
        d2 = cn[None] - 2 * d2
        c = d2.argmin(axis=2)
        codes[i : i + step] = c
        xn = np.einsum("nmd,nmd->nm", x, x)
        dist[i : i + step] = np.take_along_axis(d2, c[..., None], axis=2)[..., 0] + xn
    return codes, dist.clip(min=0)


def operands(m, k, dsub, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, m * dsub)).astype(np.float32)
    cents = rng.standard_normal((m, k, dsub)).astype(np.float32)
    return x, cents


def check(codes, dist, x, cents, rows=512):
    # against float64 on the first rows: codes may differ only in near-ties, distances within rounding
    m, _, dsub = cents.shape
    xs = x[:rows].reshape(rows, m, dsub).astype(np.float64)
    d = ((xs[:, :, None, :] - cents[None].astype(np.float64)) ** 2).sum(-1)
    assert (np.asarray(codes[:rows]) == d.argmin(-1)).mean() > 0.999
    got = np.take_along_axis(d, np.asarray(codes[:rows]).astype(np.intp)[..., None], -1)[..., 0]
    np.testing.assert_allclose(dist[:rows], got, rtol=1e-4, atol=1e-4)


@pytest.mark.benchmark(group="pq_assign n=65536")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,k,dsub", SHAPES, ids=IDS)
def test_pq_assign_native(benchmark, m, k, dsub, threads):
    x, cents = operands(m, k, dsub)
    with medqk.use_backend("native"):
        codes, dist = benchmark(medqk.pq_assign, x, cents, threads=threads)
    check(codes, dist, x, cents)


@pytest.mark.benchmark(group="pq_assign n=65536")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,k,dsub", SHAPES, ids=IDS)
def test_pq_assign_numba(benchmark, m, k, dsub, threads):
    pytest.importorskip("numba")
    x, cents = operands(m, k, dsub)
    with medqk.use_backend("numba"):
        medqk.pq_assign(x[:1], cents)  # compile
        codes, dist = benchmark(medqk.pq_assign, x, cents, threads=threads)
    check(codes, dist, x, cents)


@pytest.mark.benchmark(group="pq_assign n=65536")
@pytest.mark.parametrize("m,k,dsub", SHAPES, ids=IDS)
def test_numpy_assign_before(benchmark, m, k, dsub):
    x, cents = operands(m, k, dsub)
    codes, dist = benchmark(numpy_assign, x.reshape(N, m, dsub), cents)
    check(codes, dist, x, cents)

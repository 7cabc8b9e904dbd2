"""PQ / k-means assignment: pq_assign (native on each ISA, Numba) against the numpy code it replaced in
PQCodec._assign.

The numpy version threads through BLAS: run with OPENBLAS_NUM_THREADS=1 (or 2) to compare like with like.
Float sums differ between ISAs by rounding (medqk.h: FMA or not), so every code and distance of the result is
held to float64 within the float32 rounding bound of the computation (exact_terms), not to another ISA's bits.
"""

from __future__ import annotations

import numpy as np
import pytest
from _checks import ISAS, gamma

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


ROWS = 8192  # rows whose codes are checked against every centroid (float64 distances to all: the costly part)


def bound_of(dsub, x2, c2):
    """The bound on any float32 evaluation of |c|^2 - 2 x.c + |x|^2 (in any order, with or without FMA): sums
    of at most dsub products each and two combining steps, gamma(dsub + 2) (tests/float_bounds.py) times the
    magnitudes |c|^2 + 2 |x|.|c| + |x|^2 <= 2 (|c|^2 + |x|^2) (Cauchy-Schwarz)."""
    return gamma(dsub + 2) * 2 * (c2 + x2)


@pytest.fixture(scope="module", params=SHAPES, ids=IDS)
def case(request):
    """Operands and, for the first ROWS rows and each subspace, the least value any float32 evaluation may give
    a centroid's distance (min_c exact + bound): a code whose distance certainly exceeds it is wrong."""
    m, k, dsub = request.param
    x, cents = operands(m, k, dsub)
    floor = np.empty((ROWS, m))
    for j in range(m):
        x64, c64 = x[:ROWS, j * dsub : (j + 1) * dsub].astype(np.float64), cents[j].astype(np.float64)
        x2, c2 = (x64 * x64).sum(1)[:, None], (c64 * c64).sum(1)[None, :]
        floor[:, j] = (c2 - 2 * (x64 @ c64.T) + x2 + bound_of(dsub, x2, c2)).min(1)
    return x, cents, floor


def check(codes, dist, case):
    """The chosen centroid is the nearest or within rounding of the nearest (first ROWS rows), and every
    distance is the float64 one of its code within the bound (all rows)."""
    x, cents, floor = case
    m, k, dsub = cents.shape
    codes = np.asarray(codes)
    assert codes.shape == (N, m) and (codes < k).all()
    for j in range(m):
        xs = x[:, j * dsub : (j + 1) * dsub].astype(np.float64)
        c = cents[j][codes[:, j]].astype(np.float64)
        x2, c2 = (xs * xs).sum(1), (c * c).sum(1)
        exact = c2 - 2 * (xs * c).sum(1) + x2
        bound = bound_of(dsub, x2, c2)
        assert (exact[:ROWS] - bound[:ROWS] <= floor[:, j]).all(), f"subspace {j}: a code is not the nearest"
        assert (np.abs(dist[:, j] - np.maximum(exact, 0)) <= bound).all(), f"subspace {j}: a distance is off"


@pytest.mark.benchmark(group="pq_assign n=65536")
# every ISA on one thread, and the best one (dispatch's choice) on two
@pytest.mark.parametrize("isa,threads", [(isa, 1) for isa in ISAS] + [(isa, 2) for isa in ISAS[:1]])
def test_pq_assign_native(benchmark, case, isa, threads):
    x, cents, _ = case
    with medqk.use_backend("native"), medqk.use_isa(isa):
        codes, dist = benchmark(medqk.pq_assign, x, cents, threads=threads)
    check(codes, dist, case)


@pytest.mark.benchmark(group="pq_assign n=65536")
@pytest.mark.parametrize("threads", [1, 2])
def test_pq_assign_numba(benchmark, case, threads):
    x, cents, _ = case
    with medqk.use_backend("numba"):
        medqk.pq_assign(x[:1], cents)  # compile
        codes, dist = benchmark(medqk.pq_assign, x, cents, threads=threads)
    check(codes, dist, case)


@pytest.mark.benchmark(group="pq_assign n=65536")
def test_numpy_assign_before(benchmark, case):
    x, cents, _ = case
    m, _, dsub = cents.shape
    codes, dist = benchmark(numpy_assign, x.reshape(N, m, dsub), cents)
    check(codes, dist, case)

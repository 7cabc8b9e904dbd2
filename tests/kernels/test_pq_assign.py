"""pq_assign on every backend and ISA against a float64 numpy reference.

Float sums in another order (FMA on SIMD ISAs) can move a score by a rounding error, so codes must equal
the reference wherever the best and second-best distances are further apart than a relative 1e-5 (of
||x||^2 + max ||c||^2, the size of the terms that cancel), and elsewhere pick a centroid whose exact
distance is within rounding of the best; distances agree within a tolerance that grows with dsub. With
small-integer data every sum is exact: ties are real and the lowest index must win everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest

import medqk
from medqk import _backend
from tests.twins import NumbaTwin

_numba_pq_assign = NumbaTwin("_numba_pq_assign")

needs_native = pytest.mark.skipif(_backend._core is None, reason="compares the native kernel with its twin")
NS = [1, 2, 3, 7, 15, 16, 17, 31, 33, 65, 129]
DSUBS = [1, 2, 3, 4, 7, 8, 16, 17]


def reference(x, cents):
    """Exact squared distances (n, M, K) in float64, the scale of the cancelling terms (n, M)."""
    n, (m, _, dsub) = x.shape[0], cents.shape
    xs = x.reshape(n, m, dsub).astype(np.float64)
    c = cents.astype(np.float64)
    d = ((xs[:, :, None, :] - c[None]) ** 2).sum(-1)
    scale = (xs**2).sum(-1) + (c**2).sum(-1).max(-1)[None]
    return d, scale


def check(x, cents, codes, dist, exact_ties=False):
    n, (m, k, dsub) = x.shape[0], cents.shape
    assert codes.dtype == np.uint8 and codes.shape == (n, m)
    assert dist.dtype == np.float32 and dist.shape == (n, m)
    d, scale = reference(x, cents)
    want = d.argmin(-1)  # lowest index among exact ties
    srt = np.sort(d, axis=-1)
    gap = srt[..., 1] - srt[..., 0] if k > 1 else np.full((n, m), np.inf)
    tol = 4 * (dsub + 2) * 2.0**-24 * scale
    got_d = np.take_along_axis(d, codes.astype(np.intp)[..., None], -1)[..., 0]
    clear = np.ones_like(gap, dtype=bool) if exact_ties else gap > 1e-5 * scale
    np.testing.assert_array_equal(codes[clear], want[clear])
    assert (codes < k).all()
    assert (got_d <= srt[..., 0] + 2 * tol).all()  # a near-tie may go either way, never far
    np.testing.assert_array_less(np.abs(dist - got_d), tol + 1e-6 * got_d + 1e-30)
    assert (dist >= 0).all()


def data(rng, n, m, k, dsub):
    x = rng.standard_normal((n, m * dsub)).astype(np.float32)
    cents = rng.standard_normal((m, k, dsub)).astype(np.float32)
    return x, cents


@pytest.mark.parametrize("k", [16, 256])
@pytest.mark.parametrize("dsub", DSUBS)
def test_sweep_matches_float64(backend, k, dsub):
    rng = np.random.default_rng(k * 100 + dsub)
    m = 3
    for n in NS:
        x, cents = data(rng, n, m, k, dsub)
        for threads in (1, 2):
            codes, dist = medqk.pq_assign(x, cents, threads=threads)
            check(x, cents, codes, dist)


@pytest.mark.parametrize("k", [1, 5, 16, 33, 256])
@pytest.mark.parametrize("dsub", [1, 3, 8])
def test_integer_data_ties_lowest_index(backend, k, dsub):
    # small integers: every float32 sum is exact, so equal distances are equal on every ISA
    rng = np.random.default_rng(k + dsub)
    x = rng.integers(-2, 3, (65, 4 * dsub)).astype(np.float32)
    cents = rng.integers(-2, 3, (4, k, dsub)).astype(np.float32)
    codes, dist = medqk.pq_assign(x, cents, threads=2)
    check(x, cents, codes, dist, exact_ties=True)


def test_duplicate_centroids_lowest_index_wins(backend):
    rng = np.random.default_rng(3)
    x, cents = data(rng, 300, 2, 256, 4)
    cents[:, 200:] = cents[:, 100:156]  # 200..255 duplicate 100..155, bit for bit
    cents[:, 1:16] = cents[:, :1]  # 0..15 all equal
    codes, _ = medqk.pq_assign(x, cents)
    assert not ((codes >= 200) | ((codes >= 1) & (codes < 16))).any()
    codes, dist = medqk.pq_assign(x, np.zeros((2, 16, 4), np.float32))
    assert (dist >= 0).all()
    assert (codes == 0).all()


@needs_native
def test_isas_and_numba_agree():
    # every ISA vs the numba twin: same codes except within rounding, distances close; scalar and the
    # twin run the same float32 operations in the same order and agree bit for bit
    rng = np.random.default_rng(5)
    x, cents = data(rng, 1000, 8, 256, 8)
    nb_codes = np.empty((1000, 8), np.uint8)
    nb_dist = np.empty((1000, 8), np.float32)
    _numba_pq_assign.pq_assign(x, cents, nb_codes, nb_dist)
    for isa in medqk.available_isas():
        with medqk.use_backend("native"), medqk.use_isa(isa):
            codes, dist = medqk.pq_assign(x, cents)
        if isa == "scalar":
            np.testing.assert_array_equal(codes, nb_codes)
            np.testing.assert_array_equal(dist, nb_dist)
        else:
            assert (codes == nb_codes).mean() > 0.999, isa
            np.testing.assert_allclose(dist, nb_dist, rtol=1e-4, atol=1e-4, err_msg=isa)


def test_float64_and_threads_give_the_same_result(backend):
    rng = np.random.default_rng(9)
    x, cents = data(rng, 4097, 6, 16, 4)
    c1, d1 = medqk.pq_assign(x, cents, threads=1)
    c2, d2 = medqk.pq_assign(x.astype(np.float64), cents.astype(np.float64), threads=2)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(d1, d2)


@pytest.mark.parametrize(
    "x,cents,exc,match",
    [
        ([[1.0, 2.0]], np.zeros((1, 16, 2), np.float32), TypeError, "x must be a numpy.ndarray"),
        (np.zeros((3, 4), np.int32), np.zeros((2, 16, 2), np.float32), TypeError, "x must have dtype float32"),
        (np.zeros(4, np.float32), np.zeros((2, 16, 2), np.float32), ValueError, "x must be 2-D"),
        (np.zeros((0, 4), np.float32), np.zeros((2, 16, 2), np.float32), ValueError, "x must not be empty"),
        (np.zeros((4, 8), np.float32)[:, ::2], np.zeros((2, 16, 2), np.float32), ValueError, "x must be C-contig"),
        (np.zeros((3, 4), np.float32), [[[0.0]]], TypeError, "centroids must be a numpy.ndarray"),
        (np.zeros((3, 4), np.float32), np.zeros((2, 16, 2), np.int8), TypeError, "centroids must have a float"),
        (np.zeros((3, 4), np.float32), np.zeros((2, 32), np.float32), ValueError, "centroids must be 3-D"),
        (np.zeros((3, 4), np.float32), np.zeros((2, 257, 2), np.float32), ValueError, "1 <= K <= 256"),
        (np.zeros((3, 4), np.float32), np.zeros((2, 0, 2), np.float32), ValueError, "1 <= K <= 256"),
        (np.zeros((3, 4), np.float32), np.zeros((2, 16, 3), np.float32), ValueError, "x has 4 columns"),
        (np.zeros((3, 4), np.float32), np.full((2, 16, 2), np.nan, np.float32), ValueError, "centroids contains"),
        (np.full((3, 4), np.inf, np.float32), np.zeros((2, 16, 2), np.float32), ValueError, "x contains NaN"),
        (np.full((3, 4), np.nan, np.float32), np.zeros((2, 16, 2), np.float32), ValueError, "x contains NaN"),
        (np.full((3, 4), 1e30, np.float32), np.zeros((2, 16, 2), np.float32), ValueError, "x contains NaN"),
    ],
)
def test_bad_arguments(backend, x, cents, exc, match):
    with pytest.raises(exc, match=match):
        medqk.pq_assign(x, cents)


def test_bad_threads(backend):
    with pytest.raises(ValueError, match="threads"):
        medqk.pq_assign(np.zeros((3, 4), np.float32), np.zeros((2, 16, 2), np.float32), threads=-1)


@pytest.mark.skipif(_backend._core is None, reason="native module not built")
def test_native_module_checks_its_arguments():
    core = _backend._core
    with pytest.raises(TypeError, match="centroids must be a numpy array of dtype float32"):
        core.pq_assign(np.zeros((3, 4), np.float32), np.zeros((2, 16, 2), np.float64))
    with pytest.raises(ValueError, match="x has 4 columns"):
        core.pq_assign(np.zeros((3, 4), np.float32), np.zeros((2, 16, 3), np.float32))
    with pytest.raises(ValueError, match="at most 256"):
        core.pq_assign(np.zeros((3, 4), np.float32), np.zeros((2, 257, 2), np.float32))


def _aniso_loss(x, cents, codes, eta):
    m, _, dsub = cents.shape
    xh = np.concatenate([cents[j][codes[:, j]] for j in range(m)], axis=1).astype(np.float64)
    x = x.astype(np.float64)
    r = xh - x
    nrm = np.linalg.norm(x, axis=1, keepdims=True)
    u = np.divide(x, nrm, out=np.zeros_like(x), where=nrm > 0)
    rpar = (r * u).sum(1)
    return (eta - 1.0) * rpar**2 + (r * r).sum(1)


@needs_native
@pytest.mark.parametrize("m,k,dsub", [(1, 1, 1), (3, 16, 4), (8, 16, 4), (5, 7, 3), (2, 256, 2), (4, 33, 1)])
def test_pq_anisotropic_native_equals_twin(m, k, dsub):
    """Score-aware codes: native and Numba give the same codes (float64, one order), the loss never rises
    from the nearest-centroid start, a zero vector keeps its nearest codes, ties take the lowest index."""
    rng = np.random.default_rng(m * 100 + k)
    n = 300
    x = rng.standard_normal((n, m * dsub)).astype(np.float32)
    x[0] = 0.0
    cents = rng.standard_normal((m, k, dsub)).astype(np.float32)
    if k > 2:
        cents[:, 2] = cents[:, 1]  # duplicate centroids: equal gains, the lower index must win
    codes0, _ = medqk.pq_assign(x, cents)
    for eta, passes in ((4.0, 3), (1.0, 1), (9.5, 2), (4.0, 0)):
        native = _backend._core.pq_anisotropic(x, cents, codes0, eta, passes, 2)
        twin = codes0.copy()
        _numba_pq_assign.pq_anisotropic(x, cents, twin, eta, passes)
        np.testing.assert_array_equal(native, twin)
        assert (_aniso_loss(x, cents, native, eta) <= _aniso_loss(x, cents, codes0, eta) + 1e-9).all()
        if k > 2:
            assert not (native == 2).any()  # centroid 2 duplicates 1: never chosen over it
        if passes == 0:
            np.testing.assert_array_equal(native, codes0)
    assert (_backend._core.pq_anisotropic(x, cents, codes0, 4.0, 3)[0] == codes0[0]).all() or m * dsub == 0
    with pytest.raises(ValueError, match="codes must have shape"):
        _backend._core.pq_anisotropic(x, cents, codes0[:5], 4.0, 3)
    with pytest.raises(ValueError, match="eta must be"):
        _backend._core.pq_anisotropic(x, cents, codes0, 0.5, 3)
    if k < 256:
        bad = codes0.copy()
        bad[0, 0] = k
        with pytest.raises(ValueError, match="codes must be < K"):
            _backend._core.pq_anisotropic(x, cents, bad, 4.0, 3)


@needs_native
@pytest.mark.parametrize("n,m,k,dsub", [(1, 1, 1, 1), (300, 3, 16, 4), (1000, 8, 256, 2), (77, 5, 7, 3)])
def test_pq_centroid_sums_equal_bincount(n, m, k, dsub):
    """The k-means update sums: native, Numba and numpy.bincount (what training used before) agree bit for bit
    (float64, rows in order); empty cells are 0 with count 0."""
    rng = np.random.default_rng(n + k)
    x = rng.standard_normal((n, m * dsub)).astype(np.float32)
    codes = rng.integers(0, max(1, k // 2), (n, m)).astype(np.uint8)  # the upper half of the cells stays empty
    s1, c1 = _backend._core.pq_centroid_sums(x, codes, k, 2)
    s2 = np.empty((m, k, dsub))
    c2 = np.empty((m, k), np.int64)
    _numba_pq_assign.pq_centroid_sums(x, codes, s2, c2)
    cell = (codes.astype(np.int64) + k * np.arange(m)[None, :]).ravel()
    c3 = np.bincount(cell, minlength=m * k).reshape(m, k)
    xs = x.reshape(n, m, dsub)
    s3 = np.stack([np.bincount(cell, weights=xs[:, :, j].ravel(), minlength=m * k) for j in range(dsub)],
                  axis=-1).reshape(m, k, dsub)
    for s, c in ((s1, c1), (s2, c2)):
        np.testing.assert_array_equal(s, s3)
        np.testing.assert_array_equal(c, c3)
    if k < 256:
        bad = codes.copy()
        bad[-1, -1] = k
        with pytest.raises(ValueError, match="codes must be < k"):
            _backend._core.pq_centroid_sums(x, bad, k)
    with pytest.raises(ValueError, match="k must be 1..256"):
        _backend._core.pq_centroid_sums(x, codes, 0)

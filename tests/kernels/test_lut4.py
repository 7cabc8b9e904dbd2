"""4-bit table scan: every ISA and the Numba twin equal a direct numpy sum, ids and scores."""

from __future__ import annotations

import numpy as np
import pytest

import medqk
from medqk import _backend
from tests.twins import NumbaTwin
from tests.variants import runnable_variants

_numba_lut4, _numba_search = NumbaTwin("_numba_lut4"), NumbaTwin("_numba_search")

pytestmark = pytest.mark.skipif(_backend._core is None, reason="native module not built")


def reference(luts, codes, k):
    nq, n, d = luts.shape[0], codes.shape[0], codes.shape[1]
    sums = np.stack([luts[q, np.arange(d)[None, :], codes].astype(np.int64).sum(axis=1) for q in range(nq)])
    ids = np.lexsort((np.broadcast_to(np.arange(n), sums.shape), -sums), axis=1)[:, :k]
    return np.take_along_axis(sums, ids, axis=1), ids


def make(rng, n, d, nq, fill="random"):
    codes = rng.integers(0, 16, (n, d)).astype(np.uint8)
    luts = np.zeros((nq, d + (d & 1), 16), dtype=np.uint8)
    if fill == "random":
        luts[:, :d] = rng.integers(0, 128, (nq, d, 16))
    elif fill == "max":
        luts[:, :d] = 127  # the largest entry the kernels take
    elif fill == "ties":
        luts[:, :d] = rng.integers(0, 2, (nq, d, 16))
    return codes, luts


# past the old limit of 1028 up to the bound, 65,536 sub-codes (index/lut4.py: MAX_SUBSPACES), where
# all-127 tables ("max") give sums of 8,323,072: far past 16 bits, still exact in float32
CASES = [(1, 1, 1, 1), (33, 3, 2, 5), (100, 7, 3, 10), (31, 16, 2, 40), (1000, 384, 4, 10), (65, 600, 2, 20),
         (129, 1028, 1, 7), (33, 1029, 2, 5), (40, 1536, 5, 7), (70, 4096, 2, 9), (33, 65535, 1, 3),
         (33, 65536, 2, 40)]


@pytest.mark.parametrize("n,d,nq,k", CASES)
@pytest.mark.parametrize("fill", ["random", "max", "ties"])
def test_scan_matches_reference(n, d, nq, k, fill):
    rng = np.random.default_rng(n * 7 + d)
    codes, luts = make(rng, n, d, nq, fill)
    packed = _backend._core.lut4_pack(codes)
    alpha = np.full(nq, 0.5, dtype=np.float32)
    beta = np.full(nq, -1.0, dtype=np.float32)
    ref_s, ref_i = reference(luts, codes, k)
    m = min(k, n)
    results = []
    for variant in runnable_variants("lut4_scan"):
        with medqk.use_kernel("lut4_scan", variant):
            for threads in (1, 2):
                s, i = _backend._core.lut4_search_topk(luts, packed, n, d, alpha, beta, k, threads)
                np.testing.assert_array_equal(i[:, :m], ref_i[:, :m], err_msg=f"{variant} threads={threads}")
                np.testing.assert_array_equal(s[:, :m], (0.5 * ref_s[:, :m].astype(np.float32) - 1.0))
                assert (i[:, m:] == -1).all() and (s[:, m:] == -np.inf).all()
                results.append((s, i))
                # unsorted: the same k hits, padding last, in some order
                su, iu = _backend._core.lut4_search_topk(luts, packed, n, d, alpha, beta, k, threads,
                                                         sorted=False)
                order = np.lexsort((iu, -su), axis=1)
                np.testing.assert_array_equal(np.take_along_axis(iu, order, 1)[:, :m], ref_i[:, :m])
                np.testing.assert_array_equal(np.take_along_axis(su, order, 1), s)
                assert (iu[:, m:] == -1).all()
    p2 = np.empty_like(packed)
    _numba_lut4.lut4_pack(codes, p2)
    np.testing.assert_array_equal(p2, packed)
    s2 = np.empty((nq, k), np.float32)
    i2 = np.empty((nq, k), np.int64)
    _numba_lut4.lut4_search_topk(luts, packed, n, d, alpha, beta, k, s2, i2, np.empty(0, np.uint8))
    np.testing.assert_array_equal(i2, results[0][1])
    np.testing.assert_array_equal(s2, results[0][0])


def test_tables_at_any_alignment():
    """The bindings return tables on a 64-byte boundary (the kernels load 64-byte rows); tables a caller
    passes elsewhere are scanned from an aligned copy, with the same results."""
    rng = np.random.default_rng(11)
    for shape in ((1, 96, 16), (3, 7, 16), (32, 384, 16)):
        luts = _backend._core.lut4_quantize_tables(rng.standard_normal(shape).astype(np.float32))[0]
        assert luts.ctypes.data % 64 == 0 and luts.flags.c_contiguous and luts.flags.writeable
    ivf = _backend._core.ivf_quantize_tables(rng.standard_normal((5, 3, 7, 16)).astype(np.float32))[0]
    assert ivf.ctypes.data % 64 == 0 and ivf.shape == (5, 3, 8, 16)
    n, d, nq, k = 700, 96, 3, 10
    codes, luts = make(rng, n, d, nq)
    packed = _backend._core.lut4_pack(codes)
    alpha, beta = np.ones(nq, np.float32), np.zeros(nq, np.float32)
    ref_s, ref_i = reference(luts, codes, k)
    buf = np.empty(luts.size + 128, np.uint8)
    base = -buf.ctypes.data % 64
    for offset in (0, 1, 16, 48):
        moved = buf[base + offset : base + offset + luts.size].reshape(luts.shape)
        moved[...] = luts
        for variant in runnable_variants("lut4_scan"):
            with medqk.use_kernel("lut4_scan", variant):
                s, i = _backend._core.lut4_search_topk(moved, packed, n, d, alpha, beta, k, 1)
            np.testing.assert_array_equal(i, ref_i, err_msg=f"{variant} offset {offset}")
            np.testing.assert_array_equal(s, ref_s.astype(np.float32))


def test_table_quantization_and_exact_rescoring_twins():
    rng = np.random.default_rng(2)
    for S in (1, 7, 384):
        t = rng.standard_normal((5, S, 16)).astype(np.float32)
        t[0] = 0.0  # a flat query: step 1, all-zero tables
        # step exactly 1 (span 127): halves round to even, as numpy.rint (2.5 -> 2, 3.5 -> 4, 126.5 -> 126)
        t[1] = np.array([0, 127, 2.5, 3.5, 126.5, 0.5, 1.5, 64, 1, 2, 3, 4, 5, 6, 7, 8], np.float32) - 50.0
        luts, alpha, beta = _backend._core.lut4_quantize_tables(t)
        assert alpha[1] == 1.0
        np.testing.assert_array_equal(luts[1, :S, :7], np.tile([0, 127, 2, 4, 126, 0, 2], (S, 1)))
        l2, a2, b2 = np.empty_like(luts), np.empty_like(alpha), np.empty_like(beta)
        _numba_lut4.lut4_quantize_tables(t, l2, a2, b2)
        np.testing.assert_array_equal(luts, l2)
        np.testing.assert_array_equal(alpha, a2)
        np.testing.assert_array_equal(beta, b2)
        # the quantized sum approximates the float sum within half a step per subspace
        codes = rng.integers(0, 16, (50, S)).astype(np.uint8)
        exact = np.stack([t[q, np.arange(S)[None, :], codes].sum(1) for q in range(5)])
        approx = np.stack([luts[q, np.arange(S)[None, :], codes].astype(np.float64).sum(1) for q in range(5)])
        approx = alpha[:, None] * approx + beta[:, None]
        assert (np.abs(approx - exact) <= alpha[:, None] * S / 2 + 1e-4).all()
        assert luts.max() == 127 and luts.min() == 0  # entries fill 0..127, the kernels' contract
        packed = _backend._core.lut4_pack(codes)
        cand = rng.integers(-1, 50, (5, 9)).astype(np.int64)
        s1 = _backend._core.lut4_score_candidates(t, packed, 50, cand)
        s2 = np.empty_like(s1)
        _numba_lut4.lut4_score_candidates(t, packed, cand, s2)
        np.testing.assert_array_equal(s1, s2)
        valid = cand >= 0
        want = np.stack([t[q, np.arange(S)[None, :], codes[np.maximum(cand[q], 0)]].sum(1) for q in range(5)])
        np.testing.assert_allclose(s1[valid], want[valid], rtol=1e-5, atol=1e-4)
        assert (s1[~valid] == -np.inf).all()


@pytest.mark.parametrize("d", [1, 3, 16, 33])
def test_decode_s8_every_backend(d):
    rng = np.random.default_rng(d)
    n = 100
    codes = rng.integers(0, 16, (n, d)).astype(np.uint8)
    packed = _backend._core.lut4_pack(codes)
    # entries: every sub-code once into its own dimension, plus extra entries adding into shared ones
    # (sums past int8: the clamp), like additive stages and vector codes
    e = d + 2 * d + 1
    sub = np.concatenate([np.arange(d), rng.integers(0, d, e - d)]).astype(np.int32)
    d_out = max(1, d // 2)
    dim = rng.integers(0, d_out, e).astype(np.int32)
    table = rng.integers(-100, 101, (e, 16)).astype(np.int16)
    for v0, m in ((0, n), (33, 65), (99, 1), (100, 0)):
        want = np.zeros((m, d_out), np.int64)
        for j in range(e):
            np.add.at(want, (slice(None), dim[j]), table[j, codes[v0 : v0 + m, sub[j]]])
        want = np.clip(want, -127, 127).astype(np.int8)
        got = _backend._core.lut4_decode_s8(packed, n, d, sub, dim, table, d_out, v0, m)
        np.testing.assert_array_equal(got, want)
        out = np.empty((m, d_out), np.int8)
        _numba_lut4.lut4_decode_s8(packed, d, sub, dim, table, v0, out)
        np.testing.assert_array_equal(out, want)
    core = _backend._core
    with pytest.raises(ValueError, match="past the stored vectors"):
        core.lut4_decode_s8(packed, n, d, sub, dim, table, d_out, 90, 11)
    with pytest.raises(ValueError, match="packed does not hold"):
        core.lut4_decode_s8(packed, n + 40, d, sub, dim, table, d_out, 0, 1)
    with pytest.raises(ValueError, match="sub entries"):
        core.lut4_decode_s8(packed, n, d, np.full(e, d, np.int32), dim, table, d_out, 0, 1)
    with pytest.raises(ValueError, match="dim entries"):
        core.lut4_decode_s8(packed, n, d, sub, np.full(e, d_out, np.int32), table, d_out, 0, 1)


def test_bad_arguments():
    codes = np.zeros((10, 4), np.uint8)
    packed = _backend._core.lut4_pack(codes)
    luts = np.zeros((2, 4, 16), np.uint8)
    one = np.ones(2, np.float32)
    with pytest.raises(ValueError, match="luts must have shape"):
        _backend._core.lut4_search_topk(np.zeros((2, 3, 16), np.uint8), packed, 10, 4, one, one, 3)
    with pytest.raises(ValueError, match="packed does not hold"):
        _backend._core.lut4_search_topk(luts, packed, 33, 4, one, one, 3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        _backend._core.lut4_search_topk(luts, packed, 10, 4, one, one, 0)
    big = luts.copy()
    big[1, 3, 15] = 128  # past the 7-bit entries the kernels add in 8 bits
    with pytest.raises(ValueError, match="luts entries must be <= 127"):
        _backend._core.lut4_search_topk(big, packed, 10, 4, one, one, 3)
    with pytest.raises(ValueError, match="past the stored vectors"):
        _backend._core.lut4_score_candidates(np.zeros((2, 4, 16), np.float32), packed, 10, np.full((2, 1), 10))


def test_s8_candidate_scores_twin():
    rng = np.random.default_rng(5)
    for d, kc in ((1, 9), (3, 1), (4, 2), (7, 3), (15, 9), (16, 10), (17, 9), (31, 7), (33, 9), (63, 5), (65, 9),
                  (127, 4), (129, 9), (384, 9), (385, 8)):
        qs = rng.standard_normal((6, d)).astype(np.float32)
        codes = rng.integers(-128, 128, (40, d), dtype=np.int8)
        codes[0] = -128  # the edge values convert exactly
        codes[1] = 127
        cand = rng.integers(-1, 41, (6, kc)).astype(np.int64)  # includes -1 and n (out of range)
        cand[0, 0] = 0
        cand[1, -1] = 1
        s2 = np.empty(cand.shape, np.float32)
        _numba_search.s8_score_candidates(qs, codes, cand, s2)
        for variant in runnable_variants("s8_score_candidates"):  # all add in the one order: the twin's bits
            with medqk.use_kernel("s8_score_candidates", variant):
                s1 = _backend._core.s8_score_candidates(qs, codes, cand, 2)
            np.testing.assert_array_equal(s1, s2, err_msg=variant)
        valid = (cand >= 0) & (cand < 40)
        want = np.einsum("qd,qkd->qk", qs.astype(np.float64), codes[np.clip(cand, 0, 39)].astype(np.float64))
        np.testing.assert_allclose(s1[valid], want[valid], rtol=1e-4, atol=1e-3)
        assert (s1[~valid] == -np.inf).all()


@pytest.mark.parametrize("l2", [False, True])
def test_s8_rerank_topk_fused(l2):
    """The fused re-scoring + top-k equals s8_score_candidates, the query constant, the l2 step and a
    (score desc, id asc) sort done in numpy float32, bit for bit; ties (duplicate rows) go to the lower id."""
    rng = np.random.default_rng(11)
    for d, kc, k in ((1, 5, 3), (17, 9, 4), (33, 40, 10), (384, 200, 10), (16, 3, 7)):
        base = rng.integers(-128, 128, (20, d), dtype=np.int8)
        codes = np.concatenate([base, base[::-1]])  # every row twice: equal scores at two ids
        qs = rng.standard_normal((6, d)).astype(np.float32)
        qbias = rng.standard_normal(6).astype(np.float32)
        sqnorms = rng.random(40).astype(np.float32) if l2 else None
        cand = np.stack([rng.permutation(np.arange(-1, 40))[:kc] for _ in range(6)]).astype(np.int64)
        s, i = _backend._core.s8_rerank_topk(qs, codes, cand, qbias, sqnorms, k, 2)
        want = _backend._core.s8_score_candidates(qs, codes, cand, 1) + qbias[:, None]
        if l2:
            want = np.float32(2) * want - sqnorms[cand]
        order = np.lexsort((cand, -want), axis=1)[:, :k]
        m = min(k, kc)
        np.testing.assert_array_equal(s[:, :m], np.take_along_axis(want, order, axis=1)[:, :m])
        np.testing.assert_array_equal(i[:, :m], np.take_along_axis(cand, order, axis=1)[:, :m])
        assert (s[:, m:] == -np.inf).all() and (i[:, m:] == -1).all()
    with pytest.raises(ValueError, match="qbias must have one value per query"):
        _backend._core.s8_rerank_topk(qs, codes, cand, qbias[:3], None, 3)
    with pytest.raises(ValueError, match="sqnorms must have one value per code row"):
        _backend._core.s8_rerank_topk(qs, codes, cand, None, np.zeros(3, np.float32), 3)
    with pytest.raises(TypeError, match="qbias must be a numpy array of dtype float32"):
        _backend._core.s8_rerank_topk(qs, codes, cand, qbias.astype(np.float64), None, 3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        _backend._core.s8_rerank_topk(qs, codes, cand, None, None, 0)


@pytest.mark.parametrize("d", [1, 3, 7, 8, 9, 16, 17, 63, 384])
def test_f16_search_every_isa(d):
    rng = np.random.default_rng(d)
    x = rng.standard_normal((300, d)).astype(np.float16)
    q = rng.standard_normal((37, d)).astype(np.float32)
    bias = rng.standard_normal(300).astype(np.float32)
    exact = q.astype(np.float64) @ x.astype(np.float64).T * 2 + bias
    for variant in runnable_variants("f16_scores"):
        with medqk.use_kernel("f16_scores", variant):
            s, i = _backend._core.f16_search_topk(q, x.view(np.uint16), 2.0, bias, 10, 2)
        want = np.take_along_axis(exact, i, axis=1)
        np.testing.assert_allclose(s, want, rtol=1e-5, atol=1e-5 * d)  # float: summation order differs by ISA
        best = np.sort(exact, axis=1)[:, ::-1][:, :10]
        np.testing.assert_allclose(s, best, rtol=1e-5, atol=1e-5 * d)
    # one query over many vectors: two threads split the vectors and merge their top-k lists
    x1 = rng.standard_normal((6000, 384)).astype(np.float16)
    q1 = rng.standard_normal((1, 384)).astype(np.float32)
    ex1 = q1.astype(np.float64) @ x1.astype(np.float64).T
    for variant in runnable_variants("f16_scores"):
        with medqk.use_kernel("f16_scores", variant):
            s1, i1 = _backend._core.f16_search_topk(q1, x1.view(np.uint16), 1.0, None, 10, 2)
        np.testing.assert_allclose(s1[0], np.sort(ex1[0])[::-1][:10], rtol=1e-5, atol=1e-3)
    # subnormal, zero, negative zero and large halves convert exactly in the portable path
    special = np.array([[6e-8, -6e-8, 0.0, -0.0, 65504.0, -2.0, 1e-5, 0.5]], dtype=np.float16)
    with medqk.use_isa("scalar"):
        s, _ = _backend._core.f16_search_topk(np.eye(8, dtype=np.float32), special.view(np.uint16), 1.0, None, 1)
    np.testing.assert_array_equal(s[:, 0], special[0].astype(np.float32))

"""The 1-bit RaBitQ scan (medqk.kernels.pack_rabitq / rabitq_scan_ints / rabitq_search_topk) on every backend
(each native ISA and the Numba twin): the integers equal a numpy int64 reference exactly, the float32 scores
equal medqk.quantizers.rabitq.scan_scores (the same operations in the same order, no FMA: the same bits, so
the tolerance is 0), the top-k follows the tie rule (score desc, id asc) with the allow-bitmap and k past
the allowed rows, and the rabitq indexes return identical results under native and Numba (odd sizes, d not
a multiple of 64, filters, removed ids). The per-variant sweep (every kernel this CPU runs, pinned) is
tests/kernels/test_every_variant.py::check_rabitq_scan; the C++ one tests/cpp/test_rabitq_scan.cpp.
"""

from __future__ import annotations

import numpy as np
import pytest

import medqk
import medqk.index as mi
from medqk import kernels
from medqk.quantizers.rabitq import scan_scores
from tests.twins import require_numba

NATIVE = medqk.info()["native_available"]


def case(rng, n, dim, bits, nq, duplicates=False):
    """Codes with padding bits set (ignored by the scan), an all-ones and an all-zeros code, planes with an
    all-ones query; ip / pop over the dim dimensions only; float factors (duplicated rows: equal scores)."""
    nbytes = (dim + 7) // 8
    codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    codes[0] = 255
    codes[min(1, n - 1)] = 0
    mult = rng.standard_normal(n).astype(np.float32)
    add = rng.standard_normal(n).astype(np.float32)
    if duplicates:
        half = n // 2
        codes[half:], mult[half:], add[half:] = codes[: n - half], mult[: n - half], add[: n - half]
    planes = rng.integers(0, 256, (nq, bits, nbytes), dtype=np.uint8)
    planes[0] = 255
    b = np.unpackbits(codes, axis=1, bitorder="little", count=dim).astype(np.int64)
    u = sum(np.unpackbits(planes[:, j], axis=1, bitorder="little", count=dim).astype(np.int64) << j
            for j in range(bits))
    consts = [rng.standard_normal(nq).astype(np.float32) for _ in range(4)]
    return codes, planes, u @ b.T, b.sum(axis=1), consts, mult, add


def topk_ref(scores, k, mask=None):
    n = scores.shape[1]
    if mask is not None:
        scores = np.where(mask[None, :], scores, -np.inf)
    ids = np.lexsort((np.broadcast_to(np.arange(n), scores.shape), -scores), axis=1)[:, :k]
    s = np.take_along_axis(scores, ids, axis=1)
    allowed = n if mask is None else int(mask.sum())
    s, ids = np.pad(s, ((0, 0), (0, k - ids.shape[1])), constant_values=-np.inf), np.pad(
        ids, ((0, 0), (0, k - ids.shape[1])), constant_values=-1)
    s[:, allowed:], ids[:, allowed:] = -np.inf, -1
    return s, ids


SHAPES = [(1, 2, 1), (7, 7, 4), (9, 63, 8), (17, 64, 5), (65, 100, 4), (520, 384, 4), (3, 1000, 2)]


@pytest.mark.parametrize("n,dim,bits", SHAPES)
def test_scan_ints_are_exact(backend, n, dim, bits):
    codes, planes, ip, pop, *_ = case(np.random.default_rng(n * dim + bits), n, dim, bits, 3)
    packed = kernels.pack_rabitq(codes, dim)
    np.testing.assert_array_equal(packed.pop, pop)
    for threads in (1, 2):
        got = kernels.rabitq_scan_ints(packed, planes, threads=threads)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, ip, err_msg=f"{backend} n={n} d={dim} bits={bits}")


@pytest.mark.parametrize("n,dim,bits,nq,k", [(1, 5, 1, 1, 3), (70, 64, 4, 9, 7), (600, 130, 4, 11, 10),
                                             (129, 384, 8, 2, 130), (40, 100, 3, 3, 40)])
def test_search_scores_ties_and_allow(backend, n, dim, bits, nq, k):
    rng = np.random.default_rng(n + dim)
    codes, planes, ip, pop, consts, mult, add = case(rng, n, dim, bits, nq, duplicates=True)
    scores = scan_scores(ip, pop, *consts, mult, add)
    packed = kernels.pack_rabitq(codes, dim)
    mask = rng.random(n) < 0.5
    for allow, m in ((None, None), (np.packbits(mask, bitorder="little"), mask)):
        want_s, want_i = topk_ref(scores, k, m)
        for threads in (1, 2):
            s, i = kernels.rabitq_search_topk(packed, planes, *consts, mult, add, k, threads=threads, allow=allow)
            np.testing.assert_array_equal(i, want_i, err_msg=f"{backend} n={n} d={dim} allow={allow is not None}")
            np.testing.assert_array_equal(s, want_s)


@pytest.mark.skipif(not NATIVE, reason="native module not built")
def test_native_equals_numba_twin():
    require_numba()
    rng = np.random.default_rng(3)
    codes, planes, _, _, consts, mult, add = case(rng, 1001, 383, 4, 5, duplicates=True)
    allow = np.packbits(rng.random(1001) < 0.3, bitorder="little")
    out = {}
    for name in ("native", "numba"):
        with medqk.use_backend(name):
            packed = kernels.pack_rabitq(codes, 383)
            assert packed.backend == name
            out[name] = (kernels.rabitq_scan_ints(packed, planes),
                         *kernels.rabitq_search_topk(packed, planes, *consts, mult, add, 12, allow=allow))
    for a, b in zip(out["native"], out["numba"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not NATIVE, reason="native module not built")
@pytest.mark.parametrize("spec", ["rabitq", "rabitq+rerank:int8"])
def test_index_identical_across_backends(spec):
    """Odd n, d = 100 (not a multiple of 64), removed ids, a filter allowing fewer than k, l2 and ip."""
    require_numba()
    rng = np.random.default_rng(5)
    d, n = 100, 677
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((9, d)).astype(np.float32)
    for metric in ("ip", "l2"):
        results = {}
        for name in ("native", "numba"):
            with medqk.use_backend(name):
                index = mi.create(spec, d, metric).train(x).add(x)
                index.remove(np.arange(0, n, 7))
                results[name] = [index.search(q, 25), index.search(q, 25, filter=np.arange(3, 40, 2)),
                                 index.search(q[:1], 5, threads=2)]
        for (sa, ia), (sb, ib) in zip(results["native"], results["numba"]):
            np.testing.assert_array_equal(ia, ib, err_msg=f"{spec} {metric}")
            np.testing.assert_array_equal(sa, sb)
        assert not np.isin(results["native"][0][1], np.arange(0, n, 7)).any()
        assert (results["native"][1][1][:, -1] == -1).all()  # 16 allowed, 7 of them removed: padding


def test_bad_input_names_the_argument(backend):
    rng = np.random.default_rng(0)
    codes, planes, _, _, consts, mult, add = case(rng, 10, 20, 4, 2)
    packed = kernels.pack_rabitq(codes, 20)
    with pytest.raises(ValueError, match="codes"):
        kernels.pack_rabitq(codes, 30)  # 3 bytes per code, 4 needed
    with pytest.raises(TypeError, match="codes"):
        kernels.pack_rabitq(codes.astype(np.int8), 20)
    with pytest.raises(ValueError, match="dim"):
        kernels.pack_rabitq(codes, 0)
    with pytest.raises(ValueError, match="planes"):
        kernels.rabitq_scan_ints(packed, planes[:, :, :2])
    with pytest.raises(ValueError, match="planes"):
        kernels.rabitq_scan_ints(packed, np.zeros((2, 9, 3), np.uint8))  # 9 bits
    with pytest.raises(ValueError, match="per query"):
        kernels.rabitq_search_topk(packed, planes, consts[0][:1], *consts[1:], mult, add, 3)
    with pytest.raises(ValueError, match="mult and add"):
        kernels.rabitq_search_topk(packed, planes, *consts, mult[:-1], add, 3)
    with pytest.raises(TypeError, match="add"):
        kernels.rabitq_search_topk(packed, planes, *consts, mult, add.astype(np.float64), 3)
    with pytest.raises(ValueError, match="k must"):
        kernels.rabitq_search_topk(packed, planes, *consts, mult, add, 0)
    with pytest.raises(ValueError, match="allow"):
        kernels.rabitq_search_topk(packed, planes, *consts, mult, add, 3, allow=np.zeros(5, np.uint8))
    with pytest.raises(TypeError, match="PackedRaBitQ"):
        kernels.rabitq_scan_ints(codes, planes)
    empty = kernels.pack_rabitq(codes[:0], 20)
    s, i = kernels.rabitq_search_topk(empty, planes, *consts, mult[:0], add[:0], 2)
    assert (i == -1).all() and np.isneginf(s).all()
    with pytest.raises(ValueError, match="counts must have one entry per code"):
        kernels.pack_rabitq(codes, 20, counts=np.zeros(9, np.int32))
    with pytest.raises(TypeError, match="counts"):
        kernels.pack_rabitq(codes, 20, counts=np.zeros(10, np.int64))


def test_counts_replace_the_popcount_in_the_score_only(backend):
    # pack_rabitq(counts=) is the term the score reads in place of each popcount (the multi-bit codes' sums):
    # the integers are the same, the scores those of the popcount formula with the counts put in
    rng = np.random.default_rng(4)
    codes, planes, ip, _, consts, mult, add = case(rng, 40, 70, 3, 2)
    counts = rng.integers(0, 200, 40).astype(np.int32)
    plain, given = kernels.pack_rabitq(codes, 70), kernels.pack_rabitq(codes, 70, counts=counts)
    np.testing.assert_array_equal(given.pop, counts)
    np.testing.assert_array_equal(kernels.rabitq_scan_ints(given, planes), kernels.rabitq_scan_ints(plain, planes))
    s, i = kernels.rabitq_search_topk(given, planes, *consts, mult, add, 40)
    want_s, want_i = topk_ref(scan_scores(ip, counts, *consts, mult, add), 40)
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_array_equal(s, want_s)
    assert not np.array_equal(s, kernels.rabitq_search_topk(plain, planes, *consts, mult, add, 40)[0])

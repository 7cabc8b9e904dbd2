"""8-bit PQ scan and search: every ISA and the Numba twins equal a direct numpy computation bit for bit
(the scan's uint16 sums and masks; the search's exact float ADC ids and scores, ties -> lower id)."""

from __future__ import annotations

import numpy as np
import pytest

import medqk
from medqk import _backend
from tests.twins import NumbaTwin
from tests.variants import runnable_variants

_numba_pq8 = NumbaTwin("_numba_pq8")

pytestmark = pytest.mark.skipif(_backend._core is None, reason="native module not built")

MS = [1, 2, 3, 7, 15, 16, 17, 31, 33, 63, 65, 127, 129, 256]
NS = [1, 2, 63, 64, 65, 129]


def pack_ref(codes):
    n, m = codes.shape
    nb = -(-n // 64)
    padded = np.zeros((nb * 64, m), np.uint8)
    padded[:n] = codes
    return padded.reshape(nb, 64, m).transpose(0, 2, 1).reshape(-1).copy()


def exact_adc(tables, codes, k):
    """Float32 sums in subspace order from 0 (as the kernels add them), ranked; ties -> lower id."""
    nq, m, _ = tables.shape
    n = codes.shape[0]
    acc = np.zeros((nq, n), np.float32)
    for s in range(m):
        acc += tables[:, s, codes[:, s]]
    ids = np.lexsort((np.broadcast_to(np.arange(n), acc.shape), -acc), axis=1)[:, :k]
    return np.take_along_axis(acc, ids, axis=1), ids


@pytest.mark.parametrize("m", MS)
def test_pack_layout(m):
    rng = np.random.default_rng(m)
    for n in NS:
        codes = rng.integers(0, 256, (n, m), dtype=np.uint8)
        want = pack_ref(codes)
        np.testing.assert_array_equal(_backend._core.pq8_pack(codes), want)
        out = np.empty_like(want)
        _numba_pq8.pq8_pack(codes, out)
        np.testing.assert_array_equal(out, want)
        from medqk.index.pq8 import unpack

        np.testing.assert_array_equal(unpack(want, n, m), codes)
        ids = rng.integers(0, n, 5)
        np.testing.assert_array_equal(unpack(want, n, m, ids), codes[ids])


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("fill", ["random", "max", "zero"])
def test_scan_every_isa_and_numba(m, fill):
    rng = np.random.default_rng(7 * m)
    for n in NS:
        if fill == "max":  # the largest sums: 127 * m
            codes = np.full((n, m), 255, np.uint8)
            lut = np.full((m, 256), 127, np.uint8)
        elif fill == "zero":
            codes = np.zeros((n, m), np.uint8)
            lut = np.zeros((m, 256), np.uint8)
        else:
            codes = rng.integers(0, 256, (n, m), dtype=np.uint8)
            lut = rng.integers(0, 128, (m, 256), dtype=np.uint8)
        packed = pack_ref(codes)
        padded = np.zeros((-(-n // 64) * 64, m), np.uint8)
        padded[:n] = codes
        want = lut[np.arange(m)[None, :], padded].astype(np.int64).sum(axis=1)
        for thr in (0, int(np.median(want)), 127 * m, 65535):
            bits = (want >= thr).reshape(-1, 64)
            want_masks = (bits.astype(np.uint64) << np.arange(64, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
            for variant in runnable_variants("pq8_scan"):
                with medqk.use_kernel("pq8_scan", variant):
                    sums, masks = _backend._core.pq8_scan(lut, packed, n, thr)
                np.testing.assert_array_equal(sums, want, err_msg=f"variant={variant} n={n} thr={thr}")
                np.testing.assert_array_equal(masks, want_masks, err_msg=f"variant={variant} n={n} thr={thr}")
            s2 = np.empty_like(sums)
            m2 = np.empty_like(masks)
            _numba_pq8.pq8_scan(lut, packed, n, thr, s2, m2)
            np.testing.assert_array_equal(s2, want)
            np.testing.assert_array_equal(m2, want_masks)


@pytest.mark.parametrize("n,m", [(1, 1), (63, 3), (64, 17), (65, 48), (200, 256)])
def test_group_scan_every_isa_and_numba(n, m):
    """The 16-query group scan (AVX2's batched path) reports exactly the (vector, query) pairs whose 8-bit
    sum reaches the query's threshold, in order of vector then query, with their sums: random tables,
    one query of all-127 entries (sums up to 127 * 256), one of zeros, thresholds 0, 65535 and in between."""
    rng = np.random.default_rng(n * 7 + m)
    codes = rng.integers(0, 256, (n, m), dtype=np.uint8)
    codes[0] = 255
    packed = pack_ref(codes)
    lut_t = rng.integers(0, 128, (m, 256, 16), dtype=np.uint8)
    lut_t[:, :, 3] = 127
    lut_t[:, :, 4] = 0
    thr = rng.integers(55 * m, 70 * m, 16).astype(np.uint16)
    thr[[0, 4]] = 0
    thr[[1, 3]] = [65535, 127 * m]
    nblocks = (n + 63) // 64
    padded = np.zeros((nblocks * 64, m), np.uint8)
    padded[:n] = codes
    sums = lut_t[np.arange(m)[None, :], padded].sum(axis=1, dtype=np.int64)  # (n_pad, 16)
    v, g = np.nonzero(sums >= thr[None, :].astype(np.int64))
    want_hits, want_sums = (v * 16 + g).astype(np.uint32), sums[v, g].astype(np.uint16)
    assert 0 < want_hits.size < sums.size
    for variant in runnable_variants("pq8_scan"):
        with medqk.use_kernel("pq8_scan", variant):
            hits, hit_sums = _backend._core.pq8_scan_group(lut_t, packed, n, thr)
        np.testing.assert_array_equal(hits, want_hits, err_msg=f"variant={variant}")
        np.testing.assert_array_equal(hit_sums, want_sums, err_msg=f"variant={variant}")
    h2 = np.empty(nblocks * 64 * 16, np.uint32)
    s2 = np.empty(nblocks * 64 * 16, np.uint16)
    cnt = _numba_pq8.pq8_scan_group(lut_t, packed, n, thr, h2, s2)
    np.testing.assert_array_equal(h2[:cnt], want_hits)
    np.testing.assert_array_equal(s2[:cnt], want_sums)


CASES = [(1, 1, 1, 3), (50, 3, 9, 7), (700, 17, 5, 10), (3000, 48, 4, 20), (129, 256, 2, 130), (20000, 16, 1, 10)]


@pytest.mark.parametrize("n,m,nq,k", CASES)
@pytest.mark.parametrize("tables", ["normal", "ties", "wide"])
def test_search_is_exact_adc_every_isa_and_numba(n, m, nq, k, tables):
    """The 8-bit filter must never drop a vector that belongs in the float top k. 'wide' puts one huge
    entry per subspace, so the 8-bit tables are nearly all zero (the filter passes almost everything);
    'ties' uses few distinct values, so scores tie and ids decide."""
    rng = np.random.default_rng(n + m)
    codes = rng.integers(0, 256, (n, m), dtype=np.uint8)
    if tables == "ties":
        t = rng.integers(0, 3, (nq, m, 256)).astype(np.float32)
        codes[n // 2 :] = codes[: n - n // 2]  # duplicate vectors: equal scores, distinct ids
    else:
        t = rng.standard_normal((nq, m, 256)).astype(np.float32)
        if tables == "wide":
            t[:, :, 0] = 1e4
    packed = pack_ref(codes)
    kk = min(k, n)
    want_s, want_i = exact_adc(t, codes, kk)
    results = []
    for variant in runnable_variants("pq8_scan"):
        with medqk.use_kernel("pq8_scan", variant):
            for threads in (1, 2):
                results.append(_backend._core.pq8_search_topk(t, packed, n, k, threads))
    s = np.empty((nq, k), np.float32)
    i = np.empty((nq, k), np.int64)
    _numba_pq8.pq8_search_topk(t, packed, n, k, s, i, np.empty(0, np.uint8))  # every row allowed
    results.append((s, i))
    for s, i in results:
        np.testing.assert_array_equal(i[:, :kk], want_i)
        np.testing.assert_array_equal(s[:, :kk], want_s)
        assert (i[:, kk:] == -1).all() and np.isneginf(s[:, kk:]).all()


def test_bad_arguments_are_named():
    core = _backend._core
    codes = np.zeros((70, 4), np.uint8)
    packed = core.pq8_pack(codes)
    t = np.zeros((2, 4, 256), np.float32)
    with pytest.raises(ValueError, match="packed must hold"):
        core.pq8_search_topk(t, packed[:-1], 70, 5)
    with pytest.raises(ValueError, match="packed must hold"):
        core.pq8_search_topk(t, packed, 200, 5)
    with pytest.raises(ValueError, match="tables must have shape"):
        core.pq8_search_topk(np.zeros((2, 4, 255), np.float32), packed, 70, 5)
    with pytest.raises(ValueError, match="k must be >= 1"):
        core.pq8_search_topk(t, packed, 70, 0)
    with pytest.raises((ValueError, TypeError), match="tables"):
        core.pq8_search_topk(t.astype(np.float64), packed, 70, 5)
    with pytest.raises(ValueError, match="lut_t entries must be <= 127"):
        core.pq8_scan_group(np.full((4, 256, 16), 128, np.uint8), packed, 70, np.zeros(16, np.uint16))
    with pytest.raises(ValueError, match="thr"):
        core.pq8_scan_group(np.zeros((4, 256, 16), np.uint8), packed, 70, np.zeros(8, np.uint16))
    with pytest.raises(ValueError, match="lut entries must be <= 127"):
        core.pq8_scan(np.full((4, 256), 128, np.uint8), packed, 70, 0)
    with pytest.raises(ValueError, match="1 to 256 columns"):
        core.pq8_pack(np.zeros((3, 257), np.uint8))


@pytest.mark.parametrize("nq", [1, 16])
def test_filter_keeps_vectors_whose_table_errors_close_the_gap(nq):
    """The 8-bit filter's slack must cover the tables' quantization error (pq8_search.cpp: E), not only float
    rounding. Every table spans 0..127, so the 8-bit step is exactly 1 and 10.49 -> 10, 10.51 -> 11, 11.49 ->
    11: errors of 0.49 per subspace, as large as the score gaps. Vector 0 (first chunk) scores 20 x 10.51 =
    210.2, 8-bit sum 220, and fills the top 1; vector 1500 (second chunk, scanned with that threshold) scores
    15 x 10.49 + 5 x 11.49 = 214.8 > 210.2 with an 8-bit sum of only 205. Without E the threshold is
    floor(210.2) - 1 = 209 and the true best vector is dropped; with it, floor(210.2 - 9.8) - 1 = 199."""
    m, n = 20, 2000
    t = np.zeros((nq, m, 256), np.float32)
    t[:, :, 1], t[:, :, 2], t[:, :, 3], t[:, :, 255] = 10.51, 10.49, 11.49, 127.0
    codes = np.zeros((n, m), np.uint8)
    codes[0] = 1
    codes[1500, :15], codes[1500, 15:] = 2, 3
    packed = pack_ref(codes)
    want_s, want_i = exact_adc(t, codes, 2)
    assert (want_i == [1500, 0]).all()
    for variant in runnable_variants("pq8_scan"):
        with medqk.use_kernel("pq8_scan", variant):
            for threads in (1, 2):
                s, i = _backend._core.pq8_search_topk(t, packed, n, 1, threads)
                np.testing.assert_array_equal(i, want_i[:, :1], err_msg=f"{variant} threads={threads}")
                np.testing.assert_array_equal(s, want_s[:, :1])
    s2, i2 = np.empty((nq, 1), np.float32), np.empty((nq, 1), np.int64)
    _numba_pq8.pq8_search_topk(t, packed, n, 1, s2, i2, np.empty(0, np.uint8))
    np.testing.assert_array_equal(i2, want_i[:, :1])
    np.testing.assert_array_equal(s2, want_s[:, :1])

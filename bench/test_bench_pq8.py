"""8-bit PQ search (pq<M>x8, exact ADC): the native search on each ISA and the Numba twin, and the scan
kernels alone (pq8_scan, the group scan of 16 queries) per ISA.

M = 48 byte codes (pq48x8 of 384-d embeddings), N = 262,144 random codes, Gaussian tables, k = 10;
nq = 1 (latency: memory-bound) and nq = 32 (a batch: lookup-bound). bench/compare_pq.py has faiss beside it.
Every query's ids and scores are checked against numpy's exact ADC (medqk.h: the float32 sum of the table
entries in subspace order from 0.0f; ties -> lower id); the scans' integer sums against numpy integer sums.
"""

from __future__ import annotations

import numpy as np
import pytest
from _checks import topk_ids, variants

import medqk
from medqk import _backend
from medqk.index import pq8

M, N, K, NQ = 48, 262_144, 10, 32


@pytest.fixture(scope="module")
def operands():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (N, M), dtype=np.uint8)
    tables = rng.standard_normal((NQ, M, 256)).astype(np.float32)
    return codes, tables


@pytest.fixture(scope="module")
def reference(operands):
    """Exact ADC of every query: float32 sums in subspace order, then the best K (score desc, id asc)."""
    codes, tables = operands
    acc = np.zeros((N, NQ), np.float32)
    for s in range(M):
        acc += tables[:, s, :].T[codes[:, s]]  # rows of NQ floats: a gather numpy does fast
    acc = np.ascontiguousarray(acc.T)
    ids = topk_ids(acc, K)
    return np.take_along_axis(acc, ids, axis=1), ids


def check(scores, ids, reference):
    want_s, want_i = reference
    nq = ids.shape[0]
    np.testing.assert_array_equal(ids, want_i[:nq])
    np.testing.assert_array_equal(scores, want_s[:nq])


@pytest.mark.benchmark(group="pq48x8 search N=262144")
@pytest.mark.parametrize("nq", [1, NQ])
@pytest.mark.parametrize("variant", variants("pq8_scan"))
def test_pq8_search_native(benchmark, operands, reference, variant, nq):
    codes, tables = operands
    with medqk.use_backend("native"), medqk.use_kernel("pq8_scan", variant):
        packed = pq8.pack(codes)
        scores, ids = benchmark(pq8.search_topk, tables[:nq], packed, N, K, 1)
    check(scores, ids, reference)


@pytest.mark.benchmark(group="pq48x8 search N=262144")
@pytest.mark.parametrize("nq", [1, NQ])
def test_pq8_search_numba(benchmark, operands, reference, nq):
    codes, tables = operands
    with medqk.use_backend("numba"):
        packed = pq8.pack(codes)
        pq8.search_topk(tables[:1], packed, 64, K, 1)  # compile
        scores, ids = benchmark(pq8.search_topk, tables[:nq], packed, N, K, 1)
    check(scores, ids, reference)


@pytest.mark.benchmark(group="pq8_pack N=262144")
def test_pq8_pack(benchmark, operands):
    codes, _ = operands
    packed = benchmark(_backend._core.pq8_pack, codes[:-7])  # a last partial block
    # medqk.h: blocks of 64 vectors, block b = M rows of 64 bytes (row s: sub-code s of its 64 vectors), padding 0
    padded = np.zeros((N, M), np.uint8)
    padded[:-7] = codes[:-7]
    np.testing.assert_array_equal(packed, padded.reshape(-1, 64, M).transpose(0, 2, 1).reshape(-1))


def scan_tables(shape, seed):
    return np.random.default_rng(seed).integers(0, 128, shape, dtype=np.uint8)  # entries <= 127, as required


@pytest.fixture(scope="module")
def packed_codes(operands):
    return _backend._core.pq8_pack(operands[0])


@pytest.mark.benchmark(group="pq8_scan (M=48, N=262144)")
@pytest.mark.parametrize("variant", variants("pq8_scan"))
def test_pq8_scan(benchmark, operands, packed_codes, variant):
    codes, _ = operands
    lut = scan_tables((M, 256), 1)
    sums_ref = lut[np.arange(M), codes].sum(axis=1)  # exact integer sums
    thr = int(np.sort(sums_ref)[-1000])  # about 1,000 vectors pass
    with medqk.use_kernel("pq8_scan", variant):
        sums, masks = benchmark(_backend._core.pq8_scan, lut, packed_codes, N, thr)
    np.testing.assert_array_equal(sums, sums_ref)
    bits = (masks[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    np.testing.assert_array_equal(bits.reshape(-1).astype(bool), sums_ref >= thr)


@pytest.fixture(scope="module")
def group_case(operands):
    codes, _ = operands
    lut_t = scan_tables((M, 256, 16), 2)
    sums = np.zeros((N, 16), np.int32)  # exact: at most 48 * 127
    for s in range(M):
        sums += lut_t[s, codes[:, s]]
    return lut_t, sums


@pytest.mark.benchmark(group="pq8_scan_group (16 queries, M=48, N=262144)")
@pytest.mark.parametrize("variant", variants("pq8_scan"))
def test_pq8_scan_group(benchmark, group_case, packed_codes, variant):
    lut_t, sums_ref = group_case
    thr = np.sort(sums_ref, axis=0)[-500].astype(np.uint16)  # about 500 hits per query
    with medqk.use_kernel("pq8_scan", variant):
        hits, hit_sums = benchmark(_backend._core.pq8_scan_group, lut_t, packed_codes, N, thr)
    v, g = np.nonzero(sums_ref >= thr)  # in order of v, then g
    np.testing.assert_array_equal(hits, v * 16 + g)
    np.testing.assert_array_equal(hit_sums, sums_ref[v, g])

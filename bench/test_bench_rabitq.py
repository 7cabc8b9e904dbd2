"""1-bit RaBitQ scan (spec ``rabitq``): the native search with each scan variant this CPU runs, the Numba
twin, and the integer scan alone per variant.

d = 384 (48-byte sign codes), N = 65,536 random codes and factors, 4-bit queries (4 bit planes), k = 10;
nq = 1 (one query: the scan's latency) and nq = 32 (a batch). bench/compare_rabitq.py has faiss beside it on
MedQuAD. Every result is checked: the integers against numpy's exact sum_i b_i u_i, the ids and scores
against medqk.quantizers.rabitq.scan_scores (the scan's float32 operations in its order: the same bits) and
the tie rule (score desc, id asc).
"""

from __future__ import annotations

import numpy as np
import pytest
from _checks import topk_ids, variants

import medqk
from medqk import kernels
from medqk.quantizers.rabitq import scan_scores

D, N, K, NQ, BITS = 384, 65_536, 10, 32, 4


@pytest.fixture(scope="module")
def operands():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (N, D // 8), dtype=np.uint8)
    planes = rng.integers(0, 256, (NQ, BITS, D // 8), dtype=np.uint8)
    consts = [rng.standard_normal(NQ).astype(np.float32) for _ in range(4)]
    mult, add = rng.standard_normal(N).astype(np.float32), rng.standard_normal(N).astype(np.float32)
    return codes, planes, consts, mult, add


@pytest.fixture(scope="module")
def reference(operands):
    """The exact integers (float64 products of 0/1 and small integers: exact) and the top-k of the scores."""
    codes, planes, consts, mult, add = operands
    b = np.unpackbits(codes, axis=1, bitorder="little").astype(np.float64)
    u = sum(np.unpackbits(planes[:, j], axis=1, bitorder="little").astype(np.float64) * (1 << j)
            for j in range(BITS))
    ip = (u @ b.T).astype(np.int32)
    scores = scan_scores(ip, b.sum(axis=1).astype(np.int32), *consts, mult, add)
    ids = topk_ids(scores, K)
    return ip, np.take_along_axis(scores, ids, axis=1), ids


def check(result, reference):
    scores, ids = result
    nq = ids.shape[0]
    np.testing.assert_array_equal(ids, reference[2][:nq])
    np.testing.assert_array_equal(scores, reference[1][:nq])


def search(packed, operands, nq):
    _, planes, consts, mult, add = operands
    return kernels.rabitq_search_topk(packed, planes[:nq], *(c[:nq] for c in consts), mult, add, K, threads=1)


@pytest.mark.benchmark(group="rabitq search d=384 N=65536")
@pytest.mark.parametrize("nq", [1, NQ])
@pytest.mark.parametrize("variant", variants("rabitq_scan"))
def test_rabitq_search_native(benchmark, operands, reference, variant, nq):
    with medqk.use_backend("native"), medqk.use_kernel("rabitq_scan", variant):
        packed = kernels.pack_rabitq(operands[0], D)
        check(benchmark(search, packed, operands, nq), reference)


@pytest.mark.benchmark(group="rabitq search d=384 N=65536")
@pytest.mark.parametrize("nq", [1, NQ])
def test_rabitq_search_numba(benchmark, operands, reference, nq):
    with medqk.use_backend("numba"):
        packed = kernels.pack_rabitq(operands[0], D)
        search(packed, operands, 1)  # compile
        check(benchmark(search, packed, operands, nq), reference)


@pytest.mark.benchmark(group="rabitq_scan ints d=384 N=65536 nq=32")
@pytest.mark.parametrize("variant", variants("rabitq_scan"))
def test_rabitq_scan_ints(benchmark, operands, reference, variant):
    with medqk.use_backend("native"), medqk.use_kernel("rabitq_scan", variant):
        packed = kernels.pack_rabitq(operands[0], D)
        ip = benchmark(kernels.rabitq_scan_ints, packed, operands[1], threads=1)
    np.testing.assert_array_equal(ip, reference[0])

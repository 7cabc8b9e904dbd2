"""Index.search for every spec family, on a small seeded dataset (4,096 clustered 64-d vectors, k = 10), per
ISA the CPU has: 16 queries (the 4-bit codecs' table scan) and 256 (their batched int8-GEMM path).

Checks. float32 (BLAS) and fp16 (its native kernel sums in an order each ISA picks) against float64 scores of
the stored vectors, within the float32 rounding bound of the computation (assert_topk_bounded: then also ids
exactly, on data without near-ties). Every other spec's result is, by the kernels' contracts, the same bits on
every ISA: integer scans with exact ties, float steps that are portable code or added in one documented order
(int8 search, quantize_rows_s8, s8 re-scoring, 4-bit and 8-bit table scans, IVF keys). So its ids and scores
must equal those of the same index searched on the scalar ISA, exactly. Indexes are trained once per module.
"""

from __future__ import annotations

import numpy as np
import pytest
from _checks import ISAS, assert_topk_bounded, gamma

import medqk
import medqk.index

DIM, NTOTAL, K = 64, 4096, 10
# (spec, metric): every family of medqk.index.spec; l2 where the l2 path differs (bias terms, per-list tables)
SPECS = [
    ("float32", "ip"), ("float32", "l2"), ("fp16", "ip"), ("fp16", "l2"), ("int8", "ip"), ("int8", "l2"),
    ("int4", "ip"), ("cb4", "ip"), ("cb4", "l2"), ("cb2", "ip"), ("pca4", "ip"), ("pca2", "l2"),
    ("pq16x8", "ip"), ("pq16x8", "l2"), ("pq32x4fs", "ip"), ("opq,pq32x4fs", "ip"), ("opq,pq16x8", "ip"),
    ("ivf32,pq32x4fs", "ip"), ("ivf32,pq32x4fs", "l2"), ("pq32x4fs+rerank:int8", "ip"),
    ("ivf32,pq32x4fs+rerank:int8", "l2"), ("cb4+rerank:float32", "ip"),
]
SPEC_IDS = [f"{spec}-{metric}" for spec, metric in SPECS]
FLOAT_SPECS = ("float32", "fp16")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(15)
    centers = rng.standard_normal((64, DIM)).astype(np.float32)
    x = centers[rng.integers(0, 64, NTOTAL)] + 0.5 * rng.standard_normal((NTOTAL, DIM)).astype(np.float32)
    q = x[rng.choice(NTOTAL, 256, replace=False)] + 0.3 * rng.standard_normal((256, DIM)).astype(np.float32)
    return x, q.astype(np.float32)


def training_options(spec):
    """Fewer k-means and rotation iterations than the defaults: the benchmark times search, and any trained
    codebook serves (the smoke run trains every index in a few seconds)."""
    options = {"max_iter": 10} if "pq" in spec else {}
    if "opq" in spec:
        options["opq_iter"] = 4
    return options


@pytest.fixture(scope="module")
def built(data):
    """spec, metric -> (the trained index with every vector added, {nq: the scalar ISA's (scores, ids)})."""
    x, _ = data
    cache = {}

    def get(spec, metric):
        if (spec, metric) not in cache:
            index = medqk.index.create(spec, DIM, metric, **training_options(spec))
            cache[spec, metric] = (index.train(x).add(x), {})
        return cache[spec, metric]

    return get


def scalar_reference(index, refs, q):
    if q.shape[0] not in refs:
        with medqk.use_isa("scalar"):
            refs[q.shape[0]] = index.search(q, K, threads=1)
    return refs[q.shape[0]]


def check_float(index, q, scores, ids):
    """float32 / fp16 stores: scores against float64 ones of the stored vectors, within the bound of any
    float32 evaluation (see bench/_checks.py); l2 compared as negated distances (smaller first)."""
    x = index.vectors().astype(np.float64)
    q64 = q.astype(np.float64)
    cross, mag = q64 @ x.T, np.abs(q64) @ np.abs(x).T
    if index.metric == "ip":
        # a dot product of d terms (BLAS, or the fp16 kernel's own order)
        assert_topk_bounded(ids, scores, cross, gamma(DIM) * mag)
        return
    # |q|^2 - (2 q.x - |x|^2): three sums of d terms, a doubling (exact) and two subtractions
    qn, xn = (q64 * q64).sum(1)[:, None], (x * x).sum(1)[None, :]
    dist = qn - 2 * cross + xn
    assert_topk_bounded(ids, -scores, -dist, gamma(DIM + 2) * (qn + 2 * mag + xn))


@pytest.mark.benchmark(group="Index.search 4096 x 64-d, k=10")
@pytest.mark.parametrize("nq", [16, 256])
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("spec,metric", SPECS, ids=SPEC_IDS)
def test_search(benchmark, built, data, spec, metric, isa, nq):
    index, refs = built(spec, metric)
    q = data[1][:nq]
    benchmark.extra_info.update(spec=spec, metric=metric, isa=isa)
    with medqk.use_isa(isa):
        scores, ids = benchmark(index.search, q, K, threads=1)
    assert scores.shape == ids.shape == (nq, K) and scores.dtype == np.float32
    if spec in FLOAT_SPECS:
        check_float(index, q, scores, ids)
        return
    want_s, want_i = scalar_reference(index, refs, q)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(scores, want_s)
    # and on its own: distinct valid ids, best first, equal scores by lower id
    assert ((ids >= 0) & (ids < NTOTAL)).all() and all(len(set(r)) == K for r in ids.tolist())
    better = scores[:, 1:] <= scores[:, :-1] if metric == "ip" else scores[:, 1:] >= scores[:, :-1]
    same = scores[:, 1:] == scores[:, :-1]
    assert better.all() and (ids[:, 1:][same] > ids[:, :-1][same]).all()

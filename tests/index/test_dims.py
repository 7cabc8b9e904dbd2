"""Every codec at every dimension in common use, 17 to 4,096 (OpenAI's 1,536 and 3,072, e5-mistral's 4,096):
train / add / search through medqk.index.create with a recall far above chance, every backend (native ISAs
and Numba) giving the native scalar reference's ids and scores bit for bit on the 4-bit table scans, and the
limits that remain refused with a message naming them."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import medqk
import medqk.index as mi
from medqk import _backend
from medqk.index import SpecDataWarning
from medqk.index.lut4 import MAX_SUBSPACES

from .test_flat import exact, recall

DIMS = [17, 64, 100, 128, 256, 384, 768, 1024, 1536, 3072, 4096]
N, NQ, K = 300, 12, 10


def _pq4_m(d: int) -> int:
    """Sub-quantizers of the 4-bit PQ specs: 4 dimensions each where 4 divides d, else 1 (odd counts too)."""
    return d // 4 if d % 4 == 0 else d


def _pq8_m(d: int) -> int:
    """Sub-quantizers of the 8-bit PQ specs: the most that divides d with at least 8 dimensions each, at most
    256 (the scan's bound)."""
    return max(m for m in range(1, 257) if d % m == 0 and d // m >= min(8, d))


# the 4-bit table scans (flat and IVF): these have a Numba twin and exact integer ranking
LUT4_SPECS = ["int4", "cb4", "cb3", "cb2", "pca4", "pca3", "pca2", "pq{m4}x4fs", "ivf4,pq{m4}x4fs"]
OTHER_SPECS = ["float32", "fp16", "int8", "pq{m8}x8", "hnsw", "int4+rerank:int8", "pq{m4}x4fs+rerank:int8",
               "ivf4,pq{m4}x4fs+rerank:int8", "opq,pq{m4}x4fs", "opq,pq{m8}x8"]


def _data(d: int):
    """Embedding-like data: 16 latent directions plus a little noise (distances decided by the latent part,
    so the true top-10 is well separated at every d), queries from the same model."""
    rng = np.random.default_rng(d)
    basis = rng.standard_normal((16, d)) / 4
    x = rng.standard_normal((N, 16)) @ basis + 0.05 * rng.standard_normal((N, d))
    q = rng.standard_normal((NQ, 16)) @ basis + 0.05 * rng.standard_normal((NQ, d))
    return x.astype(np.float32), q.astype(np.float32)


@functools.cache
def _built(spec: str, d: int, metric: str):
    """A trained index holding the N vectors (training is the slow part: shared by every backend's test)."""
    x, q = _data(d)
    spec = spec.format(m4=_pq4_m(d), m8=_pq8_m(d))
    with medqk.use_backend("native" if _backend._core is not None else "numba"):
        index = mi.create(spec, d, metric)
        if "x8" in spec:  # 300 vectors for 256 centroids a subspace: training says so, the layout is still tested
            with pytest.warns(SpecDataWarning, match="per centroid"):
                index.train(x)
        else:
            index.train(x)
        index.add(x)
    return index, x, q


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("spec", LUT4_SPECS)
def test_4bit_codecs_at_every_dimension(backend, spec, d):
    metric = "l2" if d in (17, 1536) else "ip"  # l2 at an odd d and at a large one
    index, x, q = _built(spec, d, metric)
    nprobe = {"nprobe": 4} if spec.startswith("ivf") else {}  # every list: recall is the codec's own
    scores, ids = index.search(q, K, **nprobe)
    assert ids.shape == (NQ, K) and (ids >= 0).all() and np.isfinite(scores).all()
    # far above chance (K / N = 0.033): a sum that overflowed or a misread layout ranks at random
    assert recall(ids, exact(x, q, K, metric)[1]) >= 0.5
    if _backend._core is not None:
        with medqk.use_backend("native"), medqk.use_isa("scalar"):
            ref_s, ref_i = index.search(q, K, **nprobe)
        np.testing.assert_array_equal(ids, ref_i)
        np.testing.assert_array_equal(scores, ref_s)


# OPQ up to d = 256 only: its d x d rotation (an SVD per round, O(d^3)) is too slow for a unit test past that
@pytest.mark.parametrize("spec,d", [(spec, d) for spec in OTHER_SPECS for d in DIMS
                                    if not (spec.startswith("opq") and d > 256)])
def test_other_codecs_at_every_dimension(spec, d):
    metric = "l2" if d in (17, 1536) else "ip"
    index, x, q = _built(spec, d, metric)
    scores, ids = index.search(q, K)
    assert ids.shape == (NQ, K) and (ids >= 0).all() and np.isfinite(scores).all()
    assert recall(ids, exact(x, q, K, metric)[1]) >= 0.5


def test_limits_are_refused_with_their_reason():
    # the 4-bit scan: sums of up to 127 per sub-code must stay below 2^23 (exact in float32, IVF keys < 2^24)
    assert MAX_SUBSPACES == 65536
    if _backend._core is not None:
        assert _backend._core.LUT4_MAX_SUBSPACES == MAX_SUBSPACES
    for spec in ("int4", "cb4", "pca4", f"pq{MAX_SUBSPACES + 1}x4fs", f"ivf8,pq{MAX_SUBSPACES + 1}x4fs"):
        with pytest.raises(ValueError, match=r"at most 65,536 .*below 2\^23"):
            mi.create(spec, MAX_SUBSPACES + 1)
    mi.create("int4", MAX_SUBSPACES)  # the maximum itself is taken
    mi.create("cb2", MAX_SUBSPACES + 1)  # two dimensions per sub-code: 32,769 sub-codes
    # 8-bit PQ: at most 256 sub-quantizers (its scan sums 256 entries <= 127 in 16 bits)
    with pytest.raises(ValueError, match="M <= 256"):
        mi.create("pq512x8", 4096)
    with pytest.raises(ValueError, match="no whole nibble"):
        mi.create("pca2", 1)


@pytest.mark.skipif(_backend._core is None, reason="native module not built")
def test_native_scans_refuse_more_sub_codes_than_the_bound():
    core = _backend._core
    d = MAX_SUBSPACES + 1
    codes = np.zeros((1, d), np.uint8)
    packed = core.lut4_pack(codes)
    one = np.ones(1, np.float32)
    with pytest.raises(ValueError, match=r"d must be in 1\.\.65536"):
        core.lut4_search_topk(np.zeros((1, d + 1, 16), np.uint8), packed, 1, d, one, one, 1)
    luts = np.zeros((1, 1, d + 1, 16), np.uint8)
    probes, keys = np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int32)
    blocks, starts = np.array([0, 1], np.int64), np.array([0, 1], np.int64)
    with pytest.raises(ValueError, match="1 <= S <= 65536"):
        core.ivf_lut4_search(luts, probes, keys, packed, blocks, starts, np.zeros(1, np.int64), 1, 1)

"""opq,pq<M>x4fs and opq,pq<M>x8: spec parsing, search under every backend, rerank, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest

import medqk.index as mi
from medqk.index.lut4 import FlatLUT4Index, unpack_codes
from medqk.index.pq8 import FlatPQ8Index
from medqk.quantizers.opq import OPQCodec
from medqk.quantizers.pq import PQCodec

from ..float_bounds import gamma, pq_adc_reference
from ..quantizers.test_opq import anisotropic
from .test_flat import exact, recall

OPTS = {"opq_iter": 4, "max_iter": 8}


def queries(x, nq=30, seed=1):
    rng = np.random.default_rng(seed)
    return (x[rng.integers(0, len(x), nq)] + 0.05 * rng.standard_normal((nq, x.shape[1]))).astype(np.float32)


@pytest.mark.parametrize("spec,cls", [("opq,pq8x4fs", FlatLUT4Index), ("opq,pq4x8", FlatPQ8Index)])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_search_scores_are_adc_in_the_original_space(backend, spec, cls, metric):
    x = anisotropic(n=700)
    q = queries(x)
    index = mi.create(spec, 32, metric, **OPTS).train(x).add(x[:400]).add(x[400:])
    assert type(index) is cls and isinstance(index.codec, OPQCodec)
    assert str(index.spec) == spec and index.bytes_per_vector == 4
    scores, ids = index.search(q, 10)
    flat_ids = ids.reshape(-1)
    codes = index.codes(flat_ids) if cls is FlatPQ8Index else unpack_codes(index._packed, flat_ids,
                                                                            index.n_sub)
    # float64 reconstructions y R^T in the original space; vectors() makes them by a float32 sgemm
    y = PQCodec.decode_sub(index.codec, codes).astype(np.float64)  # centroids, rotated space
    r64 = index.codec.rotation.astype(np.float64)
    rec = y @ r64.T
    assert (np.abs(index.vectors(flat_ids) - rec) <= gamma(32) * (np.abs(y) @ np.abs(r64.T))).all()
    rec = rec.reshape(ids.shape + (32,))
    q64 = q.astype(np.float64)
    want = np.einsum("qd,qkd->qk", q64, rec) if metric == "ip" else ((q64[:, None] - rec) ** 2).sum(-1)
    # the index scores (q R) . y (l2: with |y|^2, which is |y R^T|^2 up to the float32 rotation's
    # departure from orthogonality) in float32: within the derived bound of the exact ADC score
    exact_adc, bound = pq_adc_reference(index.codec, q, codes.reshape(ids.shape + (-1,)), metric)
    assert (np.abs(scores - exact_adc) <= bound).all()
    defect = np.linalg.norm(np.eye(32) - r64.T @ r64, 2) * (y * y).sum(1).reshape(ids.shape)
    # want and exact_adc agree up to their own float64 roundings (gamma_64(4 d) S, far below bound * 2**-20)
    assert (np.abs(want - exact_adc) <= bound * 2.0**-20 + (defect if metric == "l2" else 0)).all()


@pytest.mark.parametrize("spec,margin", [("opq,pq8x4fs", 0.05), ("opq,pq4x8", 0.0)])
def test_opq_finds_more_true_neighbours_than_pq(spec, margin):
    x = anisotropic(n=1500)
    q = queries(x, nq=60)
    ref = exact(x, q, 10, "ip")[1]
    r_opq = recall(mi.create(spec, 32, **OPTS).train(x).add(x).search(q, 10)[1], ref)
    r_pq = recall(mi.create(spec[4:], 32, max_iter=8).train(x).add(x).search(q, 10)[1], ref)
    # measured: pq8x4fs 0.64 -> 0.77; pq4x8 (256 centroids of 8-d sub-vectors for 1,500 points, nearly
    # one centroid per 6 points, so both are already close) 0.725 -> 0.758
    assert r_opq > r_pq + margin, (r_opq, r_pq)


@pytest.mark.parametrize("spec", ["opq,pq8x4fs+rerank:int8", "opq,pq4x8+rerank:int8", "opq,pq8x4fs", "opq,pq4x8"])
def test_save_load_gives_identical_results(tmp_path, spec):
    x = anisotropic(n=800)
    q = queries(x)
    index = mi.create(spec, 32, opq_iter=3, opq_kmeans_iter=2, max_iter=6, seed=9).train(x).add(x)
    if "rerank" in spec:
        assert index.rerank_factor == 16 and index.bytes_per_vector == 4 + 32
        assert recall(index.search(q, 10)[1], exact(x, q, 10, "ip")[1]) >= 0.95
    scores, ids = index.search(q, 10)
    index.save(tmp_path / "opq.mqk")
    for mmap in (False, True):
        loaded = mi.load(tmp_path / "opq.mqk", mmap=mmap)
        assert str(loaded.spec) == spec
        s2, i2 = loaded.search(q, 10)
        np.testing.assert_array_equal(i2, ids)
        np.testing.assert_array_equal(s2, scores)
    codec = (loaded.base if "rerank" in spec else loaded).codec
    assert (codec.opq_iter, codec.opq_kmeans_iter, codec.max_iter, codec.seed) == (3, 2, 6, 9)


def test_spec_grammar():
    assert str(mi.parse_spec(" OPQ,PQ96x4fs + rerank:int8 ")) == "opq,pq96x4fs+rerank:int8"
    assert mi.parse_spec("opq,pq48x8").base == "opq,pq48x8"
    for spec in ("opq,pq96x4fs", "opq,pq48x8", "opq,pq96x4fs+rerank:int8"):
        assert spec in mi.valid_specs()
        mi.parse_spec(spec)


@pytest.mark.parametrize("spec", ["opq,int8", "opq,float32", "opq,hnsw", "opq,", "opq,cb4+rerank:int8",
                                  "int8+rerank:opq,int4"])
def test_opq_only_before_pq(spec):
    with pytest.raises(ValueError, match="'opq,' .* goes only before a pq codec"):
        mi.create(spec, 32)


@pytest.mark.parametrize("error, match, call", [
    (ValueError, "M=5 does not divide the dimension 32", lambda: mi.create("opq,pq5x4fs", 32)),
    (ValueError, "write pq8x4fs", lambda: mi.create("opq,pq8x4", 32)),
    (ValueError, "unknown index spec", lambda: mi.create("opqpq8x8", 32)),
    (TypeError, "takes no option opq_iter", lambda: mi.create("pq8x8", 32, opq_iter=3)),
    (ValueError, "opq_iter must be an int >= 0", lambda: mi.create("opq,pq8x8", 32, opq_iter=-2)),
    (ValueError, "at least 256 vectors", lambda: mi.create("opq,pq8x8", 32).train(np.zeros((100, 32), "f4"))),
    (RuntimeError, "must be trained before add", lambda: mi.create("opq,pq8x4fs", 32).add(np.zeros((10, 32), "f4"))),
])
def test_bad_opq_specs_and_options(error, match, call):
    with pytest.raises(error, match=match):
        call()

"""The ``rabitq`` spec (medqk.index.rabitq): built from the codec table, searched by the AND-popcount scan,
with the library's tie rule, ``+rerank:int8`` and save/load."""

from __future__ import annotations

import numpy as np
import pytest

import medqk.index as mi
from medqk.index.rabitq import FlatRaBitQIndex
from medqk.quantizers.rabitq import unpack_bits

from .test_flat import data, exact, recall


def _reference(index, q, k):
    """Top-k of the codec's estimate computed in numpy from unpacked bits and bit planes (ties -> lower id)."""
    from medqk.kernels._numba_rabitq import scores_reference

    codec, d = index.codec, index.dim
    query = codec.quantize_queries(q)
    stored = index._state()[1]
    b = unpack_bits(stored["codes"], d).astype(np.int64)
    u = sum(unpack_bits(query.planes[:, j], d).astype(np.int64) << j for j in range(query.planes.shape[1]))
    s = scores_reference(u @ b.T, b.sum(axis=1), query.a, query.c1, query.c2, query.c3, stored["mult"],
                         stored["add"])
    order = np.lexsort((np.broadcast_to(np.arange(s.shape[1]), s.shape), -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, axis=1), order


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_search_equals_reference_and_finds_neighbours(backend, metric):
    """Ids and scores equal the numpy evaluation of the estimator (the l2 scores turned into distances as
    every index does), duplicated vectors tie with the lower id first, and recall@10 is well above chance.
    Fails when add() leaves the scan's word copy of the codes from before it in place."""
    x, q = data(n=500, nq=30, d=72)
    x[400:450] = x[300:350]
    index = mi.create("rabitq", 72, metric).train(x).add(x[:250])
    index.search(q[:2], 3)  # the scan's arrays now exist: add() must renew them
    index.add(x[250:])
    assert isinstance(index, FlatRaBitQIndex) and index.bytes_per_vector == 9 + 8
    s, i = index.search(q, 10)
    ref_s, ref_i = _reference(index, q, 10)
    np.testing.assert_array_equal(i, ref_i)
    if metric == "ip":
        np.testing.assert_array_equal(s, ref_s)
    q_dup = x[[310, 320]]
    _, i_dup = index.search(q_dup, 2)
    np.testing.assert_array_equal(i_dup, [[310, 410], [320, 420]])
    assert recall(i, exact(x, q, 10, metric)[1]) > 0.5  # 1 bit/dim at d = 72; chance is 10/500


@pytest.mark.parametrize("spec,code_bytes,min_recall", [("rabitq", 8, 0.95), ("rabitq2", 16, 0.97)])
def test_rerank_int8_recovers_recall(backend, spec, code_bytes, min_recall):
    """+rerank:int8 after the 1-bit and a multi-bit (rabitq<b>) base: more recall than the base alone."""
    x, q = data(n=600, nq=40, d=64)
    ref = exact(x, q, 10, "ip")[1]
    plain = mi.create(spec, 64).train(x).add(x)
    reranked = mi.create(f"{spec}+rerank:int8", 64).train(x).add(x)
    assert reranked.rerank_factor == 16 and reranked.bytes_per_vector == code_bytes + 8 + 64
    r_plain, r_rerank = recall(plain.search(q, 10)[1], ref), recall(reranked.search(q, 10)[1], ref)
    assert r_rerank >= min_recall and r_rerank > r_plain


def test_save_load_is_bit_exact(tmp_path):
    """Saved arrays (rotation, centroid, codes, factors) come back byte for byte and the search is identical.
    Fails if load_state rebuilds the rotation from the seed instead of reading it (float32 vs float64 path)."""
    x, q = data(n=300, nq=12, d=40)
    index = mi.create("rabitq", 40, "l2", query_bits=6, seed=3).train(x).add(x)
    index.save(tmp_path / "r.mqk")
    loaded = mi.load(tmp_path / "r.mqk")
    assert loaded.codec.config() == {"query_bits": 6, "seed": 3, "eps0": 1.9, "aware_passes": 2, "aware_mix": 0.3}
    a, b = index._state()[1], loaded._state()[1]
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
    for got, want in zip(loaded.search(q, 7), index.search(q, 7)):
        np.testing.assert_array_equal(got, want)


def test_bad_input():
    x, _ = data(n=50, nq=1, d=16)
    index = mi.create("rabitq", 16)
    with pytest.raises(RuntimeError, match="trained"):
        index.add(x)
    with pytest.raises(TypeError, match="query_bits"):
        mi.create("rabitq", 16, bits=3)
    with pytest.raises(ValueError, match="query_bits"):
        mi.create("rabitq", 16, query_bits=0)
    index.train(x).add(x)
    with pytest.raises(ValueError, match="q has dimension 15"):
        index.search(x[:, :15], 3)
    bad = x[:2].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="q contains NaN or Inf"):
        index.search(bad, 3)

"""The ``rabitq<b>`` specs (b = 2..8, medqk.index.rabitq): built from the codec table, scored by the 1-bit scan
over the b bit planes (every backend), recall growing with b, the tie rule, save/load, own ids, removal,
filters, search_range, and the errors for a bad b (``+rerank:int8``: tests/index/test_rabitq_index.py)."""

from __future__ import annotations

import numpy as np
import pytest

import medqk.index as mi
from medqk._errors import IndexFileError
from medqk.index.rabitq import FlatRaBitQIndex
from medqk.quantizers.rabitq import unpack_code_planes

from . import test_remove_filter
from . import test_search_range as search_range_tests
from .test_flat import data, exact, recall


def _reference(index, q, k):
    """Top-k of the estimator evaluated in float64 numpy from the unpacked codes x and the query's segments
    (rebuilt from its bit planes), then rounded as the scan's float32 formula; ties -> lower id."""
    from medqk.kernels._numba_rabitq import scores_reference

    codec, d, bits = index.codec, index.dim, index.codec.bits
    query = codec.quantize_queries(q)
    stored = index._state()[1]
    x = unpack_code_planes(stored["codes"], d, bits)
    nplanes = query.planes.shape[1]
    v = sum(unpack_code_planes(query.planes[:, j], bits * d, 1) << j for j in range(nplanes))  # (nq, b d)
    ip = sum(v[:, kk * d : (kk + 1) * d] @ ((x >> kk) & 1).T for kk in range(bits))
    s = scores_reference(ip, x.sum(axis=1), query.a, query.c1, query.c2, query.c3, stored["mult"], stored["add"])
    order = np.lexsort((np.broadcast_to(np.arange(s.shape[1]), s.shape), -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, axis=1), order


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("spec,nbytes", [("rabitq2", 18 + 8), ("rabitq3", 27 + 8), ("rabitq5", 45 + 8)])
def test_search_equals_reference_with_tie_rule(backend, spec, nbytes, metric):
    """Ids and scores equal the numpy evaluation of the estimator over the whole index (the l2 scores turned
    into distances as every index does), duplicated vectors tie with the lower id first, and the bytes per
    vector are ceil(b d / 8) + 8. Fails when the scan is handed the codes' popcount instead of the code sum
    S (the lo term then weighs every plane alike)."""
    x, q = data(n=400, nq=25, d=72, seed=5)
    x[350:380] = x[300:330]
    index = mi.create(spec, 72, metric).train(x).add(x[:200])
    index.search(q[:2], 3)  # the scan's arrays now exist: add() must renew them
    index.add(x[200:])
    assert isinstance(index, FlatRaBitQIndex) and index.bytes_per_vector == nbytes
    s, i = index.search(q, 10)
    ref_s, ref_i = _reference(index, q, 10)
    np.testing.assert_array_equal(i, ref_i)
    if metric == "ip":
        np.testing.assert_array_equal(s, ref_s)
    _, i_dup = index.search(x[[305, 320]], 2)
    np.testing.assert_array_equal(i_dup, [[305, 355], [320, 370]])


def test_recall_grows_with_bits(backend):
    """R@10 on a seeded clustered set rises with every bit from 1 to 5 (0.30 at 1 bit, 0.91 at 5 bits). Fails when the
    multi-bit codes fall back to the sign bit (rabitq2..5 would all score like rabitq)."""
    d = 64
    x, q = data(n=1500, nq=60, d=d, seed=9)
    ref = exact(x, q, 10, "ip")[1]
    got = [recall(mi.create(spec, d).train(x).add(x).search(q, 10)[1], ref)
           for spec in ("rabitq", "rabitq2", "rabitq3", "rabitq4", "rabitq5")]
    assert all(a < b for a, b in zip(got, got[1:])), got
    assert got[-1] >= 0.85 > 0.5 > got[0], got


def test_save_load_is_bit_exact(tmp_path):
    """The spec carries b: the loaded index has the same codec (bits, options), arrays byte for byte and the
    same search results. Fails if the factory ignores the spec's b (a loaded rabitq4 would be 1-bit)."""
    x, q = data(n=300, nq=12, d=40)
    index = mi.create("rabitq4", 40, "l2", query_bits=7, seed=3).train(x).add(x)
    index.save(tmp_path / "r.mqk")
    loaded = mi.load(tmp_path / "r.mqk")
    assert loaded.codec.bits == 4 and loaded.codec.config() == {"query_bits": 7, "seed": 3, "eps0": 1.9}
    a, b = index._state()[1], loaded._state()[1]
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
    for got, want in zip(loaded.search(q, 7), index.search(q, 7)):
        np.testing.assert_array_equal(got, want)
    arrays = dict(a, codes=a["codes"][:, :-1])  # a 3-bit-wide code under a rabitq4 spec
    with pytest.raises(IndexFileError, match="corrupt rabitq4 index: codes"):
        mi.create("rabitq4", 40, "l2")._load_state(index._state()[0], arrays)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_remove_and_compact(backend, metric):
    test_remove_filter.test_removed_ids_are_never_returned(backend, "rabitq3", metric)


@pytest.mark.parametrize("spec", ["rabitq3", "rabitq2+rerank:int8"])
def test_filtered_search(backend, spec):
    test_remove_filter.test_filtered_search_equals_search_of_the_allowed_subset(backend, spec)


@pytest.mark.parametrize("metric", ["ip", "l2", "cos"])
def test_search_range(backend, metric):
    search_range_tests.test_equals_brute_force_over_the_final_scores(backend, "rabitq3", metric)


def test_own_ids_and_selective_filter():
    """Own ids come back for the rows the plain index returns, with the same scores; a selective filter's
    exact scan of the allowed rows ranks and scores as the full scan with the bitmap does."""
    x, q = data(n=400, nq=20, d=16, seed=3)
    own = 10_000 + 7 * np.arange(len(x), dtype=np.int64)
    plain = mi.create("rabitq3", 16).train(x).add(x)
    mine = mi.create("rabitq3", 16).train(x).add(x, ids=own)
    s1, i1 = plain.search(q, 10)
    s2, i2 = mine.search(q, 10)
    np.testing.assert_array_equal(i2, own[i1])
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(mine.ids(), own)
    with pytest.raises(TypeError, match="cannot reconstruct"):
        mine.vectors(own[[5]])
    allowed = own[[3, 50, 51, 200, 333, 399]]
    s, got = mine.search(q, 5, filter=allowed)
    mine.exact_scan_fraction = 0.0
    s_full, got_full = mine.search(q, 5, filter=allowed)
    np.testing.assert_array_equal(got, got_full)
    np.testing.assert_array_equal(s, s_full)


@pytest.mark.parametrize("spec,match", [
    ("rabitq1", "'rabitq1': rabitq<b> takes b = 2..8 bits per dimension, got 1: the 1-bit code is written rabitq"),
    ("rabitq9", "'rabitq9': rabitq<b> takes b = 2..8 bits per dimension, got 9"),
    ("rabitq0", "'rabitq0': rabitq<b> takes b = 2..8"),
    ("rabitq03", "'rabitq03': rabitq<b> takes b = 2..8"),
    ("int8+rerank:rabitq12", "'rabitq12': rabitq<b> takes b = 2..8"),
])
def test_bad_bits_name_the_spec(spec, match):
    with pytest.raises(ValueError, match=match):
        mi.create(spec, 16)


def test_bad_options():
    with pytest.raises(TypeError, match="aware_passes"):  # score-aware codes are 1-bit only
        mi.create("rabitq2", 16, aware_passes=2)
    with pytest.raises(ValueError, match="query_bits"):
        mi.create("rabitq2", 16, query_bits=9)
    x, _ = data(n=50, nq=1, d=16)
    index = mi.create("rabitq4", 16)
    with pytest.raises(RuntimeError, match="trained"):
        index.add(x)
    index.train(x).add(x)
    bad = x[:2].copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="q contains NaN or Inf"):
        index.search(bad, 3)

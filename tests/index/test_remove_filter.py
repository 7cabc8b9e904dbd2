"""remove / upsert / compact and filtered search, for every index kind: the results equal those of an index
that holds only the allowed (or remaining) vectors, trained the same way."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import medqk
import medqk.index as mi
from medqk.index import flat

from .test_flat import data

pytestmark = pytest.mark.filterwarnings("ignore::medqk.index.SpecDataWarning")  # small data, on purpose
D = 16
SPECS = ["float32", "fp16", "int8", "cb4", "pq8x4fs", "pq8x8", "ivf4,pq8x4fs", "int8+rerank:float32",
         "pq8x4fs+rerank:int8", "cb4+rerank:fp16", "ivf4,pq8x4fs+rerank:int8", "rabitq", "rabitq+rerank:int8"]


def trained(spec, metric, x):
    options = {"nprobe": 3} if spec.startswith("ivf") else {}
    return mi.create(spec, D, metric, **options).train(x)


def reference(spec, metric, x, ids, keep):
    """The same spec trained on the same x, holding only the rows ``keep`` under their ids."""
    return trained(spec, metric, x).add(x[keep], ids=ids[keep])


def assert_same(a, b):
    """Same ids; the same scores up to the rounding of BLAS products of other shapes (float32 flat)."""
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_removed_ids_are_never_returned(backend, spec, metric):
    x, q = data(n=500, nq=12, d=D, seed=11)
    ids = 3 * np.arange(len(x), dtype=np.int64) + 1
    index = trained(spec, metric, x).add(x, ids=ids)
    gone = np.random.default_rng(2).choice(len(x), 100, replace=False)  # 20%: below the auto compaction
    assert index.remove(np.r_[ids[gone], [2, 10**9]]) == 100  # unknown ids: ignored, not counted
    assert index.remove(ids[gone[:5]]) == 0
    assert len(index) == 400 and index._ntotal == 500  # marked, not yet reclaimed
    keep = np.setdiff1d(np.arange(len(x)), gone)
    ref = reference(spec, metric, x, ids, keep)
    assert_same(index.search(q, 10), ref.search(q, 10))
    if spec in ("float32", "int8", "pq8x8", "ivf4,pq8x4fs+rerank:int8"):
        _, everything = index.search(q[:2], 400)
        assert not np.isin(everything, ids[gone]).any()
        if not spec.startswith("ivf"):  # IVF probes 3 of 4 lists
            assert (np.sort(everything, axis=1) == ids[keep]).all()
    index.compact()
    assert index._ntotal == 400 and len(index) == 400
    assert_same(index.search(q, 10), ref.search(q, 10))


@pytest.mark.parametrize("spec", SPECS)
def test_filtered_search_equals_search_of_the_allowed_subset(backend, spec):
    x, q = data(n=500, nq=12, d=D, seed=12)
    ids = np.arange(len(x), dtype=np.int64) * 2
    index = trained(spec, "ip", x).add(x, ids=ids)
    allowed = np.sort(np.random.default_rng(3).choice(len(x), 250, replace=False))
    ref = reference(spec, "ip", x, ids, allowed).search(q, 10)
    assert_same(index.search(q, 10, filter=ids[allowed]), ref)
    mask = np.zeros(index.next_id, dtype=bool)
    mask[ids[allowed]] = True
    assert_same(index.search(q, 10, filter=mask), ref)
    if spec == "float32":  # the callable: the same rows, slower
        allowed_set = set(ids[allowed].tolist())
        assert_same(index.search(q, 10, filter=lambda i: i in allowed_set), ref)


@pytest.mark.parametrize("spec", ["cb4", "int4", "pq8x4fs+rerank:int8"])
def test_filter_on_the_batched_gemm_path(spec):
    """256+ queries: the 4-bit codecs find candidates by the int8 GEMM over decoded blocks; the filter's bitmap
    is sliced per block there."""
    x, q = data(n=40_000, nq=256, d=D, seed=13)
    index = trained(spec, "ip", x[:2000]).add(x)
    allowed = np.flatnonzero(np.random.default_rng(4).random(len(x)) < 0.5)
    got = index.search(q, 5, filter=allowed)
    ref = trained(spec, "ip", x[:2000]).add(x[allowed], ids=allowed).search(q, 5)
    assert_same(got, ref)


@pytest.mark.parametrize("spec", SPECS + ["hnsw", "hnsw+rerank:int8"])
def test_selective_filter_is_an_exact_scan_of_the_allowed_rows(spec):
    pytest.importorskip("hnswlib") if "hnsw" in spec else None
    x, q = data(n=500, nq=12, d=D, seed=14)
    ids = np.arange(len(x), dtype=np.int64) + 7
    index = trained(spec, "ip", x).add(x, ids=ids)
    allowed = np.array([3, 50, 51, 200, 333, 499])  # 6 of 500 rows: below every exact_scan_fraction
    assert len(allowed) <= flat.EXACT_SCAN_FRACTION * len(x) <= index.exact_scan_fraction * len(x)
    s, got = index.search(q, 5, filter=ids[allowed])
    if spec == "rabitq":  # no reconstruction: the exact scan must rank as the scan with the bitmap does
        index.exact_scan_fraction = 0.0
        s2, got2 = index.search(q, 5, filter=ids[allowed])
        np.testing.assert_array_equal(got, got2)
        np.testing.assert_array_equal(s, s2)
        return
    rec = index.vectors(ids[allowed]).astype(np.float64)  # what each kind's last stage scores
    ref = q.astype(np.float64) @ rec.T
    order = np.lexsort((np.broadcast_to(ids[allowed], ref.shape), -ref), axis=1)[:, :5]
    np.testing.assert_array_equal(got, ids[allowed][order])
    np.testing.assert_allclose(s, np.take_along_axis(ref, order, axis=1), rtol=1e-4, atol=1e-5)
    _, few = index.search(q, 10, filter=ids[allowed])  # fewer allowed than k: the rest is padding
    assert (few[:, 6:] == -1).all() and (few[:, :6] >= 0).all()


def test_filter_with_removed_rows_and_hnsw():
    pytest.importorskip("hnswlib")
    x, q = data(n=400, nq=8, d=D, seed=15)
    index = mi.create("hnsw", D, ef_search=200).add(x)
    assert index.remove(np.arange(0, 400, 4)) == 100
    _, got = index.search(q, 10)
    assert not np.isin(got, np.arange(0, 400, 4)).any() and (got >= 0).all()
    allowed = np.arange(1, 400, 2)
    _, got = index.search(q, 10, filter=allowed)
    assert np.isin(got, allowed).all()
    ref = mi.create("float32", D).add(x[allowed], ids=allowed).search(q, 10)[1]
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, ref)]) > 0.9  # a graph: near, not exact


@pytest.mark.parametrize("spec", ["float32", "int8", "pq8x4fs+rerank:int8", "ivf4,pq8x4fs"])
def test_upsert_replaces_and_auto_compacts(spec):
    x, q = data(n=300, nq=5, d=D, seed=16)
    index = trained(spec, "ip", x).add(x)
    new = -x[:3]
    index.upsert(new, ids=[10, 20, 1000])
    assert len(index) == 301 and index.next_id == 1001
    _, got = index.search(new, 1)
    np.testing.assert_array_equal(got[:, 0], [10, 20, 1000])
    before = index.search(q, 8)
    removed = index.remove(np.arange(0, 100))  # 100 of 303 stored rows: past 25%, compacted at once
    assert removed == 100 and len(index) == 201 and index._ntotal == 201
    assert index.remove([]) == 0
    ref = trained(spec, "ip", x).add(x[100:], ids=np.arange(100, 300)).upsert(new[2:], ids=[1000])
    assert_same(index.search(q, 8), ref.search(q, 8))
    assert not np.isin(index.search(q, 8)[1], np.arange(100)).any()
    assert np.isin(before[1], np.arange(100)).any()  # the removal took results away


def test_upsert_error_leaves_the_index_as_it_was():
    x, _ = data(n=50, d=D, seed=17)
    index = mi.create("int8", D).train(x).add(x)
    bad = x[:2].copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        index.upsert(bad, ids=[0, 1])
    with pytest.raises(ValueError, match="duplicates"):
        index.upsert(x[:2], ids=[3, 3])
    assert len(index) == 50 and index.remove([0, 1]) == 2


@pytest.mark.parametrize("spec", ["float32", "int8", "cb4", "pq8x8", "ivf4,pq8x4fs", "pq8x4fs+rerank:int8"])
def test_deletions_survive_save_and_load(tmp_path, spec):
    x, q = data(n=300, nq=6, d=D, seed=18)
    index = trained(spec, "ip", x).add(x)
    index.remove(np.arange(0, 300, 5))
    index.save(tmp_path / "d.mqk")
    assert struct.unpack("<I", (tmp_path / "d.mqk").read_bytes()[8:12])[0] == 2
    loaded = mi.load(tmp_path / "d.mqk")
    assert len(loaded) == 240 and loaded._ntotal == 300
    assert_same(loaded.search(q, 9), index.search(q, 9))
    loaded.compact()
    index.compact()
    assert_same(loaded.search(q, 9), index.search(q, 9))


def test_bad_filters_and_ids():
    x, q = data(n=40, d=D, seed=19)
    index = mi.create("float32", D).add(x)
    with pytest.raises(ValueError, match="filter: a boolean mask has one entry per id"):
        index.search(q, 3, filter=np.ones(39, dtype=bool))
    with pytest.raises(TypeError, match="filter must be"):
        index.search(q, 3, filter=np.ones(40, dtype=np.float32))
    with pytest.raises(ValueError, match="filter must be >= 0"):
        index.search(q, 3, filter=np.array([-1, 2]))
    with pytest.raises(TypeError, match="ids must be integers"):
        index.remove(np.array([1.5]))
    with pytest.raises(ValueError, match="k=41 is larger"):
        index.search(q, 41)
    index.remove(np.arange(30))
    with pytest.raises(ValueError, match="k=11 is larger than the 10 vectors"):
        index.search(q, 11)


def test_every_isa_agrees_on_filtered_ids():
    """Every native ISA path gives the same filtered results (the Numba twins meet the same reference in the
    tests above, which run under every backend)."""
    pytest.importorskip("medqk._core")
    x, q = data(n=1500, nq=40, d=D, seed=20)
    allowed = np.flatnonzero(np.random.default_rng(5).random(len(x)) < 0.4)
    combos = [("native", isa) for isa in medqk.available_isas()]
    for spec in ("int8", "fp16", "cb4", "pq4x8", "ivf8,pq8x4fs"):
        results = []
        for name, isa in combos:
            with medqk.use_backend(name):
                index = mi.create(spec, D).train(x).add(x)
                index.remove(np.arange(0, 1500, 7))
                if isa:
                    with medqk.use_isa(isa):
                        results.append(index.search(q, 12, filter=allowed, threads=2))
                else:
                    results.append(index.search(q, 12, filter=allowed))
        for r in results[1:]:
            assert_same(r, results[0])

"""Flat indexes: exactness of float32, recall of the quantized codecs, tie rule, padding, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import medqk
import medqk.index as mi

SPECS = ["float32", "fp16", "int8", "int8+rerank:float32", "fp16+rerank:float32", "int8+rerank:int8",
         "int4", "cb4", "cb3", "cb2", "cb4+rerank:int8", "cb2+rerank:float32",
         "pca4", "pca2", "pca4+rerank:int8"]


def data(n=700, nq=60, d=48, seed=0, normalize=True):
    rng = np.random.default_rng(seed)
    # clustered data, like embeddings: a few directions plus noise
    centers = rng.standard_normal((12, d))
    x = centers[rng.integers(0, 12, n)] + 0.6 * rng.standard_normal((n, d))
    q = centers[rng.integers(0, 12, nq)] + 0.6 * rng.standard_normal((nq, d))
    if normalize:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x.astype(np.float32), q.astype(np.float32)


def exact(x, q, k, metric):
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "ip":
        s = q64 @ x64.T
        ids = np.lexsort((np.broadcast_to(np.arange(len(x)), s.shape), -s), axis=1)[:, :k]
    else:
        s = ((q64[:, None, :] - x64[None]) ** 2).sum(-1)
        ids = np.lexsort((np.broadcast_to(np.arange(len(x)), s.shape), s), axis=1)[:, :k]
    return np.take_along_axis(s, ids, axis=1), ids


def recall(ids, ref):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(ids, ref)])


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("spec", SPECS)
def test_search_quality_and_scores(backend, spec, metric):
    x, q = data(normalize=metric == "ip")
    index = mi.create(spec, x.shape[1], metric)
    index.train(x)
    index.add(x[:300]).add(x[300:])  # add is callable repeatedly; ids continue
    assert index.ntotal == len(x)
    scores, ids = index.search(q, 10)
    assert scores.dtype == np.float32 and ids.dtype == np.int64 and scores.shape == ids.shape == (len(q), 10)
    ref_s, ref_i = exact(x, q, 10, metric)
    r = recall(ids, ref_i)
    # measured on this synthetic set (tight clusters: hard for 4-bit codes), kept a little below
    floor = {"float32": 1.0, "fp16": 0.99, "int8": 0.97, "int4": 0.7, "cb4": 0.78, "cb3": 0.6, "cb2": 0.42,
             "int8+rerank:float32": 0.995, "fp16+rerank:float32": 0.995, "int8+rerank:int8": 0.97,
             "cb4+rerank:int8": 0.95, "cb2+rerank:float32": 0.92,
             "pca4": 0.84, "pca2": 0.58, "pca4+rerank:int8": 0.95}[spec]
    assert r >= floor, f"{spec} {metric}: recall {r}"
    # best first
    if metric == "ip":
        assert (np.diff(scores, axis=1) <= 0).all()
    else:
        assert (np.diff(scores, axis=1) >= 0).all()
    # scores are exact float scores of the stored (reconstructed) vectors of the returned ids
    stored = index.refine if "+" in spec else index
    rec = stored.vectors(ids.reshape(-1)).reshape(ids.shape + (x.shape[1],)).astype(np.float64)
    q64 = q.astype(np.float64)
    true = np.einsum("qd,qkd->qk", q64, rec) if metric == "ip" else ((q64[:, None] - rec) ** 2).sum(-1)
    np.testing.assert_allclose(scores, true, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("spec", ["int4", "cb4", "cb3", "cb4+rerank:int8", "pca4", "pca2+rerank:int8", "pq12x4fs",
                                  "opq,pq12x4fs"])
def test_batched_int8_gemm_path(backend, spec, metric, monkeypatch):
    """Batches of >= GEMM_MIN_QUERIES queries take their candidates from the int8 GEMM over decoded blocks:
    the same results as the 4-bit table scan up to candidates at the margin, blocks merged exactly."""
    import medqk.index.flat as flat
    import medqk.index.lut4 as lut4

    monkeypatch.setattr(lut4, "GEMM_MAX_DIMS_PER_SUBSPACE", 10**9)  # the GEMM for pq too
    x, _ = data(n=1500, normalize=metric == "ip")
    _, q = data(n=10, nq=lut4.GEMM_MIN_QUERIES, seed=3, normalize=metric == "ip")
    opts = {"opq_iter": 3, "max_iter": 6} if spec.startswith("opq") else {}
    index = mi.create(spec, x.shape[1], metric, **opts).train(x).add(x)
    s_gemm, i_gemm = index.search(q, 10)
    monkeypatch.setattr(flat, "GEMM_DB_BLOCK", 97)  # many blocks: the merge must give the same top-k
    s_blocks, i_blocks = index.search(q, 10)
    np.testing.assert_array_equal(i_blocks, i_gemm)
    np.testing.assert_array_equal(s_blocks, s_gemm)
    monkeypatch.setattr(lut4, "GEMM_MIN_QUERIES", 10**9)  # the table scan
    s_scan, i_scan = index.search(q, 10)
    assert recall(i_gemm, i_scan) >= 0.97
    same = (i_gemm == i_scan).all(axis=1)
    assert same.mean() >= 0.8
    np.testing.assert_allclose(s_gemm[same], s_scan[same], rtol=1e-6, atol=1e-6)


def test_float32_is_exact_with_tie_rule(backend):
    rng = np.random.default_rng(1)
    # many exact duplicates and ties: equal scores must come out by increasing id
    base = rng.integers(-2, 3, size=(40, 8)).astype(np.float32)
    x = np.concatenate([base, base, base])
    q = rng.integers(-2, 3, size=(25, 8)).astype(np.float32)
    for metric in ("ip", "l2"):
        index = mi.create("float32", 8, metric).add(x)
        scores, ids = index.search(q, 30)
        ref_s, ref_i = exact(x, q, 30, metric)
        np.testing.assert_array_equal(ids, ref_i)
        np.testing.assert_allclose(scores, ref_s, atol=1e-5)


def test_int8_ties_lower_id_first(backend):
    # identical vectors get identical codes and scores: ids must be ascending among them
    x = np.tile(np.linspace(-1, 1, 16, dtype=np.float32), (50, 1))
    index = mi.create("int8", 16).train(x).add(x)
    scores, ids = index.search(x[:3], 50)
    np.testing.assert_array_equal(ids, np.tile(np.arange(50), (3, 1)))
    assert (scores == scores[:, :1]).all()


# every kind of index: flat float / int8, the 4-bit codecs, pq x8, opq, ivf, hnsw, and +rerank
K_RULE_SPECS = ["float32", "fp16", "int8", "int4", "cb4", "pca4", "pq8x4fs", "pq4x8", "opq,pq8x4fs",
                "ivf4,pq8x4fs", "hnsw", "int8+rerank:float32", "cb2+rerank:int8", "pq4x8+rerank:int8",
                "ivf4,pq8x4fs+rerank:fp16"]


@pytest.mark.parametrize("spec", K_RULE_SPECS)
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_k_is_at_most_ntotal(backend, spec, metric):
    """k = ntotal returns every vector; k > ntotal raises ValueError naming both, before any allocation."""
    import tracemalloc

    if "hnsw" in spec:
        pytest.importorskip("hnswlib")
    x, q = data(n=600, nq=3, d=16)  # enough to train every codec without a SpecDataWarning
    options = {"nprobe": 4} if "ivf" in spec else {}
    index = mi.create(spec, 16, metric, **options).train(x).add(x[:40])
    scores, ids = index.search(q, 40)
    assert scores.shape == ids.shape == (3, 40) and scores.dtype == np.float32 and ids.dtype == np.int64
    for row in ids:  # every list probed (nprobe = nlist), so even IVF returns all 40
        np.testing.assert_array_equal(np.sort(row), np.arange(40))
    assert np.isfinite(scores).all()
    for k in (41, 10**9, np.int64(10**12)):
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match=f"k={k} is larger than the 40 vectors in the index"):
                index.search(q, k)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20, peak  # refused before allocating for k (10**9 x 12 bytes per query row)


@pytest.mark.skipif(not medqk.info()["native_available"], reason="compares the native ISAs with numba")
def test_backends_and_isas_return_identical_ids():
    import medqk

    x, q = data(n=3000, nq=80, d=64, seed=5)
    combos = [("native", isa) for isa in medqk.available_isas()] + [("numba", None)]
    for spec in ("int8", "cb4", "cb2", "pca4"):
        results = []
        for backend, isa in combos:
            results.append(_search_with(spec, x, q, backend, isa))
        for s, i in results[1:]:
            np.testing.assert_array_equal(i, results[0][1])
            np.testing.assert_array_equal(s, results[0][0])


def _search_with(spec, x, q, backend, isa):
    import medqk

    with medqk.use_backend(backend):
        index = mi.create(spec, 64).train(x).add(x)
        if isa:
            with medqk.use_isa(isa):
                return index.search(q, 20, threads=2)
        return index.search(q, 20)


def test_threads_do_not_change_results(backend):
    x, q = data(n=5000, nq=5, d=32, seed=2)
    index = mi.create("int8", 32).train(x).add(x)
    s1, i1 = index.search(q, 15, threads=1)
    s2, i2 = index.search(q, 15, threads=2)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)


def test_unnormalized_inner_products_are_right(backend):
    # zero points and scales folded back: scores approximate raw inner products on shifted data
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((500, 24)) * 3 + 5).astype(np.float32)
    q = (rng.standard_normal((20, 24)) * 2 - 1).astype(np.float32)
    index = mi.create("int8", 24).train(x).add(x)
    scores, ids = index.search(q, 5)
    true = np.einsum("qd,qkd->qk", q.astype(np.float64), x.astype(np.float64)[ids])
    np.testing.assert_allclose(scores, true, rtol=0.02, atol=0.5)
    assert recall(ids, exact(x, q, 5, "ip")[1]) >= 0.9


def test_single_query_vector_and_float64(backend):
    x, q = data(n=100, nq=2, d=16)
    index = mi.create("int8", 16).train(x.astype(np.float64)).add(x.astype(np.float64))
    s, i = index.search(q[0].astype(np.float64), 3)
    assert s.shape == (1, 3)


def test_calibrations(backend):
    x, q = data(n=800, nq=40, d=32, seed=4)
    ref = exact(x, q, 10, "ip")[1]
    for options in ({"calibration": "percentile"}, {"calibration": "mse"}, {"symmetric": True}, {"per_dim": False}):
        index = mi.create("int8", 32, **options).train(x).add(x)
        assert recall(index.search(q, 10)[1], ref) >= 0.9, options
    for spec in ("int4", "cb4"):
        for options in ({"per_dim": False}, {"calibration": "minmax"}, {"calibration": "mse"}):
            index = mi.create(spec, 32, **options).train(x).add(x)
            assert recall(index.search(q, 10)[1], ref) >= 0.6, (spec, options)
        shared = mi.create(spec, 32, per_dim=False).train(x)
        assert (shared.codec.levels == shared.codec.levels[0]).all()  # one range for every dimension


def test_nbytes_and_repr():
    x, _ = data(n=100, d=16)
    f32 = mi.create("float32", 16).add(x)
    i8 = mi.create("int8", 16).train(x).add(x)
    assert f32.nbytes >= 100 * 16 * 4 and i8.nbytes < f32.nbytes / 3
    assert i8.bytes_per_vector == 16 and f32.bytes_per_vector == 64
    assert "FlatInt8Index(spec='int8', dim=16, metric='ip', ntotal=100)" == repr(i8)


BAD = [
    (lambda: mi.create("int9", 8), ValueError, "unknown index spec 'int9'; valid specs: float32"),
    (lambda: mi.create("int8+refine:float32", 8), ValueError, "rerank:<codec>"),
    (lambda: mi.create("int8", 0), ValueError, "dim must be a positive int"),
    (lambda: mi.create("int8", 8, metric="cosine"), ValueError, "metric must be one of"),
    (lambda: mi.create("float32", 8, calibration="mse"), TypeError, "takes no option calibration"),
    (lambda: mi.create("int8", 8, calibration="magic"), ValueError, "calibration must be one of"),
    (lambda: mi.create("int8+rerank:float32", 8, rerank_factor=0), ValueError, "rerank_factor"),
    (lambda: mi.create(8, 8), TypeError, "spec must be a string"),
]


@pytest.mark.parametrize("make,exc,match", BAD)
def test_bad_create(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_use(backend):
    x, q = data(n=50, d=16)
    index = mi.create("int8", 16)
    with pytest.raises(RuntimeError, match="must be trained before add"):
        index.add(x)
    index.train(x)
    with pytest.raises(RuntimeError, match="index is empty"):
        index.search(q, 5)
    index.add(x)
    with pytest.raises(ValueError, match="dimension 15 but the index has dim=16"):
        index.search(q[:, :15], 5)
    for k in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="k must be a positive int"):
            index.search(q, k)
    bad = q.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="q contains NaN or Inf"):
        index.search(bad, 5)
    bad_x = x.copy()
    bad_x[0, 0] = np.inf
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        index.add(bad_x)
    with pytest.raises(TypeError, match="floating dtype"):
        index.add(x.astype(np.int32))
    with pytest.raises(ValueError, match="q is empty"):
        index.search(q[:0], 5)
    with pytest.raises(ValueError, match="2-D"):
        index.search(q[None], 5)
    assert index.ntotal == 50  # failed calls changed nothing


@pytest.mark.parametrize("spec", ["int4", "cb4", "pca4", "pq8x4fs", "opq,pq8x4fs"])
def test_4bit_adds_in_parts_equal_one_add(backend, spec, monkeypatch):
    """4-bit flat indexes add a batch by packing only it (and the last partial block of 32 before it),
    and reconstruct it a chunk at a time for |x_hat|^2: adding in parts (full and partial blocks, one
    vector, chunks of 7) stores the same bytes and norms as one add, and searches the same."""
    import medqk.index.lut4 as lut4

    x, q = data(n=700, d=48)
    opts = {"opq_iter": 2} if spec.startswith("opq") else {}
    whole = mi.create(spec, 48, "l2", **opts).train(x).add(x)
    monkeypatch.setattr(lut4, "_DECODE_CHUNK", 7)
    parts = mi.create(spec, 48, "l2", **opts).train(x)
    batches = ((0, 64), (64, 65), (65, 100), (100, 128), (128, 131), (131, 700))
    for a, b in batches:
        parts.add(x[a:b])
    assert parts.ntotal == whole.ntotal == 700
    S = whole.n_sub
    codes = {"whole": whole.codec.encode_sub(x),  # OPQ: x @ R by one sgemm per batch, rounded by its size
             "parts": np.concatenate([parts.codec.encode_sub(x[a:b]) for a, b in batches])}
    for name, index in (("whole", whole), ("parts", parts)):
        np.testing.assert_array_equal(lut4.unpack_codes(index._packed, np.arange(700), S), codes[name])
    if not spec.startswith("opq"):
        np.testing.assert_array_equal(parts._packed, whole._packed)
        np.testing.assert_array_equal(parts._sqnorms, whole._sqnorms)
    else:  # |x_hat|^2 goes through x_hat = y @ R^T, an sgemm whose last bits follow the batch size
        from medqk.quantizers.pq import PQCodec

        from ..float_bounds import sqnorm_of_product

        for name, index in (("whole", whole), ("parts", parts)):
            y = PQCodec.decode_sub(index.codec, codes[name])  # centroids in the rotated space
            exact_sq, bound = sqnorm_of_product(y, index.codec.rotation.T)
            assert (np.abs(index._sqnorms - exact_sq) <= bound).all(), name
    s1, i1 = whole.search(q, 10)
    s2, i2 = parts.search(q, 10)
    # the same stored codes (OPQ: unless a rounding of x @ R flipped a nearest centroid) search the same:
    # both searches rotate q in the same batch, so the same float32 operations give the same scores
    if np.array_equal(codes["parts"], codes["whole"]):
        np.testing.assert_array_equal(parts._packed, whole._packed)
        np.testing.assert_array_equal(i2, i1)
        np.testing.assert_array_equal(s2, s1)

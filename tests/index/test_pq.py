"""pq<M>x4fs: training, encoding, fast-scan search, rerank, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest

import medqk
import medqk.index as mi
from medqk.quantizers.pq import PQ4Codec

from ..float_bounds import gamma, pq_adc_reference
from .test_flat import data, exact, recall


def test_training_is_deterministic_and_reduces_error():
    x, _ = data(n=600, d=32, seed=3)
    a = PQ4Codec(8, 32, seed=7).train(x)
    b = PQ4Codec(8, 32, seed=7).train(x)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    codes = a.encode_sub(x)
    assert codes.shape == (600, 8) and codes.max() < 16
    rec = a.decode_sub(codes)
    # each sub-vector is coded by its nearest centroid
    xs = x.reshape(600, 8, 4)
    d2 = ((xs[:, :, None, :] - a.centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(codes, d2.argmin(axis=2))
    err = float(((rec - x) ** 2).mean())
    assert err == pytest.approx(a.train_error, rel=1e-3)
    assert err < 0.5 * float(((x - x.mean(0)) ** 2).mean())


def test_empty_clusters_are_repaired():
    # 20 distinct points repeated: k-means++ may pick duplicates; every centroid must still be used
    rng = np.random.default_rng(0)
    base = rng.standard_normal((20, 8)).astype(np.float32)
    x = np.repeat(base, 5, axis=0)
    codec = PQ4Codec(2, 8).train(x)
    assert np.isfinite(codec.centroids).all()
    used = [len(np.unique(codec.encode_sub(x)[:, m])) for m in range(2)]
    assert min(used) == 16


@pytest.mark.parametrize("spec", ["pq8x4fs", "pq4x8", "pq8x8"])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_search_backends_agree_and_scores_are_adc(spec, metric):
    x, q = data(n=700, nq=30, d=32, normalize=metric == "ip")
    results = []
    combos = [("native", isa) for isa in medqk.available_isas()] + [("numba", None)]
    for backend, isa in combos:
        with medqk.use_backend(backend):
            index = mi.create(spec, 32, metric).train(x).add(x)
            if isa:
                with medqk.use_isa(isa):
                    results.append(index.search(q, 10))
            else:
                results.append(index.search(q, 10))
    for s, i in results[1:]:
        np.testing.assert_array_equal(i, results[0][1])
        np.testing.assert_array_equal(s, results[0][0])
    scores, ids = results[0]
    rec = index.vectors(ids.reshape(-1)).reshape(ids.shape + (32,)).astype(np.float64)
    q64 = q.astype(np.float64)
    want = np.einsum("qd,qkd->qk", q64, rec) if metric == "ip" else ((q64[:, None] - rec) ** 2).sum(-1)
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec,bpv", [("pq8x4fs+rerank:int8", 4 + 32), ("pq4x8+rerank:int8", 4 + 32)])
def test_rerank_and_round_trip(tmp_path, spec, bpv):
    x, q = data(n=800, nq=30, d=32)
    index = mi.create(spec, 32).train(x).add(x)
    assert index.rerank_factor == 16 and index.bytes_per_vector == bpv
    _, ids = index.search(q, 10)
    assert recall(ids, exact(x, q, 10, "ip")[1]) >= 0.95
    index.save(tmp_path / "pq.mqk")
    loaded = mi.load(tmp_path / "pq.mqk")
    np.testing.assert_array_equal(loaded.search(q, 10)[1], ids)


@pytest.mark.parametrize("error, match, call", [
    (ValueError, "M=5 does not divide the dimension 32", lambda: mi.create("pq5x4fs", 32)),
    (ValueError, "PQ nbits must be 4 or 8", lambda: mi.create("pq8x6fs", 32)),
    (ValueError, "write pq8x4fs", lambda: mi.create("pq8x4", 32)),
    (ValueError, "write pq8x8", lambda: mi.create("pq8x8fs", 32)),
    (ValueError, "at least 256 vectors", lambda: mi.create("pq8x8", 32).train(np.zeros((100, 32), "f4"))),
    (ValueError, "at least 16 vectors", lambda: mi.create("pq8x4fs", 32).train(np.zeros((10, 32), "f4"))),
    (RuntimeError, "must be trained before add", lambda: mi.create("pq8x4fs", 32).add(np.zeros((10, 32), "f4"))),
])
def test_bad_specs_and_training(error, match, call):
    with pytest.raises(error, match=match):
        call()


def test_training_progress_bars(capsys):
    x, _ = data(n=300, d=16, seed=1)
    mi.create("pq4x4fs", 16, progress=True, max_iter=3).train(x)
    err = capsys.readouterr().err
    assert "pq4x4fs k-means++ seeds:" in err and "pq4x4fs k-means:" in err and "0/3" in err  # tqdm bars
    mi.create("pq4x4fs", 16, progress=False).train(x)
    assert capsys.readouterr().err == ""
    mi.create("pq4x4fs", 16).train(x)  # None: bars only on a terminal (capsys is not one)
    assert capsys.readouterr().err == ""


def _adc_topk(codec, codes, q, metric, k, chunk):
    """The exact ADC top k as medqk.index.pq8 defines it, from the codec's float32 tables of each chunk of
    queries: the float32 sum of the M table entries in subspace order, best first, ties -> lower id.
    Returns the ids and those sums (l2: 2 q . x_hat - |x_hat|^2, the index reports |q|^2 minus it)."""
    out_i, out_s = [], []
    for q0 in range(0, len(q), chunk):
        tables = codec.tables(q[q0 : q0 + chunk], metric)  # the same float32 operations as the index
        acc = np.zeros((len(tables), len(codes)), np.float32)
        for s in range(codes.shape[1]):
            acc += tables[:, s, codes[:, s]]
        top = np.lexsort((np.broadcast_to(np.arange(len(codes)), acc.shape), -acc), axis=1)[:, :k]
        out_i.append(top)
        out_s.append(np.take_along_axis(acc, top, axis=1))
    return np.concatenate(out_i), np.concatenate(out_s)


def _check_reported_scores(scores, sums, q, metric):
    """ip: the index returns the float32 sums themselves. l2: it returns |q|^2 - sum with |q|^2 and the
    difference in float32: within gamma(d + 1) (|q|^2 + |result|) of the float64 value of that formula."""
    if metric == "ip":
        np.testing.assert_array_equal(scores, sums)
        return
    qn = (q.astype(np.float64) ** 2).sum(1)[:, None]
    want = qn - sums.astype(np.float64)
    assert (np.abs(scores - want) <= gamma(q.shape[1] + 1) * (qn + np.abs(want))).all()


def _check_same_search_up_to_rounding(index, q, metric, ids_a, s_a, ids_b, s_b):
    """Two searches whose query products were rounded differently (OPQ's rotation q @ R is a BLAS sgemm:
    its last bits change with the batch size and the BLAS thread count): each score is within its
    derived float32 error bound of the exact float64 ADC score of its codes, the r-th best scores of
    the two agree within the rounding the bounds allow, and the ids are equal in every row whose exact top k
    no rounding within the bounds could change (a near tie may order either way)."""
    all_ids = np.broadcast_to(np.arange(index.ntotal), (len(q), index.ntotal))
    every, every_bound = pq_adc_reference(index.codec, q, index.codes(all_ids.reshape(-1)).reshape(
        all_ids.shape + (-1,)), metric)
    exact, bound_of = {}, {}
    for name, ids, s in (("a", ids_a, s_a), ("b", ids_b, s_b)):
        exact[name] = np.take_along_axis(every, ids, axis=1)
        bound_of[name] = np.take_along_axis(every_bound, ids, axis=1)
        assert (np.abs(s - exact[name]) <= bound_of[name]).all(), name
    # the r-th best float32 score is within the row's largest bound of the r-th best exact score, and the
    # exact score of the id returned r-th within its own bound of that float32 score
    worst = every_bound.max(axis=1, keepdims=True)
    assert (np.abs(exact["a"] - exact["b"]) <= bound_of["a"] + bound_of["b"] + 2 * worst).all()
    higher = every if metric == "ip" else -every  # higher is better
    order = np.argsort(-higher, axis=1, kind="stable")
    high, bound = np.take_along_axis(higher, order, axis=1), np.take_along_axis(every_bound, order, axis=1)
    # a row's top k is fixed when each of its k best stays above everything ranked after it can reach
    reach_below = np.maximum.accumulate((high + bound)[:, ::-1], axis=1)[:, ::-1][:, 1:]
    k = ids_a.shape[1]
    clear = (high[:, :k] - bound[:, :k] > reach_below[:, :k]).all(axis=1)
    assert clear.mean() >= 0.5, clear.mean()  # the check below must cover most rows to mean anything
    np.testing.assert_array_equal(ids_a[clear], ids_b[clear])


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("spec", ["pq8x8", "opq,pq8x8"])
def test_pq8_search_is_exact_adc(backend, spec, metric, monkeypatch, tmp_path):
    """pq<M>x8 returns the exact ADC top k: ids and scores equal the float32 table sums in subspace order
    (numpy), in batches split into query chunks too; adding in parts and save/load change nothing.

    Float tolerances: none where numpy repeats the index's float32 operations; a bound derived from the
    computation (tests/float_bounds.py) where the query's |q|^2 or OPQ's BLAS rotation round differently."""
    import medqk.index.pq8 as pq8

    x, q = data(n=1500, nq=40, d=32, normalize=metric == "ip")
    opts = {"opq_iter": 3} if spec.startswith("opq") else {}
    index = mi.create(spec, 32, metric, max_iter=6, **opts).train(x)
    parts = ((0, 640), (640, 700), (700, 1500))  # a full last block, then a partial one
    for a, b in parts:
        index.add(x[a:b])
    codes = index.codes()
    # the codes of each added batch (OPQ rotates a batch by one sgemm, whose rounding follows its size)
    np.testing.assert_array_equal(codes, np.concatenate([index.codec.encode_sub(x[a:b]) for a, b in parts]))
    scores, ids = index.search(q, 10)
    want_i, want_sums = _adc_topk(index.codec, codes, q, metric, 10, pq8._QUERY_CHUNK)
    np.testing.assert_array_equal(ids, want_i)
    _check_reported_scores(scores, want_sums, q, metric)
    monkeypatch.setattr(pq8, "_QUERY_CHUNK", 7)
    s2, i2 = index.search(q, 10)
    want_i2, want_sums2 = _adc_topk(index.codec, codes, q, metric, 10, 7)
    np.testing.assert_array_equal(i2, want_i2)
    _check_reported_scores(s2, want_sums2, q, metric)
    if spec.startswith("opq"):  # the rotation is a BLAS product: its last bits depend on the batch size
        _check_same_search_up_to_rounding(index, q, metric, ids, scores, i2, s2)
    else:
        np.testing.assert_array_equal(i2, ids)
        np.testing.assert_array_equal(s2, scores)
    index.save(tmp_path / "pq8.mqk")
    loaded = mi.load(tmp_path / "pq8.mqk")
    np.testing.assert_array_equal(loaded.codes(), codes)
    s3, i3 = loaded.search(q, 10)  # chunks of 7 queries still
    np.testing.assert_array_equal(i3, i2)
    np.testing.assert_array_equal(s3, s2)


def test_score_aware_pq_codes():
    from medqk.quantizers.pq import PQCodec

    x, _ = data(n=900, d=32, seed=8)  # unit rows
    x[0] = 0.0
    near = PQCodec(8, 32, 4, seed=3, max_iter=8).train(x)
    aniso = PQCodec(8, 32, 4, seed=3, max_iter=8, eta=4.0)
    aniso.centroids = near.centroids
    c_near, c_aniso = near.encode_sub(x), aniso.encode_sub(x)
    l_near, l_aniso = aniso.anisotropic_loss(x, c_near), aniso.anisotropic_loss(x, c_aniso)
    assert (l_aniso <= l_near + 1e-12).all()  # coordinate descent from the nearest codes never goes up
    assert l_aniso.mean() < 0.95 * l_near.mean()  # measured 0.92
    np.testing.assert_array_equal(c_aniso[0], c_near[0])  # zero vector: plain squared error
    # inner-product neighbours by the exact ADC of the codes: score-aware codes find more
    _, q = data(n=10, nq=80, d=32, seed=9)
    ref = exact(x, q, 10, "ip")[1]
    def top(c):
        return np.argsort(-(q.astype(np.float64) @ near.decode_sub(c).T.astype(np.float64)), axis=1)[:, :10]
    assert recall(top(c_aniso), ref) > recall(top(c_near), ref)


def test_eta_defaults_and_ivf():
    assert mi.create("pq8x4fs", 32).codec.eta == 4.0
    assert mi.create("opq,pq8x4fs", 32).codec.eta == 4.0
    assert mi.create("pq8x4fs", 32, "l2").codec.eta == 1.0
    assert mi.create("pq8x8", 32).codec.eta == 1.0
    assert mi.create("ivf4,pq8x4fs", 32).codec.eta == 1.0  # residuals: nearest centroids
    with pytest.raises(ValueError, match="eta must be 1"):
        mi.create("ivf4,pq8x4fs", 32, eta=4.0)
    with pytest.raises(ValueError, match="eta must be >= 1"):
        mi.create("pq8x4fs", 32, eta=0.5)


@pytest.mark.parametrize("spec", ["pq8x4fs", "pq8x8", "ivf16,pq8x4fs", "int4"])
def test_packed_codes_start_on_a_cache_line(tmp_path, spec):
    """The scan kernels load 64-byte rows: the packed codes start on a 64-byte boundary after every add and
    after load (numpy alone aligns to 16 bytes, and a row then spans two cache lines)."""
    from medqk.index._memory import aligned, aligned_concat, aligned_empty

    rng = np.random.default_rng(2)
    x = rng.standard_normal((700, 32)).astype(np.float32)
    index = mi.create(spec, 32, "ip").train(x)
    for a, b in ((0, 100), (100, 131), (131, 700)):
        index.add(x[a:b])
        assert index._packed.ctypes.data % 64 == 0
    index.save(tmp_path / "i.mqk")
    for mmap in (False, True):
        assert mi.load(tmp_path / "i.mqk", mmap=mmap)._packed.ctypes.data % 64 == 0
    for n in (0, 1, 63, 64, 1000):
        e = aligned_empty(n, np.int64)
        assert e.shape == (n,) and e.dtype == np.int64 and (n == 0 or e.ctypes.data % 64 == 0)
    parts = [np.arange(5, dtype=np.uint8), np.arange(7, dtype=np.uint8)]
    np.testing.assert_array_equal(aligned_concat(parts), np.concatenate(parts))
    odd = np.arange(100, dtype=np.uint8)[1:].reshape(9, 11)
    got = aligned(odd)
    assert got.ctypes.data % 64 == 0 and got.shape == (9, 11)
    np.testing.assert_array_equal(got, odd)
    assert aligned(got) is got

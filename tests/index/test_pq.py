"""pq<M>x4fs: training, encoding, fast-scan search, rerank, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest

import medqk
import medqk.index as mi
from medqk.quantizers.pq import PQ4Codec

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
    combos = [("native", isa) for isa in medqk.available_isas()]
    try:
        import numba  # noqa: F401

        combos.append(("numba", None))
    except ImportError:
        pass
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


def test_bad_specs_and_training():
    with pytest.raises(ValueError, match="M=5 does not divide the dimension 32"):
        mi.create("pq5x4fs", 32)
    with pytest.raises(ValueError, match="PQ nbits must be 4 or 8"):
        mi.create("pq8x6fs", 32)
    with pytest.raises(ValueError, match="write pq8x4fs"):
        mi.create("pq8x4", 32)
    with pytest.raises(ValueError, match="write pq8x8"):
        mi.create("pq8x8fs", 32)
    with pytest.raises(ValueError, match="at least 256 vectors"):
        mi.create("pq8x8", 32).train(np.zeros((100, 32), np.float32))
    with pytest.raises(ValueError, match="at least 16 vectors"):
        mi.create("pq8x4fs", 32).train(np.zeros((10, 32), np.float32))
    with pytest.raises(RuntimeError, match="must be trained before add"):
        mi.create("pq8x4fs", 32).add(np.zeros((10, 32), np.float32))


def test_training_progress_bars(capsys):
    x, _ = data(n=300, d=16, seed=1)
    mi.create("pq4x4fs", 16, progress=True, max_iter=3).train(x)
    err = capsys.readouterr().err
    assert "pq4x4fs k-means++ seeds:" in err and "pq4x4fs k-means:" in err and "0/3" in err  # tqdm bars
    mi.create("pq4x4fs", 16, progress=False).train(x)
    assert capsys.readouterr().err == ""
    mi.create("pq4x4fs", 16).train(x)  # None: bars only on a terminal (capsys is not one)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("spec", ["pq8x8", "opq,pq8x8"])
def test_pq8_search_is_exact_adc(backend, spec, metric, monkeypatch, tmp_path):
    """pq<M>x8 returns the exact ADC top k: ids and scores equal the float32 table sums in subspace order
    (numpy), in batches split into query chunks too; adding in parts and save/load change nothing."""
    import medqk.index.pq8 as pq8

    x, q = data(n=1500, nq=40, d=32, normalize=metric == "ip")
    opts = {"opq_iter": 3} if spec.startswith("opq") else {}
    index = mi.create(spec, 32, metric, max_iter=6, **opts).train(x)
    for a, b in ((0, 640), (640, 700), (700, 1500)):  # a full last block, then a partial one
        index.add(x[a:b])
    codes = index.codes()
    np.testing.assert_array_equal(codes, index.codec.encode_sub(x))
    tables = index.codec.tables(q, metric)
    acc = np.zeros((len(q), len(x)), np.float32)
    for s in range(codes.shape[1]):
        acc += tables[:, s, codes[:, s]]
    want_i = np.lexsort((np.broadcast_to(np.arange(len(x)), acc.shape), -acc), axis=1)[:, :10]
    want_s = np.take_along_axis(acc, want_i, axis=1)
    if metric == "l2":  # the index reports squared distances: |q|^2 - (2 q.x_hat - |x_hat|^2)
        want_s = (q * q).sum(1, dtype=np.float32)[:, None] - want_s
    scores, ids = index.search(q, 10)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_allclose(scores, want_s, rtol=1e-6, atol=1e-6)
    monkeypatch.setattr(pq8, "_QUERY_CHUNK", 7)
    s2, i2 = index.search(q, 10)
    np.testing.assert_array_equal(i2, ids)
    if spec.startswith("opq"):  # the rotation is a BLAS product: its last bits depend on the batch size
        np.testing.assert_allclose(s2, scores, rtol=1e-6, atol=1e-6)
    else:
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
    top = lambda c: np.argsort(-(q.astype(np.float64) @ near.decode_sub(c).T.astype(np.float64)), axis=1)[:, :10]
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

"""OPQCodec: an orthogonal rotation learned by alternating PQ k-means and orthogonal Procrustes."""

from __future__ import annotations

import numpy as np
import pytest

from medqk.index.io import IndexFileError
from medqk.quantizers.opq import OPQCodec
from medqk.quantizers.pq import PQCodec

from ..float_bounds import gamma, pq_adc_reference


def anisotropic(n=2000, d=32, seed=0):
    """Correlated Gaussian: a decaying spectrum (std 3 ** -(i / 8)) along random orthogonal directions, so
    every coordinate mixes strong and weak directions and contiguous blocks are correlated with each other.
    Plain PQ splits the coordinates as they come; OPQ can rotate the strong directions apart."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    std = 3.0 ** (-np.arange(d) / 8)
    return ((rng.standard_normal((n, d)) * std) @ basis.T).astype(np.float32)


def mse(codec, x):
    return float(((codec.decode_sub(codec.encode_sub(x)) - x) ** 2).mean())


def test_rotation_is_orthogonal_and_beats_pq_on_correlated_data():
    x = anisotropic()
    opq = OPQCodec(8, 32, 4, opq_iter=10, max_iter=10).train(x)
    pq = PQCodec(8, 32, 4, max_iter=10).train(x)
    r = opq.rotation
    assert r.shape == (32, 32) and r.dtype == np.float32
    np.testing.assert_allclose(r.T @ r, np.eye(32), atol=1e-5)
    e_opq, e_pq = mse(opq, x), mse(pq, x)
    # measured: 0.0119 against 0.0346 (x0.34); a real margin, not noise
    assert e_opq < 0.5 * e_pq, (e_opq, e_pq)
    # decode_sub works in the original space: its error is the training error (same sample, last codes)
    assert e_opq == pytest.approx(opq.train_error, rel=0.05)


def test_zero_iterations_is_plain_pq_and_more_iterations_do_not_hurt():
    x = anisotropic(n=1000)
    zero = OPQCodec(8, 32, 4, opq_iter=0, max_iter=10).train(x)
    np.testing.assert_array_equal(zero.rotation, np.eye(32, dtype=np.float32))
    few = OPQCodec(8, 32, 4, opq_iter=2, max_iter=10).train(x)
    many = OPQCodec(8, 32, 4, opq_iter=8, max_iter=10).train(x)
    assert mse(many, x) <= mse(few, x) * 1.01 and mse(few, x) < mse(zero, x)


def test_deterministic_with_the_seed():
    x = anisotropic(n=800)
    a = OPQCodec(4, 32, 8, opq_iter=3, max_iter=5, seed=5).train(x)
    b = OPQCodec(4, 32, 8, opq_iter=3, max_iter=5, seed=5).train(x)
    c = OPQCodec(4, 32, 8, opq_iter=3, max_iter=5, seed=6).train(x)
    np.testing.assert_array_equal(a.rotation, b.rotation)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.encode_sub(x), b.encode_sub(x))
    assert not np.array_equal(a.centroids, c.centroids)


def test_max_train_sample_is_the_pq_sample():
    x = anisotropic(n=1500)
    # with no rotation update the result must be the plain PQ codec trained on the same capped sample
    opq = OPQCodec(8, 32, 4, opq_iter=0, opq_kmeans_iter=1, max_iter=6, max_train=500, seed=3).train(x)
    pq = PQCodec(8, 32, 4, max_iter=7, max_train=500, seed=3).train(x)
    np.testing.assert_allclose(opq.centroids, pq.centroids, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_tables_rotate_queries(metric):
    x = anisotropic(n=600)
    codec = OPQCodec(8, 32, 4, opq_iter=3, max_iter=5).train(x)
    q = x[:7] + 0.1
    codes = codec.encode_sub(x[:50])
    t = codec.tables(q, metric)
    adc = t[:, np.arange(8)[None, :], codes].sum(-1)  # (7, 50)
    # the exact ADC of the codes with q rotated: float32 rounding within the bound derived from the
    # operation counts (the rotation is a BLAS sgemm, rounded by the batch size and thread count)
    want, bound = pq_adc_reference(codec, q, np.broadcast_to(codes, (7,) + codes.shape), metric)
    if metric == "l2":  # the tables sum to 2 q.x_hat - |x_hat|^2 = |q|^2 - |q - x_hat|^2
        want = (q.astype(np.float64) ** 2).sum(1)[:, None] - want
    assert (np.abs(adc - want) <= bound).all()
    # and decode_sub is that reconstruction rotated back, y R^T, up to its float32 sgemm's rounding
    y = PQCodec.decode_sub(codec, codes).astype(np.float64)
    r64 = codec.rotation.astype(np.float64)
    assert (np.abs(codec.decode_sub(codes) - y @ r64.T) <= gamma(32) * (np.abs(y) @ np.abs(r64.T))).all()


def test_state_round_trip_and_errors():
    x = anisotropic(n=600)
    codec = OPQCodec(8, 32, 4, opq_iter=2, opq_kmeans_iter=3, max_iter=5).train(x)
    config, arrays = codec.state()
    assert config["opq_iter"] == 2 and config["opq_kmeans_iter"] == 3 and set(arrays) == {"centroids", "rotation"}
    other = OPQCodec(8, 32, 4)
    assert not other.is_trained
    other.load_state(arrays)
    np.testing.assert_array_equal(other.encode_sub(x), codec.encode_sub(x))
    with pytest.raises(IndexFileError, match="rotation"):
        OPQCodec(8, 32, 4).load_state({"centroids": arrays["centroids"], "rotation": np.eye(16, dtype=np.float32)})
    with pytest.raises(IndexFileError, match="stored together"):
        OPQCodec(8, 32, 4).load_state({"centroids": arrays["centroids"]})
    with pytest.raises(RuntimeError, match="not trained"):
        OPQCodec(8, 32, 4).encode_sub(x)
    with pytest.raises(ValueError, match="opq_iter must be an int >= 0"):
        OPQCodec(8, 32, 4, opq_iter=-1)
    with pytest.raises(ValueError, match="opq_kmeans_iter must be an int >= 1"):
        OPQCodec(8, 32, 4, opq_kmeans_iter=0)


def test_progress_bars(capsys):
    x = anisotropic(n=300, d=16)
    OPQCodec(4, 16, 4, opq_iter=2, max_iter=3, progress=True).train(x)
    err = capsys.readouterr().err
    # tqdm bars (they start at 0/total when created, and are cleared when done: leave=False)
    assert "opq,pq4x4fs k-means++ seeds:" in err and "opq,pq4x4fs rotation updates:" in err
    assert "opq,pq4x4fs k-means:" in err and "0/2" in err and "0/3" in err and "\r" in err
    OPQCodec(4, 16, 4, opq_iter=2, max_iter=3, progress=False).train(x)
    assert capsys.readouterr().err == ""
    OPQCodec(4, 16, 4, opq_iter=2, max_iter=3).train(x)  # None: only on a terminal, and capsys is none
    assert capsys.readouterr().err == ""

"""QuantizedLinear: float in, float out, int8 weights per output channel, dynamic int8 activations."""

from __future__ import annotations

import numpy as np
import pytest

import medqk


def make(rng, n, k, bias=True):
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    return w, b


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 17, 33), (64, 384, 1536), (129, 65, 127)])
def test_close_to_float(backend, m, n, k):
    rng = np.random.default_rng(m + n + k)
    w, b = make(rng, n, k)
    x = rng.standard_normal((m, k)).astype(np.float32)
    layer = medqk.QuantizedLinear.from_float(w, b)
    y = layer(x)
    assert y.dtype == np.float32 and y.shape == (m, n)
    want = x.astype(np.float64) @ w.T.astype(np.float64) + b
    # Worst case: each code is off by at most half a step, |x q_w - x_q w| summed over k.
    s_x = np.abs(x).max(1, keepdims=True) / 127
    s_w = np.abs(w).max(1) / 127
    bound = np.abs(x).sum(1, keepdims=True) * s_w / 2 + s_x / 2 * np.abs(w).sum(1) + k * s_x * s_w / 4
    assert (np.abs(y - want) <= bound * 1.001 + 1e-5).all()
    # Typical error is far below the worst case: a wrong scale or rounding would show here.
    if m * n > 1:
        assert np.sqrt(np.mean((y - want) ** 2)) <= 0.02 * np.sqrt(np.mean(want**2))


def test_exact_integer_path(backend):
    # Per-row / per-channel maxima of 127 make every scale 1: the layer is then the integer GEMM exactly.
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, size=(33, 65)).astype(np.float32)
    w[:, 0] = 127
    x = rng.integers(-127, 128, size=(7, 65)).astype(np.float32)
    x[:, 1] = -127
    layer = medqk.QuantizedLinear.from_float(w, bias=None)
    np.testing.assert_array_equal(layer.weight_scales, 1.0)
    np.testing.assert_array_equal(layer(x), (x.astype(np.int64) @ w.astype(np.int64).T).astype(np.float32))


def test_inspection(backend):
    rng = np.random.default_rng(2)
    w, b = make(rng, 16, 40)
    w[3] = 0.0  # an all-zero channel gets scale 1 and codes 0
    w[5] = 1e-40  # so does a channel too small for a normal scale (w / scale was 0 / 0 = NaN codes)
    w[5, 7] = -3e-45
    layer = medqk.QuantizedLinear.from_float(w, b)
    assert layer.weight_scales[5] == 1.0 and (layer.weight_q[5] == 0).all()
    assert np.isfinite(layer(np.ones((2, 40), dtype=np.float32))).all()
    assert layer.weight_scales.shape == (16,) and layer.weight_scales.dtype == np.float32
    assert layer.weight_scales[3] == 1.0
    np.testing.assert_allclose(layer.weight_scales[0], np.abs(w[0]).max() / 127, rtol=1e-6)
    deq = layer.dequantize()
    assert deq.shape == w.shape
    assert (np.abs(deq - w) <= layer.weight_scales[:, None] / 2 + 1e-7).all()
    assert layer.nbytes == 16 * 40 + 16 * 4 + 16 * 4
    assert "QuantizedLinear(in_features=40, out_features=16" in repr(layer)


def test_backends_agree():
    rng = np.random.default_rng(4)
    w, b = make(rng, 48, 96)
    x = rng.standard_normal((10, 96)).astype(np.float32)
    results = []
    for name in ("native", "numba"):
        if name == "native" and not medqk.info()["native_available"]:
            continue
        pytest.importorskip("numba") if name == "numba" else None
        with medqk.use_backend(name):
            results.append(medqk.QuantizedLinear.from_float(w, b)(x))
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-6, atol=1e-6)


def test_bad_input(backend):
    rng = np.random.default_rng(3)
    w, b = make(rng, 8, 12)
    with pytest.raises(ValueError, match="bits must be 8"):
        medqk.QuantizedLinear.from_float(w, b, bits=4)
    with pytest.raises(ValueError, match="bias must have shape"):
        medqk.QuantizedLinear.from_float(w, b[:3])
    with pytest.raises(TypeError, match="weight must have dtype float32"):
        medqk.QuantizedLinear.from_float(w.astype(np.int8))
    w_nan = w.copy()
    w_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="weight contains NaN"):
        medqk.QuantizedLinear.from_float(w_nan)
    layer = medqk.QuantizedLinear.from_float(w, b)
    with pytest.raises(ValueError, match="x has 11 features but the layer expects 12"):
        layer(np.ones((2, 11), dtype=np.float32))
    x = np.ones((2, 12), dtype=np.float32)
    x[1, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        layer(x)
    with pytest.raises(ValueError, match="x must be 2-D"):
        layer(np.ones(12, dtype=np.float32))
    with pytest.raises(TypeError, match="from_float"):
        medqk.QuantizedLinear()

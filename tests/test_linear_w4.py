"""QuantizedLinear with 4-, 3- and 2-bit weights (int4 symmetric / asymmetric, nf4, codebooks): the layer is
medqk.quantize_weights' format run by the W4A8 kernel on per-row int8 activations, saved and loaded exactly."""

from __future__ import annotations

import numpy as np
import pytest

import medqk
from medqk.kernels import quantize_rows_s8

from .float_bounds import gamma

FORMATS = [  # (bits, scheme, from_float options)
    (4, "int4", {"group_size": 32}),
    (4, "int4", {"group_size": 64, "symmetric": False}),
    (4, "nf4", {"group_size": 64}),
    (4, "codebook", {"group_size": None}),
    (3, "codebook", {"group_size": 32}),
    (2, "codebook", {"group_size": None}),
]


def make(rng, n, k):
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    return w, rng.standard_normal(n).astype(np.float32)


def contract(layer, x):
    """The layer's output by the W4A8 contract in float64 from exact integers, and the float32 bound:
    out = row_scale * sum_g scales[n, g] * (D - zeros * asum) + bias, D and asum exact (int64)."""
    qw = layer.qweight
    q, rs = quantize_rows_s8(x)
    gs = qw.kernel_group_size
    n, k = qw.shape
    w_int = np.take_along_axis(qw.levels.astype(np.int64), qw.codes.astype(np.int64), axis=1)  # (N, K)
    zeros = qw.zeros.astype(np.int64) if qw.zeros is not None else np.zeros(qw.scales.shape, np.int64)
    terms = np.zeros((q.shape[0], n, qw.scales.shape[1]))
    for g in range(qw.scales.shape[1]):
        cols = slice(g * gs, min(k, (g + 1) * gs))
        d = q[:, cols].astype(np.int64) @ w_int[:, cols].T
        asum = q[:, cols].astype(np.int64).sum(1)
        terms[:, :, g] = qw.scales[:, g].astype(np.float64) * (d - zeros[:, g] * asum[:, None])
    bias = layer.bias.astype(np.float64) if layer.bias is not None else 0.0
    exact = rs[:, None].astype(np.float64) * terms.sum(2) + bias
    # each term: int32 -> float exact (|value| < 2**24 here), one product; G - 1 additions; the row scale;
    # the bias: gamma(G + 3) of the magnitudes combined
    bound = gamma(terms.shape[2] + 3) * (np.abs(rs)[:, None] * np.abs(terms).sum(2) + np.abs(bias))
    return exact, bound


@pytest.mark.parametrize("bits, scheme, options", FORMATS)
@pytest.mark.parametrize("m, n, k", [(1, 17, 96), (5, 33, 75), (19, 8, 200)])
def test_layer_is_the_w4a8_contract(backend, bits, scheme, options, m, n, k):
    rng = np.random.default_rng(m * n + k)
    w, b = make(rng, n, k)
    layer = medqk.QuantizedLinear.from_float(w, b, bits=bits, scheme=scheme, **options)
    assert (layer.scheme, layer.bits, layer.in_features, layer.out_features) == (scheme, bits, k, n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[0, 0] = -np.abs(x[0]).max() * 1.5  # a row whose largest value is negative: the code -127
    y = layer(x)
    exact, bound = contract(layer, x)
    assert y.dtype == np.float32 and y.shape == (m, n)
    assert (np.abs(y - exact) <= bound).all()
    # and close to the float layer: the quantization error only (a lost zero point, a wrong group or level
    # table shows as errors of the size of the output)
    want = x.astype(np.float64) @ w.T.astype(np.float64) + b
    rel = np.sqrt(np.mean((y - want) ** 2) / np.mean((want - b) ** 2))
    assert rel < {4: 0.2, 3: 0.3, 2: 0.6}[bits], rel


def test_layer_matches_its_dequantized_weight(backend):
    rng = np.random.default_rng(5)
    w, b = make(rng, 24, 160)
    x = rng.standard_normal((7, 160)).astype(np.float32)
    for bits, scheme, options in FORMATS:
        layer = medqk.QuantizedLinear.from_float(w, b, bits=bits, scheme=scheme, **options)
        q, rs = quantize_rows_s8(x)
        want = (q.astype(np.float64) * rs[:, None]) @ layer.dequantize().T.astype(np.float64) + b
        np.testing.assert_allclose(layer(x), want, rtol=1e-5, atol=1e-5, err_msg=scheme)


def test_gptq_calibration_lowers_the_output_error(backend):
    rng = np.random.default_rng(7)
    w, b = make(rng, 32, 128)
    mix = rng.standard_normal((128, 128)).astype(np.float32)
    calib = rng.standard_normal((512, 128)).astype(np.float32) @ mix  # correlated inputs
    x = rng.standard_normal((64, 128)).astype(np.float32) @ mix
    want = x.astype(np.float64) @ w.T.astype(np.float64) + b
    for bits, scheme, options in FORMATS[:4]:
        rtn = medqk.QuantizedLinear.from_float(w, b, bits=bits, scheme=scheme, **options)
        gptq = medqk.QuantizedLinear.from_float(w, b, bits=bits, scheme=scheme, calib=calib, **options)
        assert np.mean((gptq(x) - want) ** 2) < np.mean((rtn(x) - want) ** 2), scheme


@pytest.mark.parametrize("bits, scheme, options", FORMATS)
def test_save_load_round_trip(backend, tmp_path, bits, scheme, options):
    rng = np.random.default_rng(9)
    w, b = make(rng, 9, 75)  # odd K: the last byte of each row holds one code
    layer = medqk.QuantizedLinear.from_float(w, b, bits=bits, scheme=scheme, **options)
    path = tmp_path / "layer.mql"
    layer.save(path)
    loaded = medqk.QuantizedLinear.load(path)
    assert (loaded.scheme, loaded.bits, loaded.nbytes) == (scheme, bits, layer.nbytes)
    for name in ("codes", "levels", "scales"):
        np.testing.assert_array_equal(getattr(loaded.qweight, name), getattr(layer.qweight, name))
    x = rng.standard_normal((4, 75)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), layer(x))


def test_storage_is_counted_at_the_bits_stored():
    rng = np.random.default_rng(11)
    w, b = make(rng, 64, 256)
    int8 = medqk.QuantizedLinear.from_float(w, b)
    int4 = medqk.QuantizedLinear.from_float(w, b, bits=4, group_size=128)
    cb2 = medqk.QuantizedLinear.from_float(w, b, bits=2, group_size=None)
    assert int4.nbytes == 64 * 256 // 2 + 16 + 64 * 2 * 4 + 64 * 4  # codes, one level table, scales, bias
    assert cb2.nbytes < int4.nbytes < int8.nbytes

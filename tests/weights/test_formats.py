"""medqk.weights: the shared W4A8 layout, round to nearest, storage and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from medqk.weights import NF4, QuantizedWeight, dequantize, quantize_weights

FORMATS = {
    "int4-sym-g32": {"scheme": "int4"},
    "int4-asym-g32": {"scheme": "int4", "symmetric": False},
    "int4-sym-row": {"scheme": "int4", "group_size": None},
    "nf4-g64": {"scheme": "nf4", "group_size": 64},
    "cb4-row": {"scheme": "codebook", "group_size": None},
    "cb4-g32": {"scheme": "codebook"},
    "cb3-row": {"scheme": "codebook", "bits": 3, "group_size": None},
    "cb2-g64-lloyd": {"scheme": "codebook", "bits": 2, "group_size": 64, "codebook_method": "lloyd"},
}


def weight(n=24, k=200, seed=0):  # K = 200: partial last groups for 32 and 64
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, k)) * rng.uniform(0.2, 3.0, (n, 1))
    w[:, 7] *= 6.0  # an outlier input column
    w[3] = 0.0  # a zero row
    w[5, :40] = 0.0  # zero groups
    return w.astype(np.float32)


def contract(qw: QuantizedWeight) -> np.ndarray:
    """W_hat by the contract's formula, element by element (float64)."""
    n, k = qw.shape
    out = np.empty((n, k))
    for i in range(n):
        for j in range(k):
            g = 0 if qw.group_size is None else j // qw.group_size
            z = 0 if qw.zeros is None else int(qw.zeros[i, g])
            out[i, j] = float(qw.scales[i, g]) * (int(qw.levels[i, qw.codes[i, j]]) - z)
    return out


def grid_values(qw: QuantizedWeight, i: int, g: int) -> np.ndarray:
    z = 0 if qw.zeros is None else int(qw.zeros[i, g])
    return float(qw.scales[i, g]) * (qw.levels[i, : 2**qw.bits].astype(np.float64) - z)


@pytest.mark.parametrize("name", FORMATS)
def test_layout_dequantize_and_nearest(name):
    w = weight()
    qw = quantize_weights(w, **FORMATS[name])
    n, k = w.shape
    g = qw.n_groups
    assert qw.codes.dtype == np.uint8 and qw.codes.shape == (n, k) and qw.codes.max() < 2**qw.bits
    assert qw.levels.dtype == np.int8 and qw.levels.shape == (n, 16) and qw.levels.min() >= -127
    assert (qw.levels[:, 2**qw.bits :] == 0).all()
    assert qw.scales.dtype == np.float32 and qw.scales.shape == (n, g) and (qw.scales >= 0).all()
    assert (qw.zeros is not None) == (name == "int4-asym-g32")
    assert (np.diff(qw.levels[:, : 2**qw.bits].astype(int), axis=1) >= 0).all()  # sorted grid
    w_hat = dequantize(qw)
    assert w_hat.dtype == np.float32 and w_hat.shape == (n, k)
    np.testing.assert_allclose(w_hat, contract(qw), rtol=1e-6, atol=0)
    # round to nearest: every weight is at the nearest value of its group's grid
    gs = qw.group_size or k
    atol = 2.0**-23 * float(np.abs(w).max())
    for i in range(n):
        for j0 in range(0, k, gs):
            values = grid_values(qw, i, j0 // gs)
            cols = slice(j0, j0 + gs)
            best = np.abs(w[i, cols, None] - values[None, :]).min(axis=1)
            # float32 W_hat: one rounding of a value <= max|w| (2**-24 relative) apart from the exact grid
            np.testing.assert_allclose(np.abs(w[i, cols] - w_hat[i, cols]), best, rtol=0, atol=atol)
    np.testing.assert_array_equal(w_hat[3], 0.0)  # a zero row stays zero


def test_documented_level_tables():
    w = weight()
    np.testing.assert_array_equal(quantize_weights(w).levels, np.tile(np.arange(-8, 8), (24, 1)))
    np.testing.assert_array_equal(quantize_weights(w, symmetric=False).levels, np.tile(np.arange(16), (24, 1)))
    nf4 = quantize_weights(w, scheme="nf4").levels
    np.testing.assert_array_equal(nf4, np.tile(np.rint(127 * NF4), (24, 1)))
    assert nf4[0, 0] == -127 and nf4[0, 7] == 0 and nf4[0, 15] == 127


def test_int4_ranges_clip_nothing():
    w = weight().astype(np.float64)
    for symmetric in (True, False):
        qw = quantize_weights(w, symmetric=symmetric)
        s = np.repeat(qw.scales.astype(np.float64), 32, axis=1)[:, : w.shape[1]]
        # no clipping: every weight within half a step of its value
        assert (np.abs(w - dequantize(qw)) <= s / 2 * (1 + 1e-5) + 1e-12).all()
        if not symmetric:  # 0 is a grid value of every group
            assert (qw.zeros >= 0).all() and (qw.zeros <= 15).all()


def test_nf4_absmax_is_exact():
    w = weight()
    qw = quantize_weights(w, scheme="nf4", group_size=32)
    w_hat = dequantize(qw)
    for j0 in range(0, 200, 32):
        blk = slice(j0, j0 + 32)
        at = np.abs(w[:, blk]).argmax(axis=1)
        rows = np.arange(24)
        np.testing.assert_allclose(w_hat[:, blk][rows, at], w[:, blk][rows, at], rtol=1e-6)


def test_codebook_reproduces_rows_with_few_int8_values():
    rng = np.random.default_rng(3)
    values = np.array([-127, -90, -20, -3, 0, 5, 60, 127], dtype=np.float32)
    w = rng.choice(values, (6, 96)).astype(np.float32)
    w[:, 0], w[:, 1] = -127, 127
    for bits in (3, 4):
        qw = quantize_weights(w, scheme="codebook", bits=bits, group_size=None)
        np.testing.assert_array_equal(dequantize(qw), w)
        np.testing.assert_array_equal(qw.scales, 1.0)


def test_codebook_beats_int4_per_row_in_weight_error():
    rng = np.random.default_rng(4)
    w = rng.laplace(size=(16, 384)).astype(np.float32)
    errs = {}
    for name, kw in {"int4": {"scheme": "int4", "group_size": None}, "nf4": {"scheme": "nf4", "group_size": None},
                     "cb": {"scheme": "codebook", "group_size": None},
                     "lloyd": {"scheme": "codebook", "group_size": None, "codebook_method": "lloyd"}}.items():
        errs[name] = float(((w - dequantize(quantize_weights(w, **kw))) ** 2).mean())
    assert errs["cb"] < errs["lloyd"] and errs["cb"] < errs["nf4"] < errs["int4"]


def test_storage_counts_tables_and_scales():
    w = np.ones((64, 384), np.float32)
    qw = quantize_weights(w)  # 4-bit codes, one 16-byte table, 12 float32 scales a row
    assert qw.nbytes == 64 * 384 // 2 + 16 + 64 * 12 * 4
    assert qw.bits_per_weight == pytest.approx(5.0 + 128 / (64 * 384))
    qa = quantize_weights(w, symmetric=False, group_size=128)  # + 3 zero points a row at 4 bits
    assert qa.nbytes == 64 * 384 // 2 + 16 + 64 * 3 * 4 + 64 * 3 // 2
    cb = quantize_weights(w, scheme="codebook", bits=3, group_size=None)  # a table of 8 a row
    assert cb.nbytes == 64 * 384 * 3 // 8 + 64 * 8 + 64 * 4
    assert cb.kernel_group_size == 384 and cb.n_groups == 1
    odd = quantize_weights(np.ones((3, 70), np.float32), scheme="codebook", bits=3, group_size=None)
    assert odd.nbytes == -(-3 * 70 * 3 // 8) + 3 * 8 + 3 * 4 and odd.kernel_group_size == 96


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"weight": np.array([[1.0, np.nan]])}, ValueError, "weight contains NaN or Inf"),
        ({"weight": np.array([[1.0, np.inf]])}, ValueError, "weight contains NaN or Inf"),
        ({"weight": np.ones((2, 3), np.int32)}, TypeError, "weight must have a float dtype"),
        ({"weight": [[1.0]]}, TypeError, "weight must be a numpy.ndarray"),
        ({"weight": np.ones(8)}, ValueError, "weight must be 2-D"),
        ({"weight": np.ones((0, 8))}, ValueError, "weight must not be empty"),
        ({"scheme": "int8"}, ValueError, "scheme must be one of"),
        ({"bits": 3}, ValueError, "bits must be 4 for scheme 'int4'"),
        ({"scheme": "codebook", "bits": 5}, ValueError, "bits must be one of"),
        ({"bits": 4.0}, TypeError, "bits must be an int"),
        ({"group_size": 48}, ValueError, "group_size must be None or a positive multiple of 32"),
        ({"group_size": 0}, ValueError, "group_size must be None or a positive multiple of 32"),
        ({"scheme": "nf4", "symmetric": False}, ValueError, "symmetric=False"),
        ({"scheme": "codebook", "codebook_method": "kmeans"}, ValueError, "codebook_method must be one of"),
        ({"scheme": "codebook", "weighted_codebook": True}, ValueError, "weighted_codebook needs calib"),
        ({"weighted_codebook": True}, ValueError, "weighted_codebook applies to scheme 'codebook'"),
        ({"calib": np.ones((4, 7))}, ValueError, "calib must have K = 64 columns"),
        ({"calib": np.full((4, 64), np.nan)}, ValueError, "calib contains NaN or Inf"),
        ({"calib": np.ones((4, 64)), "hessian": np.eye(64)}, ValueError, "calib .* or hessian .*, not both"),
        ({"hessian": np.eye(63)}, ValueError, "hessian must have shape \\(64, 64\\)"),
        ({"hessian": np.triu(np.ones((64, 64)))}, ValueError, "hessian must be symmetric"),
        ({"hessian": -np.eye(64)}, ValueError, "hessian must have a non-negative diagonal"),
        ({"damp": -0.1}, ValueError, "damp must be a finite float >= 0"),
        ({"damp": float("nan")}, ValueError, "damp must be a finite float >= 0"),
        ({"block_size": 0}, ValueError, "block_size must be a positive int"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    kwargs = {"weight": np.ones((8, 64), np.float32), **kwargs}
    with pytest.raises(error, match=match):
        quantize_weights(kwargs.pop("weight"), **kwargs)


def test_quantized_weight_checks_the_contract():
    qw = quantize_weights(weight())
    fields = {"scheme": qw.scheme, "bits": qw.bits, "group_size": qw.group_size, "codes": qw.codes, "levels": qw.levels,
                  "scales": qw.scales, "zeros": qw.zeros, "shape": qw.shape}
    bad = [
        ({"codes": qw.codes.astype(np.int8)}, TypeError, "codes must be a numpy.ndarray of dtype uint8"),
        ({"codes": qw.codes[:, :10]}, ValueError, "codes must have shape"),
        ({"bits": 3}, ValueError, "codes must be < 2\\*\\*bits"),
        ({"levels": np.full((24, 16), -128, np.int8)}, ValueError, "levels must be in \\[-127, 127\\]"),
        ({"scales": -qw.scales - 1}, ValueError, "scales must be finite and >= 0"),
        ({"zeros": np.full(qw.scales.shape, 16, np.int8)}, ValueError, "zeros must be in \\[0, 15\\]"),
        ({"group_size": 40}, ValueError, "group_size must be None or a positive multiple of 32"),
        ({"scheme": "int2"}, ValueError, "scheme must be one of"),
    ]
    for change, error, match in bad:
        with pytest.raises(error, match=match):
            QuantizedWeight(**{**fields, **change})
    with pytest.raises(TypeError, match="qw must be a QuantizedWeight"):
        dequantize(qw.codes)


@pytest.mark.parametrize("name", ["int4-asym-g32", "nf4-g64", "cb4-g32", "cb3-row"])
def test_kernel_formula_gives_the_dequantized_product(name):
    # the W4A8 kernels' integer form: D[m, n, g] = sum_k a[m, k] levels[n, codes[n, k]] (int32, exact), then
    # out = sum_g scales[n, g] (D - zeros[n, g] asum[m, g]); it must equal a @ W_hat^T
    qw = quantize_weights(weight(), **FORMATS[name])
    n, k = qw.shape
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (5, k)).astype(np.int64)
    a[0] = -128
    gs = qw.kernel_group_size
    lv = np.take_along_axis(qw.levels.astype(np.int64), qw.codes.astype(np.intp), axis=1)
    out = np.zeros((5, n))
    for g in range(-(-k // gs)):
        cols = slice(g * gs, (g + 1) * gs)
        d = a[:, cols] @ lv[:, cols].T
        if qw.zeros is not None:
            d = d - a[:, cols].sum(axis=1, keepdims=True) * qw.zeros[:, g].astype(np.int64)[None, :]
        out += qw.scales[:, g].astype(np.float64)[None, :] * d
    ref = a.astype(np.float64) @ dequantize(qw).astype(np.float64).T
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())

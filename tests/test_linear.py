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


@pytest.mark.skipif(not medqk.info()["native_available"], reason="compares the native module with numba")
def test_backends_agree():
    rng = np.random.default_rng(4)
    w, b = make(rng, 48, 96)
    x = rng.standard_normal((10, 96)).astype(np.float32)
    results = []
    for name in ("native", "numba"):
        with medqk.use_backend(name):
            results.append(medqk.QuantizedLinear.from_float(w, b)(x))
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-6, atol=1e-6)


def test_bad_input(backend):
    rng = np.random.default_rng(3)
    w, b = make(rng, 8, 12)
    with pytest.raises(ValueError, match="bits must be 8, 4, 3 or 2, got 5"):
        medqk.QuantizedLinear.from_float(w, b, bits=5)
    with pytest.raises(ValueError, match="bits must be 4 for scheme 'nf4'"):
        medqk.QuantizedLinear.from_float(w, b, bits=3, scheme="nf4")
    with pytest.raises(ValueError, match="scheme must be one of int8, int4, nf4, codebook, got 'fp4'"):
        medqk.QuantizedLinear.from_float(w, b, bits=4, scheme="fp4")
    with pytest.raises(ValueError, match="hessian .GPTQ. applies to the 4-, 3- and 2-bit schemes, not to int8"):
        medqk.QuantizedLinear.from_float(w, b, hessian=np.eye(12))
    with pytest.raises(ValueError, match="calib has 11 features but weight has 12"):
        medqk.QuantizedLinear.from_float(w, b, calib=np.ones((4, 11), np.float32))
    with pytest.raises(ValueError, match="calib contains NaN or Inf"):
        medqk.QuantizedLinear.from_float(w, b, calib=np.full((4, 12), np.nan, np.float32))
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
    with pytest.raises(ValueError, match="x must have shape \\(..., 12\\), got a 0-D array"):
        layer(np.array(1.0, dtype=np.float32))
    with pytest.raises(ValueError, match="x has 11 features but the layer expects 12"):
        layer(np.ones((2, 3, 11)))
    with pytest.raises(TypeError, match="x must have a float dtype"):
        layer(np.ones((2, 12), dtype=np.int8))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        layer([[1.0] * 12])
    with pytest.raises(TypeError, match="from_float"):
        medqk.QuantizedLinear()


# ---------------------------------------------------------------------------------------------------------
# Any leading dimensions and any strides (issue 20, 17), as torch.nn.Linear: (..., K) -> (..., N) float32.
# ---------------------------------------------------------------------------------------------------------
def _views(rng, k):
    """(name, x) pairs: float arrays of every layout and rank the layer must take, with last axis k."""
    base = rng.standard_normal((6, 10, 2 * k + 3))
    f32 = base.astype(np.float32)
    return [
        ("c2d_f32", f32[0, :, :k]),
        ("row_step_f32", f32[0, ::3, :k]),
        ("col_range_f32", f32[1, :, 3 : 3 + k]),
        ("col_step_f32", f32[2, :, : 2 * k : 2]),
        ("fortran_f32", np.asfortranarray(f32[3, :, :k])),
        ("neg_rows_f32", f32[4, ::-1, :k]),
        ("neg_cols_f32", f32[5, :, k - 1 :: -1]),
        ("c2d_f64", base[0, :, :k]),
        ("fortran_f64", np.asfortranarray(base[1, :, :k])),
        ("neg_both_f64", base[2, ::-2, k - 1 :: -1]),
        ("f16", base[3, :, :k].astype(np.float16)),
        ("3d_f32", np.ascontiguousarray(f32[:, :, :k])),
        ("3d_row_step_f32", f32[:, ::2, :k]),  # leading axes collapse into one row stride: no copy
        ("3d_swapped_f32", f32[:, :, :k].transpose(1, 0, 2)),
        ("3d_f64_neg", base[::-1, :, :k]),
        ("4d_f32", f32[:, :, :k].reshape(2, 3, 10, k)),
        ("4d_fortran_f64", np.asfortranarray(base[:, :, :k].reshape(3, 2, 10, k))),
        ("1d_f32", f32[0, 0, :k]),
        ("1d_step_f64", base[0, 0, : 2 * k : 2]),
        ("1d_neg_f32", f32[0, 0, k - 1 :: -1]),
    ]


@pytest.mark.parametrize("k", [1, 33, 130])
def test_any_layout_and_rank(backend, k):
    rng = np.random.default_rng(k)
    w, b = make(rng, 19, k)
    layer = medqk.QuantizedLinear.from_float(w, b)
    for name, x in _views(rng, k):
        assert x.shape[-1] == k, name
        y = layer(x)
        assert y.dtype == np.float32 and y.shape == (*x.shape[:-1], 19), name
        # the same rows as one contiguous float32 matrix: bit for bit the same result
        x2 = np.ascontiguousarray(x.reshape(-1, k), dtype=np.float32)
        want = layer(x2).reshape(*x.shape[:-1], 19)
        np.testing.assert_array_equal(y, want, err_msg=name)
        assert x.flags.writeable  # the input is left alone


def test_any_rank_close_to_float64(backend):
    # A (batch, seq, features) float64 input against the float64 product, within the int8 quantization bound.
    rng = np.random.default_rng(17)
    k, n = 48, 21
    w, b = make(rng, n, k)
    x = rng.standard_normal((3, 5, 2 * k))[:, ::-1, ::2]  # float64, negative and column strides
    layer = medqk.QuantizedLinear.from_float(w, b)
    y = layer(x)
    assert y.shape == (3, 5, n) and y.dtype == np.float32
    x32 = x.astype(np.float32).astype(np.float64)  # the layer's input after its float32 conversion
    want = x32 @ w.T.astype(np.float64) + b
    s_x = np.abs(x32).max(-1, keepdims=True) / 127
    s_w = np.abs(w).max(1) / 127
    bound = np.abs(x32).sum(-1, keepdims=True) * s_w / 2 + s_x / 2 * np.abs(w).sum(1) + k * s_x * s_w / 4
    # plus float32 rounding of the scales, the rescale and the bias: a few ulps of sum |x||w| + |b|
    bound = bound + 4 * np.finfo(np.float32).eps * (np.abs(x32) @ np.abs(w.T.astype(np.float64)) + np.abs(b))
    assert (np.abs(y - want) <= bound).all()


def test_one_dimensional_and_empty_input(backend):
    rng = np.random.default_rng(5)
    w, b = make(rng, 7, 9)
    layer = medqk.QuantizedLinear.from_float(w, b)
    x = rng.standard_normal(9).astype(np.float32)
    y = layer(x)
    assert y.shape == (7,) and y.dtype == np.float32
    np.testing.assert_array_equal(y, layer(x[None])[0])
    for lead in [(0,), (2, 0), (0, 3)]:
        empty = layer(np.zeros((*lead, 9)))
        assert empty.shape == (*lead, 7) and empty.dtype == np.float32


@pytest.mark.skipif(not medqk.info()["native_available"], reason="the native module is not built")
def test_row_strided_input_reaches_the_kernel_uncopied():
    # Copy once only when needed: a float32 view whose rows are contiguous goes to the native kernel as it is.
    rng = np.random.default_rng(6)
    w, b = make(rng, 5, 16)
    with medqk.use_backend("native"):
        layer = medqk.QuantizedLinear.from_float(w, b)
        base = rng.standard_normal((4, 12, 20)).astype(np.float32)
        for x in (base[:, :, 2:18], base[:, ::3, :16], base[1, ::2, 4:]):
            rows, lead = layer._rows(x)
            assert np.shares_memory(rows, x) and rows.shape == (int(np.prod(lead)), 16)
        for x in (np.asfortranarray(base[:, :, :16]), base[:, ::-1, :16], base.astype(np.float64)[:, :, :16]):
            rows, _ = layer._rows(x)
            assert rows.flags.c_contiguous and not np.shares_memory(rows, x)


@pytest.mark.parametrize("bias", [True, False])
def test_save_load_round_trip(backend, tmp_path, bias):
    rng = np.random.default_rng(11)
    w, b = make(rng, 33, 65, bias=bias)
    layer = medqk.QuantizedLinear.from_float(w, b)
    path = tmp_path / "layer.mql"
    layer.save(path)
    loaded = medqk.QuantizedLinear.load(path)
    np.testing.assert_array_equal(loaded.weight_q, layer.weight_q)
    np.testing.assert_array_equal(loaded.weight_scales, layer.weight_scales)
    assert (loaded.bias is None) == (not bias) and loaded.nbytes == layer.nbytes
    x = rng.standard_normal((5, 65)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), layer(x))


def test_load_refuses_what_is_not_an_intact_layer(tmp_path):
    rng = np.random.default_rng(12)
    w, b = make(rng, 8, 16)
    path = tmp_path / "layer.mql"
    medqk.QuantizedLinear.from_float(w, b).save(path)
    blob = path.read_bytes()
    bad = tmp_path / "bad.mql"

    def error(data: bytes) -> str:
        bad.write_bytes(data)
        with pytest.raises(medqk.LayerFileError) as caught:
            medqk.QuantizedLinear.load(bad)
        assert repr(str(bad)) in str(caught.value) and isinstance(caught.value, medqk.MedqkFileError)
        return str(caught.value)

    flipped = bytearray(blob)
    flipped[len(blob) - 33] ^= 0x20  # the last byte the checksum covers
    assert "corrupt (checksum mismatch)" in error(bytes(flipped))
    assert "truncated or has trailing data" in error(blob[:-1])
    assert "not a medqk layer file (bad magic)" in error(b"MEDQKIDX" + blob[8:])  # an index's magic
    index = medqk.index.create("int8", 16).train(w).add(w)
    index.save(tmp_path / "index.mqk")
    assert "not a medqk layer file (bad magic)" in error((tmp_path / "index.mqk").read_bytes())


def test_save_leaves_an_existing_file_on_failure(tmp_path, monkeypatch):
    rng = np.random.default_rng(13)
    w, b = make(rng, 8, 16)
    path = tmp_path / "layer.mql"
    path.write_bytes(b"the user's file")
    layer = medqk.QuantizedLinear.from_float(w, b)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "ascontiguousarray", fail)  # the array writes fail half-way through the save
    with pytest.raises(OSError, match="disk full"):
        layer.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == b"the user's file" and sorted(p.name for p in tmp_path.iterdir()) == ["layer.mql"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        layer.save(tmp_path / "missing" / "layer.mql")


def smoothing_of(w, calib):
    """s_j = sqrt(max|calib_j| / max|w_j|), 1 where either is 0: the documented smoothing of from_float(calib=)."""
    xmax, wmax = np.abs(calib).max(axis=0).astype(np.float64), np.abs(w).max(axis=0).astype(np.float64)
    live = (xmax > 0) & (wmax > 0)
    return np.where(live, np.sqrt(xmax / np.where(live, wmax, 1.0)), 1.0)


def test_int8_smoothing_is_the_int8_layer_of_scaled_operands(backend, tmp_path):
    """from_float(calib=) at 8 bits: exactly the plain int8 layer of weight * s applied to x / s (bit for bit),
    with the scale stored, saved and loaded; an outlier activation channel then no longer costs the others
    their resolution (the error falls well below the plain layer's); a zero channel keeps s = 1."""
    rng = np.random.default_rng(21)
    w, b = make(rng, 40, 33)
    x = rng.standard_normal((300, 33)).astype(np.float32)
    x[:, 5] *= 60  # an outlier channel, as BERT's LayerNorm outputs have
    x[:, 7] = 0  # a channel the calibration never sees
    layer = medqk.QuantizedLinear.from_float(w, b, calib=x)
    s = smoothing_of(w, x)
    assert s[7] == 1.0
    np.testing.assert_array_equal(layer.input_scale, (1.0 / s).astype(np.float32))
    plain_scaled = medqk.QuantizedLinear.from_float(np.ascontiguousarray(w * s.astype(np.float32)[None, :]), b)
    np.testing.assert_array_equal(layer(x), plain_scaled(x * layer.input_scale))
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + b
    err_smooth = np.abs(layer(x) - exact).max()
    err_plain = np.abs(medqk.QuantizedLinear.from_float(w, b)(x) - exact).max()
    assert err_smooth < err_plain / 3, (err_smooth, err_plain)
    np.testing.assert_allclose(layer.dequantize(), w, rtol=0, atol=np.abs(w * s).max(axis=0).max() / 127)
    assert layer.nbytes == 40 * 33 + 40 * 4 + 40 * 4 + 33 * 4
    layer.save(tmp_path / "s.mql")
    back = medqk.QuantizedLinear.load(tmp_path / "s.mql")
    np.testing.assert_array_equal(back(x), layer(x))


def test_load_refuses_a_bad_input_scale(tmp_path):
    from medqk import _container, linear

    rng = np.random.default_rng(22)
    w, b = make(rng, 6, 9)
    layer = medqk.QuantizedLinear.from_float(w, b, calib=rng.standard_normal((5, 9)).astype(np.float32))
    meta, arrays = layer._state()
    arrays["input_scale"] = -arrays["input_scale"]
    _container.write(tmp_path / "bad.mql", linear.MAGIC, linear.VERSION, meta, arrays)
    with pytest.raises(medqk.LayerFileError, match="input_scale must be finite and > 0"):
        medqk.QuantizedLinear.load(tmp_path / "bad.mql")

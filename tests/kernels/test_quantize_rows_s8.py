"""quantize_rows_s8: the same int8 codes on every backend, round half to even, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import medqk


def reference(x: np.ndarray):
    x = x.astype(np.float32)
    amax = np.abs(x).max(axis=1)
    live = amax >= np.float32(2.0**-119)  # smaller rows are zero rows (their scale would be subnormal)
    inv = np.where(live, np.float32(127.0) / np.where(live, amax, 1), np.float32(1.0)).astype(np.float32)
    q = np.rint(np.clip(x * inv[:, None], -127, 127)).astype(np.int8)
    scales = np.where(live, amax / np.float32(127.0), np.float32(1.0)).astype(np.float32)
    return q, scales


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (17, 33), (65, 129), (2, 4096)])
def test_matches_reference(backend, shape):
    rng = np.random.default_rng(shape[0] * shape[1])
    x = (rng.standard_normal(shape) * rng.uniform(0.01, 100, size=(shape[0], 1))).astype(np.float32)
    q, scales = medqk.quantize_rows_s8(x)
    q_ref, s_ref = reference(x)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(scales, s_ref)
    assert np.abs(q).max() == 127  # the largest magnitude of each row maps to +-127


def test_ties_round_to_even_and_zero_rows(backend):
    # amax = 127 makes the multiplier exactly 1, so x itself is rounded: .5 goes to the even neighbour.
    x = np.array([[127.0, 2.5, -3.5, 0.5, -0.5, 1.5, -127.0], [0, 0, 0, 0, 0, 0, 0]], dtype=np.float32)
    q, scales = medqk.quantize_rows_s8(x)
    np.testing.assert_array_equal(q[0], [127, 2, -4, 0, 0, 2, -127])
    np.testing.assert_array_equal(q[1], 0)
    np.testing.assert_array_equal(scales, [1.0, 1.0])


def test_tiny_rows(backend):
    # 127 / max|x| overflows float32 below ~3.7e-37 (it used to reach an inf -> int cast: -127 codes on one
    # backend, +-127 on the other); from 2^-119 down a row is a zero row. Just above, the codes are normal.
    tiny = np.float32(2.0**-119)
    x = np.array([[1e-38, -3e-38, 0.0], [1e-45, 0.0, -1e-45], [tiny, -tiny / 2, 0.0],
                  [np.nextafter(tiny, np.float32(0)), 0.0, 0.0], [3e-36, -1e-36, 1.5e-36]], dtype=np.float32)
    q, scales = medqk.quantize_rows_s8(x)
    np.testing.assert_array_equal(q[:2], 0)
    np.testing.assert_array_equal(q[3], 0)
    np.testing.assert_array_equal(q[2], [127, -64, 0])  # -63.5 rounds half to even
    assert q[4, 0] == 127 and abs(q[4, 1] + 42) <= 1 and abs(q[4, 2] - 64) <= 1
    np.testing.assert_array_equal(scales[[0, 1, 3]], 1.0)
    q_ref, s_ref = reference(x)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(scales, s_ref)


def test_float64_is_converted(backend):
    x = np.linspace(-1, 1, 24).reshape(2, 12)
    q, _ = medqk.quantize_rows_s8(x)
    np.testing.assert_array_equal(q, reference(x)[0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_refused(backend, bad):
    x = np.ones((3, 5), dtype=np.float32)
    x[2, 4] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        medqk.quantize_rows_s8(x)


def test_integer_input_refused(backend):
    with pytest.raises(TypeError, match="x must have dtype float32"):
        medqk.quantize_rows_s8(np.ones((2, 3), dtype=np.int32))

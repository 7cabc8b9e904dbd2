"""quantize_rows_s8: the same int8 codes on every backend, round half to even, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import medqk


def reference(x: np.ndarray):
    x = x.astype(np.float32)
    amax = np.abs(x).max(axis=1)
    inv = np.where(amax > 0, np.float32(127.0) / np.where(amax > 0, amax, 1), np.float32(1.0)).astype(np.float32)
    q = np.rint(np.clip(x * inv[:, None], -127, 127)).astype(np.int8)
    scales = np.where(amax > 0, amax / np.float32(127.0), np.float32(1.0)).astype(np.float32)
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

"""gelu_f32 (the encoder's GELU, erf form) on every kernel variant this CPU runs and on the Numba twin, against
float64 math.erf within a bound derived from the computation, over the whole float range it meets (tails where
the exp flushes, zeros, odd sizes for the SIMD tail); any shape, threads give the same bits; bad input."""

from __future__ import annotations

import numpy as np
import pytest

from medqk import kernels
from tests.float_bounds import gelu_reference
from tests.variants import pinned_variant_fixture

variant = pinned_variant_fixture("gelu_f32")  # each variant this CPU runs, and the Numba twin


def test_within_rounding_of_float64(variant):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(1001) * 3, np.linspace(-20, 20, 4001), [0.0, -0.0, 1e-30, -1e-30, 50, -50],
                        rng.uniform(-1e4, 1e4, 37)]).astype(np.float32)
    got = kernels.gelu_f32(x, threads=1)
    want, bound = gelu_reference(x)
    err = np.abs(got - want)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert (err <= bound).all(), f"{variant}: {err.max():.3g} at x = {x[np.argmax(err - bound)]}"


def test_shapes_sizes_and_threads(variant):
    rng = np.random.default_rng(1)
    for shape in [(1,), (7,), (9,), (3, 5), (2, 3, 17), (70001,)]:
        x = rng.standard_normal(shape).astype(np.float32)
        got = kernels.gelu_f32(x, threads=1)
        assert got.shape == shape
        np.testing.assert_array_equal(got, kernels.gelu_f32(x, threads=2))
        flat = kernels.gelu_f32(x.reshape(-1), threads=1)
        np.testing.assert_array_equal(got.reshape(-1), flat)
    x = rng.standard_normal((4, 6)).astype(np.float64)  # converted, and a view in any order is read as values
    np.testing.assert_array_equal(kernels.gelu_f32(x.T), kernels.gelu_f32(np.ascontiguousarray(x.T, np.float32)))


def test_inplace_overwrites_x_with_the_same_values(variant):
    from medqk.kernels import _gelu_f32_checked

    x = np.random.default_rng(2).standard_normal((5, 1001)).astype(np.float32)
    want = kernels.gelu_f32(x, threads=1)
    y = x.copy()
    got = _gelu_f32_checked(y, 2, inplace=True)
    assert np.shares_memory(got, y)
    np.testing.assert_array_equal(y, want)
    if variant != "numba":  # the native binding refuses to write into a read-only array
        from medqk import _backend

        y.flags.writeable = False
        with pytest.raises(ValueError, match="writeable"):
            _backend._core.gelu_f32(y, 1, True)


@pytest.mark.parametrize("x, error, match", [
    (np.arange(4), TypeError, "x must be a numpy.ndarray of a float dtype"),
    ([1.0, 2.0], TypeError, "x must be a numpy.ndarray of a float dtype"),
    (np.array([1.0, np.nan], np.float32), ValueError, "x contains NaN or Inf"),
])
def test_bad_input_names_the_argument(x, error, match):
    with pytest.raises(error, match=match):
        kernels.gelu_f32(x)

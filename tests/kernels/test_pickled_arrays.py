"""Arrays that went through pickle (Ray's object store, multiprocessing) carry an equal but distinct dtype
object; every binding must take them as it takes the original."""

from __future__ import annotations

import pickle

import numpy as np

import medqk.index as mi
from medqk import kernels


def _through_pickle(a: np.ndarray) -> np.ndarray:
    b = pickle.loads(pickle.dumps(a, protocol=5))
    assert b.dtype == a.dtype and b.dtype is not a.dtype  # the case at hand: equal dtypes, distinct objects
    return b


def test_bindings_take_unpickled_arrays(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 40)).astype(np.float32)
    np.testing.assert_array_equal(kernels.gelu_f32(_through_pickle(x)), kernels.gelu_f32(x))
    codes, scales = kernels.quantize_rows_s8(_through_pickle(x))
    want_codes, want_scales = kernels.quantize_rows_s8(x)
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(scales, want_scales)
    index = mi.create("int8", 40).train(x).add(x)
    keep = _through_pickle(np.arange(0, 6, 2, dtype=np.int64))
    got = index.search(_through_pickle(x), 2, filter=keep)
    want = index.search(x, 2, filter=np.arange(0, 6, 2))
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])

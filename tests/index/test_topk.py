"""block_topk: the native selection (up to k = 256) equals the numpy one, ties to the lower id included."""

from __future__ import annotations

import numpy as np
import pytest

import medqk
from medqk.index import _topk


def _numpy_topk(scores, k, offset):
    """The reference: a full stable sort by (score desc, id asc)."""
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), order.astype(np.int64) + offset


@pytest.mark.skipif(medqk._backend._core is None, reason="needs the native module")
@pytest.mark.parametrize("nb", [1, 7, 16, 17, 300, 5000])
@pytest.mark.parametrize("k", [1, 3, 10, 256, 257])
@pytest.mark.parametrize("distinct", [4, 10**6])
def test_native_and_numpy_selection_agree(nb, k, distinct):
    rng = np.random.default_rng(nb * 1000 + k)
    scores = (rng.integers(0, distinct, (9, nb)) * 0.25 - 1.0).astype(np.float32)  # many ties with 4 values
    scores[0, : min(nb, 5)] = -0.0  # -0 and +0 are equal scores: the lower id first
    scores[1, :] = 0.0
    want = _numpy_topk(scores, min(k, nb), 1000)
    for backend in ("native", "numba"):
        with medqk.use_backend(backend):
            got = _topk.block_topk(scores, k, 1000, threads=2)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])
        assert got[0].dtype == np.float32 and got[1].dtype == np.int64

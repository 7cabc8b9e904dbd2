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


def _allowed_topk(scores, k, offset, allowed):
    """The reference over the allowed columns: their (score desc, id asc) order, padded with (-inf, -1)."""
    cols = np.flatnonzero(allowed)
    s, order = _numpy_topk(scores[:, cols], min(k, len(cols)), 0)
    ids = cols[order] + offset
    pad = min(k, scores.shape[1]) - ids.shape[1]
    return (np.pad(s, ((0, 0), (0, pad)), constant_values=-np.inf),
            np.pad(ids, ((0, 0), (0, pad)), constant_values=-1))


@pytest.mark.skipif(medqk._backend._core is None, reason="needs the native module")
@pytest.mark.parametrize("nb, k, fraction", [(1, 1, 1.0), (17, 10, 0.3), (300, 10, 0.5), (5000, 256, 0.02),
                                             (40, 30, 0.1), (33, 5, 0.0), (5000, 300, 0.5)])
def test_allow_bitmap_selection_agrees(nb, k, fraction):
    # the bitmap covers the whole index; the block starts at row `offset` of it (bits offset .. offset + nb - 1)
    rng = np.random.default_rng(nb + k)
    scores = (rng.integers(0, 6, (5, nb)) * 0.5).astype(np.float32)  # ties
    offset = 13
    allowed = rng.random(nb) < fraction
    bits = np.packbits(np.concatenate([rng.random(offset) < 0.5, allowed]), bitorder="little")
    want = _allowed_topk(scores, k, offset, allowed)
    for backend in ("native", "numba"):
        with medqk.use_backend(backend):
            got = _topk.block_topk(scores, k, offset, threads=2, allow=bits)
        s, i = got
        if backend == "numba":  # the numpy path leaves its padding's ids to the caller (flat.py writes -1)
            i = np.where(np.isneginf(s), -1, i)
        np.testing.assert_array_equal(i, want[1])
        np.testing.assert_array_equal(s, want[0])
    with pytest.raises(ValueError, match="allow must be"):
        medqk._backend._core.select_topk_f32(scores, 1, 1, bits[: (offset + nb) // 8 - 1] if nb > 8 else bits[:0],
                                             offset)

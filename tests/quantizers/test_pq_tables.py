"""PQ lookup tables: native and Numba give the same floats, and they are the inner products they claim."""

from __future__ import annotations

import numpy as np
import pytest

import medqk
from medqk import _backend
from medqk.index import SpecDataWarning
from medqk.quantizers.pq import PQCodec
from tests.twins import require_numba

needs_native = pytest.mark.skipif(_backend._core is None, reason="compares the native tables with the twin's")


def trained(M, dim, nbits, seed=0):
    rng = np.random.default_rng(seed)
    codec = PQCodec(M, dim, nbits, seed=seed, max_iter=3, progress=False)
    x = rng.standard_normal((300, dim)).astype(np.float32)
    if nbits == 8:  # 300 vectors for 256 centroids: enough for tables, under-trained by medqk's rule
        with pytest.warns(SpecDataWarning, match="1.2 per centroid"):
            codec.train(x)
    else:
        codec.train(x)
    return codec


@needs_native
@pytest.mark.parametrize("M,dim,nbits", [(1, 1, 4), (3, 9, 4), (7, 7, 4), (5, 85, 4), (96, 384, 4), (4, 68, 8),
                                         (48, 384, 8)])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_tables_match_reference_and_backends_agree(M, dim, nbits, metric):
    codec = trained(M, dim, nbits)
    rng = np.random.default_rng(1)
    q = rng.standard_normal((37, dim)).astype(np.float32)
    c = codec.centroids.astype(np.float64)
    ref = np.einsum("qmd,mkd->qmk", q.astype(np.float64).reshape(37, M, -1), c)
    if metric == "l2":
        ref = 2 * ref - np.einsum("mkd,mkd->mk", c, c)[None]
    out = {}
    for name in ("native", "numba"):
        if name == "numba":
            require_numba()  # after the native tables were checked
        with medqk.use_backend(name):
            out[name] = codec.tables(q, metric, threads=2)
        assert out[name].shape == (37, M, 2**nbits) and out[name].dtype == np.float32
        np.testing.assert_allclose(out[name], ref, rtol=1e-5, atol=1e-5 * (dim // M))
    np.testing.assert_array_equal(out["native"], out["numba"])  # same operations in the same order


def test_tables_need_training():
    with pytest.raises(RuntimeError, match="not trained"):
        PQCodec(4, 16, 4).tables(np.zeros((1, 16), np.float32), "ip")

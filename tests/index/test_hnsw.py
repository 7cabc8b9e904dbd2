"""The hnsw baseline spec (hnswlib)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import medqk.index as mi

from .test_flat import data, exact, recall

pytest.importorskip("hnswlib")


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_quality_and_round_trip(tmp_path, metric):
    x, q = data(n=800, nq=40, d=32, normalize=metric == "ip")
    index = mi.create("hnsw", 32, metric, ef_search=100).add(x[:500]).add(x[500:])
    scores, ids = index.search(q, 10)
    ref_s, ref_i = exact(x, q, 10, metric)
    assert recall(ids, ref_i) >= 0.95
    np.testing.assert_allclose(scores[:, 0], ref_s[:, 0], rtol=1e-4, atol=1e-4)
    index.save(tmp_path / "h.mqk")
    loaded = mi.load(tmp_path / "h.mqk")
    s2, i2 = loaded.search(q, 10)
    np.testing.assert_array_equal(i2, ids)
    assert loaded.ef_search == 100


def test_rerank_int8_and_options():
    x, q = data(n=600, nq=20, d=32)
    index = mi.create("hnsw+rerank:int8", 32).train(x).add(x)
    _, ids = index.search(q, 10)
    assert recall(ids, exact(x, q, 10, "ip")[1]) >= 0.9
    with pytest.raises(ValueError, match="M must be a positive int"):
        mi.create("hnsw", 8, M=0)
    with pytest.raises(TypeError, match="takes no option ef_search"):
        mi.create("int8", 8, ef_search=5)


def test_missing_hnswlib_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "hnswlib", None)
    with pytest.raises(ImportError, match="pip install hnswlib"):
        mi.create("hnsw", 8)

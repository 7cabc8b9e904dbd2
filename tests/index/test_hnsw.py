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


def test_m_below_two_is_refused():
    # hnswlib draws levels with 1 / ln(M): M=1 made add() fail with "Not enough memory"
    with pytest.raises(ValueError, match="M must be >= 2"):
        mi.create("hnsw", 8, M=1)
    x, _ = data(n=50, nq=1, d=8)
    assert mi.create("hnsw", 8, M=2).add(x).ntotal == 50


def test_add_in_chunks_builds_the_same_graph_with_a_progress_bar(monkeypatch, capsys):
    from medqk.index import hnsw

    x, q = data(n=700, nq=20, d=16)
    whole = mi.create("hnsw", 16, progress=False).add(x)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(hnsw, "_ADD_CHUNK", 64)  # 11 hnswlib calls instead of one
    chunked = mi.create("hnsw", 16, progress=True).add(x)
    err = capsys.readouterr().err
    assert "hnsw add:" in err and "0/700" in err  # a tqdm bar on stderr
    for a, b in zip(whole.search(q, 10), chunked.search(q, 10)):  # sequential insertion: the same graph
        np.testing.assert_array_equal(a, b)
    mi.create("hnsw", 16).add(x[:100])  # progress=None: a bar only when stderr is a terminal
    assert capsys.readouterr().err == ""

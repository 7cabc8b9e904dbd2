"""metric="cos": unit vectors stored and searched, cosine similarities returned, zero vectors refused."""

from __future__ import annotations

import numpy as np
import pytest

import medqk.index as mi

pytestmark = pytest.mark.filterwarnings("ignore::medqk.index.SpecDataWarning")  # small data, on purpose
D = 16


def scaled_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((300, D)).astype(np.float32)
    q = rng.standard_normal((6, D)).astype(np.float32)
    scale = rng.uniform(0.1, 50, size=(300, 1)).astype(np.float32)  # norms far from 1: cos must not see them
    return x, x * scale, q


def unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.mark.parametrize("spec", ["float32", "fp16", "int8", "cb4", "pq8x4fs", "pq4x8", "ivf4,pq8x4fs",
                                  "pq8x4fs+rerank:int8", "cb4+rerank:float32"])
def test_cos_is_ip_over_unit_vectors(spec):
    x, xs, q = scaled_data()
    cos = mi.create(spec, D, "cos").train(xs).add(xs)
    ip = mi.create(spec, D, "ip").train(unit(x)).add(unit(x))
    s1, i1 = cos.search(q * 3, 8)
    s2, i2 = ip.search(unit(q), 8)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-6)
    assert cos.metric == "cos"


def test_cos_exact_scores_and_save_load(tmp_path):
    x, xs, q = scaled_data(1)
    index = mi.create("float32", D, "cos").add(xs)
    s, i = index.search(q, 5)
    ref = unit(q).astype(np.float64) @ unit(x).T.astype(np.float64)
    np.testing.assert_array_equal(i, np.argsort(-ref, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(s, np.take_along_axis(ref, i, axis=1), rtol=1e-5)
    assert (s <= 1 + 1e-6).all()
    index.save(tmp_path / "c.mqk")
    loaded = mi.load(tmp_path / "c.mqk")
    assert loaded.metric == "cos"
    loaded.add(xs[:1] * 1000)  # normalized on add after load as well
    np.testing.assert_allclose(np.linalg.norm(loaded.vectors([300]), axis=1), 1, rtol=1e-6)


def test_cos_refuses_zero_vectors():
    x, xs, q = scaled_data(2)
    index = mi.create("int8", D, "cos")
    bad = xs.copy()
    bad[17] = 0
    with pytest.raises(ValueError, match=r"x has 1 zero vector\(s\) \(first: row 17\)"):
        index.train(bad)
    index.train(xs).add(xs)
    with pytest.raises(ValueError, match="x has 1 zero vector"):
        index.add(bad)
    with pytest.raises(ValueError, match="q has 1 zero vector"):
        index.search(np.vstack([q, np.zeros(D, np.float32)]), 3)
    assert len(index) == 300
    with pytest.raises(ValueError, match="metric must be one of"):
        mi.create("int8", D, "cosine")

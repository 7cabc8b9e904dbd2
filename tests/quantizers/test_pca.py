"""pca<b>: the nibble allocation DP, exact stage encoding, tables, recall against cb<b>, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import medqk.index as mi
from medqk.quantizers.pca import _GROUP_GAIN, PCACodec, _encode_stages, allocate

from ..index.test_flat import exact, recall


def decaying(n=3000, d=48, seed=0):
    """Embedding-like: a mean offset and a decaying spectrum (std 2 ** -(i / 8)) along random directions."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    std = 2.0 ** (-np.arange(d) / 8)
    x = (rng.standard_normal((n, d)) * std) @ basis.T + 0.3 * rng.standard_normal(d)
    return x.astype(np.float32)


def _cost(plan, w, mse, lam):
    total = 0.0
    for kind, i, size in plan:
        if kind == "drop":
            total += w[i] * lam[i]
        elif kind == "stage":
            total += w[i] * mse[i, size - 1]
        else:
            total += _GROUP_GAIN[size] * float((w[i : i + size] * lam[i : i + size]).sum())
    return total


def _nibbles(plan):
    return sum(size if kind == "stage" else 1 if kind == "group" else 0 for kind, i, size in plan)


def _all_plans(d, i=0):
    """Every way of covering dims i..d-1 with drop / 1-3 stages / groups of 2-4 consecutive dims."""
    if i == d:
        yield []
        return
    for step in [("drop", i, 1)] + [("stage", i, s) for s in (1, 2, 3)]:
        for rest in _all_plans(d, i + 1):
            yield [step] + rest
    for size in (2, 3, 4):
        if i + size <= d:
            for rest in _all_plans(d, i + size):
                yield [("group", i, size)] + rest


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("budget", [0, 1, 3, 6, 11])
def test_allocation_is_the_brute_force_optimum(seed, budget):
    rng = np.random.default_rng(seed)
    d = 6
    lam = np.sort(rng.exponential(1.0, d))[::-1]
    w = lam + rng.exponential(0.2, d)
    mse = lam[:, None] * np.array([0.0095, 0.0001, 0.000002])[None] * rng.uniform(0.5, 2, (d, 3))
    plan = allocate(w, mse, lam, budget)
    covered = [j for kind, i, size in plan for j in (range(i, i + size) if kind == "group" else [i])]
    assert covered == list(range(d))  # every dim once, in order
    assert _nibbles(plan) <= budget
    best = min(_cost(p, w, mse, lam) for p in _all_plans(d) if _nibbles(p) <= budget)
    assert _cost(plan, w, mse, lam) == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("stages", [1, 2, 3])
def test_stage_encoding_is_the_exact_nearest_sum(stages):
    rng = np.random.default_rng(stages)
    levels = np.sort(rng.standard_normal((stages, 16)), axis=1) / (4.0 ** np.arange(stages))[:, None]
    v = rng.standard_normal(500) * 1.5
    codes = _encode_stages(v, levels)
    assert codes.shape == (500, stages) and codes.dtype == np.uint8 and codes.max() < 16
    got = levels[np.arange(stages)[None], codes].sum(1)
    combos = np.array(list(itertools.product(range(16), repeat=stages)))
    sums = levels[np.arange(stages)[None], combos].sum(1)
    best = np.abs(v[:, None] - sums[None]).min(1)
    np.testing.assert_allclose(np.abs(v - got), best, atol=1e-12)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_budget_and_bytes(bits):
    x = decaying(n=600)
    index = mi.create(f"pca{bits}", 48).train(x).add(x)
    assert index.bytes_per_vector == bits * 48 / 8
    assert index.codec.n_sub(48) == bits * 48 // 4
    plan = index.codec.plan
    assert _nibbles(plan) <= bits * 48 // 4
    # the high-variance directions get the stages, the last ones are grouped or dropped
    assert plan[0][0] == "stage" and plan[-1][0] in ("drop", "group")


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_tables_sum_to_the_score_of_the_reconstruction(metric):
    x = decaying(n=1500)
    rng = np.random.default_rng(3)
    q = x[:20] + 0.1 * rng.standard_normal((20, 48)).astype(np.float32)
    codec = PCACodec(4, 48, metric).train(x)
    sub = codec.encode_sub(x[:300])
    rec = codec.decode_sub(sub).astype(np.float64)
    t = codec.tables(q, metric).astype(np.float64)  # (nq, S, 16)
    sums = t[:, np.arange(t.shape[1])[None, :], sub.astype(np.intp)].sum(-1)  # (nq, 300)
    q64 = q.astype(np.float64)
    want = q64 @ rec.T
    if metric == "ip":
        np.testing.assert_allclose(sums, want, rtol=1e-5, atol=1e-5)
    else:
        # 2 q.x_hat - |x_hat|^2 up to the quantized cross term of multi-stage dims: a per-vector constant
        diff = sums - (2 * want - (rec * rec).sum(1)[None])
        np.testing.assert_allclose(diff, np.broadcast_to(diff[:1], diff.shape), atol=1e-4)
        assert np.abs(diff).max() < 0.01 * (rec * rec).sum(1).mean()
        # ip tables of an l2 codec are exact (the index re-scores l2 with them and |x_hat|^2)
        ip = codec.tables(q, "ip").astype(np.float64)
        ip_sums = ip[:, np.arange(t.shape[1])[None, :], sub.astype(np.intp)].sum(-1)
        np.testing.assert_allclose(ip_sums, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bits", [4, 2])
def test_beats_per_dimension_codebooks_on_a_decaying_spectrum(bits):
    x = decaying(n=3000)
    rng = np.random.default_rng(7)
    q = (x[rng.integers(0, 3000, 80)] + 0.2 * rng.standard_normal((80, 48))).astype(np.float32)
    ref = exact(x, q, 10, "ip")[1]
    r_pca = recall(mi.create(f"pca{bits}", 48).train(x).add(x).search(q, 10)[1], ref)
    r_cb = recall(mi.create(f"cb{bits}", 48).train(x).add(x).search(q, 10)[1], ref)
    assert r_pca > r_cb + 0.03, (r_pca, r_cb)


def test_k_is_at_most_ntotal():
    x = decaying(n=200)
    index = mi.create("pca4", 48).train(x).add(x[:7])
    scores, ids = index.search(x[:3], 7)
    assert sorted(ids[0]) == list(range(7)) and np.isfinite(scores).all()
    with pytest.raises(ValueError, match="k=8 is larger than the 7 vectors in the index"):
        index.search(x[:3], 8)


def test_errors():
    with pytest.raises(ValueError, match="at least 16 vectors"):
        mi.create("pca4", 48).train(decaying(n=10))
    with pytest.raises(ValueError, match="no whole nibble"):
        mi.create("pca2", 1)
    with pytest.raises(ValueError, match="trained for metric 'ip'"):
        PCACodec(4, 48, "ip").train(decaying(n=128)).tables(decaying(n=2), "l2")
    with pytest.raises(TypeError, match="takes no option"):
        mi.create("pca4", 48, calibration="mse")


def test_any_dimension_takes_whole_nibbles_rounded_down():
    """bits * d / 4 nibbles rounded down: pca3 at d = 5 has 3, pca2 at d = 17 has 8 (odd d were refused)."""
    assert mi.create("pca3", 5).n_sub == 3 and mi.create("pca2", 17).n_sub == 8 and mi.create("pca4", 17).n_sub == 17
    x = decaying(n=200, d=17)
    index = mi.create("pca3", 17, "l2").train(x).add(x)
    _, ids = index.search(x[:5], 3)
    assert index.n_sub == 12 and (ids[:, 0] == np.arange(5)).all()


def test_principal_axes_with_fewer_vectors_than_dimensions():
    """n < d: the SVD of the data gives the covariance's leading eigenvectors (up to sign), r = n columns."""
    from medqk.quantizers.pca import _principal_axes

    rng = np.random.default_rng(3)
    xc = rng.standard_normal((40, 100)) * np.linspace(3, 0.1, 100)
    xc -= xc.mean(axis=0)
    vec = _principal_axes(xc)
    assert vec.shape == (100, 40)
    lam, ref = np.linalg.eigh(xc.T @ xc / 40)
    ref = ref[:, np.argsort(lam)[::-1][:39]]  # rank 39 after centring: the 40th direction is arbitrary
    np.testing.assert_allclose(np.abs(np.sum(vec[:, :39] * ref, axis=0)), 1.0, atol=1e-6)
    np.testing.assert_allclose(vec.T @ vec, np.eye(40), atol=1e-10)

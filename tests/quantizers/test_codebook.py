"""Per-dimension codebooks: the 1-D fit is optimal, encoding picks the nearest level."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medqk.quantizers.codebook import LevelCodec, optimal_levels_1d

pytest.importorskip("numba")


def brute_force_sse(values: np.ndarray, k: int) -> float:
    v = np.sort(values)
    best = np.inf
    for cuts in itertools.combinations(range(1, len(v)), k - 1):
        parts = np.split(v, cuts)
        best = min(best, sum(((p - p.mean()) ** 2).sum() for p in parts))
    return best


def sse(values, levels):
    return float(((values[:, None] - levels[None, :]) ** 2).min(axis=1).sum())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [2, 3, 4])
def test_optimal_levels_match_brute_force(seed, k):
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.standard_normal(8), rng.standard_normal(4) * 4 + 3])
    assert sse(values, optimal_levels_1d(values, k)) == pytest.approx(brute_force_sse(values, k), rel=1e-9)


def test_few_distinct_values_and_ordering():
    levels = optimal_levels_1d(np.array([1.0, 1.0, 2.0]), 4)
    assert levels.shape == (4,) and (np.diff(levels) >= 0).all()
    assert set(levels) == {1.0, 2.0}


def test_codebooks_beat_uniform_levels_in_mse():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal((3000, 8)), rng.standard_t(3, (3000, 8))]).astype(np.float32)
    errs = {}
    for name, codec in {"int4": LevelCodec(4, "uniform"), "cb4": LevelCodec(4, "kmeans"),
                        "cb3": LevelCodec(3, "kmeans"), "cb2": LevelCodec(2, "kmeans")}.items():
        codec.train(x)
        codes = codec.encode(x)
        assert codes.max() < codec.n_levels
        rec = codec.decode(codes)
        # encoding picks the nearest level of each dimension
        nearest = np.abs(x[:, :, None] - codec.levels[None]).min(axis=2)
        np.testing.assert_allclose(np.abs(rec - x), nearest, rtol=1e-6, atol=1e-6)
        errs[name] = float(((rec - x) ** 2).mean())
    assert errs["cb4"] < errs["int4"] and errs["cb4"] < errs["cb3"] < errs["cb2"]


def test_bad_codec_arguments():
    with pytest.raises(ValueError, match="bits must be 2, 3 or 4"):
        LevelCodec(5, "kmeans")
    with pytest.raises(ValueError, match="calibration must be one of"):
        LevelCodec(4, "uniform", calibration="magic")
    with pytest.raises(RuntimeError, match="not trained"):
        LevelCodec(4, "kmeans").encode(np.zeros((2, 2), np.float32))


def _unit_rows(n=800, d=24, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((10, d))
    x = centers[rng.integers(0, 10, n)] + 0.5 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_eta_one_is_the_nearest_level():
    x = _unit_rows()
    codec = LevelCodec(4, "kmeans").train(x)
    assert codec.eta == 1.0
    dist = np.abs(x[:, :, None] - codec.levels[None, :, :])  # (n, d, 16)
    np.testing.assert_array_equal(codec.encode(x), dist.argmin(axis=2))


@pytest.mark.parametrize("bits", [4, 3, 2])
def test_score_aware_codes_lower_the_anisotropic_loss(bits):
    x = _unit_rows(seed=bits)
    x[0] = 0.0  # a zero vector: no direction, plain squared error
    near = LevelCodec(bits, "kmeans").train(x)
    aniso = LevelCodec(bits, "kmeans", eta=4.0)
    aniso.levels = near.levels
    c_near, c_aniso = near.encode(x), aniso.encode(x)
    loss_near, loss_aniso = aniso.anisotropic_loss(x, c_near), aniso.anisotropic_loss(x, c_aniso)
    assert (loss_aniso <= loss_near + 1e-12).all()  # coordinate descent never goes up
    assert loss_aniso.mean() < 0.9 * loss_near.mean()
    assert (np.abs(c_aniso.astype(int) - c_near.astype(int)) <= 3).all()  # at most `passes` levels away
    np.testing.assert_array_equal(c_aniso[0], c_near[0])  # zero vector: nearest levels already optimal


def test_score_aware_codes_find_more_inner_product_neighbours():
    import medqk.index as mi

    x = _unit_rows(n=2000, d=32, seed=5)
    q = _unit_rows(n=100, d=32, seed=6)
    ref = np.argsort(-(q.astype(np.float64) @ x.T.astype(np.float64)), axis=1)[:, :10]

    def recall(eta):
        index = mi.create("cb4", 32, eta=eta).train(x).add(x)
        rec = index.vectors().astype(np.float64)
        top = np.argsort(-(q.astype(np.float64) @ rec.T), axis=1)[:, :10]  # exact ADC order of the codes
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, ref)])

    assert recall(4.0) > recall(1.0)


def test_eta_default_and_errors():
    import medqk.index as mi

    assert mi.create("cb4", 8).codec.eta == 4.0  # inner product: score-aware by default
    assert mi.create("cb4", 8, "l2").codec.eta == 1.0  # l2: nearest level (the squared error is the loss)
    assert mi.create("int4", 8).codec.eta == 1.0
    with pytest.raises(ValueError, match="eta must be >= 1"):
        LevelCodec(4, "kmeans", eta=0.5)

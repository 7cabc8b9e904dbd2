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

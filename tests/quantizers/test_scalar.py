"""ScalarQuantizer / LevelCodec calibration margin: the range widened on both sides, kept through save/load."""

from __future__ import annotations

import numpy as np
import pytest

import medqk.index as mi
from medqk.quantizers import ScalarQuantizer
from medqk.quantizers.codebook import LevelCodec


def _data(n=500, d=12, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


@pytest.mark.parametrize("symmetric", [False, True])
def test_margin_widens_the_minmax_range(symmetric):
    x = _data()
    plain = ScalarQuantizer(8, symmetric=symmetric).train(x)
    wide = ScalarQuantizer(8, symmetric=symmetric, margin=0.5).train(x)
    # the half-range grows by half: scale * 1.5, same centre (asymmetric) or zero (symmetric)
    np.testing.assert_allclose(wide.scale, plain.scale * 1.5, rtol=1e-6)
    np.testing.assert_allclose(wide.offset, plain.offset, rtol=1e-6, atol=1e-7)


def test_margin_keeps_unseen_values_unclipped():
    x = _data()
    lo, hi = x.min(axis=0), x.max(axis=0)
    outside = (hi + 0.3 * (hi - lo) / 2)[None, :].astype(np.float32)  # beyond the training range by 30%
    for margin, clipped in ((0.0, True), (0.5, False)):
        sq = ScalarQuantizer(8, margin=margin).train(x)
        err = np.abs(sq.decode(sq.encode(outside)) - outside).max()
        step = sq.scale.max()
        assert (err > 10 * step) == clipped, (margin, err, step)


def test_margin_for_uniform_levels_and_refused_elsewhere():
    x = _data()
    plain = LevelCodec(4, "uniform").train(x).levels
    wide = LevelCodec(4, "uniform", margin=0.2).train(x).levels
    np.testing.assert_allclose(wide[:, -1] - wide[:, 0], (plain[:, -1] - plain[:, 0]) * 1.2, rtol=1e-5)
    with pytest.raises(ValueError, match="margin widens the range of uniform levels"):
        LevelCodec(4, "kmeans", margin=0.2)
    for bad in (-0.1, 11.0):
        with pytest.raises(ValueError, match="margin must be in"):
            ScalarQuantizer(8, margin=bad)


@pytest.mark.parametrize("spec", ["int8", "int4"])
def test_margin_survives_save_and_load(tmp_path, spec):
    x = _data()
    index = mi.create(spec, x.shape[1], margin=0.3).train(x).add(x)
    index.save(tmp_path / "m.mqk")
    loaded = mi.load(tmp_path / "m.mqk")
    codec = loaded.codec
    assert codec.margin == 0.3
    np.testing.assert_array_equal(loaded.search(x[:5], 3)[1], index.search(x[:5], 3)[1])


def test_margin_is_an_option_of_the_uniform_codecs_only():
    x = _data()
    mi.create("cb4+rerank:int8", x.shape[1], margin=0.5).train(x).add(x)  # routed to int8 only
    with pytest.raises(TypeError, match="spec 'cb4' takes no option margin"):
        mi.create("cb4", x.shape[1], margin=0.5)

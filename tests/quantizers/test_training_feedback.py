"""What training tells the user: SpecDataWarning when the training sample is too small for a codebook,
and tqdm progress bars on stderr (progress=True), silent with progress=False or off a terminal (None)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import medqk.index as mi
from medqk import _progress
from medqk.index import SpecDataWarning
from medqk.quantizers.codebook import LevelCodec
from medqk.quantizers.opq import OPQCodec
from medqk.quantizers.pca import PCACodec
from medqk.quantizers.pq import PQCodec

pytest.importorskip("numba")


def sample(n, d=16, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


# (make the codec, the smallest sample that does not warn): 2 vectors per sub-vector centroid for pq / opq,
# 8 per level for the 1-D levels of cb* and pca* (the measured thresholds of medqk._warnings)
CASES = {
    "pq4x8": (lambda: PQCodec(4, 16, 8, max_iter=2), 512),
    "pq4x4fs": (lambda: PQCodec(4, 16, 4, max_iter=2), 32),
    "opq,pq4x8": (lambda: OPQCodec(4, 16, 8, max_iter=2, opq_iter=1), 512),
    "cb4": (lambda: LevelCodec(4, "kmeans"), 128),
    "cb2": (lambda: LevelCodec(2, "kmeans"), 32),
    "pca4": (lambda: PCACodec(4, 16, max_iter=2), 128),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_small_training_samples_warn_at_the_documented_threshold(name):
    make, enough = CASES[name]
    pattern = f"{re.escape(name)} .*trained on {enough - 1:,} vectors"
    with pytest.warns(SpecDataWarning, match=pattern) as caught:
        make().train(sample(enough - 1))
    assert f"at least {enough:,} vectors" in str(caught[0].message)
    assert caught[0].filename == __file__  # points at the caller's train()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make().train(sample(enough))


def test_warning_through_create_points_at_the_callers_line():
    with pytest.warns(SpecDataWarning, match="cb4") as caught:
        mi.create("cb4", 16).train(sample(100))
    assert caught[0].filename == __file__
    with warnings.catch_warnings():  # int4's uniform levels need no k-means: no warning
        warnings.simplefilter("error")
        mi.create("int4", 16).train(sample(20))


def test_pca_warns_once_in_its_own_words():
    with pytest.warns(SpecDataWarning) as caught:
        PCACodec(4, 16, max_iter=2).train(sample(40))
    assert len(caught) == 1 and str(caught[0].message).startswith("pca4 (16 levels per nibble) trained on 40")


@pytest.mark.parametrize("spec,bars", [
    ("pq4x8", ["pq4x8 k-means++ seeds:", "pq4x8 k-means:"]),
    ("opq,pq4x4fs", ["opq,pq4x4fs rotation updates:", "opq,pq4x4fs k-means:"]),
    ("cb4", ["cb4 levels:"]),
    ("pca4", ["pca4 levels:", "pca4 groups of"]),
])
def test_progress_bars_on_stderr(capsys, spec, bars):
    x = sample(600) * np.geomspace(1, 0.01, 16).astype(np.float32)  # decaying: pca shares nibbles
    options = {"max_iter": 2} if spec != "cb4" else {}
    mi.create(spec, 16, progress=True, **options).train(x)
    err = capsys.readouterr().err
    for bar in bars:
        assert bar in err, (bar, err)
    assert "\r" in err and "|" in err  # tqdm's bar, redrawn in place
    mi.create(spec, 16, progress=False, **options).train(x)
    assert capsys.readouterr().err == ""
    mi.create(spec, 16, **options).train(x)  # None: a bar only when stderr is a terminal
    assert capsys.readouterr().err == ""


def test_bars_default_can_be_switched_for_a_block(capsys):
    x = sample(600)
    with _progress.bars(True):
        PQCodec(4, 16, 4, max_iter=2).train(x)  # progress=None follows the block
        assert "pq4x4fs k-means:" in capsys.readouterr().err
        PQCodec(4, 16, 4, max_iter=2, progress=False).train(x)  # an explicit False still wins
        assert capsys.readouterr().err == ""
    PQCodec(4, 16, 4, max_iter=2).train(x)
    assert capsys.readouterr().err == ""

"""GPTQ rounding (medqk.gptq through quantize_weights(calib=..., hessian=...))."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from medqk.weights import dequantize, quantize_weights

FORMATS = {
    "int4-sym-g32": {"scheme": "int4"},
    "int4-asym-g64": {"scheme": "int4", "symmetric": False, "group_size": 64},
    "nf4-g32": {"scheme": "nf4"},
    "cb4-row": {"scheme": "codebook", "group_size": None},
    "cb4-g64": {"scheme": "codebook", "group_size": 64},
    "cb2-row-weighted": {"scheme": "codebook", "bits": 2, "group_size": None, "weighted_codebook": True},
}


def problem(n=32, k=160, m=600, seed=0):
    """Correlated activations (a random mixing of K latent features, uneven column energies) and weights."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((k, k)) * 0.25 + np.eye(k)
    x = (rng.standard_normal((m, k)) @ mix) * rng.uniform(0.3, 3.0, k)
    w = rng.standard_normal((n, k))
    return x.astype(np.float32), w.astype(np.float32)


def output_error(x, w, qw):
    return float(np.linalg.norm(x.astype(np.float64) @ (w - dequantize(qw)).T.astype(np.float64)))


@pytest.mark.parametrize("name", FORMATS)
def test_gptq_beats_round_to_nearest(name):
    x, w = problem()
    kwargs = FORMATS[name]
    rtn = quantize_weights(w, **{**kwargs, "weighted_codebook": False})
    gptq = quantize_weights(w, calib=x, **kwargs)
    assert output_error(x, w, gptq) < 0.9 * output_error(x, w, rtn)


@pytest.mark.parametrize("name", FORMATS)
def test_diagonal_hessian_gives_round_to_nearest_exactly(name):
    # H diagonal -> U (Cholesky of H^-1) diagonal: no error moves to other columns, so GPTQ = RTN
    _, w = problem()
    h = np.diag(np.random.default_rng(1).uniform(0.5, 4.0, w.shape[1]))
    kwargs = {k: v for k, v in FORMATS[name].items() if k != "weighted_codebook"}
    rtn = quantize_weights(w, **kwargs)
    gptq = quantize_weights(w, hessian=h, block_size=48, **kwargs)
    np.testing.assert_array_equal(gptq.codes, rtn.codes)
    np.testing.assert_array_equal(gptq.scales, rtn.scales)
    np.testing.assert_array_equal(gptq.levels, rtn.levels)


def test_weighted_codebook_lowers_the_weighted_error():
    # with a diagonal H the output error is sum_k H[k, k] (w - w_hat)^2: exactly what the weighted fit minimises
    rng = np.random.default_rng(2)
    w = rng.standard_normal((16, 128)).astype(np.float32)
    energy = np.where(np.arange(128) % 8 == 0, 100.0, 1.0)
    errors = {}
    for weighted in (False, True):
        qw = quantize_weights(w, scheme="codebook", bits=3, group_size=None, hessian=np.diag(energy),
                              weighted_codebook=weighted)
        errors[weighted] = float((energy * (w - dequantize(qw)) ** 2).sum())
    assert errors[True] < 0.8 * errors[False]


def test_block_size_does_not_change_the_result():
    # the lazy block update is the same algebra as updating every later column at once
    x, w = problem(n=16, k=96)
    errs = []
    codes = []
    for block_size in (1, 32, 96, 1000):
        qw = quantize_weights(w, calib=x, block_size=block_size)
        errs.append(output_error(x, w, qw))
        codes.append(qw.codes)
    np.testing.assert_allclose(errs, errs[0], rtol=1e-3)
    for c in codes[1:]:
        assert (c == codes[0]).mean() > 0.99  # float noise may flip a code that sits at a midpoint


def test_dead_inputs_are_zeroed():
    x, w = problem(n=8, k=64)
    x[:, [3, 40]] = 0.0
    qw = quantize_weights(w, calib=x, damp=0.0)  # the dead columns get H[k, k] = 1, so H stays invertible
    w_hat = dequantize(qw)
    np.testing.assert_array_equal(w_hat[:, [3, 40]], 0.0)
    assert output_error(x, w, qw) < output_error(x, w, quantize_weights(w))


def test_singular_hessian_asks_for_damping():
    x, w = problem(n=8, k=64, m=600)
    x[:, 5] = x[:, 6]  # two equal inputs: X^T X singular
    with pytest.raises(ValueError, match=r"Hessian from calib is not positive definite .*damp=0\.0.*larger damp"):
        quantize_weights(w, calib=x, damp=0.0)
    quantize_weights(w, calib=x)  # the default 1% damping makes it positive definite
    h = np.ones((64, 64))  # rank 1
    with pytest.raises(ValueError, match="Hessian from hessian is not positive definite"):
        quantize_weights(w, hessian=h, damp=0.0)


def test_nan_or_inf_refused():
    x, w = problem(n=8, k=64)
    bad = x.copy()
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="calib contains NaN or Inf"):
        quantize_weights(w, calib=bad)
    badw = w.copy()
    badw[0, 0] = np.nan
    with pytest.raises(ValueError, match="weight contains NaN or Inf"):
        quantize_weights(badw, calib=x)
    with pytest.raises(ValueError, match="hessian contains NaN or Inf"):
        quantize_weights(w, hessian=np.full((64, 64), np.nan))


_THREADS_SCRIPT = """
import numpy as np
from medqk.weights import dequantize, quantize_weights
from tests.weights.test_gptq import output_error, problem
x, w = problem(n=64, k=256, m=1024)
print(repr(output_error(x, w, quantize_weights(w, calib=x, symmetric=False))))
"""


def test_blas_thread_count_changes_only_float_noise():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    results = []
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads,
               "MKL_NUM_THREADS": threads, "PYTHONPATH": os.pathsep.join([root, *sys.path])}
        out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], env=env, capture_output=True, text=True,
                             check=True, cwd=root)
        results.append(float(out.stdout.strip()))
    assert results[1] == pytest.approx(results[0], rel=1e-4)

"""Shared pieces of the benchmarks' result checks: the ISAs to run, exact top-k references, and the float32
rounding bound of tests/float_bounds.py (loaded from its file: `pytest bench` does not put tests/ on the path).

Every benchmark compares its whole result with a reference that is exact by the kernel's contract (medqk.h):
integer math in numpy, the same float32 operations in the same order, or the scalar ISA where the contract says
every ISA gives the same bits. Kernels whose floats may differ by summation order (fp16 scores, BLAS) are held
to a bound derived from the computation (assert_topk_bounded).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

import medqk
from medqk import _backend


def _load_float_bounds():
    path = Path(__file__).resolve().parents[1] / "tests" / "float_bounds.py"
    spec = importlib.util.spec_from_file_location("medqk_bench_float_bounds", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_float_bounds = _load_float_bounds()
gamma = _float_bounds.gamma
attention_reference = _float_bounds.attention_reference
gelu_reference = _float_bounds.gelu_reference

# every ISA this CPU and build can run (parametrize over it: the test ids name the ISA); none without the
# native module, whose benchmarks then do not run
ISAS = medqk.available_isas() if _backend._core is not None else []


def variants(op: str) -> list[str]:
    """Every variant of kernel operation ``op`` this CPU can run (medqk.use_kernel pins one), including those
    no ISA path picks here (the vpshufb 4-bit scan on a VBMI CPU, the AVX2 8-bit group scan under AVX-512)."""
    return [v["name"] for v in medqk.kernel_variants().get(op, []) if v["runnable"]]


def topk_ids(scores: np.ndarray, k: int) -> np.ndarray:
    """medqk's order of each row of ``scores`` (nq, n): larger first, equal scores -> lower id; the first k."""
    nq, n = scores.shape
    if k >= n // 4:
        order = np.lexsort((np.broadcast_to(np.arange(n), scores.shape), -scores), axis=1)
        return order[:, :k]
    # every score at least the k-th largest (ties included), then sorted: the same, without sorting whole rows
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    out = np.empty((nq, k), np.int64)
    for q in range(nq):
        cand = np.flatnonzero(scores[q] >= kth[q])
        out[q] = cand[np.lexsort((cand, -scores[q, cand]))[:k]]
    return out


def assert_topk_bounded(ids, scores, exact, bound):
    """A top-k (ids, scores (nq, k)) from float32 scores that may differ from ``exact`` (nq, n, float64) by up
    to ``bound`` (nq, n) per vector: each returned score within its bound; rows ordered by the kernel's own
    scores (larger first, equal -> lower id); no vector left out that must score above one returned; and the
    ids exactly those of the exact order wherever no two of the k + 1 best are within their bounds of each
    other (on such data the result cannot depend on rounding, so it must be this one)."""
    nq, k = ids.shape
    assert (ids >= 0).all() and (ids < exact.shape[1]).all()
    rows = np.arange(nq)[:, None]
    err = np.abs(scores.astype(np.float64) - exact[rows, ids])
    assert (err <= bound[rows, ids]).all(), f"a score is off by {np.max(err - bound[rows, ids]):.3g} past its bound"
    same = scores[:, 1:] == scores[:, :-1]
    assert (scores[:, 1:] <= scores[:, :-1]).all() and (ids[:, 1:][same] > ids[:, :-1][same]).all()
    ref = topk_ids(exact, k + 1)
    for q in range(nq):
        out = np.ones(exact.shape[1], bool)
        out[ids[q]] = False
        if out.any():
            assert (exact[q, ids[q]] + bound[q, ids[q]]).min() >= (exact[q, out] - bound[q, out]).max()
        top = ref[q]
        gaps = exact[q, top[:-1]] - exact[q, top[1:]]
        if (gaps > bound[q, top[:-1]] + bound[q, top[1:]]).all():
            np.testing.assert_array_equal(ids[q], top[:k])

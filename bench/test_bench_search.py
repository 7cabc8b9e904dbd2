"""Flat-search kernels with a fused top-k, per ISA the CPU has: int8 (s8_search_topk over a packed int8
store), fp16 (f16_search_topk), and the per-row int8 quantization of the queries (quantize_rows_s8).

int8 and the quantization are exact by contract (medqk.h) and checked bit for bit against numpy: exact integer
dots (float64 is exact for them), then the documented float32 steps. fp16 sums in an order each ISA chooses:
the scalar ISA's sequential sum is repeated in numpy and checked bit for bit, every other ISA is held to the
rounding bound of a float32 dot product (assert_topk_bounded).
"""

from __future__ import annotations

import numpy as np
import pytest
from _checks import ISAS, assert_topk_bounded, gamma, topk_ids

import medqk
from medqk import _backend
from medqk.index.flat import s8_topk

K, D = 10, 384
NQ = [1, 32]


@pytest.fixture(scope="module")
def s8_case():
    rng = np.random.default_rng(12)
    n = 50_000
    codes = rng.integers(-128, 128, (n, D), dtype=np.int8)
    qcode = rng.integers(-127, 128, (32, D), dtype=np.int8)
    alpha = (rng.random(32) * 1e-3).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    dots = (qcode.astype(np.float64) @ codes.astype(np.float64).T).astype(np.float32)  # exact: |dot| < 2^23
    return codes, qcode, alpha, bias, dots


@pytest.mark.benchmark(group="s8_search_topk N=50000 d=384")
@pytest.mark.parametrize("with_bias", [False, True], ids=["ip", "bias"])
@pytest.mark.parametrize("nq", NQ)
@pytest.mark.parametrize("isa", ISAS)
def test_s8_search_topk(benchmark, s8_case, isa, nq, with_bias):
    codes, qcode, alpha, bias, dots = s8_case
    qcode, alpha, dots = qcode[:nq], alpha[:nq], dots[:nq]
    bias = bias if with_bias else None
    with medqk.use_backend("native"), medqk.use_isa(isa):
        packed = medqk.pack_s8(codes)
    scores, ids = benchmark(s8_topk, qcode, packed, alpha, bias, K, 1)
    # medqk.h: alpha[i] * float(dot) + bias[j] in float32 without FMA; ties -> lower id
    want = alpha[:, None] * dots + (bias if bias is not None else np.float32(0))
    want_i = topk_ids(want, K)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(scores, np.take_along_axis(want, want_i, axis=1))


@pytest.fixture(scope="module")
def f16_case():
    rng = np.random.default_rng(13)
    n = 20_000
    x = rng.standard_normal((n, D)).astype(np.float16)
    q = rng.standard_normal((32, D)).astype(np.float32)
    xf = x.astype(np.float32)
    norms = np.einsum("ij,ij->i", xf, xf)
    return x, q, -norms


def f16_scalar_reference(q, x, bias):
    """The scalar kernel's floats: a sequential float32 sum over p of q[p] * float(x[p]), then 2 s + bias."""
    xf = x.astype(np.float32)
    s = np.zeros((q.shape[0], x.shape[0]), np.float32)
    for p in range(x.shape[1]):
        s += q[:, p, None] * xf[None, :, p]
    return np.float32(2) * s + bias


@pytest.mark.benchmark(group="f16_search_topk N=20000 d=384")
@pytest.mark.parametrize("nq", NQ)
@pytest.mark.parametrize("isa", ISAS)
def test_f16_search_topk(benchmark, f16_case, isa, nq):
    x, q, bias = f16_case
    q = q[:nq]
    with medqk.use_isa(isa):
        # the l2 form of FlatFloatIndex: alpha 2, bias -|x|^2
        scores, ids = benchmark(_backend._core.f16_search_topk, q, x.view(np.uint16), 2.0, bias, K, 1)
    if isa == "scalar":
        want = f16_scalar_reference(q, x, bias)
        want_i = topk_ids(want, K)
        np.testing.assert_array_equal(ids, want_i)
        np.testing.assert_array_equal(scores, np.take_along_axis(want, want_i, axis=1))
        return
    # any summation order: the dot is within gamma(d) sum |q x| of the exact one; times 2 is exact; adding
    # the bias rounds once more: |error| <= gamma(d + 1) (2 sum |q x| + |bias|)
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    exact = 2 * (q64 @ x64.T) + bias
    bound = gamma(D + 1) * (2 * (np.abs(q64) @ np.abs(x64).T) + np.abs(bias))
    assert_topk_bounded(ids, scores, exact, bound)


@pytest.mark.benchmark(group="quantize_rows_s8 4096 x 384")
@pytest.mark.parametrize("isa", ISAS)
def test_quantize_rows_s8(benchmark, isa):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((4096, D)).astype(np.float32)
    x[1] = 0  # a zero row: codes 0, scale 1
    x[2] *= np.float32(2.0**-125)  # below 2^-119: a zero row too
    x[3] = np.where(np.arange(D) % 2, 127, 0.5 + np.arange(D) % 7)  # max 127, inv 1: exact halves, to even
    x[4:6] *= np.float32(1e30)  # large values: still finite
    with medqk.use_backend("native"), medqk.use_isa(isa):
        q, scales = benchmark(medqk.quantize_rows_s8, x)
    # medqk.h: amax = max |x|, inv = 127 / amax, scale = amax / 127 (float32); codes round half to even, then
    # clamp to +-127; rows with amax < 2^-119 are zero with scale 1
    amax = np.abs(x).max(axis=1)
    live = amax >= np.float32(2.0**-119)
    inv = np.where(live, np.float32(127) / np.where(live, amax, 1), np.float32(1)).astype(np.float32)
    want = np.clip(np.rint(x * inv[:, None]), -127, 127).astype(np.int8)
    want_scales = np.where(live, amax / np.float32(127), np.float32(1)).astype(np.float32)
    assert not live[[1, 2]].any() and (np.abs(x[3] * inv[3] - np.rint(x[3] * inv[3])) == 0.5).any()
    np.testing.assert_array_equal(q, want)
    np.testing.assert_array_equal(scales, want_scales)

"""W4A8 weight GEMM benchmarks (1 thread unless the name says otherwise), at compare_w4.py's shapes.

Every result is checked whole: the int32 D of every group exactly, against the same sums in float64 BLAS
(exact here: every partial sum of at most 4096 products of magnitude <= 128 * 127 is an integer below 2^53),
and the float output within the float32 rounding bound of its sum (gamma of 4 G + 4 terms, as
tests/kernels/test_w4a8.py derives it) around the exact value.
"""

from __future__ import annotations

import numpy as np
import pytest
from _checks import gamma, variants

import medqk
from medqk import kernels

SHAPES = [(1, 4096, 4096), (8, 4096, 4096), (64, 4096, 4096), (128, 384, 1536), (512, 1536, 384)]
SHAPE_IDS = [f"{m}x{n}x{k}" for m, n, k in SHAPES]
GROUP = 32
VARIANTS = variants("gemm_w4a8")

pytestmark = pytest.mark.skipif(not VARIANTS, reason="the native module is not built")


def operands(m, n, k, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    codes = rng.integers(0, 16, (n, k), dtype=np.uint8)
    levels = rng.integers(-127, 128, (n, 16), dtype=np.int8)
    a[0, :] = -128  # with levels +-127: the largest pair sums, where u8 x s8 multiply-adds saturate
    levels[0, :] = -127
    scales = rng.uniform(0, 1e-3, (n, -(-k // GROUP))).astype(np.float32)
    return a, codes, levels, scales


def exact_d(a, codes, levels):
    """D[m, n, g] as float64, exact (see the module doc): one BLAS product per group."""
    m, k = a.shape
    groups = -(-k // GROUP)
    w = np.take_along_axis(levels, codes.astype(np.intp), axis=1).astype(np.float64)
    pad = groups * GROUP - k
    a64 = np.pad(a.astype(np.float64), ((0, 0), (0, pad))).reshape(m, groups, GROUP).transpose(1, 0, 2)
    w64 = np.pad(w, ((0, 0), (0, pad))).reshape(w.shape[0], groups, GROUP).transpose(1, 2, 0)
    return np.matmul(a64, w64).transpose(1, 2, 0), np.matmul(np.abs(a64), np.abs(w64)).transpose(1, 2, 0)


def check_f32(out, a, codes, levels, scales, row_scale):
    d, mag = exact_d(a, codes, levels)
    exact = row_scale.astype(np.float64)[:, None] * (scales[None].astype(np.float64) * d).sum(-1)
    bound = gamma(4 * scales.shape[1] + 4) * row_scale[:, None] * (scales[None] * mag).sum(-1)
    assert out.dtype == np.float32 and out.shape == exact.shape
    assert (np.abs(out - exact) <= bound).all()


@pytest.mark.benchmark(group="gemm_w4a8_f32 (group 32), 1 thread")
@pytest.mark.parametrize("m,n,k", SHAPES, ids=SHAPE_IDS)
def test_gemm_w4a8_f32(benchmark, m, n, k):
    a, codes, levels, scales = operands(m, n, k)
    row_scale = np.full(m, 0.01, np.float32)
    with medqk.use_backend("native"):
        packed = kernels.pack_w4(codes, levels, GROUP)
        out = benchmark(kernels.gemm_w4a8_f32, a, row_scale, packed, scales, threads=1)
    benchmark.extra_info["GOP/s"] = 2 * m * n * k / benchmark.stats.stats.median / 1e9 if benchmark.stats else None
    check_f32(out, a, codes, levels, scales, row_scale)


@pytest.mark.benchmark(group="gemm_w4a8_s32 per variant (group 32), 1 thread")
@pytest.mark.parametrize("variant", VARIANTS)
def test_gemm_w4a8_s32_variant(benchmark, variant):
    a, codes, levels, _ = operands(64, 384, 1536)
    with medqk.use_backend("native"), medqk.use_kernel("gemm_w4a8", variant):
        packed = kernels.pack_w4(codes, levels, GROUP)
        d = benchmark(kernels.gemm_w4a8_s32, a, packed, threads=1)
    np.testing.assert_array_equal(d, exact_d(a, codes, levels)[0].astype(np.int64))


@pytest.mark.benchmark(group="gemm_w4a8_f32 threads")
@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_w4a8_threads(benchmark, threads):
    a, codes, levels, scales = operands(512, 1536, 384)
    row_scale = np.full(512, 0.01, np.float32)
    with medqk.use_backend("native"):
        packed = kernels.pack_w4(codes, levels, GROUP)
        out = benchmark(kernels.gemm_w4a8_f32, a, row_scale, packed, scales, threads=threads)
    check_f32(out, a, codes, levels, scales, row_scale)


@pytest.mark.benchmark(group="pack_w4 4096 x 4096")
def test_pack_w4(benchmark):
    a, codes, levels, _ = operands(8, 4096, 4096)
    with medqk.use_backend("native"):
        packed = benchmark(kernels.pack_w4, codes, levels, GROUP)
        d = kernels.gemm_w4a8_s32(a, packed, threads=1)  # the layout, read back by its own kernel
    np.testing.assert_array_equal(d, exact_d(a, codes, levels)[0].astype(np.int64))

"""INT8 GEMM and QuantizedLinear benchmarks (1 thread unless the name says otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

import medqk

SHAPES = [(1, 4096, 4096), (8, 4096, 4096), (64, 4096, 4096), (256, 1024, 1024), (1024, 1024, 1024),
          (128, 384, 1536), (512, 1536, 384)]


def operands(m, n, k, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (n, k), dtype=np.int8)
    return a, b


def check(c, a, b, rows=4):
    # exact on a few rows against int64 (the whole reference would dominate the smoke run)
    want = a[:rows].astype(np.int64) @ b.astype(np.int64).T
    np.testing.assert_array_equal(c[:rows], want)


@pytest.mark.benchmark(group="gemm_s8s8_s32 packed, 1 thread")
@pytest.mark.parametrize("m,n,k", SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in SHAPES])
def test_gemm_packed(benchmark, m, n, k):
    a, b = operands(m, n, k)
    packed = medqk.pack_s8(b)
    c = benchmark(medqk.gemm_s8s8_s32, a, packed, threads=1)
    benchmark.extra_info["GOP/s"] = 2 * m * n * k / benchmark.stats.stats.median / 1e9 if benchmark.stats else None
    check(c, a, b)


@pytest.mark.benchmark(group="gemm_s8s8_s32 threads")
@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_threads(benchmark, threads):
    a, b = operands(1024, 1024, 1024)
    packed = medqk.pack_s8(b)
    c = benchmark(medqk.gemm_s8s8_s32, a, packed, threads=threads)
    check(c, a, b)


@pytest.mark.benchmark(group="gemm_s8s8_s32 backends")
@pytest.mark.parametrize("backend", ["native", "numba"])
def test_gemm_backend(benchmark, backend):
    pytest.importorskip("numba") if backend == "numba" else None
    a, b = operands(256, 1024, 1024)
    with medqk.use_backend(backend):
        packed = medqk.pack_s8(b)
        medqk.gemm_s8s8_s32(a, packed, threads=1)  # compile / warm up
        c = benchmark(medqk.gemm_s8s8_s32, a, packed, threads=1)
    check(c, a, b)


@pytest.mark.benchmark(group="QuantizedLinear, 1 thread")
@pytest.mark.parametrize("m,n,k", [(1, 4096, 4096), (64, 4096, 4096), (128, 384, 1536), (512, 1536, 384)],
                         ids=["1x4096x4096", "64x4096x4096", "128x384x1536", "512x1536x384"])
def test_quantized_linear(benchmark, m, n, k):
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    layer = medqk.QuantizedLinear.from_float(w, np.zeros(n, np.float32))
    y = benchmark(layer, x, threads=1)
    want = x[:4].astype(np.float64) @ w.T.astype(np.float64)
    assert np.sqrt(np.mean((y[:4] - want) ** 2)) < 0.02 * np.sqrt(np.mean(want**2))

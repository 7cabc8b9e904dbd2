"""INT8 GEMM and QuantizedLinear benchmarks (1 thread unless the name says otherwise), per ISA the CPU has.

Every result is checked whole and exactly: the int32 product against the same product in float64 BLAS,
which is exact here (each |a b| <= 2^14, so every partial sum of K <= 4096 terms is an integer below 2^26,
far inside float64's 2^53), and QuantizedLinear against its documented float32 steps on that product.
"""

from __future__ import annotations

import numpy as np
import pytest
from _checks import ISAS

import medqk

SHAPES = [(1, 4096, 4096), (8, 4096, 4096), (64, 4096, 4096), (256, 1024, 1024), (1024, 1024, 1024),
          (128, 384, 1536), (512, 1536, 384)]
SHAPE_IDS = [f"{m}x{n}x{k}" for m, n, k in SHAPES]


def operands(m, n, k, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (n, k), dtype=np.int8)
    a[0, :] = -128  # the corner of the int8 range: (-128) * (-128) = 2^14 in every product of row 0 x row 0
    b[0, :] = -128
    return a, b


def exact_product(a, b):
    """a @ b.T exactly (see the module doc: float64 is exact for these sums), as int64."""
    return (a.astype(np.float64) @ b.astype(np.float64).T).astype(np.int64)


def check(c, a, b):
    assert c.dtype == np.int32 and c.shape == (a.shape[0], b.shape[0])
    np.testing.assert_array_equal(c, exact_product(a, b))


@pytest.mark.benchmark(group="gemm_s8s8_s32 packed, 1 thread")
@pytest.mark.parametrize("m,n,k", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("isa", ISAS)
def test_gemm_packed(benchmark, isa, m, n, k):
    a, b = operands(m, n, k)
    with medqk.use_backend("native"), medqk.use_isa(isa):
        packed = medqk.pack_s8(b)
    assert packed.isa == isa
    c = benchmark(medqk.gemm_s8s8_s32, a, packed, threads=1)
    benchmark.extra_info["GOP/s"] = 2 * m * n * k / benchmark.stats.stats.median / 1e9 if benchmark.stats else None
    check(c, a, b)


@pytest.mark.benchmark(group="pack_s8 4096 x 4096")
@pytest.mark.parametrize("isa", ISAS)
def test_pack_s8(benchmark, isa):
    # packing is on the search path too: the 4-bit codecs' batched search packs every decoded block
    a, b = operands(8, 4096, 4096)
    with medqk.use_backend("native"), medqk.use_isa(isa):
        packed = benchmark(medqk.pack_s8, b)
    assert packed.isa == isa and packed.shape == b.shape
    check(medqk.gemm_s8s8_s32(a, packed, threads=1), a, b)  # the layout, read back by its own kernel


@pytest.mark.benchmark(group="gemm_s8s8_s32 unpacked b (packs per call), 1 thread")
@pytest.mark.parametrize("isa", ISAS)
def test_gemm_unpacked(benchmark, isa):
    a, b = operands(64, 1024, 1024)
    with medqk.use_backend("native"), medqk.use_isa(isa):
        c = benchmark(medqk.gemm_s8s8_s32, a, b, threads=1)
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
    a, b = operands(256, 1024, 1024)
    with medqk.use_backend(backend):
        packed = medqk.pack_s8(b)
        medqk.gemm_s8s8_s32(a, packed, threads=1)  # compile / warm up
        c = benchmark(medqk.gemm_s8s8_s32, a, packed, threads=1)
    check(c, a, b)


LINEAR_SHAPES = [(1, 4096, 4096), (64, 4096, 4096), (128, 384, 1536), (512, 1536, 384)]


@pytest.mark.benchmark(group="QuantizedLinear, 1 thread")
@pytest.mark.parametrize("m,n,k", LINEAR_SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in LINEAR_SHAPES])
@pytest.mark.parametrize("isa", ISAS)
def test_quantized_linear(benchmark, isa, m, n, k):
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    with medqk.use_backend("native"), medqk.use_isa(isa):
        layer = medqk.QuantizedLinear.from_float(w, bias)  # the native linear_s8 runs on the packing ISA
    y = benchmark(layer, x, threads=1)
    # linear_s8's steps (medqk.h: quantize_rows_s8, gemm_s8s8_f32_packed), the GEMM's sums exact:
    # out = float32(acc) * (row_scale * col_scale) + bias, each operation rounded once in float32
    q, row_scales = medqk.quantize_rows_s8(x)
    acc = exact_product(q, layer.weight_q).astype(np.float32)
    want = acc * (row_scales[:, None] * layer.weight_scales[None, :]) + bias
    np.testing.assert_array_equal(y, want)

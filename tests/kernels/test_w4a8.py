"""gemm_w4a8 on every kernel variant this CPU runs and on the Numba twin, against a numpy int64 reference:
the int32 D of every group bit for bit, over M in 1..17, odd N, odd K with partial groups, group sizes 32 to
128, and the edges where saturation bites (a = -128 with levels = +-127, zeros); the float output within the
float32 rounding bound of its sum, and exactly where every sum is exact (small integers, power-of-two scales).
"""

from __future__ import annotations

import numpy as np
import pytest

import medqk
from medqk import kernels
from tests.float_bounds import gamma
from tests.variants import pinned_variant_fixture, runnable_variants

variant = pinned_variant_fixture("gemm_w4a8")  # each variant this CPU runs, and the Numba twin


def weights_of(codes, levels):
    return np.take_along_axis(levels, codes.astype(np.intp), axis=1).astype(np.int64)


def reference_d(a, codes, levels, group_size):
    w, a64 = weights_of(codes, levels), a.astype(np.int64)
    k = a.shape[1]
    return np.stack([a64[:, g:g + group_size] @ w[:, g:g + group_size].T for g in range(0, k, group_size)], axis=-1)


def case(rng, m, n, k, fill="random"):
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    codes = rng.integers(0, 16, (n, k), dtype=np.uint8)
    levels = rng.integers(-127, 128, (n, 16), dtype=np.int8)
    if fill == "extremes":  # the largest pair sums: (-128) * (-127) twice is past int16 for u8 x s8 madd
        a = np.where(rng.integers(0, 2, (m, k)) == 1, -128, 127).astype(np.int8)
        levels = np.where(rng.integers(0, 2, (n, 16)) == 1, -127, 127).astype(np.int8)
        a[0] = -128
        levels[0] = -127
    elif fill == "zeros":
        a[:, ::2] = 0
        levels[:, :8] = 0
    return a, codes, levels


SHAPES = [(m, n, k, g) for m, n, k, g in
          [(1, 1, 1, 32), (1, 7, 33, 32), (2, 5, 64, 64), (3, 9, 100, 32), (4, 3, 128, 128), (5, 17, 257, 64),
           (6, 33, 31, 32), (7, 1, 95, 96), (8, 11, 129, 128), (9, 6, 191, 96), (12, 13, 300, 128),
           (16, 15, 65, 32), (17, 19, 160, 64), (1, 19, 293, 32)]]


@pytest.mark.parametrize("fill", ["random", "extremes", "zeros"])
def test_d_exact(variant, fill):
    rng = np.random.default_rng(["random", "extremes", "zeros"].index(fill))
    for m, n, k, g in SHAPES:
        a, codes, levels = case(rng, m, n, k, fill)
        packed = kernels.pack_w4(codes, levels, g)
        got = kernels.gemm_w4a8_s32(a, packed, threads=1)
        assert got.dtype == np.int32 and got.shape == (m, n, -(-k // g))
        np.testing.assert_array_equal(got, reference_d(a, codes, levels, g), err_msg=f"{variant} {m}x{n}x{k} g{g}")


def test_every_m_up_to_17(variant):
    """Each row count reaches another mix of row tiles and the one-row (GEMV) tile."""
    rng = np.random.default_rng(9)
    codes = rng.integers(0, 16, (21, 97), dtype=np.uint8)
    levels = rng.integers(-127, 128, (21, 16), dtype=np.int8)
    packed = kernels.pack_w4(codes, levels, 32)
    for m in range(1, 18):
        a = rng.integers(-128, 128, (m, 97), dtype=np.int8)
        np.testing.assert_array_equal(kernels.gemm_w4a8_s32(a, packed), reference_d(a, codes, levels, 32),
                                      err_msg=f"{variant} m={m}")


def affine_levels(rng, n):
    """Levels c + offset per column, as uniform int4 has them (symmetric -8, asymmetric 0), one offset per 16
    columns but -8 for the first 16 and 0 for the next 16, so kernels with a table-free form for such panels
    take it; the last panel mixes offsets (and, when n is not a multiple of 16, padding), so it keeps its tables."""
    offsets = np.repeat(rng.choice([-8, 0, -127, 112, -3], -(-n // 16)), 16)[:n]
    offsets[:16] = -8
    offsets[16:32] = 0
    if n % 16 == 0 and n > 32:
        offsets[-1] = offsets[-2] + 1  # one column off the panel's offset: a table panel
    return (np.arange(16)[None, :] + offsets[:, None]).astype(np.int8)


@pytest.mark.parametrize("with_zeros", [False, True])
def test_affine_levels_every_m(variant, with_zeros):
    """Uniform int4 levels (c + offset), where a kernel may skip the table: D exact and the float output within
    its rounding bound, for M = 1 to 9 (GEMV and the row tiles), panels of both kinds, a partial group, and the
    saturation edges (a = -128 everywhere, codes 15)."""
    rng = np.random.default_rng(13 + with_zeros)
    for n, k, g in [(48, 97, 32), (37, 256, 128), (64, 160, 64), (16, 33, 32)]:
        codes = rng.integers(0, 16, (n, k), dtype=np.uint8)
        codes[0] = 15
        levels = affine_levels(rng, n)
        packed = kernels.pack_w4(codes, levels, g)
        groups = -(-k // g)
        scales = rng.uniform(0.0, 0.02, (n, groups)).astype(np.float32)
        zeros = rng.integers(0, 16, (n, groups)).astype(np.int8) if with_zeros else None
        bias = rng.standard_normal(n).astype(np.float32)
        for m in range(1, 10):
            a = rng.integers(-128, 128, (m, k), dtype=np.int8)
            a[0] = -128
            msg = f"{variant} m={m} n={n} k={k} g{g}"
            np.testing.assert_array_equal(kernels.gemm_w4a8_s32(a, packed), reference_d(a, codes, levels, g),
                                          err_msg=msg)
            row_scale = rng.uniform(0.001, 0.05, m).astype(np.float32)
            got = kernels.gemm_w4a8_f32(a, row_scale, packed, scales, zeros, bias)
            exact, bound = float_reference(a, codes, levels, g, row_scale, scales, zeros, bias)
            assert (np.abs(got.astype(np.float64) - exact) <= bound).all(), msg


def float_reference(a, codes, levels, g, row_scale, scales, zeros, bias):
    """The exact output (float64) and the bound on any float32 evaluation of it.

    Each float partial of D, times its scale, enters one float32 sum: the SIMD kernels keep 4 partial sums per
    group (so at most 4 G terms), the scalar one 1 per group; the conversions, the final row_scale product and
    the bias add each round once more. The error is <= gamma(4 G + 4) * (|row_scale| * sum of the terms'
    magnitudes) + the bias add's rounding (Higham, lemma 3.3).
    """
    d = reference_d(a, codes, levels, g).astype(np.float64)
    a64, w = a.astype(np.int64), weights_of(codes, levels)
    k, groups = a.shape[1], d.shape[2]
    mag = np.stack([np.abs(a64[:, i:i + g]) @ np.abs(w[:, i:i + g]).T for i in range(0, k, g)], axis=-1)
    if zeros is not None:
        asum = np.stack([a64[:, i:i + g].sum(1) for i in range(0, k, g)], axis=-1).astype(np.float64)
        d = d - zeros[None].astype(np.float64) * asum[:, None, :]
        mag = mag + zeros[None].astype(np.float64) * np.abs(asum)[:, None, :]
    s64 = scales.astype(np.float64)[None]
    exact = row_scale.astype(np.float64)[:, None] * (s64 * d).sum(-1)
    bound = gamma(4 * groups + 4) * np.abs(row_scale.astype(np.float64))[:, None] * (s64 * mag).sum(-1)
    if bias is not None:
        exact = exact + bias
        bound = bound + 2.0**-24 * (np.abs(exact) + np.abs(bias))
    return exact, bound


@pytest.mark.parametrize("with_zeros,with_bias", [(False, False), (True, False), (False, True), (True, True)])
def test_f32_within_rounding(variant, with_zeros, with_bias):
    rng = np.random.default_rng(10 + 2 * with_zeros + with_bias)
    for m, n, k, g in SHAPES:
        a, codes, levels = case(rng, m, n, k)
        groups = -(-k // g)
        row_scale = rng.uniform(0.001, 0.05, m).astype(np.float32)
        scales = rng.uniform(0.0, 0.02, (n, groups)).astype(np.float32)
        scales[0, 0] = 0.0
        zeros = rng.integers(0, 16, (n, groups)).astype(np.int8) if with_zeros else None
        bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
        packed = kernels.pack_w4(codes, levels, g)
        got = kernels.gemm_w4a8_f32(a, row_scale, packed, scales, zeros, bias, threads=1)
        assert got.dtype == np.float32 and got.shape == (m, n)
        exact, bound = float_reference(a, codes, levels, g, row_scale, scales, zeros, bias)
        err = np.abs(got.astype(np.float64) - exact)
        assert (err <= bound).all(), f"{variant} {m}x{n}x{k} g{g}: error {err.max()} > bound {bound.max()}"


def test_f32_exact_on_exact_sums(variant):
    """Small integers and power-of-two scales: every partial sum is exact, so every order gives these bits."""
    rng = np.random.default_rng(11)
    for m, n, k, g in SHAPES:
        a = rng.integers(-3, 4, (m, k)).astype(np.int8)
        codes = rng.integers(0, 16, (n, k), dtype=np.uint8)
        levels = rng.integers(-3, 4, (n, 16)).astype(np.int8)
        groups = -(-k // g)
        row_scale = np.ldexp(1.0, rng.integers(-1, 2, m)).astype(np.float32)
        scales = np.ldexp(1.0, rng.integers(-1, 2, (n, groups))).astype(np.float32)
        zeros = rng.integers(0, 16, (n, groups)).astype(np.int8)
        bias = rng.integers(-3, 4, n).astype(np.float32)
        got = kernels.gemm_w4a8_f32(a, row_scale, kernels.pack_w4(codes, levels, g), scales, zeros, bias)
        exact, _ = float_reference(a, codes, levels, g, row_scale, scales, zeros, bias)
        np.testing.assert_array_equal(got, exact.astype(np.float32), err_msg=f"{variant} {m}x{n}x{k} g{g}")


def test_threads_and_views(variant):
    """Two threads split the columns (or the rows) and give the same bits; a strided view of a is read as is."""
    rng = np.random.default_rng(12)
    a_wide, codes, levels = case(rng, 40, 301, 2 * 1030)
    a = a_wide[::2, 5:1035]  # row-strided, offset columns
    codes = codes[:, :1030]
    packed = kernels.pack_w4(codes, levels, 128)
    scales = rng.uniform(0, 0.01, (301, packed.groups)).astype(np.float32)
    row_scale = np.full(20, 0.01, np.float32)
    want = reference_d(np.ascontiguousarray(a), codes, levels, 128)
    np.testing.assert_array_equal(kernels.gemm_w4a8_s32(a, packed, threads=2), want)
    np.testing.assert_array_equal(kernels.gemm_w4a8_f32(a, row_scale, packed, scales, threads=2),
                                  kernels.gemm_w4a8_f32(a, row_scale, packed, scales, threads=1))


def test_bad_input_names_the_argument():
    rng = np.random.default_rng(13)
    a, codes, levels = case(rng, 2, 3, 64)
    packed = kernels.pack_w4(codes, levels, 32)
    rs, scales = np.ones(2, np.float32), np.ones((3, 2), np.float32)
    bad_pack = [
        ((codes.astype(np.int8), levels, 32), TypeError, "codes must have dtype uint8"),
        ((codes, levels.astype(np.int16), 32), TypeError, "levels must have dtype int8"),
        ((codes, levels[:2], 32), ValueError, r"levels must have shape \(N, 16\)"),
        ((codes | 16, levels, 32), ValueError, "codes must be < 16"),
        ((codes, np.full((3, 16), -128, np.int8), 32), ValueError, r"levels must be in \[-127, 127\]"),
        ((codes, levels, 48), ValueError, "group_size must be a positive multiple of 32"),
        ((codes, levels, 0), ValueError, "group_size must be a positive multiple of 32"),
        ((codes, levels, 32.0), TypeError, "group_size must be an int"),
        ((codes[:, :0], levels, 32), ValueError, "codes must not be empty"),
    ]
    for args, exc, msg in bad_pack:
        with pytest.raises(exc, match=msg):
            kernels.pack_w4(*args)
    with pytest.raises(ValueError, match="a has K=63 columns but the weights have K=64"):
        kernels.gemm_w4a8_s32(a[:, :63], packed)
    with pytest.raises(TypeError, match="a must have dtype int8"):
        kernels.gemm_w4a8_s32(a.astype(np.int16), packed)
    with pytest.raises(TypeError, match="packed must be a PackedW4"):
        kernels.gemm_w4a8_s32(a, codes)
    bad_f32 = [
        ((a, rs[:1], packed, scales), ValueError, r"row_scale must have shape \(2,\)"),
        ((a, np.array([1.0, np.nan], np.float32), packed, scales), ValueError, "row_scale contains NaN or Inf"),
        ((a, rs, packed, scales[:, :1]), ValueError, r"scales must have shape \(N, G\) = \(3, 2\)"),
        ((a, rs, packed, -scales), ValueError, "scales must be finite and >= 0"),
        ((a, rs, packed, scales * np.inf), ValueError, "scales must be finite and >= 0"),
        ((a, rs, packed, scales, np.full((3, 2), 16, np.int8)), ValueError, r"zeros must be in \[0, 15\]"),
        ((a, rs, packed, scales, np.zeros((3, 2), np.uint8)), TypeError, "zeros must be None or an int8"),
        ((a, rs, packed, scales, None, np.ones(4, np.float32)), ValueError, r"bias must have shape \(3,\)"),
        ((a, rs, packed, scales, None, np.array([1, 2, np.inf], np.float32)), ValueError, "bias contains NaN"),
    ]
    for args, exc, msg in bad_f32:
        with pytest.raises(exc, match=msg):
            kernels.gemm_w4a8_f32(*args)


@pytest.mark.skipif(len(runnable_variants("gemm_w4a8")) < 2, reason="one gemm_w4a8 variant runs on this CPU")
def test_weights_packed_for_another_variant_are_refused():
    rng = np.random.default_rng(14)
    a, codes, levels = case(rng, 2, 3, 64)
    with medqk.use_backend("native"), medqk.use_kernel("gemm_w4a8", "scalar"):
        packed = kernels.pack_w4(codes, levels, 32)
    best = runnable_variants("gemm_w4a8")[0]
    with medqk.use_backend("native"), medqk.use_kernel("gemm_w4a8", best), \
            pytest.raises(ValueError, match="packed for gemm_w4a8 variant 'scalar'"):
        kernels.gemm_w4a8_s32(a, packed)

"""gemm_s8s8_s32 on every backend and ISA against an int64 numpy reference: results must be identical."""

from __future__ import annotations

import numpy as np
import pytest

import medqk

SIZES = [1, 2, 3, 7, 15, 16, 17, 31, 33, 63, 65, 127, 129]


def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) @ b.astype(np.int64).T


def check(a, b, **kwargs):
    want = reference(a, b)
    got = medqk.gemm_s8s8_s32(a, b, **kwargs)
    assert got.dtype == np.int32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    got_packed = medqk.gemm_s8s8_s32(a, medqk.pack_s8(b), **kwargs)
    np.testing.assert_array_equal(got_packed, want)


def rand(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


@pytest.mark.parametrize("k", [1, 7, 33, 129])
def test_sweep_m_n(backend, k):
    rng = np.random.default_rng(k)
    for m in SIZES:
        for n in SIZES:
            check(rand(rng, (m, k)), rand(rng, (n, k)))


@pytest.mark.parametrize("m,n", [(1, 1), (3, 17), (7, 33), (17, 16)])
def test_sweep_k(backend, m, n):
    rng = np.random.default_rng(m * 1000 + n)
    for k in SIZES + [255, 256, 257, 511, 513, 1023, 1025]:
        check(rand(rng, (m, k)), rand(rng, (n, k)))


@pytest.mark.parametrize(
    "a_val,b_val",
    [(-128, -128), (127, -128), (-128, 127), (127, 127), (0, -128), (0, 0)],
)
@pytest.mark.parametrize("k", [1, 2, 3, 64, 1023, 4099])
def test_edge_values(backend, a_val, b_val, k):
    a = np.full((9, k), a_val, dtype=np.int8)
    b = np.full((19, k), b_val, dtype=np.int8)
    check(a, b)


def test_mixed_extremes(backend):
    # Alternating +127 / -128 defeats any kernel that sums two int8 products in int16 (32768 wraps)
    # or uses saturating u8 x s8 pairs (vpmaddubsw).
    rng = np.random.default_rng(7)
    for m, n, k in [(5, 17, 64), (33, 65, 515), (64, 48, 2048)]:
        a = np.where(rng.random((m, k)) < 0.5, 127, -128).astype(np.int8)
        b = np.where(rng.random((n, k)) < 0.5, 127, -128).astype(np.int8)
        check(a, b)


def test_largest_exact_k(backend):
    k = medqk.MAX_GEMM_K  # 131071 * 2**14 = 2**31 - 2**14 fits in int32
    a = np.full((2, k), -128, dtype=np.int8)
    b = np.full((3, k), -128, dtype=np.int8)
    got = medqk.gemm_s8s8_s32(a, b)
    assert (got == k * 16384).all()
    b[1] = 127
    check(a, b)


def test_large_random_and_threads(backend):
    rng = np.random.default_rng(11)
    a, b = rand(rng, (150, 1100)), rand(rng, (70, 1100))
    want = reference(a, b)
    packed = medqk.pack_s8(b)
    for threads in (None, 1, 2):
        np.testing.assert_array_equal(medqk.gemm_s8s8_s32(a, packed, threads=threads), want)
    # few columns: the native front end splits rows instead
    a2, b2 = rand(rng, (300, 257)), rand(rng, (5, 257))
    np.testing.assert_array_equal(medqk.gemm_s8s8_s32(a2, b2, threads=2), reference(a2, b2))


def test_gemv_shape(backend):
    rng = np.random.default_rng(3)
    a, b = rand(rng, (1, 4096)), rand(rng, (515, 4096))
    check(a, b, threads=2)


def test_inputs_not_modified_and_not_copied(backend):
    rng = np.random.default_rng(5)
    a, b = rand(rng, (4, 40)), rand(rng, (6, 40))
    a0, b0 = a.copy(), b.copy()
    a.flags.writeable = False  # read-only inputs are fine: nothing is written to them
    b.flags.writeable = False
    check(a, b)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


def test_packed_keeps_its_layout(backend):
    rng = np.random.default_rng(9)
    a, b = rand(rng, (5, 77)), rand(rng, (23, 77))
    packed = medqk.pack_s8(b)
    assert packed.shape == (23, 77) and packed.nbytes >= 23 * 77
    assert "PackedS8(n=23, k=77" in repr(packed)
    # a PackedS8 keeps running with the kernel it was packed for, whatever is selected later
    with medqk.use_backend("native" if medqk.info()["native_available"] else "numba"):
        for isa in medqk.available_isas():
            with medqk.use_isa(isa):
                np.testing.assert_array_equal(medqk.gemm_s8s8_s32(a, packed), reference(a, b))


BAD_CALLS = [
    (lambda a, b: (a.astype(np.float32), b), TypeError, "a must have dtype int8"),
    (lambda a, b: (a, b.astype(np.int16)), TypeError, "b must have dtype int8"),
    (lambda a, b: (a.astype(np.uint8), b), TypeError, "a must have dtype int8"),
    (lambda a, b: (a.tolist(), b), TypeError, "a must be a numpy.ndarray"),
    (lambda a, b: (a[0], b), ValueError, "a must be 2-D"),
    (lambda a, b: (a, b[None]), ValueError, "b must be 2-D"),
    (lambda a, b: (a[:, :5], b), ValueError, "C-contiguous"),
    (lambda a, b: (a, np.zeros((4, 7), dtype=np.int8)), ValueError, "K=8 columns but b has K=7"),
    (lambda a, b: (a[:0], b), ValueError, "a must not be empty"),
    (lambda a, b: (a, b[:0]), ValueError, "b must not be empty"),
]


@pytest.mark.parametrize("make,exc,match", BAD_CALLS)
def test_bad_input(backend, make, exc, match):
    a = np.zeros((3, 8), dtype=np.int8)
    b = np.zeros((4, 8), dtype=np.int8)
    bad_a, bad_b = make(a, b)
    with pytest.raises(exc, match=match):
        medqk.gemm_s8s8_s32(bad_a, bad_b)


def test_bad_packed_and_threads(backend):
    a = np.zeros((3, 8), dtype=np.int8)
    packed = medqk.pack_s8(np.zeros((4, 9), dtype=np.int8))
    with pytest.raises(ValueError, match="packed with K=9"):
        medqk.gemm_s8s8_s32(a, packed)
    for threads in (-1, 1.5, "2", True):
        with pytest.raises(ValueError, match="threads"):
            medqk.gemm_s8s8_s32(a, np.zeros((4, 8), dtype=np.int8), threads=threads)
    with pytest.raises(ValueError, match="131071"):
        medqk.pack_s8(np.zeros((1, medqk.MAX_GEMM_K + 1), dtype=np.int8))
    with pytest.raises(TypeError, match="pack_s8"):
        medqk.PackedS8()


_NUMBA_PATH_CHECK = """
import numpy as np
from medqk.kernels import _numba as nb
rng = np.random.default_rng(5)
for m, n, k in [(1, 1, 1), (7, 33, 31), (17, 16, 33), (65, 129, 63), (6, 5, 4100), (2, 3, 131071)]:
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (n, k), dtype=np.int8)
    if k == 131071:
        a[:] = -128
        b[:] = -128
    out = np.empty((m, n), np.int32)
    nb.gemm_s8s8_s32(a, b, out)
    assert (out == a.astype(np.int64) @ b.astype(np.int64).T).all(), (m, n, k)
print(nb.VNNI)
"""


@pytest.mark.parametrize("vnni", ["0", "1"])
def test_numba_product_paths(vnni):
    # The Numba GEMM compiles one of two products, chosen when the module loads: vpdpbusd (uint8 a + 128,
    # corrected by 128 * sum(b)) where the CPU has VNNI, int16 pairs elsewhere. Both run here, each in a
    # fresh interpreter, at the widths and sums where they could go wrong (K past one block, the largest K,
    # int32 wrap-around of the uncorrected VNNI sums).
    pytest.importorskip("numba")
    import os
    import subprocess
    import sys

    env = dict(os.environ, MEDQK_NUMBA_VNNI=vnni)
    res = subprocess.run([sys.executable, "-c", _NUMBA_PATH_CHECK], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    if vnni == "0":
        assert res.stdout.strip() == "False"

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
    (lambda a, b: (a.view(np.uint8), b), TypeError, "a must have dtype int8, got uint8"),
    (lambda a, b: (a, b.astype(np.float64)), TypeError, "b must have dtype int8, got float64"),
    (lambda a, b: (a, b.astype(bool)), TypeError, "b must have dtype int8, got bool"),
    (lambda a, b: (a[None], b), ValueError, "a must be 2-D"),
    (lambda a, b: (a[:, :5], b), ValueError, "K=5 columns but b has K=8"),  # a column range is taken, K checked
    (lambda a, b: (a.T, b), ValueError, "K=3 columns but b has K=8"),
    (lambda a, b: (a, b[:, :0]), ValueError, "b must not be empty"),
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


# ---------------------------------------------------------------------------------------------------------
# Array views (issue 20, 17b): every layout numpy can make is taken. Views with contiguous rows go to the
# native kernel in place with their row stride; the others are copied once to C order.
# ---------------------------------------------------------------------------------------------------------
ROWS_IN_PLACE = {"c", "row_step", "col_range", "row_step_col_range", "u8_buffer", "i32_buffer", "broadcast",
                 "as_strided_rows"}
COPIED = {"fortran", "neg_rows", "neg_cols", "col_step", "transposed", "neg_both"}


def make_view(rng, kind: str, m: int, k: int) -> np.ndarray:
    """An int8 (m, k) view of the given kind, filled with random values over the whole int8 range."""
    if kind == "c":
        return rand(rng, (m, k))
    if kind == "row_step":
        return rand(rng, (3 * m, k))[1::3]
    if kind == "col_range":
        return rand(rng, (m, k + 9))[:, 5 : 5 + k]
    if kind == "row_step_col_range":
        return rand(rng, (2 * m + 1, k + 3))[1::2, 3:]
    if kind == "u8_buffer":  # int8 view of a uint8 buffer, rows strided within it
        u8 = rng.integers(0, 256, size=(m, k + 7), dtype=np.uint8)
        return u8.view(np.int8)[:, 7:]
    if kind == "i32_buffer":  # int8 view of an int32 buffer: the bytes of 4 * cols int32 values per row
        cols = (k + 3) // 4 + 1
        i32 = rng.integers(-(2**31), 2**31, size=(m, cols), dtype=np.int64).astype(np.int32)
        return i32.view(np.int8)[:, 1 : 1 + k]
    if kind == "broadcast":  # one row repeated: row stride 0
        return np.broadcast_to(rand(rng, (1, k)), (m, k))
    if kind == "as_strided_rows":  # rows k + 13 bytes apart in a flat buffer; one row: a stride never used
        ld = k + 13 if m > 1 else 12345
        flat = rand(rng, ((m - 1) * (k + 13) + k,))
        return np.lib.stride_tricks.as_strided(flat, shape=(m, k), strides=(ld, 1), writeable=False)
    if kind == "fortran":
        return np.asfortranarray(rand(rng, (m, k)))
    if kind == "neg_rows":
        return rand(rng, (m, k))[::-1]
    if kind == "neg_cols":
        return rand(rng, (m, k))[:, ::-1]
    if kind == "neg_both":
        return rand(rng, (2 * m, k))[::-2, ::-1]
    if kind == "col_step":
        return rand(rng, (m, 2 * k))[:, ::2]
    if kind == "transposed":
        return rand(rng, (k, m)).T
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", sorted(ROWS_IN_PLACE | COPIED))
def test_view_kinds(backend, kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    for m, n, k in [(1, 1, 1), (5, 3, 17), (33, 17, 70), (4, 40, 129)]:
        a, b = make_view(rng, kind, m, k), make_view(rng, kind, n, k)
        assert a.dtype == np.int8 and a.shape == (m, k)
        if kind in COPIED and m > 1 and k > 1:
            assert not a.flags.c_contiguous  # the case really is a non-C layout
        check(a, b)


def test_fuzz_views(backend):
    # Random pairs of view kinds and sizes, including the sizes around the kernels' tile widths.
    rng = np.random.default_rng(2020)
    kinds = sorted(ROWS_IN_PLACE | COPIED)
    sizes = [1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 65]
    for _ in range(60):
        m, n, k = (int(rng.choice(sizes)) for _ in range(3))
        a = make_view(rng, str(rng.choice(kinds)), m, k)
        b = make_view(rng, str(rng.choice(kinds)), n, k)
        check(a, b)


@pytest.mark.parametrize("kind", sorted(ROWS_IN_PLACE | COPIED))
def test_views_copied_only_when_rows_are_not_contiguous(kind):
    from medqk.kernels import _row_major

    rng = np.random.default_rng(1)
    x = make_view(rng, kind, 6, 10)
    got = _row_major(x, native=True)
    if kind in ROWS_IN_PLACE:
        assert got is x  # handed to the native kernel as it is: no copy
    else:
        assert got.flags.c_contiguous and not np.shares_memory(got, x)
        np.testing.assert_array_equal(got, x)
    # the Numba kernels get C order, so that they are compiled for one layout
    assert _row_major(x, native=False).flags.c_contiguous


@pytest.mark.skipif(not medqk.info()["native_available"], reason="the native module is not built")
@pytest.mark.parametrize("isa", medqk.available_isas())
def test_native_binding_reads_row_strided_views_in_place(isa):
    # The C API takes row strides (lda, ldb): the binding runs row-strided views where they are. It reads
    # x.data() with x.strides[0]; a binding that ignored the stride would read the rows in between.
    from medqk import _backend

    core = _backend._core
    rng = np.random.default_rng(4)
    base_a, base_b = rand(rng, (40, 50)), rand(rng, (30, 60))
    a, b = base_a[::2, 3:36], base_b[1::3, 20:53]  # row strides 100 and 180 bytes, K = 33
    want = reference(a, b)
    with medqk.use_backend("native"), medqk.use_isa(isa):
        np.testing.assert_array_equal(core.gemm_s8s8_s32(a, b, 0), want)
        np.testing.assert_array_equal(core.gemm_s8s8_s32_packed(a, core.pack_s8(b), 0), want)
        for bad in (np.asfortranarray(a), a[::-1], base_a[:, ::2][:, :33]):
            with pytest.raises(ValueError, match="contiguous, aligned rows"):
                core.gemm_s8s8_s32(bad, b, 0)
        x = rng.standard_normal((20, 40)).astype(np.float32)
        q, scales = core.quantize_rows_s8(x[::3, 5:29])
        q_ref, scales_ref = core.quantize_rows_s8(np.ascontiguousarray(x[::3, 5:29]))
        np.testing.assert_array_equal(q, q_ref)
        np.testing.assert_array_equal(scales, scales_ref)


def test_quantize_rows_views(backend):
    rng = np.random.default_rng(8)
    base = rng.standard_normal((30, 50))
    f32 = base.astype(np.float32)
    for view in (f32[::2, 4:44], base[::2, 4:44], np.asfortranarray(f32)[::2, 4:44], f32[::-2, 43:3:-1],
                 f32[:, ::3], np.asfortranarray(base)):
        want_q, want_s = medqk.quantize_rows_s8(np.ascontiguousarray(view, dtype=np.float32))
        q, s = medqk.quantize_rows_s8(view)
        np.testing.assert_array_equal(q, want_q)
        np.testing.assert_array_equal(s, want_s)

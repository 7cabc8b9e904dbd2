"""Numba twins of the native kernels: same names, same argument order, same integer results.

Used when the native module is missing or ``MEDQK_BACKEND=numba``. Callers (medqk.kernels) have
validated shapes and dtypes already; these functions write into preallocated outputs.
"""

from __future__ import annotations

import contextlib
import os

import numba
import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, prange, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, models, register_model


@contextlib.contextmanager
def threads(count: int):
    """Runs the enclosed kernels on ``count`` threads (0: all of Numba's threads)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS) if count > 0 else numba.config.NUMBA_NUM_THREADS)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


# --- gemm_s8s8_s32 ---------------------------------------------------------------------------------
# The loop vectorizer does not find the good int8 GEMM instruction, vpmaddwd with both int16 halves of
# every int32 lane in use (16 multiply-adds): from a plain `s += int32(x[p]) * int32(y[p])` loop it
# gets 8 per instruction at best, and with several accumulators it falls back to vpmulld. So the
# micro-kernels spell the vectors out: _I32x8 is a Numba type held in registers as an LLVM <8 x i32>,
# and the intrinsics below emit plain, target-independent IR. _madd16 is the canonical "pairwise sum
# of sign-extended int16 products" pattern, which the x86 backend turns into one vpmaddwd (AVX2; fused
# with the add into vpdpwssd where AVX-VNNI exists) and other targets lower to their widening
# multiply-adds. Every step is exact: int8 values widened to int16, products |x*y| <= 2**14, pair sums
# <= 2**15 in int32 lanes, then int32 additions (K <= 131071 keeps every sum below 2**31).
# Where the CPU has VNNI (VNNI below), _dpbusd calls vpdpbusd itself: twice the products per instruction,
# uint8 x int8, so a is stored as a + 128 and 128 * sum(b) is subtracted at the end (the native avx512vnni
# kernel's method; int32 sums wrap, and the difference is exact).

_V8 = ir.VectorType(ir.IntType(32), 8)
_V16 = ir.VectorType(ir.IntType(32), 16)


class _I32x8(types.Type):
    def __init__(self):
        super().__init__(name="medqk.I32x8")


_i32x8 = _I32x8()


@register_model(_I32x8)
class _I32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _V8)


def _shuffle(builder, u, v, lanes):
    return builder.shuffle_vector(u, v, ir.Constant(ir.VectorType(ir.IntType(32), len(lanes)), lanes))


@intrinsic
def _vzero(typingctx):
    def codegen(context, builder, sig, args):
        return ir.Constant(_V8, None)

    return _i32x8(), codegen


def _load16(context, builder, arrty, arr, index):
    """arr[index:index + 16] (C-contiguous int8 or int16, no bounds check) sign-extended to 16 x i32."""
    data = context.make_array(arrty)(context, builder, arr).data
    vec = ir.VectorType(ir.IntType(arrty.dtype.bitwidth), 16)
    ptr = builder.bitcast(builder.gep(data, [index]), vec.as_pointer())
    return builder.sext(builder.load(ptr, align=1), _V16)


@intrinsic
def _madd16(typingctx, acc, x, i, y, j):
    """acc + x[i:i+16] * y[j:j+16] summed in adjacent pairs: lane t adds products 2t and 2t+1."""
    small = (types.int8, types.int16)
    for arr in (x, y):
        if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C" and arr.dtype in small):
            return None

    def codegen(context, builder, sig, args):
        acc_v, x_v, i_v, y_v, j_v = args
        i_v = context.cast(builder, i_v, sig.args[2], types.intp)
        j_v = context.cast(builder, j_v, sig.args[4], types.intp)
        x16 = _load16(context, builder, sig.args[1], x_v, i_v)
        y16 = _load16(context, builder, sig.args[3], y_v, j_v)
        prod = builder.mul(x16, y16)
        even = _shuffle(builder, prod, prod, list(range(0, 16, 2)))
        odd = _shuffle(builder, prod, prod, list(range(1, 16, 2)))
        return builder.add(acc_v, builder.add(even, odd))

    return _i32x8(acc, x, i, y, j), codegen


def _host_has_vnni() -> bool:
    """Whether Numba compiles for this CPU and it has 256-bit vpdpbusd (AVX-VNNI, or AVX-512 VNNI + VL).

    MEDQK_NUMBA_VNNI=0 turns it off (the tests use that to run the int16 path on VNNI machines too); a
    generic Numba target (NUMBA_CPU_NAME / NUMBA_CPU_FEATURES set) never uses it, since code compiled for
    another CPU must not contain the instruction.
    """
    if os.environ.get("MEDQK_NUMBA_VNNI", "1") == "0":
        return False
    if numba.config.CPU_NAME not in (None, "host") or numba.config.CPU_FEATURES is not None:
        return False
    try:
        import llvmlite.binding as llvm

        f = llvm.get_host_cpu_features()
        return bool(f.get("avxvnni", False) or (f.get("avx512vnni", False) and f.get("avx512vl", False)))
    except (ImportError, AttributeError, RuntimeError):  # pragma: no cover - feature query unavailable
        return False


VNNI = _host_has_vnni()


@intrinsic
def _dpbusd(typingctx, acc, x, i, y, j):
    """acc + x[i:i+32] (uint8) . y[j:j+32] (int8) in groups of 4: lane t adds the products 4t..4t+3.

    One vpdpbusd (32 multiply-adds, exact: |u8 * s8| <= 32640 and the 4 products are summed in int32).
    Only compiled where VNNI is true.
    """
    if not (isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C" and x.dtype == types.uint8):
        return None
    if not (isinstance(y, types.Array) and y.ndim == 1 and y.layout == "C" and y.dtype == types.int8):
        return None

    def codegen(context, builder, sig, args):
        acc_v, x_v, i_v, y_v, j_v = args
        vec = ir.VectorType(ir.IntType(8), 32)

        def load(arrty, arr, idxty, idx):
            data = context.make_array(arrty)(context, builder, arr).data
            idx = context.cast(builder, idx, idxty, types.intp)
            ptr = builder.bitcast(builder.gep(data, [idx]), vec.as_pointer())
            return builder.bitcast(builder.load(ptr, align=1), _V8)

        xa = load(sig.args[1], x_v, sig.args[2], i_v)
        yb = load(sig.args[3], y_v, sig.args[4], j_v)
        fnty = ir.FunctionType(_V8, [_V8, _V8, _V8])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.256")
        return builder.call(fn, [acc_v, xa, yb])

    return _i32x8(acc, x, i, y, j), codegen


# The product step of the micro-kernels: 32 int8 products per call with VNNI (a stored as a + 128 in
# uint8, corrected by 128 * sum(b) at the end), else 16 (a widened to int16).
if VNNI:
    _madd, _STEP, _SCRATCH = _dpbusd, 32, np.uint8
else:
    _madd, _STEP, _SCRATCH = _madd16, 16, np.int16


@intrinsic
def _vsum4(typingctx, x0, x1, x2, x3):
    """(sum of the lanes of x0, ..., of x3), int32 wrapping like the lanes: three rounds of shuffle + add."""

    def codegen(context, builder, sig, args):
        def pairs(u, v, lo, hi):
            return builder.add(_shuffle(builder, u, v, lo), _shuffle(builder, u, v, hi))

        x0, x1, x2, x3 = args
        # t01[2l] = x0[2l] + x0[2l+1], t01[2l+1] = x1[2l] + x1[2l+1]; t23 likewise
        t01 = pairs(x0, x1, [0, 8, 2, 10, 4, 12, 6, 14], [1, 9, 3, 11, 5, 13, 7, 15])
        t23 = pairs(x2, x3, [0, 8, 2, 10, 4, 12, 6, 14], [1, 9, 3, 11, 5, 13, 7, 15])
        # u[0:4]: sums of lanes 0-3 of x0..x3; u[4:8]: of lanes 4-7
        u = pairs(t01, t23, [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15])
        r = pairs(u, u, [0, 1, 2, 3], [4, 5, 6, 7])
        items = [builder.extract_element(r, ir.Constant(ir.IntType(32), t)) for t in range(4)]
        return context.make_tuple(builder, sig.return_type, items)

    return types.UniTuple(types.int32, 4)(x0, x1, x2, x3), codegen


# Blocking. Micro-tile: 5 rows of a x 2 rows of b; 10 accumulators + 2 vectors of b + 1 product = 13
# of the 16 ymm registers of AVX2 (rows of a are memory operands of vpmaddwd, rows of b are loaded
# with vpmovsxbw). Dot-product form: each accumulator is summed across its lanes once per K block.
# Rows of a are widened to int16 once per tile and K block (5 rows x 2048 x 2 B = 20 KiB stay in L1
# while the rows of b stream by); rows of b are sign-extended in registers as they are loaded.
# On this layout 5x2 measured best with AVX2's 16 registers (4x4 spills there).
_MR = 5  # rows of a per micro-tile
_KC = 2048  # K per block (at most; blocks are balanced)
_MB = 60  # rows of a per tile (about; a multiple of _MR)
_NB = 256  # rows of b per tile (at most): 256 x 2048 B of b, reused from L2 by every 5 rows of a


@njit(boundscheck=False, nogil=True)
def _put(out, i, j, v, add):
    if add:
        out[i, j] += v
    else:
        out[i, j] = v


@njit(boundscheck=False, nogil=True)
def _tile_5x2(w, r, b0, b1, p0, p1, out, i, j, add):
    """out[i:i+5, j:j+2] (+)= rows r..r+4 of w . (b0, b1)[p0:p1]; w holds columns p0:p1 of a, widened."""
    x0 = w[r]
    x1 = w[r + 1]
    x2 = w[r + 2]
    x3 = w[r + 3]
    x4 = w[r + 4]
    c00 = _vzero()
    c01 = _vzero()
    c10 = _vzero()
    c11 = _vzero()
    c20 = _vzero()
    c21 = _vzero()
    c30 = _vzero()
    c31 = _vzero()
    c40 = _vzero()
    c41 = _vzero()
    for p in range(p0, p1, _STEP):
        q = p - p0
        c00 = _madd(c00, x0, q, b0, p)
        c01 = _madd(c01, x0, q, b1, p)
        c10 = _madd(c10, x1, q, b0, p)
        c11 = _madd(c11, x1, q, b1, p)
        c20 = _madd(c20, x2, q, b0, p)
        c21 = _madd(c21, x2, q, b1, p)
        c30 = _madd(c30, x3, q, b0, p)
        c31 = _madd(c31, x3, q, b1, p)
        c40 = _madd(c40, x4, q, b0, p)
        c41 = _madd(c41, x4, q, b1, p)
    s00, s01, s10, s11 = _vsum4(c00, c01, c10, c11)
    s20, s21, s30, s31 = _vsum4(c20, c21, c30, c31)
    s40, s41, _, _ = _vsum4(c40, c41, c40, c41)
    _put(out, i, j, s00, add)
    _put(out, i, j + 1, s01, add)
    _put(out, i + 1, j, s10, add)
    _put(out, i + 1, j + 1, s11, add)
    _put(out, i + 2, j, s20, add)
    _put(out, i + 2, j + 1, s21, add)
    _put(out, i + 3, j, s30, add)
    _put(out, i + 3, j + 1, s31, add)
    _put(out, i + 4, j, s40, add)
    _put(out, i + 4, j + 1, s41, add)


@njit(boundscheck=False, nogil=True)
def _tile_1x4(x, b0, b1, b2, b3, p0, p1, out, i, j, add):
    """out[i, j:j+4] (+)= x . (b0, b1, b2, b3)[p0:p1]: leftover rows of a, and M = 1 (GEMV)."""
    c0 = _vzero()
    c1 = _vzero()
    c2 = _vzero()
    c3 = _vzero()
    for p in range(p0, p1, _STEP):
        q = p - p0
        c0 = _madd(c0, x, q, b0, p)
        c1 = _madd(c1, x, q, b1, p)
        c2 = _madd(c2, x, q, b2, p)
        c3 = _madd(c3, x, q, b3, p)
    s0, s1, s2, s3 = _vsum4(c0, c1, c2, c3)
    _put(out, i, j, s0, add)
    _put(out, i, j + 1, s1, add)
    _put(out, i, j + 2, s2, add)
    _put(out, i, j + 3, s3, add)


@njit(boundscheck=False, nogil=True)
def _tile_1x1(x, b0, p0, p1, out, i, j, add):
    """out[i, j] (+)= x . b0[p0:p1]: leftover rows of b."""
    c0 = _vzero()
    for p in range(p0, p1, _STEP):
        c0 = _madd(c0, x, p - p0, b0, p)
    s0, _, _, _ = _vsum4(c0, c0, c0, c0)
    _put(out, i, j, s0, add)


if VNNI:

    @njit(inline="always")
    def _widen(v):
        return np.uint8(np.int32(v) + 128)

else:

    @njit(inline="always")
    def _widen(v):
        return np.int16(v)


def _gemm_tile(pa, pb, plast, pw, pout, m, n, k, i0, i1, j0, j1, kc, ldw):
    """out[i0:i1, j0:j1] of gemm_s8s8_s32, block by block over K; w (i1 - i0, ldw) _SCRATCH is scratch.

    With VNNI the tile holds a . b + 128 * sum(b) (a stored as a + 128 in uint8): the caller subtracts
    the column sums.

    Compiled once, on first use, as a C callback (see _gemm_tile_call); it allocates nothing, so it
    cannot fail.
    """
    kp = (k + _STEP - 1) // _STEP * _STEP
    a = carray(pa, (m, k))
    b = carray(pb, (n, k))
    last = carray(plast, (kp,))
    out = carray(pout, (m, n))
    rows = i1 - i0
    w = carray(pw, (rows, ldw))
    full = rows - rows % _MR  # rows done 5 at a time; the others one at a time
    j2 = j1 - (j1 - j0) % 2
    j4 = j1 - (j1 - j0) % 4
    for p0 in range(0, kp, kc):
        p1 = min(kp, p0 + kc)
        pe = min(k, p1)
        add = p0 > 0
        for r in range(rows):  # widen this block of the rows of a, zero-padded to p1
            src = a[i0 + r, p0:pe]
            dst = w[r]
            for p in range(pe - p0):
                dst[p] = _widen(src[p])
            for p in range(pe - p0, p1 - p0):
                dst[p] = 0  # padding: multiplies the bytes read past the end of a row of b by 0
        for r in range(0, full, _MR):
            for j in range(j0, j2, 2):
                _tile_5x2(w, r, b[j], b[j + 1] if j + 1 < n - 1 else last, p0, p1, out, i0 + r, j, add)
            if j2 < j1:
                bj = b[j2] if j2 < n - 1 else last
                for rr in range(r, r + _MR):
                    _tile_1x1(w[rr], bj, p0, p1, out, i0 + rr, j2, add)
        for r in range(full, rows):
            x = w[r]
            for j in range(j0, j4, 4):
                b3 = b[j + 3] if j + 3 < n - 1 else last
                _tile_1x4(x, b[j], b[j + 1], b[j + 2], b3, p0, p1, out, i0 + r, j, add)
            for j in range(j4, j1):
                _tile_1x1(x, b[j] if j < n - 1 else last, p0, p1, out, i0 + r, j, add)


_TILE_ARRAYS = (types.int8, types.int8, types.int8, numba.from_dtype(np.dtype(_SCRATCH)), types.int32)  # a b last w out
_TILE_SIG = types.void(*[types.CPointer(t) for t in _TILE_ARRAYS], *([types.intp] * 9))
_tile_callback = None


@intrinsic
def _gemm_tile_call(typingctx, a, b, last, w, out, m, n, k, i0, i1, j0, j1, kc, ldw):
    """_gemm_tile on the data of the C-contiguous arrays a, b, last, w and out.

    _gemm_tile is compiled on first use as a C callback and called through its address: a call to an
    @njit function would link its code into gemm_s8s8_s32 and into the body of its parallel loop, and
    optimize and compile it again for each (about 1 s more on the first call). The address is only
    valid in this process, so the callers must not be cached to disk (no cache=True).
    """
    arrays = (a, b, last, w, out)
    for name, arr, dtype in zip(("a", "b", "last", "w", "out"), arrays, _TILE_ARRAYS):
        if not (isinstance(arr, types.Array) and arr.layout == "C" and arr.dtype == dtype):
            raise TypingError(f"gemm_s8s8_s32: {name} must be a C-contiguous {dtype} array, got {arr}")
    global _tile_callback
    if _tile_callback is None:
        _tile_callback = cfunc(_TILE_SIG, boundscheck=False)(_gemm_tile)
    address = _tile_callback.address

    def codegen(context, builder, sig, args):
        ptrs = [context.make_array(ty)(context, builder, v).data for ty, v in zip(sig.args[:5], args[:5])]
        ints = [context.cast(builder, v, ty, types.intp) for ty, v in zip(sig.args[5:], args[5:])]
        fnty = ir.FunctionType(ir.VoidType(), [p.type for p in ptrs] + [i.type for i in ints])
        builder.call(builder.inttoptr(ir.Constant(ir.IntType(64), address), fnty.as_pointer()), ptrs + ints)
        return context.get_dummy_value()

    return types.void(a, b, last, w, out, m, n, k, i0, i1, j0, j1, kc, ldw), codegen


@njit(parallel=True, boundscheck=False, nogil=True)
def gemm_s8s8_s32(a, b, out):
    """out (M, N) int32 = a (M, K) int8 @ b (N, K) int8 .T, exact.

    Products are int16 x int16 -> int32 pair sums (vpmaddwd on x86, see _madd16) added in int32: exact
    for the whole int8 range and K <= 131071, nothing is ever accumulated in int16. Rows of a are
    widened to int16 per tile and block of K into a buffer zero-padded to a multiple of 16; rows of b
    are read in place, 16 bytes at a time, so the last step of a row reads up to 15 bytes of the next
    one, which meet the zero padding of a. The final row of b is copied (padded), so no read leaves b.
    out must be C-contiguous. Tiles of rows of a x rows of b are spread over the threads, in columns
    when M is small, so large M and M = 1 both use them all.
    """
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    m, k = a.shape
    n = b.shape[0]
    kp = (k + _STEP - 1) // _STEP * _STEP
    last = np.empty(kp, dtype=np.int8)  # b[n - 1], zero-padded to kp
    for p in range(kp):
        last[p] = b[n - 1, p] if p < k else 0
    kc = kp  # K per block: all of it for GEMV-like shapes, else balanced blocks of at most _KC
    if m > _MR:
        blocks = (kp + _KC - 1) // _KC
        kc = ((kp + blocks - 1) // blocks + _STEP - 1) // _STEP * _STEP
    row_tiles = (m + _MB - 1) // _MB
    mb = ((m + row_tiles - 1) // row_tiles + _MR - 1) // _MR * _MR
    row_tiles = (m + mb - 1) // mb
    col_tiles = (n + _NB - 1) // _NB
    workers = numba.get_num_threads()
    if row_tiles * col_tiles < 4 * workers:  # small M: more, narrower column tiles
        col_tiles = max(col_tiles, min((n + 15) // 16, (4 * workers + row_tiles - 1) // row_tiles))
    nb = ((n + col_tiles - 1) // col_tiles + 3) // 4 * 4
    col_tiles = (n + nb - 1) // nb
    tiles = row_tiles * col_tiles
    workers = min(workers, tiles)
    colsum = np.zeros(n if VNNI else 0, dtype=np.int32)  # VNNI: sum(b[j]), to undo the +128 on a
    if VNNI:
        for j in prange(n):
            t = 0
            for p in range(k):
                t += b[j, p]
            colsum[j] = t
    # one scratch block of widened rows of a per worker; 32 more bytes per row, so that the 5 rows of a
    # micro-tile are not 4 KiB apart (that costs about 10% at K = 2048)
    ldw = kc + _STEP
    w = np.empty((workers, mb, ldw), dtype=_SCRATCH)
    for c in prange(workers):
        for t in range(c, tiles, workers):  # round robin: a worker keeps the same columns of b
            i0 = (t // col_tiles) * mb
            j0 = (t % col_tiles) * nb
            i1 = min(m, i0 + mb)
            j1 = min(n, j0 + nb)
            _gemm_tile_call(a, b, last, w[c, : i1 - i0], out, m, n, k, i0, i1, j0, j1, kc, ldw)
            if VNNI:  # int32 arithmetic wraps: the difference is exact although the tile sum may wrap
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        out[i, j] = out[i, j] - 128 * colsum[j]


_TINY_ROW = np.float32(2.0**-119)  # rows with max|x| below this quantize to zeros, scale 1


@njit(parallel=True, boundscheck=False, nogil=True)
def quantize_rows_s8(x, q, scales):
    """Per-row symmetric int8 codes of float32 x; same float32 steps as csrc/runtime/quantize.cpp.

    Returns False (and leaves q undefined) if x holds a NaN or Inf.
    """
    m, k = x.shape
    ok = np.ones(m, dtype=np.bool_)
    for i in prange(m):
        amax = np.float32(0.0)
        for p in range(k):
            v = abs(x[i, p])
            if not v <= np.float32(3.4028234663852886e38):
                ok[i] = False
            if v > amax:
                amax = v
        live = amax >= _TINY_ROW  # below: a zero row (see csrc/runtime/quantize.cpp)
        inv = np.float32(127.0) / amax if live else np.float32(1.0)
        scales[i] = amax / np.float32(127.0) if live else np.float32(1.0)
        for p in range(k):
            v = np.rint(x[i, p] * inv)  # round half to even, then clamp: the order of the C++ code
            v = min(max(v, np.float32(-127.0)), np.float32(127.0))
            q[i, p] = np.int8(v)
    return ok.all()


@njit(parallel=True, boundscheck=False, nogil=True)
def dequantize_s32_f32(acc, row_scale, col_scale, bias, out):
    """out[i, j] = acc[i, j] * (row_scale[i] * col_scale[j]) + bias[j] (bias may be empty: no bias)."""
    m, n = acc.shape
    has_bias = bias.shape[0] == n
    for i in prange(m):
        rs = row_scale[i]
        for j in range(n):
            v = np.float32(acc[i, j]) * (rs * col_scale[j])
            out[i, j] = v + bias[j] if has_bias else v

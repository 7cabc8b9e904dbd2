"""Public kernels. Each one runs on the backend chosen in :mod:`medqk._backend`.

The native and Numba versions have the same names, arguments, results and errors; integer results
are identical bit for bit (tests/kernels compare every backend and ISA against an int64 reference).
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from .._validate import as_matrix, finite, threads_arg

MAX_GEMM_K = 131071
"""Largest K for which int8 x int8 sums are exact in int32: 131071 * 128 * 128 < 2**31."""


class PackedS8:
    """An int8 matrix ``b`` (N, K) packed once for repeated ``a @ b.T`` (weights, databases).

    Made by :func:`pack_s8`. The layout belongs to the backend and ISA active at packing time, and a
    ``PackedS8`` always runs with that kernel, even if :func:`medqk.set_isa` changes later.
    """

    __slots__ = ("_native", "_rows", "backend", "isa", "k", "n")

    def __init__(self, *_args, **_kwargs):
        raise TypeError("use medqk.pack_s8(b) to make a PackedS8")

    @classmethod
    def _make(cls, backend: str, isa: str, n: int, k: int, native=None, rows=None) -> PackedS8:
        self = object.__new__(cls)
        self.backend, self.isa, self.n, self.k = backend, isa, n, k
        self._native, self._rows = native, rows
        return self

    @property
    def shape(self) -> tuple[int, int]:
        """The (N, K) shape of the matrix that was packed."""
        return (self.n, self.k)

    @property
    def nbytes(self) -> int:
        """Bytes held by the packed layout (padding included)."""
        return self._native.nbytes if self._native is not None else self._rows.nbytes

    def __repr__(self) -> str:
        return f"PackedS8(n={self.n}, k={self.k}, backend={self.backend!r}, isa={self.isa!r}, nbytes={self.nbytes})"


def _matrix(x, name: str, dtype, *, convert_float: bool = False) -> np.ndarray:
    """``x`` checked as a non-empty 2-D array of ``dtype``, in any memory layout (see :func:`_row_major`).

    Integer kernels refuse other dtypes (a silent cast from float, uint8 or int16 would wrap; an int8 *view*
    of another buffer is int8 and fine); with ``convert_float`` any real float dtype is converted to float32
    (one copy, in C order).
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of dtype {np.dtype(dtype).name}, got {type(x).__name__}")
    want = np.dtype(dtype)
    if x.dtype != want and not (convert_float and np.issubdtype(x.dtype, np.floating)):
        raise TypeError(f"{name} must have dtype {want.name}, got {x.dtype.name}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (rows, K), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {x.shape}")
    if x.dtype != want:
        x = x.astype(want, order="C")
    return x


def _rows_in_place(x: np.ndarray) -> bool:
    """True when the native kernels can read 2-D ``x`` where it is: contiguous rows, aligned, and a
    non-negative row stride (passed to the C API as lda / ldb / ldx; rows may even overlap or repeat)."""
    item = x.itemsize
    m, k = x.shape
    rows_contiguous = k == 1 or x.strides[1] == item
    row_stride_ok = m == 1 or (x.strides[0] >= 0 and x.strides[0] % item == 0)
    return rows_contiguous and row_stride_ok and x.flags.aligned


def _row_major(x: np.ndarray, native: bool) -> np.ndarray:
    """``x`` as the kernel will read it. Native: a view with contiguous rows is used in place, with its row
    stride (row slices x[::s], column ranges x[:, a:b], int8 views of other buffers); any other layout
    (Fortran order, negative strides, column steps) is copied once to C order. Numba: C order (a copy unless
    ``x`` already is), so that each kernel is compiled for one layout only."""
    if native and _rows_in_place(x):
        return x
    return np.ascontiguousarray(x)


def _check_k(k: int, name: str) -> None:
    if k > MAX_GEMM_K:
        raise ValueError(f"{name} has K={k} > {MAX_GEMM_K}: int32 accumulation could overflow")


def pack_s8(b: np.ndarray) -> PackedS8:
    """Packs int8 ``b`` (N, K) for :func:`gemm_s8s8_s32` with the active backend and ISA.

    ``b`` may be any int8 view: the packed copy is made from it directly when its rows are contiguous
    (any row stride), after one copy to C order otherwise (Fortran order, negative strides, column steps).
    """
    b = _matrix(b, "b", np.int8)
    _check_k(b.shape[1], "b")
    if _backend.backend == "native":
        handle = _backend._core.pack_s8(_row_major(b, native=True))
        return PackedS8._make("native", handle.isa, b.shape[0], b.shape[1], native=handle)
    return PackedS8._make("numba", "numba", b.shape[0], b.shape[1], rows=b.copy())


def gemm_s8s8_s32(a: np.ndarray, b, *, threads: int | None = None) -> np.ndarray:
    """Exact ``a @ b.T`` for int8 ``a`` (M, K) and int8 ``b`` (N, K) or a :class:`PackedS8`; int32 (M, N).

    Exact for the whole int8 range (-128 included) and K <= 131071; no saturation anywhere.
    ``threads``: None (all cores) or a positive count; the GIL is released while it runs.

    Any int8 array views are taken. On the native backend, a view whose rows are contiguous (C order, row
    slices such as ``x[::2]``, column ranges such as ``x[:, 8:40]``, int8 views of other buffers) is read in
    place with its row stride, never copied; other layouts (Fortran order, negative strides, column steps such
    as ``x[:, ::2]``) are copied once to C order first. The Numba backend copies every non-C-order input once.
    Other dtypes (float, uint8, int16, ...) are refused with TypeError rather than cast, which could wrap.
    """
    a = _matrix(a, "a", np.int8)
    nthreads = threads_arg(threads)
    if isinstance(b, PackedS8):
        if a.shape[1] != b.k:
            raise ValueError(f"a has K={a.shape[1]} columns but b was packed with K={b.k}")
        if b.backend == "native":
            return _backend._core.gemm_s8s8_s32_packed(_row_major(a, native=True), b._native, nthreads)
        return _numba_gemm(_row_major(a, native=False), b._rows, nthreads)
    b = _matrix(b, "b", np.int8)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a has K={a.shape[1]} columns but b has K={b.shape[1]}")
    _check_k(b.shape[1], "b")
    native = _backend.backend == "native"
    a, b = _row_major(a, native), _row_major(b, native)
    if native:
        return _backend._core.gemm_s8s8_s32(a, b, nthreads)
    return _numba_gemm(a, b, nthreads)


def _numba_gemm(a: np.ndarray, b: np.ndarray, threads: int) -> np.ndarray:
    nb = _backend.numba_kernels()
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
    with nb.threads(threads):
        nb.gemm_s8s8_s32(a, b, out)
    return out


def quantize_rows_s8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8 codes of float ``x`` (M, K): returns (codes int8 (M, K), scales float32 (M,)).

    scale = max|row| / 127 (1.0 for an all-zero row, and for a row with max|row| < 2**-119, which quantizes
    to zeros: its scale would be subnormal); codes = round_half_even(x * 127 / max|row|),
    clipped to [-127, 127]. Identical codes on every backend. NaN/Inf raise ValueError. ``x`` may be any
    view: other float dtypes are converted (one copy); float32 views with contiguous rows are read in place
    on the native backend, other layouts copied once to C order.
    """
    native = _backend.backend == "native"
    x = _row_major(_matrix(x, "x", np.float32, convert_float=True), native)
    if native:
        return _backend._core.quantize_rows_s8(x)
    nb = _backend.numba_kernels()
    q = np.empty(x.shape, dtype=np.int8)
    scales = np.empty(x.shape[0], dtype=np.float32)
    if not nb.quantize_rows_s8(x, q, scales):
        raise ValueError("x contains NaN or Inf")
    return q, scales


_FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_W4_GROUP_SIZE = 65536
"""Largest W4A8 group: |D - zeros * asum| <= 65536 * (128 * 127 + 15 * 128) < 2**31."""


class PackedW4:
    """4-bit weights (N, K) packed once for :func:`gemm_w4a8_s32` / :func:`gemm_w4a8_f32`.

    Made by :func:`pack_w4`. The layout belongs to the kernel variant that runs ``gemm_w4a8`` at packing time
    (the active ISA's, or the one :func:`medqk.use_kernel` pins); a product under another variant is refused
    with ValueError (pack again), never misread.
    """

    __slots__ = ("_codes", "_levels", "_native", "backend", "group_size", "isa", "k", "n", "variant")

    def __init__(self, *_args, **_kwargs):
        raise TypeError("use medqk.kernels.pack_w4(codes, levels, group_size) to make a PackedW4")

    @classmethod
    def _make(cls, backend: str, n: int, k: int, group_size: int, native=None, codes=None,
              levels=None) -> PackedW4:
        self = object.__new__(cls)
        self.backend, self.n, self.k, self.group_size = backend, n, k, group_size
        self.isa = native.isa if native is not None else "numba"
        self.variant = native.variant if native is not None else "numba"
        self._native, self._codes, self._levels = native, codes, levels
        return self

    @property
    def groups(self) -> int:
        """G = ceil(K / group_size): the number of scales (and zero points) per output row."""
        return -(-self.k // self.group_size)

    @property
    def shape(self) -> tuple[int, int]:
        """The (N, K) shape of the weights."""
        return (self.n, self.k)

    @property
    def nbytes(self) -> int:
        """Bytes held by the packed layout (tables and padding included)."""
        if self._native is not None:
            return self._native.nbytes
        return self._codes.nbytes + self._levels.nbytes

    def __repr__(self) -> str:
        return (f"PackedW4(n={self.n}, k={self.k}, group_size={self.group_size}, backend={self.backend!r}, "
                f"variant={self.variant!r}, nbytes={self.nbytes})")


def pack_w4(codes: np.ndarray, levels: np.ndarray, group_size: int) -> PackedW4:
    """Packs 4-bit weights for the W4A8 GEMM with the active backend and kernel variant.

    ``codes`` uint8 (N, K), each < 16 (3-bit and 2-bit codes are the same with fewer levels in use);
    ``levels`` int8 (N, 16), each in [-127, 127]: weight (n, k) is ``levels[n, codes[n, k]]`` in groups of
    ``group_size`` along K (a positive multiple of 32, at most 65536; the last group may be partial, no
    padding needed). ``codes`` may be any uint8 view (rows read in place where contiguous).
    """
    codes = _matrix(codes, "codes", np.uint8)
    n, k = codes.shape
    if not isinstance(levels, np.ndarray):
        raise TypeError(f"levels must be a numpy.ndarray of dtype int8, got {type(levels).__name__}")
    if levels.dtype != np.int8:
        raise TypeError(f"levels must have dtype int8, got {levels.dtype.name}")
    if levels.shape != (n, 16):
        raise ValueError(f"levels must have shape (N, 16) = ({n}, 16), got {levels.shape}")
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)):
        raise TypeError(f"group_size must be an int, got {type(group_size).__name__}")
    if group_size <= 0 or group_size % 32 != 0 or group_size > MAX_W4_GROUP_SIZE:
        raise ValueError(f"group_size must be a positive multiple of 32, at most {MAX_W4_GROUP_SIZE}, "
                         f"got {group_size}")
    _check_k(k, "codes")
    if int(codes.max()) >= 16:
        raise ValueError(f"codes must be < 16 (4-bit), got a maximum of {int(codes.max())}")
    if int(levels.min()) < -127:
        raise ValueError("levels must be in [-127, 127], got -128")
    levels = np.ascontiguousarray(levels)
    if _backend.backend == "native":
        handle = _backend._core.pack_w4(_row_major(codes, native=True), levels, int(group_size))
        return PackedW4._make("native", n, k, int(group_size), native=handle)
    return PackedW4._make("numba", n, k, int(group_size), codes=np.ascontiguousarray(codes).copy(),
                          levels=levels.copy())


def _w4_operands(a, packed) -> np.ndarray:
    a = _matrix(a, "a", np.int8)
    if not isinstance(packed, PackedW4):
        raise TypeError(f"packed must be a PackedW4 (from pack_w4), got {type(packed).__name__}")
    if a.shape[1] != packed.k:
        raise ValueError(f"a has K={a.shape[1]} columns but the weights have K={packed.k}")
    return _row_major(a, native=packed.backend == "native")


def gemm_w4a8_s32(a: np.ndarray, packed: PackedW4, *, threads: int | None = None) -> np.ndarray:
    """The exact int32 of every group: ``D[m, n, g] = sum over k in group g of a[m, k] * W[n, k]``, (M, N, G).

    ``a`` int8 (M, K), the whole range (-128 included); ``W[n, k] = levels[n, codes[n, k]]`` as packed by
    :func:`pack_w4`. Identical on every backend and kernel variant. ``threads``: None (all cores) or a
    positive count; the GIL is released while it runs.
    """
    a = _w4_operands(a, packed)
    nthreads = threads_arg(threads)
    if packed.backend == "native":
        return _backend._core.gemm_w4a8_s32(a, packed._native, nthreads)
    from . import _numba_w4

    d = np.empty((a.shape[0], packed.n, packed.groups), dtype=np.int32)
    with _backend.numba_kernels().threads(nthreads):
        _numba_w4.gemm_w4a8_s32(a, packed._codes, packed._levels, packed.group_size, d)
    return d


def _float_vector(x, name: str, length: int, what: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be a float numpy.ndarray, got "
                        f"{x.dtype.name if isinstance(x, np.ndarray) else type(x).__name__}")
    if x.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},) ({what}), got {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    finite(x, name)
    return x


def gemm_w4a8_f32(a: np.ndarray, row_scale: np.ndarray, packed: PackedW4, scales: np.ndarray,
                  zeros: np.ndarray | None = None, bias: np.ndarray | None = None, *,
                  threads: int | None = None) -> np.ndarray:
    """The dequantized product, float32 (M, N), with the integer part exact:

    ``out[m, n] = row_scale[m] * sum_g scales[n, g] * float(D[m, n, g] - zeros[n, g] * asum[m, g]) + bias[n]``

    with D as in :func:`gemm_w4a8_s32` and ``asum[m, g]`` the sum of ``a[m, :]`` over group g. ``row_scale``
    (M,) and ``bias`` (N,) float, finite; ``scales`` (N, G) float, finite and >= 0; ``zeros`` int8 (N, G) in
    [0, 15] (asymmetric int4) or None; ``bias`` None for none. The float sum over groups runs in each kernel's
    order: results agree across backends and variants within float32 rounding of G (and, in SIMD kernels, a
    few more) terms.
    """
    a = _w4_operands(a, packed)
    m, n, groups = a.shape[0], packed.n, packed.groups
    row_scale = _float_vector(row_scale, "row_scale", m, "one per row of a")
    if not isinstance(scales, np.ndarray) or not np.issubdtype(scales.dtype, np.floating):
        raise TypeError("scales must be a float numpy.ndarray of shape (N, G)")
    if scales.shape != (n, groups):
        raise ValueError(f"scales must have shape (N, G) = ({n}, {groups}), got {scales.shape}")
    scales = np.ascontiguousarray(scales, dtype=np.float32)
    if not (scales.min() >= 0 and scales.max() <= _FLOAT32_MAX):  # a NaN makes both reductions NaN
        raise ValueError("scales must be finite and >= 0")
    if zeros is not None:
        if not isinstance(zeros, np.ndarray) or zeros.dtype != np.int8:
            raise TypeError("zeros must be None or an int8 numpy.ndarray of shape (N, G)")
        if zeros.shape != (n, groups):
            raise ValueError(f"zeros must have shape (N, G) = ({n}, {groups}), got {zeros.shape}")
        if int(zeros.min()) < 0 or int(zeros.max()) > 15:
            raise ValueError("zeros must be in [0, 15]")
        zeros = np.ascontiguousarray(zeros)
    if bias is not None:
        bias = _float_vector(bias, "bias", n, "one per output row of the weights")
    return _gemm_w4a8_f32_checked(a, row_scale, packed, scales, zeros, bias, threads_arg(threads))


def _gemm_w4a8_f32_checked(a, row_scale, packed, scales, zeros, bias, nthreads: int) -> np.ndarray:
    """gemm_w4a8_f32 on arguments already checked (a caller that validated its tables once, such as
    QuantizedLinear, skips the per-call scans of scales, zeros and bias)."""
    m, n = a.shape[0], packed.n
    if packed.backend == "native":
        return _backend._core.gemm_w4a8_f32(a, row_scale, packed._native, scales, zeros, bias, nthreads)
    from . import _numba_w4

    out = np.empty((m, n), dtype=np.float32)
    with _backend.numba_kernels().threads(nthreads):
        _numba_w4.gemm_w4a8_f32(a, packed._codes, packed._levels, packed.group_size, row_scale, scales,
                                zeros if zeros is not None else np.zeros((1, 1), np.int8), zeros is not None,
                                bias if bias is not None else np.zeros(1, np.float32), bias is not None, out)
    return out


def pq_assign(x: np.ndarray, centroids: np.ndarray, *,
              threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid per (row, subspace), the assignment step of PQ / k-means training and encoding.

    ``x`` (n, M * dsub) float, ``centroids`` (M, K, dsub) float with 1 <= K <= 256; subspace j of a row is
    columns ``j * dsub`` to ``(j + 1) * dsub``. Returns ``codes`` uint8 (n, M), the centroid c minimising
    ``||c||^2 - 2 <x_j, c>`` (among equal values the lowest index wins), and ``dist`` float32 (n, M),
    ``max(that minimum + ||x_j||^2, 0)``, the squared distance to it. Computed in float32: on another ISA a
    code can differ only where two distances are within rounding (SIMD kernels use FMA). Float inputs of
    another dtype are converted; NaN/Inf (in x, or distances overflowing float32) raise ValueError.
    ``threads``: None (all cores) or a positive count; the GIL is released while it runs.
    """
    x = as_matrix(x, "x", np.float32, convert_float=True)
    if not isinstance(centroids, np.ndarray):
        raise TypeError(f"centroids must be a numpy.ndarray of dtype float32, got {type(centroids).__name__}")
    if not np.issubdtype(centroids.dtype, np.floating):
        raise TypeError(f"centroids must have a float dtype, got {centroids.dtype.name}")
    if centroids.ndim != 3:
        raise ValueError(f"centroids must be 3-D with shape (M, K, dsub), got shape {centroids.shape}")
    m, k, dsub = centroids.shape
    if m == 0 or dsub == 0 or not 1 <= k <= 256:
        raise ValueError(f"centroids must have shape (M, K, dsub) with M, dsub >= 1 and 1 <= K <= 256, "
                         f"got shape {centroids.shape}")
    if x.shape[1] != m * dsub:
        raise ValueError(f"x has {x.shape[1]} columns but centroids cover M * dsub = {m} * {dsub} "
                         f"= {m * dsub}")
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    finite(centroids, "centroids")
    nthreads = threads_arg(threads)
    if _backend.backend == "native":
        codes, dist = _backend._core.pq_assign(x, centroids, nthreads)
    else:
        from . import _numba_pq_assign

        nb = _backend.numba_kernels()
        codes = np.empty((x.shape[0], m), dtype=np.uint8)
        dist = np.empty((x.shape[0], m), dtype=np.float32)
        with nb.threads(nthreads):
            _numba_pq_assign.pq_assign(x, centroids, codes, dist)
    # a NaN or Inf in x (or a square past float32) reaches every score of its subspace, hence its distance:
    # checking the n x M result is 1/dsub of the work of checking x first
    if not np.isfinite(dist).all():
        raise ValueError("x contains NaN or Inf (or values whose squares overflow float32)")
    return codes, dist


def attention_f32(q: np.ndarray, k: np.ndarray, v: np.ndarray, lengths, heads: int, *, scale: float | None = None,
                  threads: int | None = None) -> np.ndarray:
    """Fused self-attention of a transformer encoder: softmax(scale * q k^T) v per sequence and head.

    ``q``, ``k``, ``v``: float32 (batch * length, heads * dh), sequence b in rows ``b * length`` onward (its
    first ``lengths[b]`` rows are tokens, the rest padding), head h in columns ``h * dh`` onward. Row-strided
    views (e.g. column slices of one fused q|k|v projection) are read in place. ``lengths``: (batch,) ints in
    [0, length]. ``scale``: default ``1 / sqrt(dh)``. Returns out float32 (batch * length, heads * dh):
    for each token row, the softmax-weighted mean of the sequence's v rows over its tokens only (padding
    keys take no part, exactly as an additive -inf mask); padding rows are 0. Float sums differ between
    ISAs and the Numba twin by rounding only (kernels/attention.h). NaN/Inf in q, k or v raise ValueError.
    ``threads``: None (all cores) or a positive count; the GIL is released while it runs.
    """
    q, k, v = (_matrix(t, name, np.float32) for t, name in ((q, "q"), (k, "k"), (v, "v")))
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k and v must have the same shape, got {q.shape}, {k.shape} and {v.shape}")
    if isinstance(heads, bool) or not isinstance(heads, (int, np.integer)) or heads <= 0 or q.shape[1] % heads:
        raise ValueError(f"heads must be a positive int dividing the {q.shape[1]} columns of q, got {heads!r}")
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.size == 0 or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be a non-empty 1-D array of ints, got {lengths.dtype} shape {lengths.shape}")
    if q.shape[0] % lengths.size:
        raise ValueError(f"q has {q.shape[0]} rows, not batch * length for batch = lengths.size = {lengths.size}")
    length = q.shape[0] // lengths.size
    if lengths.min() < 0 or lengths.max() > length:
        raise ValueError(f"lengths must be in [0, {length}] (the rows per sequence), got {lengths.min()} to "
                         f"{lengths.max()}")
    for t, name in ((q, "q"), (k, "k"), (v, "v")):
        finite(t, name)
    dh = q.shape[1] // int(heads)
    scale = 1.0 / np.sqrt(dh) if scale is None else float(scale)
    if not np.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    return _attention_f32_checked(q, k, v, np.ascontiguousarray(lengths, dtype=np.int64), int(heads), scale,
                                  threads_arg(threads))


def _attention_f32_checked(q, k, v, lengths, heads: int, scale: float, nthreads: int) -> np.ndarray:
    """attention_f32 on checked arguments (the encoder calls it on its own projections, finite by construction)."""
    if _backend.backend == "native":
        native = [_row_major(t, native=True) for t in (q, k, v)]
        return _backend._core.attention_f32(*native, lengths, heads, scale, nthreads)
    from . import _numba_attention

    out = np.empty(q.shape, dtype=np.float32)
    with _backend.numba_kernels().threads(nthreads):
        _numba_attention.attention_f32(*(np.ascontiguousarray(t) for t in (q, k, v)), lengths, heads,
                                       np.float32(scale), out)
    return out


def gelu_f32(x: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """GELU in the erf form (BERT's "gelu", not the tanh approximation): ``x * Phi(x)`` of every value.

    ``x``: a float32 array of any shape (other float dtypes are converted). Returns a new float32 array of the
    same shape. erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7); ISAs and the Numba twin differ by
    float32 rounding and their exp only (kernels/gelu.h). NaN/Inf raise ValueError. ``threads``: None (all
    cores) or a positive count; the GIL is released while it runs.
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a numpy.ndarray of a float dtype, got {getattr(x, 'dtype', type(x).__name__)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    finite(x, "x")
    return _gelu_f32_checked(x, threads_arg(threads))


def _gelu_f32_checked(x: np.ndarray, nthreads: int, inplace: bool = False) -> np.ndarray:
    """gelu_f32 of a C-contiguous float32 array the caller knows to be finite (the encoder's activations); with
    ``inplace`` the result overwrites x (returned)."""
    if _backend.backend == "native":
        return _backend._core.gelu_f32(x, nthreads, inplace)
    from ._numba_encoder import gelu_erf

    out = x if inplace else np.empty_like(x)
    with _backend.numba_kernels().threads(nthreads):
        gelu_erf(x.reshape(-1), out.reshape(-1))
    return out


class PackedRaBitQ:
    """1-bit RaBitQ sign codes prepared for :func:`rabitq_search_topk` (made by :func:`pack_rabitq`): the
    layout of the backend active at packing time (native: blocks of 8 vectors, medqk.h rabitq_pack; Numba:
    one row of ceil(dim / 64) words per vector) and ``pop``, each code's number of set bits (or the ``counts``
    pack_rabitq was given)."""

    __slots__ = ("backend", "dim", "n", "pop", "words")

    def __init__(self, *_args, **_kwargs):
        raise TypeError("use medqk.kernels.pack_rabitq(codes, dim) to make a PackedRaBitQ")

    @classmethod
    def _make(cls, backend: str, n: int, dim: int, words: np.ndarray, pop: np.ndarray) -> PackedRaBitQ:
        self = object.__new__(cls)
        self.backend, self.n, self.dim, self.words, self.pop = backend, n, dim, words, pop
        return self

    def __repr__(self) -> str:
        return f"PackedRaBitQ(n={self.n}, dim={self.dim}, backend={self.backend!r})"


def _rabitq_array(x, name: str, dtype, ndim: int) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.dtype(dtype) or x.ndim != ndim:
        raise TypeError(f"{name} must be a {ndim}-D numpy.ndarray of dtype {np.dtype(dtype).name}, got "
                        f"{type(x).__name__} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}")
    return np.ascontiguousarray(x)


def pack_rabitq(codes: np.ndarray, dim: int, *, counts: np.ndarray | None = None) -> PackedRaBitQ:
    """Sign codes (n, ceil(dim / 8)) uint8 of :mod:`medqk.quantizers.rabitq` (dimension i in bit i % 8 of byte
    i // 8; bits past dim are ignored) for :func:`rabitq_search_topk`.

    ``counts``: optional int32 (n,), the per-code term the search's score reads in place of each code's popcount
    (``pop`` in :func:`rabitq_search_topk`): the multi-bit codes, scanned as one 1-bit code of b dim bits, pass
    their code sums. It is used only in that term; the integer scan is the same."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    codes = _rabitq_array(codes, "codes", np.uint8, 2)
    if codes.shape[1] != (dim + 7) // 8:
        raise ValueError(f"codes must have ceil(dim / 8) = {(dim + 7) // 8} columns for dim {dim}, got {codes.shape}")
    n = codes.shape[0]
    if n == 0:  # nothing to scan: the searches return padding without a kernel
        words, pop = np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int32)
    elif _backend.backend == "native":
        words, pop = _backend._core.rabitq_pack(codes, int(dim))
    else:
        from . import _numba_rabitq as kern

        words = kern.to_words(codes, int(dim)) & kern.dim_mask(int(dim))[None, :]
        pop = np.empty(n, dtype=np.int32)
        kern.rabitq_popcounts(words, kern.dim_mask(int(dim)), pop)
    if counts is not None:
        counts = _rabitq_array(counts, "counts", np.int32, 1)
        if counts.shape[0] != n:
            raise ValueError(f"counts must have one entry per code ({n}), got {counts.shape[0]}")
        pop = counts.copy()
    return PackedRaBitQ._make(_backend.backend, n, int(dim), words, pop)


def _rabitq_planes(packed: PackedRaBitQ, planes) -> np.ndarray:
    if not isinstance(packed, PackedRaBitQ):
        raise TypeError(f"packed must be a PackedRaBitQ (medqk.kernels.pack_rabitq), got {type(packed).__name__}")
    planes = _rabitq_array(planes, "planes", np.uint8, 3)
    if not 1 <= planes.shape[1] <= 8 or planes.shape[2] != (packed.dim + 7) // 8 or planes.shape[0] == 0:
        raise ValueError(f"planes must have shape (nq >= 1, bits in 1..8, ceil(dim / 8) = {(packed.dim + 7) // 8}), "
                         f"got {planes.shape}")
    return planes


def _numba_planes(packed: PackedRaBitQ, planes: np.ndarray) -> np.ndarray:
    from . import _numba_rabitq as kern

    return kern.to_words(planes, packed.dim) & kern.dim_mask(packed.dim)[None, None, :]


def rabitq_scan_ints(packed: PackedRaBitQ, planes: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """The exact integer part of the RaBitQ scan, (nq, n) int32: ``sum_j 2^j popcount(code & planes[q, j])``
    (= sum_i b_i u_i) for every query bit-plane set ``planes`` (nq, bits, ceil(dim / 8)) uint8."""
    planes = _rabitq_planes(packed, planes)
    nthreads = threads_arg(threads)
    if packed.n == 0:
        return np.empty((planes.shape[0], 0), dtype=np.int32)
    if packed.backend == "native":
        return _backend._core.rabitq_scan_ints(packed.words, packed.n, packed.dim, planes, nthreads)
    from . import _numba_rabitq as kern

    ip = np.empty((planes.shape[0], packed.n), dtype=np.int32)
    with _backend.numba_kernels().threads(nthreads):
        kern.rabitq_scan_ints(packed.words, _numba_planes(packed, planes), ip)
    return ip


def rabitq_search_topk(packed: PackedRaBitQ, planes: np.ndarray, a, c1, c2, c3, mult, add, k: int, *,
                       threads: int | None = None, allow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of the 1-bit RaBitQ scan (:mod:`medqk.quantizers.rabitq`): per query q and vector v the float32
    score ``(add[v] + a[q]) + mult[v] * ((c1[q] ip + c2[q] pop[v]) + c3[q])``, ip as in
    :func:`rabitq_scan_ints`, evaluated in that order without FMA on every backend (the same bits). Returns
    (scores, ids) (nq, k), best first, ties -> lower id, rows padded with (-inf, -1) past the vectors
    ``allow`` (None, or a packbits(bitorder="little") bitmap of ceil(n / 8) bytes) lets in."""
    planes = _rabitq_planes(packed, planes)
    nq, n = planes.shape[0], packed.n
    f32 = np.float32
    consts = [_rabitq_array(v, name, f32, 1) for v, name in ((a, "a"), (c1, "c1"), (c2, "c2"), (c3, "c3"))]
    mult, add = _rabitq_array(mult, "mult", f32, 1), _rabitq_array(add, "add", f32, 1)
    if any(v.shape[0] != nq for v in consts):
        raise ValueError("a, c1, c2 and c3 must have one value per query (planes.shape[0])")
    if mult.shape[0] != n or add.shape[0] != n:
        raise ValueError(f"mult and add must have one value per packed vector ({n})")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    nthreads = threads_arg(threads)
    if allow is not None:
        allow = _rabitq_array(allow, "allow", np.uint8, 1)
        if allow.shape[0] != (n + 7) // 8:
            raise ValueError(f"allow must be a bitmap of ceil(n / 8) = {(n + 7) // 8} bytes, got {allow.shape}")
    if n == 0:
        return np.full((nq, k), -np.inf, dtype=f32), np.full((nq, k), -1, dtype=np.int64)
    if packed.backend == "native":
        return _backend._core.rabitq_search_topk(packed.words, packed.pop, mult, add, packed.dim, planes, *consts,
                                                 int(k), nthreads, allow)
    from . import _numba_rabitq as kern

    scores = np.empty((nq, k), dtype=f32)
    ids = np.empty((nq, k), dtype=np.int64)
    allow = np.empty(0, dtype=np.uint8) if allow is None else allow
    with _backend.numba_kernels().threads(nthreads):
        kern.rabitq_search_topk(packed.words, packed.pop, _numba_planes(packed, planes), *consts, mult, add, int(k),
                                scores, ids, allow)
    return scores, ids


__all__ = ["MAX_GEMM_K", "MAX_W4_GROUP_SIZE", "PackedRaBitQ", "PackedS8", "PackedW4", "attention_f32", "gelu_f32",
           "gemm_s8s8_s32", "gemm_w4a8_f32", "gemm_w4a8_s32", "pack_rabitq", "pack_s8", "pack_w4", "pq_assign",
           "quantize_rows_s8", "rabitq_scan_ints", "rabitq_search_topk"]


def __dir__() -> list[str]:
    # numpy and the argument checks are imported here for the kernels' use, not exported: dir() (and so
    # tab completion) shows the public kernels, as `from medqk.kernels import *` does
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})

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

    __slots__ = ("_native", "_rows", "backend", "isa", "n", "k")

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


def _check_k(k: int, name: str) -> None:
    if k > MAX_GEMM_K:
        raise ValueError(f"{name} has K={k} > {MAX_GEMM_K}: int32 accumulation could overflow")


def pack_s8(b: np.ndarray) -> PackedS8:
    """Packs int8 ``b`` (N, K) for :func:`gemm_s8s8_s32` with the active backend and ISA."""
    b = as_matrix(b, "b", np.int8)
    _check_k(b.shape[1], "b")
    if _backend.backend == "native":
        handle = _backend._core.pack_s8(b)
        return PackedS8._make("native", handle.isa, b.shape[0], b.shape[1], native=handle)
    return PackedS8._make("numba", "numba", b.shape[0], b.shape[1], rows=b.copy())


def gemm_s8s8_s32(a: np.ndarray, b, *, threads: int | None = None) -> np.ndarray:
    """Exact ``a @ b.T`` for int8 ``a`` (M, K) and int8 ``b`` (N, K) or a :class:`PackedS8`; int32 (M, N).

    Exact for the whole int8 range (-128 included) and K <= 131071; no saturation anywhere.
    ``threads``: None (all cores) or a positive count; the GIL is released while it runs.
    C-contiguous int8 inputs are used in place, never copied.
    """
    a = as_matrix(a, "a", np.int8)
    nthreads = threads_arg(threads)
    if isinstance(b, PackedS8):
        if a.shape[1] != b.k:
            raise ValueError(f"a has K={a.shape[1]} columns but b was packed with K={b.k}")
        if b.backend == "native":
            return _backend._core.gemm_s8s8_s32_packed(a, b._native, nthreads)
        return _numba_gemm(a, b._rows, nthreads)
    b = as_matrix(b, "b", np.int8)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a has K={a.shape[1]} columns but b has K={b.shape[1]}")
    _check_k(b.shape[1], "b")
    if _backend.backend == "native":
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
    clipped to [-127, 127]. Identical codes on every backend. NaN/Inf raise ValueError.
    """
    x = as_matrix(x, "x", np.float32, convert_float=True)
    if _backend.backend == "native":
        return _backend._core.quantize_rows_s8(x)
    nb = _backend.numba_kernels()
    q = np.empty(x.shape, dtype=np.int8)
    scales = np.empty(x.shape[0], dtype=np.float32)
    if not nb.quantize_rows_s8(x, q, scales):
        raise ValueError("x contains NaN or Inf")
    return q, scales


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


__all__ = ["MAX_GEMM_K", "PackedS8", "gemm_s8s8_s32", "pack_s8", "pq_assign", "quantize_rows_s8"]


def __dir__() -> list[str]:
    # numpy and the argument checks are imported here for the kernels' use, not exported: dir() (and so
    # tab completion) shows the public kernels, as `from medqk.kernels import *` does
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})

"""Public kernels. Each one runs on the backend chosen in :mod:`medqk._backend`.

The native and Numba versions have the same names, arguments, results and errors; integer results
are identical bit for bit (tests/kernels compare every backend and ISA against an int64 reference).
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from .._validate import as_matrix, threads_arg

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


__all__ = ["MAX_GEMM_K", "PackedS8", "gemm_s8s8_s32", "pack_s8", "quantize_rows_s8"]

"""Argument checks shared by both backends, so native and Numba raise the same errors."""

from __future__ import annotations

import numpy as np


def as_matrix(x, name: str, dtype, *, convert_float: bool = False) -> np.ndarray:
    """Returns ``x`` as a C-contiguous 2-D array of ``dtype`` without copying when it already is one.

    Integer kernels refuse other dtypes (a silent cast from float or int16 would wrap); float inputs
    (``convert_float``) accept any real floating dtype and are converted to float32.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of dtype {np.dtype(dtype).name}, got {type(x).__name__}")
    want = np.dtype(dtype)
    if x.dtype != want:
        if convert_float and np.issubdtype(x.dtype, np.floating):
            x = x.astype(want)
        else:
            raise TypeError(f"{name} must have dtype {want.name}, got {x.dtype.name}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (rows, K), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {x.shape}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use numpy.ascontiguousarray({name}))")
    return x


def threads_arg(threads) -> int:
    """None or 0 -> all cores (0 for the native module); a positive int otherwise."""
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise ValueError(f"threads must be None or a non-negative int, got {threads!r}")
    return int(threads)


def finite(x: np.ndarray, name: str) -> None:
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")

"""medqk: fast, exact CPU quantization kernels for embedding retrieval.

Kernels run on the native C++ module (per-ISA SIMD: AVX2, NEON, NEON dotprod, scalar reference)
or on Numba twins with identical integer results; see :func:`info`.
"""

from __future__ import annotations

try:
    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("medqk")
    except PackageNotFoundError:  # running from a source tree
        __version__ = "0+unknown"
except ImportError:  # pragma: no cover
    __version__ = "0+unknown"

from ._cmake import get_cmake_dir, get_include
from .kernels import MAX_GEMM_K, PackedS8, gemm_s8s8_s32, pack_s8, pq_assign, quantize_rows_s8
from .linear import QuantizedLinear
from .runtime import available_isas, get_backend, get_isa, info, set_backend, set_isa, use_backend, use_isa

__all__ = [
    "MAX_GEMM_K",
    "PackedS8",
    "QuantizedLinear",
    "__version__",
    "available_isas",
    "gemm_s8s8_s32",
    "get_backend",
    "get_cmake_dir",
    "get_include",
    "get_isa",
    "info",
    "pack_s8",
    "pq_assign",
    "quantize_rows_s8",
    "set_backend",
    "set_isa",
    "use_backend",
    "use_isa",
]

"""Backend and ISA selection, and :func:`info`."""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Iterator

from . import _backend

# Operations and the kernel name each ISA runs for them (what medqk.info() reports).
OPERATIONS = ("gemm_s8s8_s32", "search_s8_topk", "lut4_search_topk", "pq8_search_topk", "pq_assign",
              "quantize_rows_s8", "s8_score_candidates")
# the ISA whose kernel runs each dispatched operation under each active ISA (the table scan has no
# dotprod form: neon_dotprod runs the armv8-a scan; the float assignment runs the AVX2 / armv8-a kernel)
_KERNEL_ISA = {"lut4_search_topk": {"neon_dotprod": "neon", "avx512vnni": "avx512vbmi", "amx": "avx512vbmi"},
               # the row quantization: the AVX2 build on x86 paths that have it, the baseline (NEON) build on ARM
               "quantize_rows_s8": {"avx512vnni": "avx2", "amx": "avx2", "neon": "scalar", "neon_dotprod": "scalar"},
               "pq_assign": {"neon_dotprod": "neon", "avx512vnni": "avx2", "amx": "avx2"},
               # the candidate re-scoring (+rerank:int8): float multiply-adds, no VNNI or dotprod form
               "s8_score_candidates": {"neon_dotprod": "neon", "avx512vnni": "avx2", "amx": "avx2"},
               # the 8-bit scan's 256-entry byte lookups: one instruction with AVX-512 VBMI (checked in info())
               # or NEON tbl, 16 vpshufb sub-tables on AVX2 (also taken by AVX-512 CPUs without VBMI)
               "pq8_search_topk": {"neon_dotprod": "neon", "avx512vnni": "avx512vbmi", "amx": "avx512vbmi"}}
# where an "avx512vbmi" kernel above needs VBMI and the CPU lacks it: the kernel that runs instead (the 4-bit
# scan's vpermb form falls back to its vpshufb form, the 8-bit scan to AVX2)
_WITHOUT_VBMI = {"lut4_search_topk": "avx512vnni", "pq8_search_topk": "avx2"}


def get_backend() -> str:
    """The backend kernels run on now: ``"native"`` or ``"numba"``."""
    return _backend.backend


def set_backend(name: str) -> None:
    """Selects ``"native"`` (C++ SIMD) or ``"numba"`` for every later kernel call."""
    if name not in _backend.BACKENDS:
        raise ValueError(f"backend must be one of {_backend.BACKENDS}, got {name!r}")
    if name == "native" and _backend._core is None:
        raise RuntimeError(f"the native module medqk._core is unavailable ({_backend.native_error})")
    _backend.backend = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager: run the enclosed calls on backend ``name``, then restore the previous one."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def available_isas() -> list[str]:
    """ISAs both built into the native module and present on this CPU, best first (empty without it)."""
    return list(_backend._core.isas_supported()) if _backend._core is not None else []


def get_isa() -> str | None:
    """The ISA native kernels dispatch to now (None when the native module is unavailable)."""
    return _backend._core.active_isa() if _backend._core is not None else None


def set_isa(name: str) -> None:
    """Forces native kernels to ISA ``name`` (scalar, avx2, avx512vnni, amx, neon, neon_dotprod) for later calls.

    Raises ValueError naming the ISAs available when ``name`` is unknown or not usable on this CPU.
    """
    if _backend._core is None:
        raise RuntimeError(f"set_isa needs the native module, which is unavailable ({_backend.native_error})")
    try:
        _backend._core.set_isa(name)
    except ValueError as exc:
        raise ValueError(f"{exc}; available here: {', '.join(available_isas())}") from None


@contextlib.contextmanager
def use_isa(name: str) -> Iterator[None]:
    """Context manager: run the enclosed native calls with ISA ``name``, then restore the previous one."""
    previous = get_isa()
    set_isa(name)
    try:
        yield
    finally:
        set_isa(previous)


def _numba_threads() -> int | None:
    try:
        import numba
    except ImportError:
        return None
    return numba.config.NUMBA_NUM_THREADS


def info() -> dict:
    """What medqk runs on: version, backend, ISAs built and present, chosen kernel per operation, threads."""
    from . import __version__

    core = _backend._core
    backend = get_backend()
    isa = get_isa()
    kernels = {}
    for op in OPERATIONS:
        if backend == "numba":
            kernels[op] = f"numba:{op}"
        else:
            kernel_isa = _KERNEL_ISA.get(op, {}).get(isa, isa)
            if kernel_isa == "avx512vbmi" and not (core is not None and core.cpu_features().get("avx512vbmi")):
                kernel_isa = _WITHOUT_VBMI[op]
            kernels[op] = f"{kernel_isa}:{op}"
    return {
        "version": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "backend": backend,
        "native_available": core is not None,
        "native_error": _backend.native_error,
        "isa": isa,
        "isas_built": list(core.isas_built()) if core is not None else [],
        "isas_supported": available_isas(),
        "cpu_features": dict(core.cpu_features()) if core is not None else {},
        "kernels": kernels,
        "threads": {
            "native": core.hardware_threads() if core is not None else None,
            "numba": _numba_threads(),
            "cpu_count": os.cpu_count(),
        },
        "env": {k: os.environ[k] for k in ("MEDQK_BACKEND", "MEDQK_ISA") if k in os.environ},
    }

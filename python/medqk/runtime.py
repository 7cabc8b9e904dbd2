"""Backend and ISA selection, and :func:`info`."""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Iterator

from . import _backend


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


def kernel_variants() -> dict[str, list[dict]]:
    """Each native kernel operation's variants, best first, as the C++ dispatch declares them.

    An entry: ``{"name": "avx512vbmi", "isa": "avx512vnni", "needs": "avx512vbmi", "runnable": True}`` (the ISA
    path it belongs to, the CPU features it needs beyond that path, whether this CPU can run it). A CPU path
    runs the first variant it includes whose extra features are present. Empty without the native module.
    """
    core = _backend._core
    if core is None:
        return {}
    return {op: list(core.kernel_variants(op)) for op in core.kernel_operations()}


@contextlib.contextmanager
def use_kernel(op: str, variant: str) -> Iterator[None]:
    """Context manager: every native call of kernel operation ``op`` runs ``variant`` (see :func:`kernel_variants`).

    For tests and benchmarks that must reach each kernel the CPU can run, including those the dispatch does
    not pick (the vpshufb 4-bit scan on a CPU with VBMI, the AVX2 8-bit group scan under AVX-512). Process-wide,
    like :func:`use_isa`. The GEMM is chosen by ISA (:func:`use_isa`): its packed layout belongs to the ISA.
    """
    core = _backend._core
    if core is None:
        raise RuntimeError(f"use_kernel needs the native module, which is unavailable ({_backend.native_error})")
    core.force_kernel_variant(op, variant)
    try:
        yield
    finally:
        core.force_kernel_variant(op, "")


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
    # the variant each native kernel operation runs now ("numba" for all under the Numba backend)
    kernels = {}
    if core is not None:
        kernels = {op: "numba" if backend == "numba" else core.kernel_variant(op) for op in core.kernel_operations()}
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

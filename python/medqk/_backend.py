"""Which backend runs the kernels: the native C++ module ``medqk._core`` or the Numba twins.

Chosen once at import from ``MEDQK_BACKEND`` (``native`` or ``numba``; default: native when it loads),
changed later with :func:`medqk.set_backend` / :func:`medqk.use_backend`. When the native module is
missing or fails to load and no backend was asked for, medqk warns once and runs on Numba.
"""

from __future__ import annotations

import os
import warnings

BACKENDS = ("native", "numba")

_core = None
native_error: str | None = None
try:
    from . import _core  # type: ignore[attr-defined,no-redef]
except Exception as exc:  # ImportError, or an OSError from a broken shared object
    native_error = f"{type(exc).__name__}: {exc}"

if _core is not None:
    _env_isa_error = _core.isa_env_error()
    if _env_isa_error:
        raise RuntimeError(
            f"{_env_isa_error}. Unset MEDQK_ISA or choose one of: {', '.join(_core.isas_supported())}"
        )


def _initial_backend() -> str:
    wanted = os.environ.get("MEDQK_BACKEND", "").strip().lower()
    if wanted and wanted not in BACKENDS:
        raise RuntimeError(f"MEDQK_BACKEND={wanted!r} is not a backend; choose one of {BACKENDS}")
    if wanted == "native" and _core is None:
        raise RuntimeError(f"MEDQK_BACKEND=native but the native module medqk._core did not load ({native_error})")
    if wanted:
        return wanted
    if _core is None:
        warnings.warn(
            f"medqk: the native module medqk._core is unavailable ({native_error}); "
            "falling back to the slower Numba kernels",
            RuntimeWarning,
            stacklevel=3,
        )
        return "numba"
    return "native"


backend: str = _initial_backend()


def numba_kernels():
    """The Numba twins, imported on first use (importing numba costs about half a second)."""
    from .kernels import _numba

    return _numba

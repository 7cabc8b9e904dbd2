"""Which backend runs the kernels: the native C++ module ``medqk._core`` or the Numba twins.

Chosen once at import from ``MEDQK_BACKEND`` (``native`` or ``numba``; default: native when it loads) and,
for the native module, ``MEDQK_ISA`` (read by the C++ dispatcher); changed later with
:func:`medqk.set_backend` / :func:`medqk.use_backend`. When the native module is missing or fails to load
and no backend was asked for, medqk warns once and runs on Numba.
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

# A bad MEDQK_BACKEND / MEDQK_ISA is recorded here, naming the variable, its value and the valid choices;
# medqk/__init__.py raises it at import (the README's "clear error at import"), or, when the ``medqk``
# command is starting, leaves it to medqk.cli.main to print as one ``medqk: error:`` line.
env_error: str | None = None

if _core is not None and _core.isa_env_error():
    # the C++ side names MEDQK_ISA, the value and why it cannot run; the usable ISAs are known only here
    env_error = (f"{_core.isa_env_error()}. Unset MEDQK_ISA or choose one of: "
                 f"{', '.join(_core.isas_supported())}")


def _initial_backend() -> str:
    global env_error
    raw = os.environ.get("MEDQK_BACKEND", "")
    wanted = raw.strip().lower()
    if wanted and wanted not in BACKENDS:
        env_error = env_error or (f"MEDQK_BACKEND={raw!r} is not a backend. Unset MEDQK_BACKEND or choose "
                                  f"one of: {', '.join(BACKENDS)}")
        wanted = ""
    elif wanted == "native" and _core is None:
        env_error = env_error or (f"MEDQK_BACKEND=native but the native module medqk._core did not load "
                                  f"({native_error}). Unset MEDQK_BACKEND or set it to numba")
        wanted = ""
    if wanted:
        return wanted
    if _core is None:
        if env_error is None:
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

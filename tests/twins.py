"""The Numba twins, for tests that compare them with the native kernels.

numba is a dependency of medqk, but the ARM runs of ``.ci/arm64`` execute ``tests/kernels`` under qemu in a
Debian tree without it (JIT-compiling every twin under emulation would take far longer than the tests): there
a test reaching a twin is skipped with this reason, shown by ``pytest -rs``, after its native checks have run.
"""

from __future__ import annotations

import importlib

import pytest

NUMBA_MISSING = "numba is not installed (the qemu runs of .ci/arm64 test the native kernels only)"


def require_numba() -> None:
    """Skips the calling test, with the reason, where numba is not installed."""
    try:
        import numba  # noqa: F401
    except ImportError:
        pytest.skip(NUMBA_MISSING)


class NumbaTwin:
    """``medqk.kernels.<name>``, imported on first use (so that a test module loads without numba)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        if attr.startswith("_"):  # pytest's collection probes (__test__, _pytestfixturefunction, ...)
            raise AttributeError(attr)
        require_numba()
        return getattr(importlib.import_module(f"medqk.kernels.{self._name}"), attr)

"""Pins the BLAS / OpenMP thread pools of every library to ``--threads N`` (default 1) from the command line.

Import it before numpy, faiss or onnxruntime: their pools read these variables once, when loaded. The
comparison scripts run every library with the same thread count, so the ratios they print compare kernels,
not thread pools.
"""

from __future__ import annotations

import os
import sys


def threads_from_argv(default: int = 1) -> str:
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return str(default)


for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = threads_from_argv()

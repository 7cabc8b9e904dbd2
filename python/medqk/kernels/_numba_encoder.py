"""Numba twin of the encoder's GELU (csrc/kernels/scalar/gelu_scalar.cpp, kernels/gelu.h): the same formula and
constants; float results differ from the native kernels by rounding and the exp only."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_F = np.float32
# Abramowitz & Stegun 7.1.26: erf(z) = 1 - (a1 t + ... + a5 t^5) exp(-z^2), t = 1 / (1 + p z), z >= 0, with
# |error| <= 1.5e-7, below float32's resolution of values near 1 (6e-8 .. 1.2e-7)
_P = _F(0.3275911)
_A1, _A2, _A3, _A4, _A5 = _F(0.254829592), _F(-0.284496736), _F(1.421413741), _F(-1.453152027), _F(1.061405429)
_SQRT_HALF = _F(0.7071067811865476)


@njit(parallel=True, boundscheck=False, nogil=True, cache=True)
def gelu_erf(x, out):
    """out = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, BERT's "gelu", in float32 with erf to within 1.5e-7."""
    for i in prange(x.shape[0]):
        v = x[i]
        z = abs(v) * _SQRT_HALF
        t = _F(1.0) / (_F(1.0) + _P * z)
        tail = ((((_A5 * t + _A4) * t + _A3) * t + _A2) * t + _A1) * t * np.exp(-z * z)  # 1 - erf(z)
        out[i] = v * (_F(1.0) - _F(0.5) * tail) if v >= 0 else _F(0.5) * v * tail

"""QuantizedLinear: a float Linear layer stored as int8 weights, run with the exact int8 GEMM."""

from __future__ import annotations

import numpy as np

from . import _backend
from ._validate import as_matrix, finite, threads_arg
from .kernels import pack_s8


class QuantizedLinear:
    """``y = x @ weight.T + bias`` with weight stored as int8 and per-output-channel symmetric scales.

    Activations are quantized dynamically, per row of ``x``, to int8 (scale = max|row| / 127, round half
    to even); the product is the exact int8 GEMM; the int32 result is rescaled by row scale x channel
    scale and the bias added, all in float32. Build it with :meth:`from_float`.
    """

    def __init__(self, *_args, **_kwargs):
        raise TypeError("use QuantizedLinear.from_float(weight, bias=None, bits=8)")

    @classmethod
    def from_float(cls, weight: np.ndarray, bias: np.ndarray | None = None, bits: int = 8) -> QuantizedLinear:
        """Quantizes float ``weight`` (N, K) per output channel to int8; ``bias`` is float (N,) or None."""
        if bits != 8:
            raise ValueError(f"bits must be 8 (int4 weights come in a later release), got {bits!r}")
        w = as_matrix(weight, "weight", np.float32, convert_float=True)
        finite(w, "weight")
        if bias is not None:
            if not isinstance(bias, np.ndarray) or not np.issubdtype(bias.dtype, np.floating):
                raise TypeError("bias must be a float numpy array of shape (N,) or None")
            if bias.shape != (w.shape[0],):
                raise ValueError(f"bias must have shape ({w.shape[0]},), got {bias.shape}")
            bias = np.ascontiguousarray(bias, dtype=np.float32)
            finite(bias, "bias")
        amax = np.abs(w).max(axis=1)
        # a channel with max|w| < 2**-119 (its scale would be subnormal) is a zero channel, as in
        # quantize_rows_s8
        live = amax >= np.float32(2.0**-119)
        scales = np.where(live, amax / np.float32(127.0), np.float32(1.0)).astype(np.float32)
        q = np.where(live[:, None], np.clip(np.rint(w / scales[:, None]), -127, 127), 0).astype(np.int8)
        self = object.__new__(cls)
        self.weight_q = q
        self.weight_scales = scales
        self.bias = bias
        self.bits = bits
        self._packed = pack_s8(q)
        return self

    @property
    def in_features(self) -> int:
        return self.weight_q.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight_q.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the stored parameters: int8 weights, float32 scales and bias."""
        return self.weight_q.nbytes + self.weight_scales.nbytes + (self.bias.nbytes if self.bias is not None else 0)

    def dequantize(self) -> np.ndarray:
        """The float32 weight this layer effectively multiplies by: int8 codes x channel scales."""
        return self.weight_q.astype(np.float32) * self.weight_scales[:, None]

    def __call__(self, x: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """float32 ``x`` (M, K) -> float32 (M, N). Other float dtypes are converted; NaN/Inf are refused."""
        x = as_matrix(x, "x", np.float32, convert_float=True)
        if x.shape[1] != self.in_features:
            raise ValueError(f"x has {x.shape[1]} features but the layer expects {self.in_features}")
        nthreads = threads_arg(threads)
        if self._packed.backend == "native":
            return _backend._core.linear_s8(x, self._packed._native, self.weight_scales, self.bias, nthreads)
        nb = _backend.numba_kernels()
        m = x.shape[0]
        q = np.empty(x.shape, dtype=np.int8)
        row_scales = np.empty(m, dtype=np.float32)
        acc = np.empty((m, self.out_features), dtype=np.int32)
        out = np.empty((m, self.out_features), dtype=np.float32)
        bias = self.bias if self.bias is not None else np.empty(0, dtype=np.float32)
        with nb.threads(nthreads):
            if not nb.quantize_rows_s8(x, q, row_scales):
                raise ValueError("x contains NaN or Inf")
            nb.gemm_s8s8_s32(q, self._packed._rows, acc)
            nb.dequantize_s32_f32(acc, row_scales, self.weight_scales, bias, out)
        return out

    def __repr__(self) -> str:
        return (
            f"QuantizedLinear(in_features={self.in_features}, out_features={self.out_features}, "
            f"bits={self.bits}, bias={self.bias is not None}, backend={self._packed.backend!r})"
        )

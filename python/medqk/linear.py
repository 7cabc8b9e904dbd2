"""QuantizedLinear: a float Linear layer stored as int8 weights, run with the exact int8 GEMM."""

from __future__ import annotations

import numpy as np

from . import _backend, _container
from ._errors import LayerFileError
from ._validate import as_matrix, finite, threads_arg
from .kernels import _row_major, pack_s8

# the layer file: medqk's container (medqk/_container.py) with its own magic and version
MAGIC = b"MEDQKLIN"
VERSION = 1


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
        return cls._int8(q, scales, bias)

    @classmethod
    def _int8(cls, weight_q: np.ndarray, weight_scales: np.ndarray, bias: np.ndarray | None) -> QuantizedLinear:
        self = object.__new__(cls)
        self.weight_q = weight_q
        self.weight_scales = weight_scales
        self.bias = bias
        self.bits = 8
        self._packed = pack_s8(weight_q)
        return self

    def save(self, path) -> None:
        """Writes the layer to ``path`` (medqk's checksummed container, written atomically: a failed save
        leaves any existing file untouched). :meth:`load` reads it back on any machine and backend."""
        _container.write(path, MAGIC, VERSION, *self._state())

    @classmethod
    def load(cls, path) -> QuantizedLinear:
        """Reads a layer written by :meth:`save`; a file that is not one, or is truncated or corrupt, raises
        :class:`medqk.LayerFileError` naming the file and the problem."""
        header, arrays = _container.read(path, MAGIC, VERSION, "a medqk layer file", LayerFileError)
        return cls._from_state(header, arrays, repr(str(path)), LayerFileError)

    def _state(self) -> tuple[dict, dict]:
        """(JSON-able description, arrays) of the layer: what :meth:`_from_state` rebuilds it from (a layer
        file, or one layer of a model file)."""
        meta = {"scheme": "int8", "bits": self.bits, "in_features": self.in_features,
                "out_features": self.out_features, "bias": self.bias is not None}
        arrays = {"weight_q": self.weight_q, "weight_scales": self.weight_scales}
        if self.bias is not None:
            arrays["bias"] = self.bias
        return meta, arrays

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict, where: str, error: type[Exception]) -> QuantizedLinear:
        """The layer :meth:`_state` described; anything inconsistent raises ``error`` naming ``where``."""
        try:
            n, k = int(meta["out_features"]), int(meta["in_features"])
            scheme, has_bias = meta["scheme"], bool(meta["bias"])
        except (KeyError, TypeError, ValueError) as exc:
            raise error(f"{where} has a corrupt header ({exc!r})") from None
        if scheme != "int8":
            raise error(f"{where} holds a {scheme!r} layer; this medqk reads 'int8' layers")
        expected = {"weight_q": ((n, k), np.int8), "weight_scales": ((n,), np.float32)}
        if has_bias:
            expected["bias"] = ((n,), np.float32)
        for key, (shape, dtype) in expected.items():
            arr = arrays.get(key)
            if arr is None or arr.shape != shape or arr.dtype != dtype:
                got = "missing" if arr is None else f"{arr.dtype.name} {arr.shape}"
                raise error(f"{where} has a corrupt layer: {key} should be {np.dtype(dtype).name} {shape}, got {got}")
        if set(arrays) != set(expected):
            raise error(f"{where} has a corrupt layer: unexpected arrays {sorted(set(arrays) - set(expected))}")
        scales, bias = arrays["weight_scales"], arrays.get("bias")
        if not np.isfinite(scales).all() or (scales <= 0).any() or (bias is not None and not np.isfinite(bias).all()):
            raise error(f"{where} has a corrupt layer: scales must be finite and > 0, bias finite")
        return cls._int8(arrays["weight_q"], scales, bias)

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

    def _rows(self, x) -> tuple[np.ndarray, tuple[int, ...]]:
        """``x`` (..., K) as the (M, K) float32 matrix the kernels read, and its leading shape.

        Copies at most once: a float dtype other than float32 is converted to C order; a float32 array whose
        leading dimensions collapse into one row stride with contiguous rows (C order, x[::2], x[:, :, :K] of
        a wider array, ...) is passed as a view to the native kernel; anything else (Fortran order, negative
        strides, axes swapped) is copied to C order.
        """
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy.ndarray of a float dtype, got {type(x).__name__}")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"x must have a float dtype (float32 is used as is), got {x.dtype.name}")
        if x.ndim == 0:
            raise ValueError(f"x must have shape (..., {self.in_features}), got a 0-D array")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x has {x.shape[-1]} features but the layer expects {self.in_features}")
        lead = x.shape[:-1]
        if x.dtype != np.float32:
            x = x.astype(np.float32, order="C")
        # a view when the leading axes collapse into one stride, else numpy's one copy in C order
        x = x.reshape(-1, self.in_features)
        return _row_major(x, native=self._packed.backend == "native"), lead

    def __call__(self, x: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """float ``x`` (..., K) -> float32 (..., N), as ``torch.nn.Linear``: any leading dimensions, a 1-D
        ``x`` (K,) gives (N,). Other float dtypes are converted to float32 and the result is always float32.
        Any strides are taken (a copy is made only when rows are not contiguous in memory, see
        :meth:`_rows`); NaN/Inf are refused."""
        x, lead = self._rows(x)
        nthreads = threads_arg(threads)
        m = x.shape[0]
        if m == 0:  # an empty batch, as torch.nn.Linear: an empty result
            return np.empty((*lead, self.out_features), dtype=np.float32)
        if self._packed.backend == "native":
            out = _backend._core.linear_s8(x, self._packed._native, self.weight_scales, self.bias, nthreads)
            return out.reshape(*lead, self.out_features)
        nb = _backend.numba_kernels()
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
        return out.reshape(*lead, self.out_features)

    def __repr__(self) -> str:
        return (
            f"QuantizedLinear(in_features={self.in_features}, out_features={self.out_features}, "
            f"bits={self.bits}, bias={self.bias is not None}, backend={self._packed.backend!r})"
        )

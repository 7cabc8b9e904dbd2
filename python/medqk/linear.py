"""QuantizedLinear: a float Linear layer stored as int8, int4, nf4 or codebook weights, run on medqk's kernels."""

from __future__ import annotations

import numpy as np

from . import _backend, _container
from ._errors import LayerFileError
from ._validate import as_matrix, finite, threads_arg
from .kernels import _row_major, pack_s8

# the layer file: medqk's container (medqk/_container.py) with its own magic and version
MAGIC = b"MEDQKLIN"
VERSION = 1
SCHEMES = ("int8", "int4", "nf4", "codebook")


class QuantizedLinear:
    """``y = x @ weight.T + bias`` with the weight stored quantized. Build it with :meth:`from_float`.

    Activations are quantized dynamically, per row of ``x``, to int8 (scale = max|row| / 127, round half to
    even). ``scheme="int8"``: int8 weights with one symmetric scale per output channel, the exact int8 GEMM, the
    int32 result rescaled by row scale x channel scale and the bias added, in float32. ``"int4"``, ``"nf4"``,
    ``"codebook"`` (4, 3 or 2 bits): the weight in medqk.weights' layout (16-entry int8 level tables, a float
    scale per group), run by the W4A8 kernel: int8 activations times the looked-up levels, exact int32 per
    group, then scaled per group and row in float32 (:func:`medqk.kernels.gemm_w4a8_f32`).
    """

    def __init__(self, *_args, **_kwargs):
        raise TypeError("use QuantizedLinear.from_float(weight, bias=None, bits=8)")

    @classmethod
    def from_float(cls, weight: np.ndarray, bias: np.ndarray | None = None, bits: int = 8,
                   scheme: str | None = None, *, group_size: int | None = 32, symmetric: bool = True,
                   calib: np.ndarray | None = None, hessian: np.ndarray | None = None, damp: float = 0.01,
                   codebook_method: str = "optimal", weighted_codebook: bool = False) -> QuantizedLinear:
        """Quantizes float ``weight`` (N, K); ``bias`` is float (N,) or None.

        ``bits`` / ``scheme``: 8 / "int8" (the default: per-channel int8), 4 / "int4" (groups of
        ``group_size`` along K, ``symmetric`` or with zero points), 4 / "nf4", 4, 3 or 2 / "codebook" (2**bits
        levels fitted per output channel, ``codebook_method`` "optimal" or "lloyd"). ``scheme`` defaults to
        int8 for 8 bits, int4 for 4 and codebook for 3 and 2. ``calib`` (activations (M, K) the layer sees) or
        ``hessian`` switch the 4-bit and lower schemes to GPTQ rounding (``damp``: see
        :func:`medqk.quantize_weights`, which documents every format and option).

        int8 with ``calib``: per-input-channel smoothing (SmoothQuant, Xiao et al. 2023, with alpha = 0.5).
        Channel j gets s_j = sqrt(max|calib[:, j]| / max|weight[:, j]|) (1 where either is 0). The layer
        quantizes ``x / s`` per row and stores ``weight * s`` per output channel, so activation outlier
        channels no longer take the resolution of the others. Only each channel's max over ``calib`` is
        used, so a (1, K) row of maxima is enough. ``input_scale`` (1 / s) is stored with the layer.
        """
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits not in (8, 4, 3, 2):
            raise ValueError(f"bits must be 8, 4, 3 or 2, got {bits!r}")
        if scheme is None:
            scheme = {8: "int8", 4: "int4"}.get(int(bits), "codebook")
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
        if (scheme == "int8") != (bits == 8):
            raise ValueError(f"scheme {scheme!r} does not take bits={bits} (int8 is 8 bits; int4 and nf4 are 4; "
                             "codebook is 4, 3 or 2)")
        w = as_matrix(weight, "weight", np.float32, convert_float=True)
        finite(w, "weight")
        if bias is not None:
            if not isinstance(bias, np.ndarray) or not np.issubdtype(bias.dtype, np.floating):
                raise TypeError("bias must be a float numpy array of shape (N,) or None")
            if bias.shape != (w.shape[0],):
                raise ValueError(f"bias must have shape ({w.shape[0]},), got {bias.shape}")
            bias = np.ascontiguousarray(bias, dtype=np.float32)
            finite(bias, "bias")
        if scheme != "int8":
            from .weights import quantize_weights

            qw = quantize_weights(w, scheme=scheme, bits=int(bits), group_size=group_size, symmetric=symmetric,
                                  calib=calib, hessian=hessian, damp=damp, codebook_method=codebook_method,
                                  weighted_codebook=weighted_codebook)
            return cls._grouped(qw, bias)
        if hessian is not None:
            raise ValueError("hessian (GPTQ) applies to the 4-, 3- and 2-bit schemes, not to int8")
        input_scale = None
        if calib is not None:
            x = as_matrix(calib, "calib", np.float32, convert_float=True)
            if x.shape[1] != w.shape[1]:
                raise ValueError(f"calib has {x.shape[1]} features but weight has {w.shape[1]}")
            finite(x, "calib")
            xmax, wmax = np.abs(x).max(axis=0).astype(np.float64), np.abs(w).max(axis=0).astype(np.float64)
            live_in = (xmax > 0) & (wmax > 0)
            s = np.where(live_in, np.sqrt(xmax / np.where(live_in, wmax, 1.0)), 1.0)
            w = np.ascontiguousarray(w * s.astype(np.float32)[None, :], dtype=np.float32)
            input_scale = (1.0 / s).astype(np.float32)
        amax = np.abs(w).max(axis=1)
        # a channel with max|w| < 2**-119 (its scale would be subnormal) is a zero channel, as in
        # quantize_rows_s8
        live = amax >= np.float32(2.0**-119)
        scales = np.where(live, amax / np.float32(127.0), np.float32(1.0)).astype(np.float32)
        q = np.where(live[:, None], np.clip(np.rint(w / scales[:, None]), -127, 127), 0).astype(np.int8)
        return cls._int8(q, scales, bias, input_scale)

    @classmethod
    def _grouped(cls, qweight, bias: np.ndarray | None) -> QuantizedLinear:
        from .kernels import pack_w4

        self = object.__new__(cls)
        self.scheme = qweight.scheme
        self.bits = qweight.bits
        self.qweight = qweight
        self.bias = bias
        self._packed = pack_w4(qweight.codes, qweight.levels, qweight.kernel_group_size)
        self._scales = np.ascontiguousarray(qweight.scales)  # float32 (N, G), checked by QuantizedWeight
        self._zeros = None if qweight.zeros is None else np.ascontiguousarray(qweight.zeros)
        self.input_scale = None
        return self

    @classmethod
    def _int8(cls, weight_q: np.ndarray, weight_scales: np.ndarray, bias: np.ndarray | None,
              input_scale: np.ndarray | None = None) -> QuantizedLinear:
        self = object.__new__(cls)
        self.scheme = "int8"
        self.input_scale = input_scale  # (K,) float32 that x is multiplied by before quantizing, or None
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
        file, or one layer of a model file). 4-bit and lower codes are stored two to a byte (low nibble first)."""
        meta = {"scheme": self.scheme, "bits": self.bits, "in_features": self.in_features,
                "out_features": self.out_features, "bias": self.bias is not None}
        if self.scheme == "int8":
            arrays = {"weight_q": self.weight_q, "weight_scales": self.weight_scales}
            if self.input_scale is not None:
                arrays["input_scale"] = self.input_scale
        else:
            qw = self.qweight
            meta["group_size"] = qw.group_size
            codes = qw.codes if qw.shape[1] % 2 == 0 else np.pad(qw.codes, ((0, 0), (0, 1)))
            arrays = {"codes": codes[:, 0::2] | (codes[:, 1::2] << 4), "levels": qw.levels, "scales": qw.scales}
            if qw.zeros is not None:
                arrays["zeros"] = qw.zeros
        if self.bias is not None:
            arrays["bias"] = self.bias
        return meta, arrays

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict, where: str, error: type[Exception]) -> QuantizedLinear:
        """The layer :meth:`_state` described; anything inconsistent raises ``error`` naming ``where``."""
        try:
            n, k = int(meta["out_features"]), int(meta["in_features"])
            scheme, bits, has_bias = meta["scheme"], int(meta["bits"]), bool(meta["bias"])
            group_size = meta.get("group_size")
        except (KeyError, TypeError, ValueError) as exc:
            raise error(f"{where} has a corrupt header ({exc!r})") from None
        if scheme not in SCHEMES:
            raise error(f"{where} holds a {scheme!r} layer; this medqk reads {', '.join(SCHEMES)} layers")
        if scheme == "int8":
            expected = {"weight_q": ((n, k), np.int8), "weight_scales": ((n,), np.float32)}
            if "input_scale" in arrays:
                expected["input_scale"] = ((k,), np.float32)
        else:
            expected = {"codes": ((n, (k + 1) // 2), np.uint8), "levels": ((n, 16), np.int8)}
            if "zeros" in arrays:
                expected["zeros"] = (arrays["zeros"].shape, np.int8)  # shape checked by QuantizedWeight
            expected["scales"] = (arrays["scales"].shape if "scales" in arrays else (n, 1), np.float32)
        if has_bias:
            expected["bias"] = ((n,), np.float32)
        for key, (shape, dtype) in expected.items():
            arr = arrays.get(key)
            if arr is None or arr.shape != shape or arr.dtype != dtype:
                got = "missing" if arr is None else f"{arr.dtype.name} {arr.shape}"
                raise error(f"{where} has a corrupt layer: {key} should be {np.dtype(dtype).name} {shape}, got {got}")
        if set(arrays) != set(expected):
            raise error(f"{where} has a corrupt layer: unexpected arrays {sorted(set(arrays) - set(expected))}")
        bias = arrays.get("bias")
        if bias is not None and not np.isfinite(bias).all():
            raise error(f"{where} has a corrupt layer: bias must be finite")
        if scheme == "int8":
            scales = arrays["weight_scales"]
            if not np.isfinite(scales).all() or (scales <= 0).any():
                raise error(f"{where} has a corrupt layer: scales must be finite and > 0")
            input_scale = arrays.get("input_scale")
            if input_scale is not None and (not np.isfinite(input_scale).all() or (input_scale <= 0).any()):
                raise error(f"{where} has a corrupt layer: input_scale must be finite and > 0")
            return cls._int8(arrays["weight_q"], scales, bias, input_scale)
        from .weights import QuantizedWeight

        packed = arrays["codes"]
        codes = np.empty((n, packed.shape[1] * 2), dtype=np.uint8)
        codes[:, 0::2], codes[:, 1::2] = packed & 15, packed >> 4
        try:
            qw = QuantizedWeight(scheme=scheme, bits=bits, group_size=group_size,
                                 codes=np.ascontiguousarray(codes[:, :k]), levels=arrays["levels"],
                                 scales=arrays["scales"], zeros=arrays.get("zeros"), shape=(n, k))
        except (TypeError, ValueError) as exc:
            raise error(f"{where} has a corrupt layer: {exc}") from None
        return cls._grouped(qw, bias)

    @property
    def in_features(self) -> int:
        return self.weight_q.shape[1] if self.scheme == "int8" else self.qweight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight_q.shape[0] if self.scheme == "int8" else self.qweight.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the stored parameters: int8 weights and float32 scales, or the 4-bit and lower format's
        true storage (:attr:`medqk.QuantizedWeight.nbytes`: codes at ``bits`` bits, tables, scales, zero
        points), and the float32 bias."""
        bias = self.bias.nbytes if self.bias is not None else 0
        if self.scheme == "int8":
            smooth = self.input_scale.nbytes if self.input_scale is not None else 0
            return self.weight_q.nbytes + self.weight_scales.nbytes + bias + smooth
        return self.qweight.nbytes + bias

    def dequantize(self) -> np.ndarray:
        """The float32 weight this layer effectively multiplies by: codes x scales (x levels, - zero points)."""
        if self.scheme == "int8":
            w = self.weight_q.astype(np.float32) * self.weight_scales[:, None]
            return w if self.input_scale is None else w * self.input_scale[None, :]
        from .weights import dequantize

        return dequantize(self.qweight)

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
        if self.input_scale is not None:  # the smoothing of from_float(calib=): x / s, one new C-order array
            x = x * self.input_scale
        if self.scheme != "int8":
            from .kernels import _gemm_w4a8_f32_checked, quantize_rows_s8

            # the tables were checked once, when QuantizedWeight was built; the activations' codes and row
            # scales come from quantize_rows_s8: no per-call scan of scales, zeros or bias
            q, row_scales = quantize_rows_s8(x)
            out = _gemm_w4a8_f32_checked(q, row_scales, self._packed, self._scales, self._zeros, self.bias,
                                         nthreads)
            return out.reshape(*lead, self.out_features)
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
            f"scheme={self.scheme!r}, bits={self.bits}, bias={self.bias is not None}, "
            f"backend={self._packed.backend!r})"
        )

"""4-bit (and 3-, 2-bit) weights: the formats, :func:`quantize_weights` and :func:`dequantize`.

Every format is one layout, the contract the W4A8 kernels read. For W (N, K) with groups of ``group_size``
along K (G = ceil(K / group_size), the last group may be partial; ``group_size=None`` is one group per row):

    W_hat[n, k] = scales[n, g] * (levels[n, codes[n, k]] - zeros[n, g])      with g = k // group_size

    codes   uint8 (N, K), each < 2**bits
    levels  int8 (N, 16), entries in [-127, 127]; entries >= 2**bits are 0 (unused)
    scales  float32 (N, G), finite, >= 0
    zeros   int8 (N, G) in [0, 15], or None (only asymmetric int4 has them)

Schemes (``scheme=``):

- ``"int4"`` symmetric: levels -8..7 (code c is the level c - 8) in every row, no zero point. The scale of a
  group is the smallest that clips nothing: ``max(max(w) / 7, -min(w) / 8)`` (0 for an all-zero group), so the
  group's values lie in [-8 s, 7 s], and whichever of max(w) / 7 and -min(w) / 8 sets s is represented
  exactly (by the level 7 or -8).
- ``"int4"`` asymmetric (``symmetric=False``): levels 0..15, zero point z in [0, 15]; as in the GPTQ reference
  code the range is widened to contain 0: lo = min(min(w), 0), hi = max(max(w), 0), s = (hi - lo) / 15,
  z = round(-lo / s), so values lie in [-z s, (15 - z) s] and 0 is exact.
- ``"nf4"``: QLoRA's NormalFloat table (Dettmers et al. 2023, the 16 quantiles of N(0, 1) scaled to [-1, 1],
  0 exact) with blockwise absmax. The kernels multiply int8 levels, so the table stored (and used here, for
  rounding too) is ``round(127 * NF4)`` and the scale ``absmax / 127``: ``W_hat = absmax * round(127 nf) / 127``,
  each level within 0.5/127 of QLoRA's float level (times absmax), the end levels +-absmax exact.
- ``"codebook"``: 2**bits levels (16, 8, 4 for bits 4, 3, 2) per output channel, fitted to the row by
  :func:`medqk.codebook.fit_1d` ("optimal": the exact minimum of the squared error; or "lloyd"), stored as int8
  with a float scale. ``group_size=None``: one scale per row, ``s = max|level| / 127``, the row's levels
  ``round(level / s)``. With a ``group_size``: each group is first divided by its own scale ``absmax / 127``,
  and the row's levels are fitted to the scaled values (so they are in [-127, 127] already, then rounded).
  ``weighted_codebook=True`` weights each weight by its input's activation energy ``diag(H)`` (needs ``calib``
  or ``hessian``).

Int8 weights (8 bits, one scale per channel) are not a scheme here: use ``QuantizedLinear.from_float(w,
bits=8)``, which stores them in the int8 GEMM's own layout.

Rounding: without ``calib``/``hessian`` every weight goes to the nearest value of its group's grid
``scales[n, g] * (levels[n, :] - zeros[n, g])`` (a tie goes to the lower value): round to nearest (RTN). With
them, GPTQ (:mod:`medqk.gptq`) rounds the columns in order and pushes each column's error onto the columns not
yet rounded; int4 and nf4 fix a group's scale (and zero) from the group's weights as updated when its first
column is reached; codebooks are fitted to the original rows first and GPTQ rounds onto them.

Storage (``QuantizedWeight.nbytes``): codes at ``bits`` bits each, int4 zero points at 4 bits each, float32
scales, int8 levels: one table of 2**bits for int4 and nf4 (the same row everywhere), N tables for codebooks.
Bits per weight for K = 384 (a MiniLM layer): int4 sym g32 5.0, g128 4.25; asym g32 5.125, g128 4.28; nf4
g64 4.5; codebook 4 bits per row 4 + (16 * 8 + 32) / K = 4.42 (4.10 at K = 1536), with g128 scales 4.58.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import codebook as _codebook

__all__ = ["NF4", "SCHEMES", "QuantizedWeight", "dequantize", "quantize_weights"]

SCHEMES = ("int4", "nf4", "codebook")

# QLoRA's NF4 data type (Dettmers et al. 2023, appendix E / bitsandbytes): the 16 levels in [-1, 1]
NF4 = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
])
NF4_INT8 = np.rint(127 * NF4).astype(np.int8)
INT4_SYM_LEVELS = np.arange(-8, 8, dtype=np.int8)
INT4_ASYM_LEVELS = np.arange(16, dtype=np.int8)


@dataclasses.dataclass(frozen=True, eq=False)
class QuantizedWeight:
    """A weight matrix (N, K) in the shared W4A8 layout (see the module docstring for the formula).

    ``group_size`` None means one group spanning each row (G = 1); the kernels, which want a multiple of 32,
    take :attr:`kernel_group_size` then. The arrays are checked against the contract on construction.
    """

    scheme: str
    bits: int
    group_size: int | None
    codes: np.ndarray
    levels: np.ndarray
    scales: np.ndarray
    zeros: np.ndarray | None
    shape: tuple[int, int]

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if self.bits not in (2, 3, 4):
            raise ValueError(f"bits must be 2, 3 or 4, got {self.bits!r}")
        _check_group_size(self.group_size)
        n, k = self.shape
        g = self.n_groups
        _check_array(self.codes, "codes", np.uint8, (n, k))
        _check_array(self.levels, "levels", np.int8, (n, 16))
        _check_array(self.scales, "scales", np.float32, (n, g))
        if int(self.codes.max()) >= 2**self.bits:
            raise ValueError(f"codes must be < 2**bits = {2**self.bits}")
        if int(self.levels.min()) < -127 or (self.levels[:, 2**self.bits:] != 0).any():
            raise ValueError("levels must be in [-127, 127] with the entries >= 2**bits equal to 0")
        if not np.isfinite(self.scales).all() or (self.scales < 0).any():
            raise ValueError("scales must be finite and >= 0")
        if self.zeros is not None:
            _check_array(self.zeros, "zeros", np.int8, (n, g))
            if int(self.zeros.min()) < 0 or int(self.zeros.max()) > 15:
                raise ValueError("zeros must be in [0, 15]")

    @property
    def n_groups(self) -> int:
        return 1 if self.group_size is None else -(-self.shape[1] // self.group_size)

    @property
    def kernel_group_size(self) -> int:
        """The group size as the kernels take it: ``group_size``, or K rounded up to a multiple of 32."""
        return self.group_size if self.group_size is not None else -(-self.shape[1] // 32) * 32

    @property
    def nbytes(self) -> int:
        """True storage in bytes: codes at ``bits`` bits, zero points at 4 bits, float32 scales, int8 levels
        (one shared table for int4 and nf4, one per row for codebooks); each part rounded up to whole bytes."""
        n, k = self.shape
        table_rows = n if self.scheme == "codebook" else 1
        total = -(-n * k * self.bits // 8) + table_rows * 2**self.bits + self.scales.size * 4
        if self.zeros is not None:
            total += -(-self.zeros.size // 2)
        return total

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.nbytes / (self.shape[0] * self.shape[1])


def _check_array(a, name: str, dtype, shape) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != dtype:
        raise TypeError(f"{name} must be a numpy.ndarray of dtype {np.dtype(dtype).name}")
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")


def _check_group_size(group_size) -> None:
    if group_size is None:
        return
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size <= 0 \
            or group_size % 32:
        raise ValueError(f"group_size must be None or a positive multiple of 32, got {group_size!r}")


def _float_matrix(x, name: str, ndim: int = 2) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of a float dtype, got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must have a float dtype, got {x.dtype.name}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return x.astype(np.float64)


def dequantize(qw: QuantizedWeight) -> np.ndarray:
    """W_hat (N, K) float32: ``scales[n, g] * (levels[n, codes[n, k]] - zeros[n, g])``, the integer difference
    exact and one float32 product, as the float kernel computes it."""
    if not isinstance(qw, QuantizedWeight):
        raise TypeError(f"qw must be a QuantizedWeight, got {type(qw).__name__}")
    k = qw.shape[1]
    gidx = np.zeros(k, dtype=np.intp) if qw.group_size is None else np.arange(k) // qw.group_size
    values = np.take_along_axis(qw.levels.astype(np.int32), qw.codes.astype(np.intp), axis=1)
    if qw.zeros is not None:
        values = values - qw.zeros.astype(np.int32)[:, gidx]
    return (qw.scales[:, gidx] * values.astype(np.float32)).astype(np.float32)


class _Grid:
    """The values each weight may round to: levels (N, 16) int8 and per-group scales/zeros, filled in group by
    group (int4, nf4: from the group's weights by :meth:`fix_group`; codebooks: fitted up front)."""

    def __init__(self, scheme: str, bits: int, symmetric: bool, n: int, k: int, group_size: int | None):
        self.scheme, self.bits, self.symmetric = scheme, bits, symmetric
        self.group_size = group_size if group_size is not None else k
        g = -(-k // self.group_size)
        self.levels = np.zeros((n, 16), dtype=np.int8)
        self.scales = np.zeros((n, g), dtype=np.float32)
        self.zeros = np.zeros((n, g), dtype=np.int8) if scheme == "int4" and not symmetric else None
        if scheme == "int4":
            self.levels[:] = INT4_SYM_LEVELS if symmetric else INT4_ASYM_LEVELS
        elif scheme == "nf4":
            self.levels[:] = NF4_INT8
        self._cuts = {}

    def fix_group(self, g: int, w: np.ndarray) -> None:
        """Scale (and zero) of group g from its weights w (N, columns); codebooks have theirs already."""
        if self.scheme == "int4" and self.symmetric:
            s = np.maximum(np.maximum(w.max(axis=1), 0) / 7, np.maximum(-w.min(axis=1), 0) / 8)
            self.scales[:, g] = s
        elif self.scheme == "int4":
            lo, hi = np.minimum(w.min(axis=1), 0), np.maximum(w.max(axis=1), 0)
            s = (hi - lo) / 15
            self.scales[:, g] = s
            self.zeros[:, g] = np.clip(np.rint(np.divide(-lo, s, out=np.zeros_like(s), where=s > 0)), 0, 15)
        elif self.scheme == "nf4":
            self.scales[:, g] = np.abs(w).max(axis=1) / 127
        self._cuts.pop(g, None)

    def values(self, g: int) -> np.ndarray:
        """(N, 2**bits) the sorted float values group g can take (float64 of the float32 scale)."""
        lv = self.levels[:, : 2**self.bits].astype(np.float64)
        if self.zeros is not None:
            lv = lv - self.zeros[:, g : g + 1]
        return self.scales[:, g : g + 1].astype(np.float64) * lv

    def round(self, g: int, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes (N, c) uint8 and their values (N, c) of the nearest grid values to w (N, c), group g."""
        if g not in self._cuts:
            v = self.values(g)
            self._cuts[g] = (v, (v[:, 1:] + v[:, :-1]) / 2)
        v, cuts = self._cuts[g]
        codes = (w[:, :, None] > cuts[:, None, :]).sum(axis=2)
        return codes.astype(np.uint8), np.take_along_axis(v, codes, axis=1)

    def fit_codebooks(self, w: np.ndarray, weights: np.ndarray | None, method: str) -> None:
        """Levels per row (and scales per group or per row) of the codebook scheme, fitted to w (N, K)."""
        n, k = w.shape
        n_levels = 2**self.bits
        gs = self.group_size
        if gs < k:  # per-group scales first, the row's levels fitted to the scaled weights
            g = self.scales.shape[1]
            pad = np.zeros((n, g * gs - k))
            amax = np.abs(np.concatenate([w, pad], axis=1)).reshape(n, g, gs).max(axis=2)
            self.scales[:] = amax / 127
            col_scale = self.scales.astype(np.float64)[:, np.arange(k) // gs]
            u = np.divide(w, col_scale, out=np.zeros_like(w), where=col_scale > 0)
        else:
            u = w
        for r in range(n):
            row_w = weights
            if row_w is not None and gs < k:  # weight of u = w / s in the error of w: s^2 diag(H)
                row_w = weights * col_scale[r] ** 2
                if not row_w.sum() > 0:
                    row_w = None
            lv, _ = _codebook.fit_1d(u[r], n_levels, weights=row_w, method=method)
            if gs < k:
                self.levels[r, :n_levels] = np.clip(np.rint(lv), -127, 127)
            else:
                s = np.float32(np.abs(lv).max() / 127)
                self.scales[r, 0] = s
                self.levels[r, :n_levels] = np.clip(np.rint(lv / s), -127, 127) if s > 0 else 0


def _check_choice(value, name: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def quantize_weights(weight: np.ndarray, *, scheme: str = "int4", bits: int = 4, group_size: int | None = 32,
                     symmetric: bool = True, calib: np.ndarray | None = None, hessian: np.ndarray | None = None,
                     damp: float = 0.01, block_size: int = 128, codebook_method: str = "optimal",
                     weighted_codebook: bool = False) -> QuantizedWeight:
    """Quantizes a float weight matrix (N, K) (N outputs, K inputs) to the shared W4A8 layout.

    Parameters
    ----------
    weight : float (N, K), finite.
    scheme : ``"int4"``, ``"nf4"`` or ``"codebook"`` (see the module docstring; int8: QuantizedLinear).
    bits : 4 for int4 and nf4; 4, 3 or 2 for codebook (16, 8, 4 levels).
    group_size : a positive multiple of 32 (the last group of a row may be partial), or None: one group per row.
    symmetric : int4 only; False gives the asymmetric format with zero points.
    calib : float (M, K) activations the layer sees; with it the rounding is GPTQ on H = 2 X^T X.
    hessian : float (K, K), the symmetric H itself, instead of ``calib``.
    damp : GPTQ adds ``damp * mean(diag(H))`` to the diagonal of H before inverting it (>= 0).
    block_size : GPTQ's column block (the lazy batch of the paper).
    codebook_method : ``"optimal"`` or ``"lloyd"``, the codebook fit (:func:`medqk.codebook.fit_1d`).
    weighted_codebook : codebook only: fit each row with weights ``diag(H)``, the energy of each input (needs
        ``calib`` or ``hessian``).
    """
    from . import gptq as _gptq

    w = _float_matrix(weight, "weight")
    n, k = w.shape
    _check_choice(scheme, "scheme", SCHEMES)
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"bits must be an int, got {bits!r}")
    if scheme == "codebook":
        _check_choice(bits, "bits", (2, 3, 4))
    elif bits != 4:
        raise ValueError(f"bits must be 4 for scheme {scheme!r} (codebooks also take 3 and 2), got {bits!r}")
    _check_group_size(group_size)
    _check_choice(symmetric, "symmetric", (True, False))
    if not symmetric and scheme != "int4":
        raise ValueError(f"symmetric=False (zero points) is int4 only; {scheme} levels are fixed or fitted")
    _check_choice(codebook_method, "codebook_method", _codebook.METHODS)
    _check_choice(weighted_codebook, "weighted_codebook", (True, False))
    if weighted_codebook and scheme != "codebook":
        raise ValueError(f"weighted_codebook applies to scheme 'codebook', not {scheme!r}")
    if calib is not None and hessian is not None:
        raise ValueError("pass calib (activations) or hessian (2 X^T X), not both")
    if weighted_codebook and calib is None and hessian is None:
        raise ValueError("weighted_codebook needs calib or hessian (the weights are diag(H))")
    _gptq.check_options(damp, block_size)

    h = energy = None
    if calib is not None:
        h = _gptq.hessian_from_calib(_float_matrix(calib, "calib"), k)
        source = "calib"
    elif hessian is not None:
        h = _gptq.check_hessian(_float_matrix(hessian, "hessian"), k)
        source = "hessian"
    if h is not None:
        if weighted_codebook and np.diag(h).sum() > 0:
            energy = np.diag(h).copy()  # before the dead inputs get H[k, k] = 1: their weight stays 0
        h, w = _gptq.drop_dead_columns(h, w)

    grid = _Grid(scheme, bits, symmetric, n, k, group_size)
    if scheme == "codebook":
        grid.fit_codebooks(w, energy, codebook_method)
    if h is None:
        codes = _round_to_nearest(w, grid)
    else:
        codes = _gptq.gptq_round(w, h, grid, damp=damp, block_size=block_size, source=source)
    return QuantizedWeight(scheme=scheme, bits=int(bits), group_size=group_size, codes=codes,
                           levels=grid.levels, scales=grid.scales, zeros=grid.zeros, shape=(n, k))


def _round_to_nearest(w: np.ndarray, grid: _Grid) -> np.ndarray:
    n, k = w.shape
    codes = np.empty((n, k), dtype=np.uint8)
    gs = grid.group_size
    for g, k0 in enumerate(range(0, k, gs)):
        grid.fix_group(g, w[:, k0 : k0 + gs])
        codes[:, k0 : k0 + gs] = grid.round(g, w[:, k0 : k0 + gs])[0]
    return codes

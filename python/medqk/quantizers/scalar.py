"""Uniform scalar quantization to signed codes, per dimension or with one global range.

x_d ~ offset_d + scale_d * code_d with code_d an integer in [-qmax, qmax] (qmax = 127 for 8 bits, 7 for
4 bits; the symmetric range keeps -x -> -code exact). ``symmetric`` fixes offset = 0.

Calibration of the clipping range, per dimension (or over all values when ``per_dim=False``):
- ``"minmax"``: the observed range (no clipping error, most rounding error when outliers exist);
- ``"percentile"``: the ``percentile`` and ``100 - percentile`` quantiles (default 0.1 / 99.9);
- ``"mse"``: the clipping range, shrunk from min/max over a grid of 40 fractions, that minimizes the
  reconstruction mean squared error on the training data (Banner et al. 2019, "ACIQ"-style search).

``margin`` then widens the calibrated range by that fraction of its half-width on each side, so that vectors
unlike the training sample (another collection, a later crawl) are clipped less; it costs resolution in
distribution. bench/calibration_study.py measures the trade (the index defaults come from it).
"""

from __future__ import annotations

import numpy as np

CALIBRATIONS = ("minmax", "percentile", "mse")


class ScalarQuantizer:
    def __init__(
        self,
        bits: int = 8,
        *,
        per_dim: bool = True,
        symmetric: bool = False,
        calibration: str = "minmax",
        percentile: float = 0.1,
        margin: float = 0.0,
    ):
        if bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, got {bits!r}")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
        if not 0.0 <= percentile < 50.0:
            raise ValueError(f"percentile must be in [0, 50), got {percentile!r}")
        if not 0.0 <= margin <= 10.0:
            raise ValueError(f"margin must be in [0, 10] (a fraction of the half-range), got {margin!r}")
        self.bits = bits
        self.qmax = 2 ** (bits - 1) - 1
        self.per_dim = per_dim
        self.symmetric = symmetric
        self.calibration = calibration
        self.percentile = percentile
        self.margin = float(margin)
        self.scale: np.ndarray | None = None
        self.offset: np.ndarray | None = None

    @property
    def is_trained(self) -> bool:
        return self.scale is not None

    def config(self) -> dict:
        return {
            "bits": self.bits,
            "per_dim": self.per_dim,
            "symmetric": self.symmetric,
            "calibration": self.calibration,
            "percentile": self.percentile,
            "margin": self.margin,
        }

    def train(self, x: np.ndarray) -> ScalarQuantizer:
        """Fits scale and offset on float32 x (n, d)."""
        data = x if self.per_dim else x.reshape(-1, 1)
        if self.symmetric:  # the range is [-amax, amax]: the margin widens it about 0
            lo, hi = self._calibrated_range(data)
            amax = np.maximum(np.abs(lo), np.abs(hi)) * (1.0 + self.margin)
            offset = np.zeros_like(amax)
            scale = amax / self.qmax
        else:
            lo, hi = self._range(data)
            offset = (hi + lo) / 2
            scale = (hi - lo) / (2 * self.qmax)
        scale = np.where(scale > 0, scale, 1.0)  # a constant dimension: any scale reconstructs it exactly
        d = x.shape[1]
        self.scale = np.broadcast_to(scale.astype(np.float32), (d,)).copy()
        self.offset = np.broadcast_to(offset.astype(np.float32), (d,)).copy()
        return self

    def _range(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self._calibrated_range(data)
        if self.margin:
            half = (np.asarray(hi, dtype=np.float64) - lo) / 2
            lo, hi = lo - self.margin * half, hi + self.margin * half
        return lo, hi

    def _calibrated_range(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.calibration == "percentile" and self.percentile > 0:
            lo = np.percentile(data, self.percentile, axis=0)
            hi = np.percentile(data, 100 - self.percentile, axis=0)
            return lo, hi
        lo, hi = data.min(axis=0).astype(np.float64), data.max(axis=0).astype(np.float64)
        if self.calibration != "mse":
            return lo, hi
        sample = data if data.shape[0] * data.shape[1] <= 4_000_000 else data[:: max(1, data.size // 4_000_000)]
        sample = sample.astype(np.float64)
        best_err = np.full(lo.shape, np.inf)
        best_lo, best_hi = lo.copy(), hi.copy()
        for frac in np.linspace(1.0, 0.3, 40):
            if self.symmetric:
                amax = np.maximum(np.abs(lo), np.abs(hi)) * frac
                c_lo, c_hi = -amax, amax
            else:
                center = (hi + lo) / 2
                half = (hi - lo) / 2 * frac
                c_lo, c_hi = center - half, center + half
            scale = np.where(c_hi > c_lo, (c_hi - c_lo) / (2 * self.qmax), 1.0)
            mid = (c_hi + c_lo) / 2
            codes = np.clip(np.rint((sample - mid) / scale), -self.qmax, self.qmax)
            err = ((codes * scale + mid - sample) ** 2).mean(axis=0)
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best_lo = np.where(better, c_lo, best_lo)
            best_hi = np.where(better, c_hi, best_hi)
        return best_lo, best_hi

    def encode(self, x: np.ndarray) -> np.ndarray:
        """float32 (n, d) -> int8 codes (n, d) in [-qmax, qmax]."""
        self._require_trained()
        codes = np.rint((x - self.offset) / self.scale)
        return np.clip(codes, -self.qmax, self.qmax).astype(np.int8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """int8 codes (n, d) -> float32 reconstruction (n, d)."""
        self._require_trained()
        return codes.astype(np.float32) * self.scale + self.offset

    def _require_trained(self) -> None:
        if self.scale is None:
            raise RuntimeError("the quantizer is not trained: call train(x) first")

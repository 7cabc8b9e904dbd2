"""Per-dimension level tables: uniform 4-bit (``int4``) and trained codebooks (``cb4``, ``cb3``, ``cb2``).

Every codec here maps each dimension d to one of L sorted levels ``levels[d]``; encoding picks the
nearest level. ``int4``: 16 evenly spaced levels between a calibrated lo and hi (minmax, percentile or
MSE-optimal clipping, as for int8). ``cb<b>``: 2**b levels per dimension placed by optimal 1-D k-means
(the exact minimum of the squared error over a sorted, bucketed sample -- the dynamic programming of
:mod:`medqk.codebook` -- then a few Lloyd steps on all the data).

For the 4-bit table scan, codes are grouped into subspaces of 16 entries: one dimension per subspace for
16 or 8 levels; for ``cb2`` two dimensions (4 x 4 levels) share one subspace, so it stores 2 bits/dim.
"""

from __future__ import annotations

import numpy as np

from .._progress import progress_bar
from .._warnings import MIN_VECTORS_PER_LEVEL, kmeans_sample_warning
from ..codebook import distinct_points, lloyd_levels, optimal_levels, pad_levels

_DP_POINTS = 2048  # sorted sample compressed to this many weighted points per dimension
_LLOYD_STEPS = 4


def optimal_levels_1d(values: np.ndarray, k: int) -> np.ndarray:
    """k sorted levels minimizing the squared error of ``values`` (1-D), bucketed to 2048 points.

    The sorted values are averaged in 2048 equal-count buckets, the exact DP of :mod:`medqk.codebook` places
    the levels on those weighted points, and a few Lloyd steps on all the values refine them (the buckets
    blur the cuts a little). At most 2048 values: the exact optimum of :func:`medqk.codebook.fit_1d`.
    """
    v = np.sort(values.astype(np.float64))
    ones = np.ones_like(v)
    uniq, counts = distinct_points(v, ones)
    if uniq.size <= k:  # fewer distinct values than levels: each value is a level
        return pad_levels(uniq, k)
    if v.size > _DP_POINTS:
        edges = np.linspace(0, v.size, _DP_POINTS + 1).astype(np.int64)
        w = np.diff(edges).astype(np.float64)
        x, w = distinct_points(np.add.reduceat(v, edges[:-1]) / w, w)
        centres = optimal_levels(x, w, k)
        return lloyd_levels(uniq, counts, k, init=centres, max_steps=_LLOYD_STEPS)
    return optimal_levels(uniq, counts, k)


class LevelCodec:
    """Per-dimension sorted levels; ``kind`` is ``"uniform"`` (int4) or ``"kmeans"`` (cb*)."""

    def __init__(self, bits: int, kind: str, *, calibration: str = "minmax", percentile: float = 0.1,
                 per_dim: bool = True, eta: float = 1.0, margin: float = 0.0, progress: bool | None = None):
        if bits not in (2, 3, 4):
            raise ValueError(f"bits must be 2, 3 or 4, got {bits!r}")
        if kind not in ("uniform", "kmeans"):
            raise ValueError(f"kind must be 'uniform' or 'kmeans', got {kind!r}")
        from .scalar import CALIBRATIONS

        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
        self.bits, self.kind, self.calibration, self.percentile = bits, kind, calibration, percentile
        if margin and kind != "uniform":
            raise ValueError(f"margin widens the range of uniform levels (int4); {kind} levels follow the data")
        if not 0.0 <= margin <= 10.0:
            raise ValueError(f"margin must be in [0, 10] (a fraction of the half-range), got {margin!r}")
        self.margin = float(margin)
        self.per_dim = per_dim  # False: one set of levels shared by every dimension (a global range)
        if not eta >= 1.0:
            raise ValueError(f"eta must be >= 1 (1: nearest level; > 1: score-aware codes), got {eta!r}")
        self.eta = float(eta)  # weight of the residual's component along x (anisotropic encoding, see encode)
        self.progress = progress  # tqdm bar over the per-dimension fits (None: when stderr is a terminal)
        self.levels: np.ndarray | None = None  # (d, 2**bits) float32, sorted per row

    @property
    def n_levels(self) -> int:
        return 2**self.bits

    @property
    def is_trained(self) -> bool:
        return self.levels is not None

    @property
    def dims_per_subspace(self) -> int:
        return 2 if self.bits == 2 else 1

    def config(self) -> dict:
        config = {"bits": self.bits, "kind": self.kind, "calibration": self.calibration,
                  "percentile": self.percentile, "per_dim": self.per_dim, "eta": self.eta}
        if self.kind == "uniform":  # the option of uniform levels only (create() refuses it for cb*)
            config["margin"] = self.margin
        return config

    # -- the sub-code interface of medqk.index.lut4.FlatLUT4Index ------------------------------------
    def n_sub(self, dim: int) -> int:
        return (dim + 1) // 2 if self.dims_per_subspace == 2 else dim

    def encode_sub(self, x: np.ndarray) -> np.ndarray:
        return self.subspace_codes(self.encode(x))

    def decode_sub(self, sub: np.ndarray) -> np.ndarray:
        if self.dims_per_subspace == 2:
            d = self.levels.shape[0]
            codes = np.empty((sub.shape[0], 2 * sub.shape[1]), dtype=np.uint8)
            codes[:, 0::2], codes[:, 1::2] = sub & 3, sub >> 2
            sub = codes[:, :d]
        return self.decode(sub)

    def state(self) -> tuple[dict, dict]:
        config = {"calibration": self.calibration, "percentile": self.percentile, "per_dim": self.per_dim,
                  "eta": self.eta}
        if self.kind == "uniform":
            config["margin"] = self.margin
        return config, ({"levels": self.levels} if self.levels is not None else {})

    def load_state(self, arrays: dict) -> None:
        if "levels" in arrays:
            self.levels = np.array(arrays["levels"])

    def train(self, x: np.ndarray) -> LevelCodec:
        """Fits the levels of every dimension on x (n, d). k-means levels (cb*) from fewer than 8 values
        per level give a SpecDataWarning (see medqk._warnings.MIN_VECTORS_PER_LEVEL)."""
        L = self.n_levels
        if not self.per_dim:  # fit one set of levels on all values (a sample of at most 1M), use it everywhere
            values = x.reshape(-1, 1)
            if values.shape[0] > 1_000_000:
                values = values[np.random.default_rng(0).choice(values.shape[0], 1_000_000, replace=False)]
            shared = LevelCodec(self.bits, self.kind, calibration=self.calibration, percentile=self.percentile,
                                margin=self.margin, progress=False)
            shared.train(np.ascontiguousarray(values))
            self.levels = np.repeat(shared.levels, x.shape[1], axis=0)
            return self
        if self.kind == "uniform":
            from .scalar import ScalarQuantizer

            sq = ScalarQuantizer(8, calibration=self.calibration, percentile=self.percentile, margin=self.margin)
            lo, hi = sq._range(x)
            steps = np.arange(L) / (L - 1)
            levels = lo[:, None] + (hi - lo)[:, None] * steps[None, :]
        else:
            data = x
            if self.calibration == "percentile" and self.percentile > 0:
                # clip outliers first: they would otherwise pull the outer levels away from the bulk
                lo = np.percentile(x, self.percentile, axis=0)
                hi = np.percentile(x, 100 - self.percentile, axis=0)
                data = np.clip(x, lo, hi)
            # (per_dim=False trains a one-dimension codec on every value: its sample is n * d values)
            kmeans_sample_warning(f"cb{self.bits} ({L} levels per dimension)", x.shape[0], L,
                                  MIN_VECTORS_PER_LEVEL)
            dims = progress_bar(self.progress, x.shape[1], f"cb{self.bits} levels", "dim", range(x.shape[1]))
            levels = np.stack([optimal_levels_1d(data[:, j], L) for j in dims])
        self.levels = np.ascontiguousarray(levels, dtype=np.float32)
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        """float32 (n, d) -> level indices (n, d) uint8: the nearest level per dimension, then, when
        eta > 1, score-aware codes (below)."""
        self._require_trained()
        cuts = (self.levels[:, 1:] + self.levels[:, :-1]) / 2  # (d, L-1)
        codes = np.empty(x.shape, dtype=np.uint8)
        for j in range(x.shape[1]):
            codes[:, j] = np.searchsorted(cuts[j], x[:, j])
        if self.eta > 1.0:
            for i in range(0, x.shape[0], 8192):
                codes[i : i + 8192] = self._anisotropic(x[i : i + 8192], codes[i : i + 8192])
        return codes

    def anisotropic_loss(self, x: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Per vector: eta * (r . u)^2 + |r - (r . u) u|^2, r = x_hat - x, u = x / |x|."""
        x = x.astype(np.float64)
        r = self.decode(codes).astype(np.float64) - x
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        u = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
        rpar = (r * u).sum(axis=1)
        return (self.eta - 1.0) * rpar**2 + (r * r).sum(axis=1)

    def _anisotropic(self, x: np.ndarray, codes: np.ndarray, passes: int = 3) -> np.ndarray:
        """Score-aware codes (the anisotropic loss of ScaNN, Guo et al., ICML 2020): for inner products the
        error along x itself changes a document's score with every query near it, the orthogonal error
        averages out, so the residual's component along x weighs eta times more. Coordinate descent from
        the nearest levels: each dimension moves one level up or down when that lowers
        eta * (r . u)^2 + |r_perp|^2, `passes` times over the dimensions. The levels stay the 1-D optimal
        ones; only the choice among them changes (MedQuAD cb4: R@10 0.951 -> 0.962 with eta = 4)."""
        lv = self.levels.astype(np.float64)
        L = self.n_levels
        x = x.astype(np.float64)
        c = codes.astype(np.int64)
        n, d = x.shape
        r = lv[np.arange(d)[None, :], c] - x
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        u = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
        rpar = (r * u).sum(axis=1)
        w = self.eta - 1.0
        for _ in range(passes):
            for j in range(d):
                cj = c[:, j]
                best = np.zeros(n)
                best_c = cj.copy()
                for step in (-1, 1):
                    nc = np.clip(cj + step, 0, L - 1)
                    delta = lv[j, nc] - lv[j, cj]
                    gain = w * ((rpar + delta * u[:, j]) ** 2 - rpar**2) + 2 * delta * r[:, j] + delta * delta
                    better = gain < best
                    best = np.where(better, gain, best)
                    best_c = np.where(better, nc, best_c)
                delta = lv[j, best_c] - lv[j, cj]
                rpar += delta * u[:, j]
                r[:, j] += delta
                c[:, j] = best_c
        return c.astype(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        self._require_trained()
        return self.levels[np.arange(codes.shape[-1]), codes.astype(np.intp)]

    def subspace_codes(self, codes: np.ndarray) -> np.ndarray:
        """Level indices (n, d) -> 4-bit sub-codes (n, S): one dim per subspace, or two for 2 bits."""
        if self.dims_per_subspace == 1:
            return codes
        d = codes.shape[1]
        padded = np.concatenate([codes, np.zeros((codes.shape[0], d & 1), np.uint8)], axis=1) if d & 1 else codes
        return (padded[:, 0::2] | (padded[:, 1::2] << 2)).astype(np.uint8)

    # -- int8 view: the batched search of medqk.index.lut4 decodes blocks to int8 and uses the int8 GEMM --
    def _int8_scale(self) -> tuple[np.ndarray, np.ndarray]:
        lv = self.levels.astype(np.float64)
        lo, hi = lv.min(axis=1), lv.max(axis=1)
        return (hi + lo) / 2, np.where(hi > lo, (hi - lo) / 254, 1.0)

    def int8_view(self):
        """(sub, dim, table int16 (d, 16), d) for lut4_decode_s8: dimension d decodes to
        round((level - offset[d]) / step[d]), offset the middle of its levels, step 1/254 of their range;
        None for cb2 (two dimensions per sub-code)."""
        self._require_trained()
        if self.dims_per_subspace != 1:
            return None
        offset, step = self._int8_scale()
        d = self.levels.shape[0]
        table = np.zeros((d, 16), dtype=np.int16)
        table[:, : self.n_levels] = np.rint((self.levels - offset[:, None]) / step[:, None])
        idx = np.arange(d, dtype=np.int32)
        return idx, idx, table, d

    def int8_query(self, q: np.ndarray) -> np.ndarray:
        """u with q . x_hat = u . decoded + q . offset (the constant left out)."""
        return np.ascontiguousarray(q * self._int8_scale()[1], dtype=np.float32)

    def tables(self, q: np.ndarray, metric: str, threads: int | None = None) -> np.ndarray:
        """Float tables (nq, S, 16): the contribution of each sub-code to the score of q (higher better).

        ip: q_d * level; l2: 2 q_d level - level^2 (so the sum is 2 q.x_hat - |x_hat|^2).
        """
        lv = self.levels[None, :, :].astype(np.float32)  # (1, d, L)
        t = q[:, :, None] * lv
        if metric == "l2":
            t = 2 * t - lv * lv
        nq, d, L = t.shape
        if self.dims_per_subspace == 2:
            if d & 1:
                t = np.concatenate([t, np.zeros((nq, 1, L), np.float32)], axis=1)
            # joint code c = c0 + 4 * c1 of dims (2s, 2s+1)
            t = (t[:, 0::2, None, :] + t[:, 1::2, :, None]).reshape(nq, -1, 16)
        elif L < 16:
            # unused entries: never indexed, set to the row minimum so they do not widen the u8 range
            t = np.concatenate([t, np.repeat(t.min(axis=2, keepdims=True), 16 - L, axis=2)], axis=2)
        return np.ascontiguousarray(t, dtype=np.float32)

    def _require_trained(self) -> None:
        if self.levels is None:
            raise RuntimeError("the codec is not trained: call train(x) first")

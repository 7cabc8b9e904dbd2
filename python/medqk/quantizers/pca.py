"""``pca<b>``: a PCA rotation, then 4-bit codes spread over the rotated dimensions where they buy the most.

Per-dimension codebooks (``cb4``) give every dimension the same 16 levels. Embedding dimensions are not
equal: after a PCA rotation a few directions carry most of the variance and the last ones almost none.
This codec spends the same budget (``b * d / 4`` nibbles rounded down, e.g. 384 nibbles = 192 B for ``pca4``
at 384-d) unevenly, choosing per rotated dimension, by dynamic programming over the PCA order, one of:

- drop it (0 nibbles; it is reconstructed at the mean),
- ``S1`` / ``S2`` / ``S3``: 1 to 3 nibbles of an additive residual scalar quantizer (stage t has 16 levels
  fitted by optimal 1-D k-means to what stages < t left; a value is encoded by the nearest of the 16**s
  sums of levels, exactly),
- one nibble shared by 2, 3 or 4 consecutive low-variance dimensions: a 16-centroid vector quantizer
  (k-means, as a PQ subspace).

The DP minimises the expected error of inner products with queries distributed like the documents: sum over
dimensions of ``w_d * D_d`` with ``w_d`` the second moment of the data along direction d (the query weight;
for ``l2``, w_d = 1: the reconstruction error) and ``D_d`` the mean squared error of that dimension's option
(measured on the training data for drop / S1-S3; for shared nibbles, the k-means distortion of 16 centroids in
2/3/4 dimensions modelled as 0.117 / 0.247 / 0.354 of the group's variance). On MedQuAD (MiniLM, 384-d, all
dev queries) this reaches R@10 0.975 at 192 B where per-dimension ``cb4`` stops at 0.951.

Every option is a 16-entry table per query, so the codes are scanned by the same 4-bit kernels as
``cb4`` and PQ fast scan (``medqk.index.lut4``). Tables (``ip``): ``q'_d * level`` for a stage of dimension
d with ``q' = q V`` the rotated query, ``<q'_g, centroid>`` for a group, plus the constant ``q . mean`` added
to the first table. ``l2`` uses ``2 q . x_hat - |x_hat|^2`` (the convention of every 4-bit codec here);
|x_hat|^2 splits over the tables except the cross products of the stages of one dimension, whose sum per
vector is stored as two extra nibbles (a 2-stage scalar code, included in the budget).
"""

from __future__ import annotations

import numpy as np

from .._errors import IndexFileError
from .._progress import progress_bar
from .._warnings import MIN_VECTORS_PER_LEVEL, kmeans_sample_warning
from .codebook import optimal_levels_1d

# distortion of 16-centroid k-means on k correlated-free dims, as a fraction of their variance (measured
# on MedQuAD's low-variance PCA dims; the DP uses it only to choose, the real k-means is trained after)
_GROUP_GAIN = {2: 0.1168, 3: 0.2472, 4: 0.3535}
_MAX_STAGES = 3


def _stage_quantizer(values: np.ndarray, n_stages: int) -> tuple[np.ndarray, list[float]]:
    """Additive residual levels (n_stages, 16) of a 1-D sample, and the sequential MSE after each stage."""
    levels = np.zeros((n_stages, 16), dtype=np.float64)
    mse = []
    r = values.astype(np.float64)
    for t in range(n_stages):
        lv = optimal_levels_1d(r, 16)
        cuts = (lv[1:] + lv[:-1]) / 2
        r = r - lv[np.searchsorted(cuts, r)]
        levels[t] = lv
        mse.append(float(np.mean(r * r)))
    return levels, mse


def _stage_sums(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All 16**s sums of one level per stage, sorted, and the code index of each: index j holds stage t's
    level code in bits 4t..4t+3."""
    sums = levels[0].astype(np.float64)
    for t in range(1, levels.shape[0]):
        sums = (levels[t][:, None] + sums[None, :]).reshape(-1)  # index c_t * 16**t + (earlier digits)
    order = np.argsort(sums, kind="stable")
    return sums[order], order


def _encode_stages(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Exact nearest sum of levels: (n,) values -> (n, s) stage codes."""
    s = levels.shape[0]
    sums, order = _stage_sums(levels)
    pos = np.clip(np.searchsorted(sums, values), 1, len(sums) - 1)
    left_better = (values - sums[pos - 1]) <= (sums[pos] - values)
    j = order[np.where(left_better, pos - 1, pos)]
    return np.stack([(j >> (4 * t)) & 15 for t in range(s)], axis=1).astype(np.uint8)


def _principal_axes(xc: np.ndarray) -> np.ndarray:
    """Principal directions (d, r) of centred data xc (n, d), columns by decreasing variance, r = min(n, d):
    the eigenvectors of the covariance (O(n d^2 + d^3)), or, with fewer vectors than dimensions, the right
    singular vectors of xc itself (O(n^2 d)), the same directions without the d x d matrix (d = 4,096 from
    300 vectors, one BLAS thread: 15.8 s of CPU for the covariance and its eigensolver, 0.25 s for the SVD);
    the directions past rank n carry no variance."""
    n, d = xc.shape
    if n >= d:
        lam, vec = np.linalg.eigh(xc.T @ xc / n)
        return vec[:, np.argsort(lam)[::-1]]
    _, _, vt = np.linalg.svd(xc, full_matrices=False)  # singular values come sorted, largest first
    return np.ascontiguousarray(vt.T)


def allocate(weights: np.ndarray, stage_mse: np.ndarray, variances: np.ndarray, budget: int):
    """The DP: options per PCA position minimising sum(weights * error) with at most ``budget`` nibbles.

    stage_mse (d, 3): error after 1, 2, 3 stages; variances (d,): error when dropped.
    Returns a list of (kind, first_dim, size) with kind "drop" (size 1), "stage" (size = stages, 1 dim)
    or "group" (size = dims sharing one nibble), covering 0..d-1 in order.
    """
    d = len(weights)
    inf = np.inf
    # f[i] (the least cost of dims < i per nibble count) is read once, at step i, and written by steps
    # i - 4 .. i - 1: a ring of 5 rows; the choices are one int8 per state, kind * 8 + size (d = 4,096 at
    # pca4: 16 MB, where a (d, budget) float64 table and int64 pairs took 400 MB)
    ring = max(_GROUP_GAIN) + 1
    f = np.full((ring, budget + 1), inf)
    f[0, 0] = 0.0
    choice = np.zeros((d + 1, budget + 1), dtype=np.int8)  # kind * 8 + size of the last step
    wl = weights * variances
    cum = np.concatenate([[0.0], np.cumsum(wl)])
    cand = np.empty(budget + 1)
    for i in range(d):
        row = f[i % ring]
        if np.isfinite(row).any():
            steps = [(0, 1, 0, wl[i])]  # (kind 0 drop / 1 stage / 2 group, size, nibbles, cost)
            steps += [(1, s, s, weights[i] * stage_mse[i, s - 1]) for s in range(1, _MAX_STAGES + 1)]
            steps += [(2, k, 1, _GROUP_GAIN[k] * (cum[i + k] - cum[i])) for k in _GROUP_GAIN if i + k <= d]
            for kind, size, nib, cost in steps:
                end = i + (size if kind == 2 else 1)
                cand[:nib] = inf
                cand[nib:] = row[: budget + 1 - nib] + cost
                target = f[end % ring]
                better = cand < target
                target[better] = cand[better]
                choice[end][better] = kind * 8 + size
        row[:] = inf  # the ring's row for dims < i + 5
    b = int(np.argmin(f[d % ring]))
    plan = []
    i = d
    while i > 0:
        kind, size = divmod(int(choice[i, b]), 8)
        if kind == 2:
            i -= size
            plan.append(("group", i, int(size)))
            b -= 1
        else:
            i -= 1
            plan.append(("drop", i, 1) if kind == 0 else ("stage", i, int(size)))
            b -= int(size) if kind == 1 else 0
    return plan[::-1]


class PCACodec:
    """``pca<bits>``: ``bits * d / 4`` nibbles per vector (rounded down), allocated over PCA directions (see
    the module doc).

    seed / max_iter / max_train as for PQ (the group k-means and the training sample); progress: tqdm bars
    on stderr over the per-dimension level fits and the group k-means (None: when stderr is a terminal).
    """

    # candidates re-scored with the float tables per result: the 7-bit scan tables lose more on pca's
    # wide-ranging stage tables than on cb4 (MedQuAD R@10 with 2k: 0.966, 3k: 0.972, 4k: 0.973; 8-bit 0.974)
    rescore_factor = 4

    def __init__(self, bits: int, dim: int, metric: str = "ip", *, seed: int = 1234, max_iter: int = 25,
                 max_train: int = 65536, progress: bool | None = None):
        if bits not in (2, 3, 4, 5, 6, 8):
            raise ValueError(f"pca bits must be one of 2, 3, 4, 5, 6, 8, got {bits!r}")
        if bits * dim < 4:
            raise ValueError(f"pca{bits} at dim {dim} has no whole nibble to spend (bits * dim / 4 < 1)")
        self.bits, self.dim, self.metric = bits, dim, metric
        self.seed, self.max_iter, self.max_train, self.progress = seed, max_iter, max_train, progress
        self.budget = bits * dim // 4  # whole nibbles: rounded down when bits * dim is not a multiple of 4
        self.mean: np.ndarray | None = None       # (d,) float32
        self.basis: np.ndarray | None = None      # (d, n_kept) float32: kept PCA directions, columns
        self.stage_dim: np.ndarray | None = None  # (n_stage,) int32: kept column of each stage nibble
        self.stage_levels: np.ndarray | None = None  # (n_stage, 16) float32
        self.group_dims: np.ndarray | None = None  # (n_groups, 4) int32 kept columns, -1 padded
        self.group_cents: np.ndarray | None = None  # (n_groups, 16, 4) float32, 0 padded
        self.cross_levels: np.ndarray | None = None  # (2, 16) float32 (l2: the per-vector cross term)
        self.plan: list | None = None  # the allocation of the last train(): (kind, first dim, size) per step

    # -- the sub-code interface of medqk.index.lut4.FlatLUT4Index --------------------------------------
    def n_sub(self, dim: int) -> int:
        return self.budget

    @property
    def is_trained(self) -> bool:
        return self.basis is not None

    def train(self, x: np.ndarray) -> PCACodec:
        n, d = x.shape
        if n < 16:
            raise ValueError(f"pca{self.bits} training needs at least 16 vectors (16 levels per nibble), got {n}")
        kmeans_sample_warning(f"pca{self.bits} (16 levels per nibble)", min(n, self.max_train), 16,
                              MIN_VECTORS_PER_LEVEL)
        rng = np.random.default_rng(self.seed)
        if n > self.max_train:
            x = x[np.sort(rng.choice(n, self.max_train, replace=False))]
        xc = x.astype(np.float64)
        mean = xc.mean(axis=0)
        xc -= mean
        vec = _principal_axes(xc)
        y = xc @ vec
        del xc
        lam = y.var(axis=0)
        d = vec.shape[1]  # min(n, dim): past rank n the training data has no variance left to code
        l2 = self.metric == "l2"
        # the weight of dimension d's error in a score: ip, E[(q . v_d)^2] for queries like the documents
        # (x . v_d = y_d + mean . v_d); l2, plain squared error (near neighbours differ in every direction;
        # weighting by the variance gave R@10 0.847 on the clustered test data, unweighted 0.875)
        weights = np.ones(d) if l2 else np.mean((y + mean @ vec) ** 2, axis=0)
        budget = self.budget - (2 if l2 else 0)
        stage_mse = np.empty((d, _MAX_STAGES))
        stage_lv = []
        # the per-dimension level fits are most of the training time (768-d, 20k vectors: 49 of 64 s)
        for j in progress_bar(self.progress, d, f"pca{self.bits} levels", "dim", range(d)):
            lv, mse = _stage_quantizer(y[:, j], _MAX_STAGES)
            stage_lv.append(lv)
            stage_mse[j] = mse
        plan = allocate(weights, stage_mse, lam, budget)

        kept = sorted({j for kind, i, size in plan if kind != "drop"
                       for j in (range(i, i + size) if kind == "group" else [i])})
        col = {j: c for c, j in enumerate(kept)}
        self.mean = mean.astype(np.float32)
        self.basis = np.ascontiguousarray(vec[:, kept], dtype=np.float32)
        yk = y[:, kept]
        stage_dim, stage_levels = [], []
        cross = np.zeros(len(y))
        for kind, i, size in plan:
            if kind != "stage":
                continue
            # levels from the sequential residual fit; codes (encode_sub) from the joint nearest sum
            lv = stage_lv[i][:size]
            stage_dim += [col[i]] * size
            stage_levels += list(lv)
            if l2 and size > 1:
                codes = _encode_stages(yk[:, col[i]], lv)
                c = lv[np.arange(size)[None, :], codes]
                cross += (c.sum(1) ** 2 - (c * c).sum(1))
        self.stage_dim = np.array(stage_dim, dtype=np.int32)
        self.stage_levels = np.array(stage_levels, dtype=np.float32).reshape(-1, 16)
        groups = [(i, size) for kind, i, size in plan if kind == "group"]
        self.group_dims = np.full((len(groups), 4), -1, dtype=np.int32)
        self.group_cents = np.zeros((len(groups), 16, 4), dtype=np.float32)
        for size in (2, 3, 4):
            idx = [g for g, (i, s) in enumerate(groups) if s == size]
            if not idx:
                continue
            cols = np.array([[col[groups[g][0] + t] for t in range(size)] for g in idx])
            cents = self._group_kmeans(np.ascontiguousarray(yk[:, cols.reshape(-1)], dtype=np.float32), len(idx), size)
            self.group_dims[idx, :size] = cols
            self.group_cents[idx, :, :size] = cents
        self.cross_levels = _stage_quantizer(cross, 2)[0].astype(np.float32) if l2 else np.zeros((0, 16), np.float32)
        self.plan = plan
        return self

    def _group_kmeans(self, data: np.ndarray, n_groups: int, size: int) -> np.ndarray:
        from .pq import PQCodec

        pq = PQCodec(n_groups, n_groups * size, 4, seed=self.seed, max_iter=self.max_iter, max_train=self.max_train,
                     progress=self.progress)
        pq._warn_data = False  # train() warned once for the whole codec, in its own words
        pq._bar_prefix = f"pca{self.bits} groups of {size}: "
        return pq.train(data).centroids

    def _rotate(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) - self.mean) @ self.basis

    def encode_sub(self, x: np.ndarray) -> np.ndarray:
        self._require_trained()
        from ..kernels import pq_assign

        n = x.shape[0]
        y = self._rotate(x).astype(np.float64)
        out = np.zeros((n, self.budget), dtype=np.uint8)
        pos = 2 if self.metric == "l2" else 0
        cross = np.zeros(n)
        t = 0
        ns = len(self.stage_dim)
        while t < ns:  # runs of stages of one dimension
            j = self.stage_dim[t]
            s = 1
            while t + s < ns and self.stage_dim[t + s] == j:
                s += 1
            lv = self.stage_levels[t : t + s].astype(np.float64)
            codes = _encode_stages(y[:, j], lv)
            out[:, pos + t : pos + t + s] = codes
            if s > 1:
                c = lv[np.arange(s)[None, :], codes]
                cross += c.sum(1) ** 2 - (c * c).sum(1)
            t += s
        pos += ns
        for size in (2, 3, 4):
            idx = np.flatnonzero((self.group_dims >= 0).sum(1) == size)
            if len(idx):
                cols = self.group_dims[idx, :size].reshape(-1)
                codes, _ = pq_assign(np.ascontiguousarray(y[:, cols], dtype=np.float32),
                                     np.ascontiguousarray(self.group_cents[idx, :, :size]))
                out[:, pos + idx] = codes
        if self.metric == "l2":
            out[:, :2] = _encode_stages(cross, self.cross_levels.astype(np.float64))
        return out

    def decode_sub(self, sub: np.ndarray) -> np.ndarray:
        self._require_trained()
        n = sub.shape[0]
        y = np.zeros((n, self.basis.shape[1]), dtype=np.float64)
        pos = 2 if self.metric == "l2" else 0
        ns = len(self.stage_dim)
        vals = self.stage_levels[np.arange(ns)[None, :], sub[:, pos : pos + ns].astype(np.intp)]
        np.add.at(y, (slice(None), self.stage_dim), vals)
        for g in range(len(self.group_dims)):
            size = int((self.group_dims[g] >= 0).sum())
            y[:, self.group_dims[g, :size]] += self.group_cents[g, sub[:, pos + ns + g].astype(np.intp), :size]
        return (y @ self.basis.T.astype(np.float64) + self.mean).astype(np.float32)

    def tables(self, q: np.ndarray, metric: str, threads: int | None = None) -> np.ndarray:
        """Float tables (nq, budget, 16): each nibble's contribution to q . x_hat (l2: 2 q . x_hat - |x_hat|^2,
        approximate by the quantized cross term; the index re-scores l2 candidates exactly with the ip tables
        and the stored |x_hat|^2, see ``l2_rescore_by_norms``)."""
        self._require_trained()
        q = np.asarray(q, dtype=np.float32)
        nq = q.shape[0]
        l2 = metric == "l2"
        if l2 and self.metric != "l2":
            raise ValueError("this pca codec was trained for metric 'ip': its codes carry no l2 norm term")
        qr = q @ self.basis  # (nq, n_kept)
        if l2:
            qr -= self.mean @ self.basis  # V^T (q - mean)
        out = np.empty((nq, self.budget, 16), dtype=np.float32)
        pos = 2 if self.metric == "l2" else 0
        ns, ng = len(self.stage_dim), len(self.group_dims)
        out[:, pos + ns + ng :] = 0  # nibbles the allocation left unused (codes 0)
        out[:, :pos] = 0  # the l2 cross term (set below for l2 scores; no part of an inner product)
        lv = self.stage_levels[None]
        st = out[:, pos : pos + ns]
        np.multiply(qr[:, self.stage_dim, None], lv, out=st)
        if l2:
            st *= 2
            st -= lv * lv
        pos += ns
        sizes = (self.group_dims >= 0).sum(1)
        for size in (2, 3, 4):
            idx = np.flatnonzero(sizes == size)
            if len(idx):
                c = self.group_cents[idx, :, :size]  # (G, 16, size)
                # (G, nq, 16)
                t = np.matmul(qr[:, self.group_dims[idx, :size]].transpose(1, 0, 2), c.transpose(0, 2, 1))
                t = t.transpose(1, 0, 2)
                out[:, pos + idx] = 2 * t - np.einsum("gks,gks->gk", c, c)[None] if l2 else t
        if l2:
            out[:, :2] = -self.cross_levels[None]
            const = 2 * q @ self.mean - float(self.mean @ self.mean)
        else:
            const = q @ self.mean
        out[:, 0] += const[:, None]
        return out

    # -- int8 view (batched search: blocks decoded to int8 rotated vectors, then the int8 GEMM) -----------
    def _int8_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """Per kept dimension: the middle and 1/254 of the range of every value its codes can decode to."""
        kept = self.basis.shape[1]
        lo, hi = np.zeros(kept), np.zeros(kept)
        np.add.at(lo, self.stage_dim, self.stage_levels.min(axis=1))
        np.add.at(hi, self.stage_dim, self.stage_levels.max(axis=1))
        for g in range(len(self.group_dims)):
            size = int((self.group_dims[g] >= 0).sum())
            lo[self.group_dims[g, :size]] += self.group_cents[g, :, :size].min(axis=0)
            hi[self.group_dims[g, :size]] += self.group_cents[g, :, :size].max(axis=0)
        return (hi + lo) / 2, np.where(hi > lo, (hi - lo) / 254, 1.0)

    def int8_view(self):
        """(sub, dim, table int16, d_out) for lut4_decode_s8: the rotated coordinates y_hat (kept
        dimensions) as round((y_hat - offset) / step); each stage nibble one entry (the offset in a
        dimension's first stage), each shared nibble one entry per dimension of its group."""
        self._require_trained()
        offset, step = self._int8_scale()
        pos = 2 if self.metric == "l2" else 0
        subs, dims, rows = [], [], []
        seen = set()
        for t, j in enumerate(self.stage_dim):
            first = j not in seen
            seen.add(j)
            subs.append(pos + t)
            dims.append(j)
            rows.append((self.stage_levels[t] - (offset[j] if first else 0.0)) / step[j])
        ns = len(self.stage_dim)
        for g in range(len(self.group_dims)):
            size = int((self.group_dims[g] >= 0).sum())
            for u in range(size):
                j = self.group_dims[g, u]
                subs.append(pos + ns + g)
                dims.append(j)
                rows.append((self.group_cents[g, :, u] - offset[j]) / step[j])
        table = np.rint(np.array(rows)).astype(np.int16).reshape(-1, 16)
        return (np.array(subs, dtype=np.int32), np.array(dims, dtype=np.int32), table, self.basis.shape[1])

    def int8_query(self, q: np.ndarray) -> np.ndarray:
        """u with q . x_hat = u . decoded + (q . mean + (q V) . offset) (the constant left out)."""
        return np.ascontiguousarray((np.asarray(q, dtype=np.float32) @ self.basis) * self._int8_scale()[1],
                                    dtype=np.float32)

    @property
    def l2_rescore_by_norms(self) -> bool:
        """l2 table sums carry the quantized cross term: final l2 scores are 2 (ip sum) - |x_hat|^2."""
        return True

    # -- save / load ---------------------------------------------------------------------------------
    _ARRAYS = ("mean", "basis", "stage_dim", "stage_levels", "group_dims", "group_cents", "cross_levels")

    def state(self) -> tuple[dict, dict]:
        config = {"bits": self.bits, "seed": self.seed, "max_iter": self.max_iter, "max_train": self.max_train}
        arrays = {} if self.basis is None else {a: getattr(self, a) for a in self._ARRAYS}
        return config, arrays

    def load_state(self, arrays: dict) -> None:
        if "basis" not in arrays:
            return

        missing = [a for a in self._ARRAYS if a not in arrays]
        if missing:
            raise IndexFileError(f"corrupt pca codec: missing {', '.join(missing)}")
        vals = {a: np.array(arrays[a]) for a in self._ARRAYS}
        d, kept = vals["basis"].shape
        ns, ng = len(vals["stage_dim"]), len(vals["group_dims"])
        ok = (d == self.dim and vals["mean"].shape == (d,) and vals["stage_levels"].shape == (ns, 16)
              and vals["group_dims"].shape == (ng, 4) and vals["group_cents"].shape == (ng, 16, 4)
              and vals["cross_levels"].shape == ((2, 16) if self.metric == "l2" else (0, 16))
              and ns + ng + (2 if self.metric == "l2" else 0) <= self.budget
              and (ns == 0 or (vals["stage_dim"].min() >= 0 and vals["stage_dim"].max() < kept))
              and (ng == 0 or vals["group_dims"].max() < kept))
        if not ok:
            raise IndexFileError("corrupt pca codec: inconsistent array shapes")
        for a in self._ARRAYS:
            setattr(self, a, vals[a])

    def _require_trained(self) -> None:
        if self.basis is None:
            raise RuntimeError("the codec is not trained: call train(x) first")

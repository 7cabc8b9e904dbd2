"""Product quantization: ``pq<M>x4fs`` (16 centroids per subspace, searched by the 4-bit table scan) and
``pq<M>x8`` (256 centroids, searched by the 8-bit ADC scan).

The d dimensions are cut into M contiguous subspaces of d/M dimensions; each subspace gets 2**nbits centroids
from k-means (k-means++ initialisation, seeded; at most ``max_iter`` Lloyd iterations, stopping when the
relative drop of the error is below ``tol``; an empty cluster takes the point farthest from its centroid
in the largest cluster). Training uses at most ``max_train`` vectors (a seeded sample; default 65,536).
All M subspaces are trained together with array operations.
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from .._errors import IndexFileError
from .._progress import progress_bar
from .._warnings import MIN_VECTORS_PER_CENTROID, kmeans_sample_warning
from ..kernels import pq_assign

_KMEANSPP_BLOCK = 256  # points per block of the k-means++ draw (PQCodec._kmeanspp)


class PQCodec:
    def __init__(self, M: int, dim: int, nbits: int = 4, *, seed: int = 1234, max_iter: int = 25, tol: float = 1e-4,
                 max_train: int = 65536, progress: bool | None = None, eta: float = 1.0):
        if nbits not in (4, 8):
            raise ValueError(f"PQ nbits must be 4 or 8, got {nbits!r}")
        self.nbits = nbits
        if isinstance(M, bool) or not isinstance(M, (int, np.integer)) or M < 1:
            raise ValueError(f"M must be a positive int, got {M!r}")
        if dim % M:
            raise ValueError(f"M={M} does not divide the dimension {dim}: use an M that divides {dim}")
        self.M, self.dsub = int(M), dim // M
        self.seed, self.max_iter, self.tol, self.max_train = seed, max_iter, tol, max_train
        if not eta >= 1.0:
            raise ValueError(f"eta must be >= 1 (1: nearest centroids; > 1: score-aware codes), got {eta!r}")
        self.eta = float(eta)  # weight of the residual's component along x when encoding (see encode_sub)
        # tqdm bars on stderr during training (medqk._progress): None = only when stderr is a terminal
        self.progress = progress
        self._warn_data = True  # SpecDataWarning on a small training sample (off when a codec trains us)
        self._bar_prefix = ""  # before the bars' names when another codec trains us ("pca4 groups: ")
        self.centroids: np.ndarray | None = None  # (M, 2**nbits, dsub) float32
        self.train_error: float | None = None

    @property
    def is_trained(self) -> bool:
        return self.centroids is not None

    def n_sub(self, dim: int) -> int:
        return self.M

    def _split(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], self.M, self.dsub)

    @property
    def n_centroids(self) -> int:
        return 2**self.nbits

    def _assign(self, xs: np.ndarray, cents: np.ndarray):
        """Nearest centroid per (vector, subspace) of xs (n, M, dsub) and its squared distance: the
        pq_assign kernel on the active backend (native or Numba). Codes uint8 (n, M), distances float32."""
        return pq_assign(xs.reshape(xs.shape[0], self.M * self.dsub), cents)

    def _centroid_sums(self, xs: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per (subspace, centroid): float64 sum of the sub-vectors assigned to it (M, K, dsub) and their
        number (M, K), rows added in order (numpy.bincount's sums, which took 0.23 s per iteration for
        65,536 x 96 subspaces; natively 0.01 s)."""
        x2 = np.ascontiguousarray(xs.reshape(xs.shape[0], self.M * self.dsub), dtype=np.float32)
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if _backend.backend == "native":
            return _backend._core.pq_centroid_sums(x2, codes, self.n_centroids, 0)
        from ..kernels import _numba_pq_assign

        sums = np.empty((self.M, self.n_centroids, self.dsub), dtype=np.float64)
        counts = np.empty((self.M, self.n_centroids), dtype=np.int64)
        _numba_pq_assign.pq_centroid_sums(x2, codes, sums, counts)
        return sums, counts

    @property
    def name(self) -> str:
        """The codec as in a spec (progress bars and warnings)."""
        return f"pq{self.M}x{self.nbits}{'fs' if self.nbits == 4 else ''}"

    def train(self, x: np.ndarray) -> PQCodec:
        """Fits the codebooks on x (n, dim): k-means++ seeds, then Lloyd iterations (progress bars: see
        ``progress``). Fewer than ``2**nbits`` vectors raise ValueError; fewer than 2 per centroid give a
        SpecDataWarning (vectors outside the sample would be coded markedly worse: medqk._warnings)."""
        self._check_train_size(x.shape[0])
        rng = np.random.default_rng(self.seed)
        xs = self._split(self._sample(x, rng))
        cents = self._kmeanspp(xs, rng, self.progress)
        cents, err = self._lloyd(xs, cents, self.max_iter, self.progress)
        self.centroids = cents
        self.train_error = err
        return self

    def _check_train_size(self, n: int) -> None:
        n_cent = self.n_centroids
        if n < n_cent:
            raise ValueError(
                f"PQ training needs at least {n_cent} vectors ({n_cent} centroids per subspace), got {n}"
            )
        if self._warn_data:
            kmeans_sample_warning(f"{self.name} ({n_cent} centroids per subspace)", min(n, self.max_train),
                                  n_cent, MIN_VECTORS_PER_CENTROID)

    def _sample(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The training vectors: all of x, or a seeded sample of ``max_train`` rows (in their original order)."""
        n = x.shape[0]
        if n > self.max_train:
            x = x[np.sort(rng.choice(n, self.max_train, replace=False))]
        return np.ascontiguousarray(x, dtype=np.float32)

    def _kmeanspp(self, xs: np.ndarray, rng: np.random.Generator,
                  progress: bool | None = False) -> np.ndarray:
        """k-means++ seeds (M, K, dsub): each next centroid drawn with probability proportional to the
        squared distance to the nearest one already chosen, all subspaces at once.

        Sub-vectors are laid out subspace-major (M, n, dsub); the distance to a new centroid is
        |x|^2 - 2 x.c + |c|^2 (one batched matrix-vector product, clipped at 0); and a draw finds its block
        of 256 points by the blocks' float64 sums, then its point by the running sum within that block.
        The direct (x - c)^2 over (n, M, dsub) and a running sum over all n took 27 of the 31 s of pq48x8
        training on 65,536 vectors (now 3 s)."""
        M, n, n_cent = self.M, xs.shape[0], self.n_centroids
        xt = np.ascontiguousarray(xs.transpose(1, 0, 2), dtype=np.float32)  # (M, n, dsub)
        xnorm = np.einsum("mnd,mnd->mn", xt, xt)
        cents = np.empty((M, n_cent, self.dsub), dtype=np.float32)
        subspaces = np.arange(M)
        B = _KMEANSPP_BLOCK
        nb = (n + B - 1) // B
        best_padded = np.zeros((M, nb * B), dtype=np.float32)  # padding points weigh 0: never drawn
        best = best_padded[:, :n]

        def dist_to(c: np.ndarray) -> np.ndarray:  # (M, n) squared distances to c (M, dsub)
            d = np.matmul(xt, c[:, :, None])[:, :, 0]
            d *= -2
            d += xnorm
            d += np.einsum("md,md->m", c, c)[:, None]
            return np.maximum(d, 0, out=d)

        first = rng.integers(0, n, M)
        cents[:, 0] = xt[subspaces, first]
        best[...] = dist_to(cents[:, 0])
        # (an exception leaves a bar to tqdm's finalizer, which closes it: no try/finally needed)
        bar = progress_bar(progress, n_cent, f"{self._bar_prefix}{self.name} k-means++ seeds", "centroid")
        bar.update(1)
        for c in range(1, n_cent):
            block_cum = np.cumsum(best_padded.reshape(M, nb, B).sum(-1, dtype=np.float64), axis=1)
            target = rng.random(M) * block_cum[:, -1]
            pick = np.empty(M, dtype=np.int64)
            for m in range(M):
                b = min(int(np.searchsorted(block_cum[m], target[m])), nb - 1)
                within = np.cumsum(best_padded[m, b * B : (b + 1) * B], dtype=np.float64)
                rest = target[m] - (block_cum[m, b - 1] if b > 0 else 0.0)
                pick[m] = min(b * B + min(int(np.searchsorted(within, rest)), B - 1), n - 1)
            cents[:, c] = xt[subspaces, pick]
            np.minimum(best, dist_to(cents[:, c]), out=best)
            bar.update(1)
        bar.close()
        return cents

    def _lloyd(self, xs: np.ndarray, cents: np.ndarray, max_iter: int,
               progress: bool | None) -> tuple[np.ndarray, float]:
        """At most ``max_iter`` Lloyd iterations from ``cents`` (updated in place), stopping early when the
        relative drop of the error is below ``tol``. Returns the centroids and the mean squared error per
        dimension of the last assignment. ``progress``: a bar over the iterations (medqk._progress), the
        error per dimension as its postfix."""
        M, n = self.M, xs.shape[0]
        prev = np.inf
        bar = progress_bar(progress, max_iter, f"{self._bar_prefix}{self.name} k-means")
        for _ in range(max_iter):
            codes, dist = self._assign(xs, cents)
            err = float(dist.sum())
            bar.set_postfix_str(f"error {err / (n * M * self.dsub):.4g}", refresh=False)
            all_sums, all_counts = self._centroid_sums(xs, codes)
            nonempty_all = all_counts > 0
            cents[nonempty_all] = (all_sums[nonempty_all] / all_counts[nonempty_all][:, None]).astype(np.float32)
            for m in np.flatnonzero(~nonempty_all.all(axis=1)):
                counts = all_counts[m].copy()
                for c in np.flatnonzero(counts == 0):  # repair: take the worst point of the largest cluster
                    big = np.argmax(counts)
                    members = np.flatnonzero(codes[:, m] == big)
                    far = members[np.argmax(dist[members, m])]
                    cents[m, c] = xs[far, m]
                    codes[far, m], dist[far, m] = c, 0.0
                    counts[big] -= 1
                    counts[c] = 1
            bar.update(1)
            if prev - err <= self.tol * max(err, 1e-30):
                break
            prev = err
        bar.close()
        return cents, err / (n * M * self.dsub)

    def encode_sub(self, x: np.ndarray) -> np.ndarray:
        """Nearest centroid per subspace; when eta > 1, then score-aware codes (_anisotropic)."""
        self._require_trained()
        out = np.empty((x.shape[0], self.M), dtype=np.uint8)
        for i in range(0, x.shape[0], 8192):
            out[i : i + 8192] = self._assign(self._split(x[i : i + 8192]), self.centroids)[0]
        if self.eta > 1.0:
            for i in range(0, x.shape[0], 8192):
                out[i : i + 8192] = self._anisotropic(x[i : i + 8192], out[i : i + 8192])
        return out

    def anisotropic_loss(self, x: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Per vector: eta * (r . u)^2 + |r - (r . u) u|^2, r = x_hat - x, u = x / |x|."""
        x = x.astype(np.float64)
        r = PQCodec.decode_sub(self, codes).astype(np.float64) - x
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        u = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
        rpar = (r * u).sum(axis=1)
        return (self.eta - 1.0) * rpar**2 + (r * r).sum(axis=1)

    def _anisotropic(self, x: np.ndarray, codes: np.ndarray, passes: int = 3) -> np.ndarray:
        """Score-aware codes for inner products (ScaNN's anisotropic loss, Guo et al., ICML 2020; the same
        as medqk.quantizers.codebook.LevelCodec): the residual's component along x weighs eta times more.
        Coordinate descent from the nearest centroids: each subspace takes the centroid that minimizes
        eta * (r . u)^2 + |r_perp|^2 with the others fixed, `passes` times over the subspaces. The
        centroids are unchanged (MedQuAD opq,pq96x4fs R@10 0.797 -> 0.825 with eta = 4). A native kernel
        (csrc/runtime/pq_anisotropic.cpp) or its Numba twin, float64, the same codes from both (the numpy
        version it replaced was about 20 times slower; bench/test_bench_pq_codec.py times it)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        cents = np.ascontiguousarray(self.centroids, dtype=np.float32)
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if _backend.backend == "native":
            return _backend._core.pq_anisotropic(x, cents, codes, self.eta, passes, 0)
        from ..kernels import _numba_pq_assign

        out = codes.copy()
        _numba_pq_assign.pq_anisotropic(x, cents, out, self.eta, passes)
        return out

    def query_space(self, q: np.ndarray) -> np.ndarray:
        """Queries in the space the sub-vectors live in (OPQ rotates them): q . x_hat = query_space(q) .
        PQCodec.decode_sub(codes)."""
        return np.ascontiguousarray(q, dtype=np.float32)

    def decode_sub(self, sub: np.ndarray) -> np.ndarray:
        self._require_trained()
        # one flat take over (M * K, dsub) rows: 5x faster than 2-D fancy indexing of (M, K, dsub)
        K = self.n_centroids
        flat = self.centroids.reshape(self.M * K, self.dsub)
        rows = sub.astype(np.intp) + K * np.arange(self.M, dtype=np.intp)[None, :]
        return np.take(flat, rows, axis=0).reshape(sub.shape[0], self.M * self.dsub)

    def tables(self, q: np.ndarray, metric: str, threads: int | None = None) -> np.ndarray:
        """Float tables (nq, M, 2**nbits): <q_m, c> per subspace m and centroid c (l2: 2 <q_m, c> - |c|^2).

        Native kernel (or its Numba twin: the same floats), not einsum, which at pq96x4 took as long as the
        4-bit scan of MedQuAD's codes itself.
        """
        self._require_trained()
        q = np.ascontiguousarray(q, dtype=np.float32)
        cents = np.ascontiguousarray(self.centroids, dtype=np.float32)
        if _backend.backend == "native":
            return _backend._core.pq_tables(q, cents, metric == "l2", -1 if threads is None else threads)
        from ..kernels import _numba_search

        out = np.empty((q.shape[0], self.M, self.n_centroids), dtype=np.float32)
        nb = _backend.numba_kernels()
        with nb.threads(threads or 0):
            _numba_search.pq_tables(q, cents, metric == "l2", out)
        return out

    # -- int8 view (batched pq<M>x8 search: blocks decoded to int8 vectors, then the int8 GEMM) ---------
    def _int8_scale(self) -> tuple[np.ndarray, np.ndarray]:
        c = self.centroids.astype(np.float64)  # (M, K, dsub)
        lo, hi = c.min(axis=1).reshape(-1), c.max(axis=1).reshape(-1)
        return (hi + lo) / 2, np.where(hi > lo, (hi - lo) / 254, 1.0)

    def int8_centroids(self) -> np.ndarray:
        """Centroids as int8 (M, K, dsub): dimension j decodes to round((c - offset[j]) / step[j]), offset
        the middle and step 1/254 of the range of the centroid values in that dimension."""
        self._require_trained()
        offset, step = self._int8_scale()
        c = (self.centroids - offset.reshape(self.M, 1, self.dsub)) / step.reshape(self.M, 1, self.dsub)
        return np.clip(np.rint(c), -127, 127).astype(np.int8)

    def int8_view(self):
        """For pq<M>x4fs (16 centroids): (sub, dim, table int16, d) for lut4_decode_s8, the int8 view of
        the batched search (medqk.index.lut4): sub-code m decodes into dimensions m*dsub .. m*dsub+dsub-1
        through its centroids as int8 (as int8_centroids); None for 8-bit codes (pq8 has its own path)."""
        if self.nbits != 4:
            return None
        table = self.int8_centroids().astype(np.int16)  # (M, 16, dsub)
        M, dsub = self.M, self.dsub
        sub = np.repeat(np.arange(M, dtype=np.int32), dsub)
        dim = np.arange(M * dsub, dtype=np.int32)
        return sub, dim, np.ascontiguousarray(table.transpose(0, 2, 1).reshape(M * dsub, 16)), M * dsub

    def int8_query(self, q: np.ndarray) -> np.ndarray:
        """u with q . x_hat = u . decoded + q . offset (the constant left out)."""
        return np.ascontiguousarray(np.asarray(q, dtype=np.float32) * self._int8_scale()[1], dtype=np.float32)

    def state(self) -> tuple[dict, dict]:
        config = {"M": self.M, "nbits": self.nbits, "seed": self.seed, "max_iter": self.max_iter, "tol": self.tol,
                  "max_train": self.max_train, "eta": self.eta}
        return config, ({"centroids": self.centroids} if self.centroids is not None else {})

    def load_state(self, arrays: dict) -> None:
        if "centroids" in arrays:
            cents = np.array(arrays["centroids"])
            if cents.shape != (self.M, self.n_centroids, self.dsub):

                raise IndexFileError(f"corrupt PQ centroids: shape {cents.shape}")
            self.centroids = cents

    def _require_trained(self) -> None:
        if self.centroids is None:
            raise RuntimeError("the product quantizer is not trained: call train(x) first")


PQ4Codec = PQCodec  # the 4-bit form used by pq<M>x4fs

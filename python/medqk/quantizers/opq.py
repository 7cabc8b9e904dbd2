"""Optimized product quantization (OPQ, Ge, He, Ke and Sun, CVPR 2013, the non-parametric variant):
``opq,pq<M>x4fs`` and ``opq,pq<M>x8``.

Plain PQ cuts the dimensions into M contiguous blocks as they come. When the variance is spread
unevenly over the dimensions, or dimensions of different blocks are correlated, some sub-quantizers
waste their centroids while others are starved. OPQ learns an orthogonal d x d matrix R and
product-quantizes ``x @ R`` instead of ``x``. Because R is orthogonal, inner products and Euclidean
distances are unchanged by it: ``q . x = (q R) . (x R)``, so search rotates the query once and then
runs the usual PQ tables and scans, and ``decode_sub`` rotates reconstructions back with ``R^T``, so
re-ranking and ``vectors()`` work in the original space.

Training alternates two steps that each lower the quantization error ``||X R - Y||^2`` (X: training
sample, Y: its PQ reconstruction in the rotated space):

1. with R fixed, a few Lloyd iterations of the PQ k-means on ``X @ R`` (warm-started from the
   previous centroids: ``opq_kmeans_iter`` per round, 4 like faiss);
2. with the codes fixed, the best orthogonal R is the orthogonal Procrustes solution ``R = U V^T``
   from the SVD ``X^T Y = U S V^T``.

R starts as the identity (the plain PQ split, so OPQ can only refine it). ``opq_iter`` rounds are
run (default 20), then the final PQ is refined on the last rotation with up to ``max_iter`` Lloyd
iterations (the same stopping rule as PQ). Everything is seeded by ``seed``; training uses the
same capped sample (``max_train``) as :class:`PQCodec`, drawn from the same generator.
"""

from __future__ import annotations

import numpy as np

from .._errors import IndexFileError
from .._progress import progress_bar
from .pq import PQCodec


class OPQCodec(PQCodec):
    """A :class:`PQCodec` on rotated vectors ``x @ rotation`` (rotation: (d, d) float32, orthogonal).

    Same interface as PQCodec (``n_sub``, ``train``, ``encode_sub``, ``decode_sub``, ``tables``,
    ``state`` / ``load_state``); ``centroids`` live in the rotated space, everything else takes and
    returns vectors in the original space.
    """

    def __init__(self, M: int, dim: int, nbits: int = 4, *, opq_iter: int = 20, opq_kmeans_iter: int = 4,
                 **pq_options):
        super().__init__(M, dim, nbits, **pq_options)
        for name, value in (("opq_iter", opq_iter), ("opq_kmeans_iter", opq_kmeans_iter)):
            least = 1 if name == "opq_kmeans_iter" else 0
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        self.dim = int(dim)
        self.opq_iter, self.opq_kmeans_iter = int(opq_iter), int(opq_kmeans_iter)
        self.rotation: np.ndarray | None = None  # (d, d) float32, orthogonal

    @property
    def is_trained(self) -> bool:
        return self.centroids is not None and self.rotation is not None

    @property
    def name(self) -> str:
        return "opq," + super().name

    def train(self, x: np.ndarray) -> OPQCodec:
        self._check_train_size(x.shape[0])
        rng = np.random.default_rng(self.seed)
        xt = self._sample(x, rng)  # (n, d) float32, the same rows PQCodec would train on
        n, d, M = xt.shape[0], self.dim, self.M
        rot = np.eye(d, dtype=np.float32)
        xs = self._split(xt.copy())
        cents = self._kmeanspp(xs, rng, self.progress)
        cents, err = self._lloyd(xs, cents, self.opq_kmeans_iter, False)
        xt64 = xt.astype(np.float64)
        bar = progress_bar(self.progress, self.opq_iter, f"{self.name} rotation updates")
        for _ in range(self.opq_iter):
            codes, dist = self._assign(xs, cents)
            bar.set_postfix_str(f"error {float(dist.sum()) / (n * d):.4g}", refresh=False)
            y = cents[np.arange(M)[None, :], codes].reshape(n, d).astype(np.float64)
            # orthogonal Procrustes: argmin over orthogonal R of ||X R - Y||_F is U V^T, X^T Y = U S V^T
            u, _, vt = np.linalg.svd(xt64.T @ y)
            rot = (u @ vt).astype(np.float32)
            xs = self._split(xt @ rot)
            cents, err = self._lloyd(xs, cents, self.opq_kmeans_iter, False)
            bar.update(1)
        bar.close()
        cents, err = self._lloyd(xs, cents, self.max_iter, self.progress)
        self.rotation, self.centroids, self.train_error = rot, cents, err
        return self

    def _rotate(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32) @ self.rotation

    def encode_sub(self, x: np.ndarray) -> np.ndarray:
        self._require_trained()
        return super().encode_sub(self._rotate(x))

    def decode_sub(self, sub: np.ndarray) -> np.ndarray:
        """Reconstructions in the original space (rotated back with R^T)."""
        self._require_trained()
        return np.ascontiguousarray(super().decode_sub(sub) @ self.rotation.T)

    def query_space(self, q: np.ndarray) -> np.ndarray:
        self._require_trained()
        return self._rotate(q)

    def int8_query(self, q: np.ndarray) -> np.ndarray:
        self._require_trained()
        return super().int8_query(self._rotate(q))

    def tables(self, q: np.ndarray, metric: str, threads: int | None = None) -> np.ndarray:
        self._require_trained()
        return super().tables(self._rotate(q), metric, threads)

    def state(self) -> tuple[dict, dict]:
        config, arrays = super().state()
        config.update(opq_iter=self.opq_iter, opq_kmeans_iter=self.opq_kmeans_iter)
        if self.rotation is not None:
            arrays["rotation"] = self.rotation
        return config, arrays

    def load_state(self, arrays: dict) -> None:
        if ("centroids" in arrays) != ("rotation" in arrays):

            raise IndexFileError("corrupt OPQ state: centroids and rotation must be stored together")
        if "rotation" in arrays:
            rot = np.array(arrays["rotation"])
            if rot.shape != (self.dim, self.dim) or rot.dtype != np.float32:

                raise IndexFileError(f"corrupt OPQ rotation: shape {rot.shape}, dtype {rot.dtype}")
            self.rotation = rot
        super().load_state(arrays)

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError("the optimized product quantizer is not trained: call train(x) first")

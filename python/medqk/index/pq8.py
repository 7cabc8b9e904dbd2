"""``pq<M>x8``: product quantization with 256 centroids per subspace, one byte per subspace.

Search is asymmetric (ADC): per query a float table of 256 entries per subspace, quantized to uint16
with one step per query, summed over the code bytes by a scan that reads each code row once for a
block of 8 queries (medqk/kernels: pq8_search_topk); the 2k best by that sum are re-scored in float
(q . x_hat with the reconstructed x_hat, in the rotated space for OPQ), so returned scores are the float
scores of the stored vectors.

Batches of at least ``medqk.index.lut4.GEMM_MIN_QUERIES`` queries find their candidates instead with the
int8 GEMM over blocks of codes decoded to int8 vectors (centroids as int8 per dimension, ``pq8_decode_s8``):
one decode per block serves the whole batch, which the table scan (a gather per code byte and query)
cannot share. The candidates are re-scored the same way.
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from ..quantizers.pq import PQCodec
from . import lut4
from .flat import Index, s8_blocked_topk

_QUERY_CHUNK = 512


def decode_s8(codes: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Byte codes (n, M) through int8 centroids (M, 256, dsub): (n, M * dsub) int8."""
    codes = np.ascontiguousarray(codes)
    if _backend.backend == "native":
        return _backend._core.pq8_decode_s8(codes, table)
    from ..kernels import _numba_pq8

    out = np.empty((codes.shape[0], codes.shape[1] * table.shape[2]), dtype=np.int8)
    _numba_pq8.pq8_decode_s8(codes, table, out)
    return out


def quantize_tables16(t: np.ndarray):
    t = np.ascontiguousarray(t, dtype=np.float32)
    if _backend.backend == "native":
        return _backend._core.pq8_quantize_tables(t)
    from ..kernels import _numba_pq8

    nq, m, _ = t.shape
    luts = np.empty((nq, m, 256), dtype=np.uint16)
    alpha = np.empty(nq, dtype=np.float32)
    beta = np.empty(nq, dtype=np.float32)
    _numba_pq8.pq8_quantize_tables(t, luts, alpha, beta)
    return luts, alpha, beta


class FlatPQ8Index(Index):
    def __init__(self, spec, dim: int, metric: str, codec: PQCodec):
        super().__init__(spec, dim, metric)
        if codec.M > 256:
            raise ValueError(f"pq<M>x8 needs M <= 256, got {codec.M}")
        self.codec = codec
        self._codes = np.empty((0, codec.M), dtype=np.uint8)

    @property
    def is_trained(self) -> bool:
        return self.codec.is_trained

    @property
    def bytes_per_vector(self) -> float:
        return float(self.codec.M)

    def _train(self, x):
        self.codec.train(x)

    def _add(self, x):
        codes = self.codec.encode_sub(x)
        self._codes = np.concatenate([self._codes, codes]) if len(self._codes) else codes

    def vectors(self, ids=None) -> np.ndarray:
        codes = self._codes if ids is None else self._codes[np.asarray(ids).reshape(-1)]
        return self.codec.decode_sub(codes)

    def _candidates(self, q, k, threads):
        return self._search(q, k, threads, rescore=False)[1]

    def _scores_topk(self, q, k, threads):
        return self._search(q, k, threads, rescore=True)

    def _gemm_candidates(self, q, kc, threads):
        """Top kc per query by the int8 GEMM over blocks of codes decoded to int8 (see the module doc);
        for l2, |x_hat|^2 is summed from the centroid norms."""
        table = self.codec.int8_centroids()
        cents = self.codec.centroids
        cnorm = np.einsum("mkd,mkd->mk", cents, cents) if self.metric == "l2" else None
        m_idx = np.arange(self.codec.M)[None, :]
        return s8_blocked_topk(self.codec.int8_query(q), self.metric, self._ntotal,
                               lambda v0, n: decode_s8(self._codes[v0 : v0 + n], table),
                               lambda v0, n: cnorm[m_idx, self._codes[v0 : v0 + n]].sum(axis=1, dtype=np.float32),
                               kc, threads)

    def _search(self, q, k, threads, rescore):
        kc = min(self._ntotal, 2 * k) if rescore else k
        out_s = np.empty((q.shape[0], k), dtype=np.float32)
        out_i = np.empty((q.shape[0], k), dtype=np.int64)
        cand_all = self._gemm_candidates(q, kc, threads) if q.shape[0] >= lut4.GEMM_MIN_QUERIES else None
        for q0 in range(0, q.shape[0], _QUERY_CHUNK):
            qc = q[q0 : q0 + _QUERY_CHUNK]
            if cand_all is not None:
                cand = cand_all[q0 : q0 + _QUERY_CHUNK]
                if not rescore:
                    out_i[q0 : q0 + _QUERY_CHUNK] = cand
                    continue
                out_s[q0 : q0 + _QUERY_CHUNK], out_i[q0 : q0 + _QUERY_CHUNK] = self._rescore(qc, cand, k)
                continue
            tables = self.codec.tables(qc, self.metric, threads)  # (nq, M, 256)
            luts, alpha, beta = quantize_tables16(tables)
            if _backend.backend == "native":
                _, cand = _backend._core.pq8_search_topk(luts, self._codes, alpha, beta, kc, threads)
            else:
                from ..kernels import _numba_pq8

                nb = _backend.numba_kernels()
                sc = np.empty((qc.shape[0], kc), dtype=np.float32)
                cand = np.empty((qc.shape[0], kc), dtype=np.int64)
                with nb.threads(threads):
                    _numba_pq8.pq8_search_topk(luts, self._codes, alpha, beta, kc, sc, cand)
            if not rescore:
                out_i[q0 : q0 + _QUERY_CHUNK] = cand
                continue
            out_s[q0 : q0 + _QUERY_CHUNK], out_i[q0 : q0 + _QUERY_CHUNK] = self._rescore(qc, cand, k)
        return out_s, out_i

    def _rescore(self, q, cand, k):
        """Float scores of the candidates (nq, kc): q . x_hat (l2: 2 q . x_hat - |x_hat|^2) with the
        reconstructions, in the codec's space (rotated for OPQ), best k of them (ties -> lower id). A dot
        product per candidate: cheaper than the 256-entry tables when only a few candidates are re-scored."""
        nq, kc = cand.shape
        qs = self.codec.query_space(q)
        rec = PQCodec.decode_sub(self.codec, self._codes[np.maximum(cand, 0)].reshape(nq * kc, -1))
        rec = rec.reshape(nq, kc, -1)
        s = np.einsum("qd,qkd->qk", qs, rec)
        if self.metric == "l2":
            s = 2 * s - np.einsum("qkd,qkd->qk", rec, rec)
        s = np.where(cand >= 0, s, -np.inf).astype(np.float32)
        order = np.lexsort((cand, -s), axis=1)[:, :k]
        return np.take_along_axis(s, order, axis=1), np.take_along_axis(cand, order, axis=1)

    def _state(self):
        config, arrays = self.codec.state()
        arrays["codes"] = self._codes
        return {"codec": config}, arrays

    def _load_state(self, config, arrays):
        self.codec.load_state(arrays)
        self._codes = np.array(arrays["codes"])
        self._ntotal = len(self._codes)

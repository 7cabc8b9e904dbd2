"""``pq<M>x8``: product quantization with 256 centroids per subspace, one byte per subspace.

Search is asymmetric (ADC): per query a float table of 256 entries per subspace, quantized to uint16
with one step per query, summed over the code bytes by a scan that reads each code row once for a
block of 8 queries (medqk/kernels: pq8_search_topk); the 2k best by that sum are re-scored with the
float tables, so returned scores are exact float ADC scores.
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from ..quantizers.pq import PQCodec
from .flat import Index

_QUERY_CHUNK = 512


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

    def _search(self, q, k, threads, rescore):
        kc = min(self._ntotal, 2 * k) if rescore else k
        out_s = np.empty((q.shape[0], k), dtype=np.float32)
        out_i = np.empty((q.shape[0], k), dtype=np.int64)
        for q0 in range(0, q.shape[0], _QUERY_CHUNK):
            qc = q[q0 : q0 + _QUERY_CHUNK]
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
            sub = self._codes[cand].astype(np.intp)  # (nq, kc, M)
            s = np.take_along_axis(tables[:, None, :, :], sub[..., None], axis=3)[..., 0].sum(axis=2, dtype=np.float32)
            order = np.lexsort((cand, -s), axis=1)[:, :k]
            out_s[q0 : q0 + _QUERY_CHUNK] = np.take_along_axis(s, order, axis=1)
            out_i[q0 : q0 + _QUERY_CHUNK] = np.take_along_axis(cand, order, axis=1)
        return out_s, out_i

    def _state(self):
        config, arrays = self.codec.state()
        arrays["codes"] = self._codes
        return {"codec": config}, arrays

    def _load_state(self, config, arrays):
        self.codec.load_state(arrays)
        self._codes = np.array(arrays["codes"])
        self._ntotal = len(self._codes)

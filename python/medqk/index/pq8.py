"""``pq<M>x8``: product quantization with 256 centroids per subspace, one byte per subspace.

Search is exact asymmetric distance computation (ADC): per query a float table of 256 entries per
subspace (``PQCodec.tables``: q . c, l2: 2 q . c - |c|^2), and a vector's score is the float32 sum of
its M entries in subspace order; results are ranked by that score (ties -> lower id) and it is the score
returned (q . x_hat, l2: 2 q . x_hat - |x_hat|^2, in the rotated space for OPQ).

The codes are stored in the scan's packed layout (blocks of 64 vectors, subspace-major within a block;
medqk.h: pq8_pack). The native search (medqk/kernels: pq8_search_topk) sums 8-bit copies of the tables
for 64 vectors at a time (AVX-512 VBMI byte permutes, NEON tbl; a portable loop elsewhere) and scores in
float only the vectors that could still enter the top k: the same result as scoring every vector, which
is what the Numba twin does.
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from ..quantizers.pq import PQCodec
from ._memory import aligned, aligned_concat
from .flat import Index

BLOCK = 64  # vectors per packed block (kernels/pq8_scan.h)
_QUERY_CHUNK = 128  # float tables of 128 queries: 6 MiB at M = 48


def pack(codes: np.ndarray) -> np.ndarray:
    """Byte codes (n, M) -> the packed layout of the scan, flat uint8 of ceil(n / 64) * 64 * M bytes."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if _backend.backend == "native":
        return _backend._core.pq8_pack(codes)
    from ..kernels import _numba_pq8

    n, m = codes.shape
    out = np.empty(-(-n // BLOCK) * BLOCK * m, dtype=np.uint8)
    _numba_pq8.pq8_pack(codes, out)
    return out


def unpack(packed: np.ndarray, n: int, m: int, ids: np.ndarray | None = None) -> np.ndarray:
    """The byte codes (n, M) (or rows ids) back from the packed layout."""
    blocks = packed.reshape(-1, m, BLOCK)
    if ids is None:
        return np.ascontiguousarray(blocks.transpose(0, 2, 1).reshape(-1, m)[:n])
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    return np.ascontiguousarray(blocks[ids // BLOCK, :, ids % BLOCK])


def search_topk(tables: np.ndarray, packed: np.ndarray, n: int, k: int, threads: int):
    """Exact ADC top-k over n packed vectors: (scores, ids), each (nq, k), -inf / -1 past n."""
    tables = np.ascontiguousarray(tables, dtype=np.float32)
    if _backend.backend == "native":
        return _backend._core.pq8_search_topk(tables, packed, n, k, threads)
    from ..kernels import _numba_pq8

    nb = _backend.numba_kernels()
    scores = np.empty((tables.shape[0], k), dtype=np.float32)
    ids = np.empty((tables.shape[0], k), dtype=np.int64)
    with nb.threads(threads):
        _numba_pq8.pq8_search_topk(tables, packed, n, k, scores, ids)
    return scores, ids


class FlatPQ8Index(Index):
    def __init__(self, spec, dim: int, metric: str, codec: PQCodec):
        super().__init__(spec, dim, metric)
        if codec.M > 256:
            # the scan sums M uint8 entries <= 127 in 16-bit lanes, kept below 2^15 (kernels/pq8_scan.h)
            raise ValueError(f"pq<M>x8 needs M <= 256 (its scan sums M 7-bit table entries in 16 bits), got "
                             f"M={codec.M} at dim {dim}: use fewer sub-quantizers or pq<M>x4fs")
        self.codec = codec
        self._packed = np.empty(0, dtype=np.uint8)

    @property
    def is_trained(self) -> bool:
        return self.codec.is_trained

    @property
    def bytes_per_vector(self) -> float:
        return float(self.codec.M)

    def codes(self, ids=None) -> np.ndarray:
        """Byte codes (n, M) of all vectors or of rows ids."""
        return unpack(self._packed, self._ntotal, self.codec.M, ids)

    def _train(self, x):
        self.codec.train(x)

    def _add(self, x):
        """Packs the new codes after the stored ones: only the last, partly filled block is packed again."""
        new = self.codec.encode_sub(x)
        b0 = self._ntotal // BLOCK
        tail = self.codes(np.arange(b0 * BLOCK, self._ntotal))
        head = self._packed[: b0 * BLOCK * self.codec.M]
        self._packed = aligned_concat([head, pack(np.concatenate([tail, new]))])

    def vectors(self, ids=None) -> np.ndarray:
        return self.codec.decode_sub(self.codes(ids))

    def _candidates(self, q, k, threads):
        return self._scores_topk(q, k, threads)[1]

    def _scores_topk(self, q, k, threads):
        out_s = np.empty((q.shape[0], k), dtype=np.float32)
        out_i = np.empty((q.shape[0], k), dtype=np.int64)
        for q0 in range(0, q.shape[0], _QUERY_CHUNK):
            tables = self.codec.tables(q[q0 : q0 + _QUERY_CHUNK], self.metric, threads)  # (nq, M, 256)
            out_s[q0 : q0 + _QUERY_CHUNK], out_i[q0 : q0 + _QUERY_CHUNK] = search_topk(
                tables, self._packed, self._ntotal, k, threads)
        return out_s, out_i

    def _state(self):
        config, arrays = self.codec.state()
        arrays["codes"] = self.codes()
        return {"codec": config}, arrays

    def _load_state(self, config, arrays):
        self.codec.load_state(arrays)
        codes = np.asarray(arrays["codes"])
        self._ntotal = len(codes)
        self._packed = aligned(pack(codes))

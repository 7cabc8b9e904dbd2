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
from ..kernels import _layout
from ..quantizers.pq import PQCodec
from .flat import no_bits
from .flat_codes import FlatCodesIndex, PQ8Packer

BLOCK = _layout.PQ8_BLOCK  # vectors per packed block (kernels/pq8_scan.h)
_QUERY_CHUNK = 128  # float tables of 128 queries: 6 MiB at M = 48


def pack(codes: np.ndarray) -> np.ndarray:
    """Byte codes (n, M) -> the packed layout of the scan, flat uint8 of ceil(n / 64) * 64 * M bytes."""
    codes = np.asarray(codes)
    return PQ8Packer(codes.shape[1]).pack(codes)


def unpack(packed: np.ndarray, n: int, m: int, ids: np.ndarray | None = None) -> np.ndarray:
    """The byte codes (n, M) (or rows ids) back from the packed layout."""
    return PQ8Packer(m).unpack(packed, ids, n)


def search_topk(tables: np.ndarray, packed: np.ndarray, n: int, k: int, threads: int, allow=None):
    """Exact ADC top-k over n packed vectors: (scores, ids), each (nq, k), -inf / -1 past n; only the rows
    the bitmap ``allow`` sets (None: all; medqk.index._ids)."""
    tables = np.ascontiguousarray(tables, dtype=np.float32)
    if _backend.backend == "native":
        return _backend._core.pq8_search_topk(tables, packed, n, k, threads, allow)
    from ..kernels import _numba_pq8

    nb = _backend.numba_kernels()
    scores = np.empty((tables.shape[0], k), dtype=np.float32)
    ids = np.empty((tables.shape[0], k), dtype=np.int64)
    with nb.threads(threads):
        _numba_pq8.pq8_search_topk(tables, packed, n, k, scores, ids, no_bits(allow))
    return scores, ids


# The scan sums M uint8 entries <= 127 in 16-bit lanes, kept below 2^15 (kernels/pq8_scan.h): M <= 256.
MAX_SUBSPACES = 256


class FlatPQ8Index(FlatCodesIndex):
    def __init__(self, spec, dim: int, metric: str, codec: PQCodec):
        if codec.M > MAX_SUBSPACES:
            raise ValueError(f"pq<M>x8 needs M <= 256 (its scan sums M 7-bit table entries in 16 bits), got "
                             f"M={codec.M} at dim {dim}: use fewer sub-quantizers or pq<M>x4fs")
        super().__init__(spec, dim, metric, codec, PQ8Packer(codec.M))

    def _add(self, x):
        self._append_codes(self.codec.encode_sub(x))

    def _candidates(self, q, k, threads, allow=None):
        return self._scores_topk(q, k, threads, allow)[1]

    def _score_rows(self, q, rows):
        """The scan's exact ADC score: float32 table entries added in subspace order from 0."""
        codes = self.codes(rows)
        tables = self.codec.tables(q, self.metric, 1)
        acc = np.zeros((q.shape[0], rows.size), dtype=np.float32)
        for s in range(codes.shape[1]):
            acc += tables[:, s, codes[:, s]]
        return acc

    def _scores_topk(self, q, k, threads, allow=None):
        out_s = np.empty((q.shape[0], k), dtype=np.float32)
        out_i = np.empty((q.shape[0], k), dtype=np.int64)
        for q0 in range(0, q.shape[0], _QUERY_CHUNK):
            tables = self.codec.tables(q[q0 : q0 + _QUERY_CHUNK], self.metric, threads)  # (nq, M, 256)
            out_s[q0 : q0 + _QUERY_CHUNK], out_i[q0 : q0 + _QUERY_CHUNK] = search_topk(
                tables, self._packed, self._ntotal, k, threads, allow)
        return out_s, out_i

    def _code_arrays(self):
        return {"codes": self.codes()}  # saved unpacked, packed again on load

    def _load_code_arrays(self, arrays):
        self._set_codes(np.asarray(arrays["codes"]))

"""Flat search over 4-bit sub-codes with quantized lookup tables: ``int4``, ``cb4``, ``cb3``, ``cb2``.

Per query, a float table of 16 entries per subspace gives each sub-code's contribution to the score
(asymmetric distance: the query stays in float). The tables are quantized to uint8 with one step per
query (so sums stay comparable across subspaces) and scanned with ``vpshufb`` / ``vqtbl1q`` over codes
stored in blocks of 32 vectors (medqk/kernels: lut4_search_topk). The 2k best by the quantized sum are
then re-scored with the float tables, so the order of the returned results is the exact float ADC order
of those candidates.

Batches of at least ``GEMM_MIN_QUERIES`` queries on codecs with an int8 view (int4, cb4, cb3, pca*) find
their candidates differently: blocks of codes are decoded to int8 vectors (``lut4_decode_s8``) and scored
by the int8 GEMM (VNNI where the CPU has it), 2-3x faster per query than the table scan once the decoding
is shared by the batch; the candidates are re-scored with the same float tables. Codecs with few subspaces
for their width (pq<M>x4fs: M lookups against d multiply-adds) keep the scan unless the CPU has AMX. The
two paths agree on the exact scores of what they return and differ only in candidates at the margin.
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from ..kernels._layout import lut4_even
from ._memory import aligned
from .flat import no_bits, s8_blocked_topk
from .flat_codes import FlatCodesIndex, Lut4Packer

_QUERY_CHUNK = 512
_DECODE_CHUNK = 8192  # vectors reconstructed at a time by add (for |x_hat|^2): 12 MB at d = 384
# Batches of at least this many queries find their candidates with the int8 GEMM over blocks of decoded
# codes (codecs with an int8 view: int4, cb4, cb3): decoding a block costs about what scanning it with
# the 4-bit tables costs for ~100 queries, and the VNNI GEMM then scores 2-3x faster than the table scan.
GEMM_MIN_QUERIES = 256
# ... and want at most this many candidates per query: the GEMM's top-k is a heap, which costs more than
# the table scan's threshold reservoir for long lists (pq96x4fs+rerank:int8 at 200 candidates is faster by
# the scan on MedQuAD)
GEMM_MAX_CANDIDATES = 100
# ... and only when the GEMM's d' multiply-adds per vector and query (the int8 view's width) are at most this
# many per subspace the table scan would look up: one table lookup costs about what two multiply-adds of the
# GEMM cost, so int4 / cb4 (384 subspaces, d' 384: 1 per subspace) are faster by the GEMM and pq96x4fs
# (96 subspaces, d' 384: 4 per subspace) by the scan (bench/test_bench_index_search.py measures both per
# spec). AMX tiles make the GEMM several times faster: where the AMX GEMM runs (gemm_has_amx) the GEMM is
# always taken.
GEMM_MAX_DIMS_PER_SUBSPACE = 2
# Most sub-codes per vector (the native LUT4_MAX_SUBSPACES, medqk.h: kLut4MaxSubspaces). The scan kernels
# take any number (their 16-bit lanes are flushed to 32 bits), but the sums (<= 127 per sub-code) must stay
# below 2^23: the scores and the Numba twin's ranking use float32(sum), exact below 2^24, and IVF adds a
# list key of up to 2^23 to each sum (index/ivf.py). 127 * 65,536 = 8,323,072.
MAX_SUBSPACES = 65536


def check_subspaces(spec, dim: int, n_sub: int) -> int:
    """n_sub, or a ValueError when the 4-bit table scan cannot take that many sub-codes per vector."""
    if n_sub > MAX_SUBSPACES:
        raise ValueError(
            f"spec '{spec}' at dim {dim} needs {n_sub:,} sub-codes per vector; the 4-bit table scan takes at "
            f"most {MAX_SUBSPACES:,} (its integer sums must stay below 2^23 to be exact in float32)"
        )
    return n_sub


def quantize_tables(t: np.ndarray):
    """Float tables (nq, S, 16) -> uint8 tables (nq, S_even, 16), step alpha (nq,), offset beta (nq,)."""
    t = np.ascontiguousarray(t, dtype=np.float32)
    if _backend.backend == "native":
        return _backend._core.lut4_quantize_tables(t)
    from ..kernels import _numba_lut4

    nq, S, _ = t.shape
    luts = np.empty((nq, lut4_even(S), 16), dtype=np.uint8)  # tables padded as the codes are
    alpha = np.empty(nq, dtype=np.float32)
    beta = np.empty(nq, dtype=np.float32)
    _numba_lut4.lut4_quantize_tables(t, luts, alpha, beta)
    return luts, alpha, beta


def score_candidates(tables: np.ndarray, packed: np.ndarray, n: int, cand: np.ndarray) -> np.ndarray:
    """Exact float sums of the tables over the candidates' sub-codes (nq, kc)."""
    cand = np.ascontiguousarray(cand, dtype=np.int64)
    if _backend.backend == "native":
        return _backend._core.lut4_score_candidates(tables, packed, n, cand)
    from ..kernels import _numba_lut4

    scores = np.empty(cand.shape, dtype=np.float32)
    _numba_lut4.lut4_score_candidates(tables, packed, cand, scores)
    return scores


def decode_s8(packed: np.ndarray, ntotal: int, S: int, view, v0: int, n: int) -> np.ndarray:
    """Vectors v0 .. v0 + n - 1 decoded to int8 (n, d_out) through a codec's int8 view (sub, dim, table,
    d_out): out[:, dim[j]] += table[j][sub-code sub[j]], clamped to -127..127."""
    sub, dim, table, d_out = view
    if _backend.backend == "native":
        return _backend._core.lut4_decode_s8(packed, ntotal, S, sub, dim, table, d_out, v0, n)
    from ..kernels import _numba_lut4

    out = np.empty((n, d_out), dtype=np.int8)
    _numba_lut4.lut4_decode_s8(packed, S, sub, dim, table, v0, out)
    return out


def unpack_codes(packed: np.ndarray, ids: np.ndarray, S: int) -> np.ndarray:
    """Sub-codes (len(ids), S) of the given vectors, read back from the packed layout."""
    return Lut4Packer(S).unpack(packed, ids)


def gemm_has_amx() -> bool:
    """Whether the int8 GEMM that would run now is the AMX one (as the native dispatch reports it; the Numba
    GEMM has no AMX tiles)."""
    return _backend.backend == "native" and _backend._core.kernel_variant("gemm_s8s8_s32") == "amx"


class FlatLUT4Index(FlatCodesIndex):
    """Flat index over 4-bit sub-codes of ``codec`` (a LevelCodec for int4/cb*, a PQ4Codec for pq*x4fs).

    The codec provides ``n_sub``, ``train``, ``encode_sub`` (n, S) uint8, ``decode_sub`` -> float32 (n, d),
    ``tables(q, metric)`` (nq, S, 16) float32, and ``state()`` / ``load_state()``.
    """

    def __init__(self, spec, dim: int, metric: str, codec):
        self.n_sub = check_subspaces(spec, dim, codec.n_sub(dim))
        super().__init__(spec, dim, metric, codec, Lut4Packer(self.n_sub))
        self._sqnorms = np.empty(0, dtype=np.float32)

    def _add(self, x):
        sub = self.codec.encode_sub(x)
        # |x_hat|^2 from reconstructions made _DECODE_CHUNK at a time: decoding a whole 1M x 384 batch at
        # once took a 1.5 GB float32 temporary (and, out of cache, 4 s of the 1M pq96x4fs build)
        sqnorms = np.empty(sub.shape[0], dtype=np.float32)
        for i in range(0, sub.shape[0], _DECODE_CHUNK):
            rec = self.codec.decode_sub(sub[i : i + _DECODE_CHUNK])
            sqnorms[i : i + _DECODE_CHUNK] = np.einsum("ij,ij->i", rec, rec)
        self._append_codes(sub)
        self._sqnorms = np.concatenate([self._sqnorms, sqnorms])

    def _scored_candidates(self, q, k, threads, allow=None):
        return self._search(q, k, threads, rescore=False, allow=allow)

    def _scores_topk(self, q, k, threads, allow=None):
        return self._search(q, k, threads, rescore=True, allow=allow)

    def _score_rows(self, q, rows):
        return self._exact_scores(q, np.ascontiguousarray(np.broadcast_to(rows, (q.shape[0], rows.size))), 1)

    def _keep_rows(self, rows):
        super()._keep_rows(rows)
        self._sqnorms = self._sqnorms[rows]

    def _int8_view(self):
        view = getattr(self.codec, "int8_view", None)
        return view() if view is not None else None

    def _gemm_candidates(self, q, kc, threads, view, allow=None):
        """Top kc per query by the int8 GEMM over blocks decoded through the codec's int8 view."""
        return s8_blocked_topk(self.codec.int8_query(q), self.metric, self._ntotal,
                               lambda v0, n: decode_s8(self._packed, self._ntotal, self.n_sub, view, v0, n),
                               lambda v0, n: self._sqnorms[v0 : v0 + n], kc, threads, allow)

    def _search(self, q, k, threads, rescore, allow=None):
        kc = min(self._ntotal, getattr(self.codec, "rescore_factor", 2) * k) if rescore else k
        view = self._int8_view() if q.shape[0] >= GEMM_MIN_QUERIES and kc <= GEMM_MAX_CANDIDATES else None
        if view is not None and view[3] > GEMM_MAX_DIMS_PER_SUBSPACE * self.n_sub and not gemm_has_amx():
            view = None
        if view is not None:
            cand_s, cand_all = self._gemm_candidates(q, kc, threads, view, allow)
            if not rescore:
                return cand_s, cand_all
            out_s = np.empty((q.shape[0], k), dtype=np.float32)
            out_i = np.empty((q.shape[0], k), dtype=np.int64)
            for q0 in range(0, q.shape[0], _QUERY_CHUNK):
                qc, cand = q[q0 : q0 + _QUERY_CHUNK], cand_all[q0 : q0 + _QUERY_CHUNK]
                out_s[q0 : q0 + _QUERY_CHUNK], out_i[q0 : q0 + _QUERY_CHUNK] = self._rescore(qc, cand, k, threads)
            return out_s, out_i
        out_s = np.empty((q.shape[0], k), dtype=np.float32)
        out_i = np.empty((q.shape[0], k), dtype=np.int64)
        for q0 in range(0, q.shape[0], _QUERY_CHUNK):
            qc = q[q0 : q0 + _QUERY_CHUNK]
            tables = self.codec.tables(qc, self.metric, threads)
            luts, alpha, beta = quantize_tables(tables)
            if _backend.backend == "native":
                # unsorted: both users order the candidates by their own scores (_rescore, or +rerank)
                sc, cand = _backend._core.lut4_search_topk(
                    luts, self._packed, self._ntotal, self.n_sub, alpha, beta, kc, threads, sorted=False, allow=allow
                )
            else:
                from ..kernels import _numba_lut4

                nb = _backend.numba_kernels()
                sc = np.empty((qc.shape[0], kc), dtype=np.float32)
                cand = np.empty((qc.shape[0], kc), dtype=np.int64)
                with nb.threads(threads):
                    _numba_lut4.lut4_search_topk(luts, self._packed, self._ntotal, self.n_sub, alpha, beta, kc,
                                                 sc, cand, no_bits(allow))
            if not rescore:  # the candidates and the scores the scan ranked them by
                out_s[q0 : q0 + _QUERY_CHUNK], out_i[q0 : q0 + _QUERY_CHUNK] = sc, cand
                continue
            out_s[q0 : q0 + _QUERY_CHUNK], out_i[q0 : q0 + _QUERY_CHUNK] = self._rescore(qc, cand, k, threads, tables)
        return out_s, out_i

    def _exact_scores(self, q, cand, threads, tables=None):
        """Exact float ADC scores of the candidates (nq, kc) (ids -1: -inf)."""
        if self.metric == "l2" and getattr(self.codec, "l2_rescore_by_norms", False):
            ip_tables = self.codec.tables(q, "ip", threads)
            return 2 * score_candidates(ip_tables, self._packed, self._ntotal, cand) - self._sqnorms[cand]
        if tables is None:
            tables = self.codec.tables(q, self.metric, threads)
        return score_candidates(tables, self._packed, self._ntotal, cand)

    def _rescore(self, q, cand, k, threads, tables=None):
        """Exact float ADC scores of the candidates, best k of them (ties -> lower id)."""
        s = self._exact_scores(q, cand, threads, tables)
        order = np.lexsort((cand, -s), axis=1)[:, :k]
        return np.take_along_axis(s, order, axis=1), np.take_along_axis(cand, order, axis=1)

    def _code_arrays(self):
        return {"packed": self._packed, "sqnorms": self._sqnorms}

    def _load_code_arrays(self, arrays):
        self._packed = aligned(arrays["packed"])
        self._sqnorms = np.array(arrays["sqnorms"])
        self._ntotal = len(self._sqnorms)

"""``rabitq`` / ``rabitq<b>``: flat search over RaBitQ codes (:mod:`medqk.quantizers.rabitq`), 1 bit (the sign
code) or b = 2..8 bits per dimension (Extended RaBitQ).

Per vector: the ceil(b d / 8)-byte code (its b bit planes one after the other) and two float32 factors (56 B
at d = 384 for 1 bit, 104 B for 2). A search quantizes each query to bit planes and scores every vector by the
AND-popcount scan over the b d bits (exact integers, then the float32 estimator of the codec's doc; b > 1:
the scan's per-vector count is the code sum S, :func:`medqk.quantizers.rabitq.code_sums`);
results are ranked by that estimate, ties -> lower id, and the estimate is the score returned (q . x,
l2: the squared distance from it, as every index does). ``+rerank:<codec>`` re-scores ``rerank_factor * k``
candidates with a finer copy. The scan is medqk.kernels.rabitq_search_topk: the native kernels (csrc/runtime/
rabitq_search.cpp) or, under MEDQK_BACKEND=numba, the Numba twin, with the same integers and float bits.
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from ..quantizers.rabitq import RaBitQCodec, code_bytes, code_sums, scan_scores
from .flat import Index


class FlatRaBitQIndex(Index):
    def __init__(self, spec, dim: int, metric: str, bits: int = 1, **codec_options):
        super().__init__(spec, dim, metric)
        self.codec = RaBitQCodec(dim, metric, bits=bits, **codec_options)
        # what is stored per vector (the saved arrays): codes, then the factors M_v and B_v
        self._stored = {"codes": np.empty((0, code_bytes(dim, bits)), dtype=np.uint8),
                        "mult": np.empty(0, dtype=np.float32), "add": np.empty(0, dtype=np.float32)}
        self._scan = None  # the codes packed for the scan (medqk.kernels.PackedRaBitQ), rebuilt after add()

    @property
    def bytes_per_vector(self) -> float:
        return self.codec.bytes_per_vector

    def _add(self, x):
        enc = self.codec.encode(x)
        self._stored = {name: np.concatenate([old, getattr(enc, name)]) for name, old in self._stored.items()}
        self._scan = None

    def _pack(self, codes):
        """Codes in the scan's layout (medqk.kernels.pack_rabitq, the active backend's): a 1-bit code of b d
        dimensions whose per-vector count is, for b > 1, the code sum S instead of its popcount (the scan
        reads ``pop`` only as that count: module doc of medqk.quantizers.rabitq)."""
        from .. import kernels

        bits = self.codec.bits
        return kernels.pack_rabitq(codes, bits * self.dim,
                                   counts=code_sums(codes, self.dim, bits) if bits > 1 else None)

    def _packed(self):
        """The stored codes packed by :meth:`_pack`, rebuilt after add() or a backend change."""
        if self._scan is None or self._scan.backend != _backend.backend:
            self._scan = self._pack(self._stored["codes"])
        return self._scan

    def _scores_topk(self, q, k, threads, allow=None):
        from .. import kernels

        query = self.codec.quantize_queries(q)
        if allow is not None:
            allow = np.ascontiguousarray(allow, dtype=np.uint8)
        return kernels.rabitq_search_topk(self._packed(), query.planes, query.a, query.c1, query.c2, query.c3,
                                          self._stored["mult"], self._stored["add"], k, threads=threads, allow=allow)

    def _score_rows(self, q, rows):
        """The scan's estimates (the same float32 operations, numpy) of the given rows: a selective filter's
        exact scan ranks by what the full scan would have."""
        from .. import kernels

        query = self.codec.quantize_queries(q)
        packed = self._pack(self._stored["codes"][rows])
        ip = kernels.rabitq_scan_ints(packed, query.planes)
        return scan_scores(ip, packed.pop, query.a, query.c1, query.c2, query.c3, self._stored["mult"][rows],
                                     self._stored["add"][rows])

    def _keep_rows(self, rows):
        self._stored = {name: arr[rows] for name, arr in self._stored.items()}
        self._scan = None

    def _state(self):
        config, arrays = self.codec.state()
        arrays.update(self._stored)
        return {"codec": config}, arrays

    def _load_state(self, config, arrays):
        from .._errors import IndexFileError

        self.codec.load_state(arrays)
        self._stored = {name: np.asarray(arrays[name]) for name in self._stored}
        codes = self._stored["codes"]
        if codes.ndim != 2 or codes.shape[1] != self.codec.code_bytes or codes.dtype != np.uint8:
            raise IndexFileError(f"corrupt {self.spec} index: codes {codes.shape} {codes.dtype}, expected "
                                 f"(n, {self.codec.code_bytes}) uint8")
        self._ntotal = self._stored["codes"].shape[0]
        self._scan = None

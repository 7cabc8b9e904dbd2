"""``rabitq``: flat search over 1-bit RaBitQ codes (:mod:`medqk.quantizers.rabitq`).

Per vector: the ceil(d / 8)-byte sign code and two float32 factors (56 B at d = 384). A search quantizes
each query to ``query_bits`` bit planes and scores every vector by the AND-popcount scan of
:mod:`medqk.kernels._numba_rabitq` (exact integers, then the float32 estimator of the codec's doc);
results are ranked by that estimate, ties -> lower id, and the estimate is the score returned (q . x,
l2: the squared distance from it, as every index does). ``+rerank:<codec>`` re-scores ``rerank_factor * k``
candidates with a finer copy. Both backends run the Numba scan (the native kernel is not written yet).
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from ..quantizers.rabitq import RaBitQCodec, code_bytes
from .flat import Index


class FlatRaBitQIndex(Index):
    def __init__(self, spec, dim: int, metric: str, **codec_options):
        super().__init__(spec, dim, metric)
        self.codec = RaBitQCodec(dim, metric, **codec_options)
        # what is stored per vector (the saved arrays): sign codes, then the factors M_v and B_v
        self._stored = {"codes": np.empty((0, code_bytes(dim)), dtype=np.uint8),
                        "mult": np.empty(0, dtype=np.float32), "add": np.empty(0, dtype=np.float32)}
        self._scan = None  # (codes as uint64 words, popcounts): derived from the codes, rebuilt after add()

    @property
    def bytes_per_vector(self) -> float:
        return self.codec.bytes_per_vector

    def _add(self, x):
        enc = self.codec.encode(x)
        self._stored = {name: np.concatenate([old, getattr(enc, name)]) for name, old in self._stored.items()}
        self._scan = None

    def _scan_arrays(self):
        from ..kernels import _numba_rabitq as kern

        if self._scan is None:
            words = kern.to_words(self._stored["codes"], self.dim)
            pop = np.empty(words.shape[0], dtype=np.int32)
            kern.rabitq_popcounts(words, kern.dim_mask(self.dim), pop)
            self._scan = words, pop
        return self._scan

    def _scores_topk(self, q, k, threads, allow=None):
        from ..kernels import _numba_rabitq as kern

        words, pop = self._scan_arrays()
        query = self.codec.quantize_queries(q)
        planes = kern.to_words(query.planes, self.dim)
        scores = np.empty((q.shape[0], k), dtype=np.float32)
        ids = np.empty((q.shape[0], k), dtype=np.int64)
        allow = np.empty(0, dtype=np.uint8) if allow is None else np.ascontiguousarray(allow, dtype=np.uint8)
        with _backend.numba_kernels().threads(threads):
            kern.rabitq_search_topk(words, pop, planes, query.a, query.c1, query.c2, query.c3, self._stored["mult"],
                                    self._stored["add"], k, scores, ids, allow)
        return scores, ids

    def _score_rows(self, q, rows):
        """The scan's estimates (the same float32 operations, numpy) of the given rows: a selective filter's
        exact scan ranks by what the full scan would have."""
        from ..kernels import _numba_rabitq as kern

        words, pop = self._scan_arrays()
        query = self.codec.quantize_queries(q)
        planes = kern.to_words(query.planes, self.dim)
        ip = np.empty((q.shape[0], rows.size), dtype=np.int32)
        kern.rabitq_scan_ints(np.ascontiguousarray(words[rows]), planes, ip)
        return kern.scores_reference(ip, pop[rows], query.a, query.c1, query.c2, query.c3, self._stored["mult"][rows],
                                     self._stored["add"][rows])

    def _keep_rows(self, rows):
        self._stored = {name: arr[rows] for name, arr in self._stored.items()}
        self._scan = None

    def _state(self):
        config, arrays = self.codec.state()
        arrays.update(self._stored)
        return {"codec": config}, arrays

    def _load_state(self, config, arrays):
        self.codec.load_state(arrays)
        self._stored = {name: np.asarray(arrays[name]) for name in self._stored}
        self._ntotal = self._stored["codes"].shape[0]
        self._scan = None

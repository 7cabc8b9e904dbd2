"""``hnsw``: hnswlib's float32 HNSW graph as a medqk index (a graph baseline for ``medqk eval``).

Parameters: M=16 (at least 2: hnswlib draws levels with 1 / ln M and fails on M=1), ef_construction=200
(hnswlib uses at least M), and ef_search = max(ef_search, k) at search time (default 64); settable through
``create("hnsw", dim, M=..., ef_construction=..., ef_search=...)``; ``progress`` (None: a bar on stderr
when it is a terminal) for add(), which inserts 10,000 vectors at a time (the same graph as one call: the
insertion is sequential). Needs hnswlib. Inner-product scores and squared L2 distances are returned as for
the flat indexes; ties follow hnswlib's order and then lower id first.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from .._progress import progress_bar
from .flat import Index

_ADD_CHUNK = 10_000  # vectors inserted per hnswlib call: one progress-bar step (200k x 384: ~4 s each)


def _hnswlib():
    try:
        import hnswlib
    except ImportError:
        raise ImportError("the 'hnsw' spec needs hnswlib: pip install hnswlib") from None
    return hnswlib


class HnswIndex(Index):
    range_search = False  # scores only the probed part: search_range refuses it

    def __init__(self, spec, dim: int, metric: str, *, M: int = 16, ef_construction: int = 200, ef_search: int = 64,
                 seed: int = 100, progress: bool | None = None):
        super().__init__(spec, dim, metric)
        _hnswlib()
        for name, value in (("M", M), ("ef_construction", ef_construction), ("ef_search", ef_search)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if M < 2:  # hnswlib's level multiplier 1 / ln(M) is infinite: add() fails with "Not enough memory"
            raise ValueError(f"M must be >= 2 (links per node; 16 is the default), got {M!r}")
        self.M, self.ef_construction, self.ef_search, self.seed = int(M), int(ef_construction), int(ef_search), seed
        self.progress = progress
        self._graph = None

    def _new_graph(self, capacity: int):
        g = _hnswlib().Index(space="l2" if self.metric == "l2" else "ip", dim=self.dim)
        g.init_index(max_elements=max(capacity, 1), M=self.M, ef_construction=self.ef_construction,
                     random_seed=self.seed)
        return g

    def _add(self, x: np.ndarray) -> None:
        n0 = self._ntotal
        if self._graph is None:
            self._graph = self._new_graph(n0 + len(x))
        else:
            self._graph.resize_index(n0 + len(x))
        bar = progress_bar(self.progress, len(x), "hnsw add", "vec")
        for i in range(0, len(x), _ADD_CHUNK):
            part = x[i : i + _ADD_CHUNK]
            self._graph.add_items(part, np.arange(n0 + i, n0 + i + len(part)), num_threads=1)
            bar.update(len(part))
        bar.close()

    @property
    def bytes_per_vector(self) -> float:
        """Vectors plus graph links, measured on the serialized graph."""
        return self.nbytes / max(self._ntotal, 1)

    def _vectors_rows(self, rows):
        """The float32 vectors held by the graph (its labels are the rows)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.asarray(self._graph.get_items(rows), dtype=np.float32).reshape(len(rows), self.dim)

    def _delete_rows(self, rows):
        for r in rows:  # hnswlib skips marked elements in its searches (and still routes through them)
            self._graph.mark_deleted(int(r))

    def _keep_rows(self, rows):
        x = self._vectors_rows(rows)
        self._graph = None
        if len(rows):
            self._graph = self._new_graph(len(rows))
            self._graph.add_items(x, np.arange(len(rows)), num_threads=1)

    def _scores_topk(self, q, k, threads, allow=None):
        self._graph.set_ef(max(self.ef_search, k))
        nthreads = threads if threads > 0 else -1
        if allow is None or self._rows.deleted is not None and allow is self._rows.live_bits():
            labels, dist = self._graph.knn_query(q, k=k, num_threads=nthreads)  # deletions: marked in the graph
        else:
            # hnswlib's filter: a Python call per visited element; when the graph walk finds fewer than k
            # allowed elements, an exact scan of the allowed rows answers instead
            allowed = np.unpackbits(allow, count=self._ntotal, bitorder="little").astype(bool)
            try:
                labels, dist = self._graph.knn_query(q, k=k, num_threads=1, filter=lambda r: bool(allowed[r]))
            except RuntimeError:
                return self._exact_topk(q, k, np.flatnonzero(allowed))
        ids = labels.astype(np.int64)
        if self.metric != "l2":  # ip, cos
            scores = (1.0 - dist).astype(np.float32)  # hnswlib's ip distance is 1 - q.x
        else:
            # higher-is-better form expected by Index.search: 2 q.x - |x|^2 = |q|^2 - dist
            scores = (np.einsum("ij,ij->i", q, q)[:, None] - dist).astype(np.float32)
        order = np.lexsort((ids, -scores), axis=1)
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)

    def _state(self):
        config = {"M": self.M, "ef_construction": self.ef_construction, "ef_search": self.ef_search,
                  "ntotal": self._ntotal}
        arrays = {}
        if self._graph is not None:
            fd, tmp = tempfile.mkstemp(suffix=".hnsw")
            os.close(fd)
            try:
                self._graph.save_index(tmp)
                arrays["graph"] = np.fromfile(tmp, dtype=np.uint8)
            finally:
                os.unlink(tmp)
        return config, arrays

    def _load_state(self, config, arrays):
        self._ntotal = int(config.get("ntotal", 0))
        if "graph" in arrays:
            fd, tmp = tempfile.mkstemp(suffix=".hnsw")
            os.close(fd)
            try:
                np.asarray(arrays["graph"]).tofile(tmp)
                self._graph = _hnswlib().Index(space="l2" if self.metric == "l2" else "ip", dim=self.dim)
                self._graph.load_index(tmp)
                self._ntotal = self._graph.get_current_count()
            finally:
                os.unlink(tmp)

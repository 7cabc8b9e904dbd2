"""Flat (exhaustive) indexes over float32, fp16 or int8 codes, and the rerank wrapper.

Scores: ``metric="ip"`` returns inner products, best (largest) first; ``metric="l2"`` returns squared
Euclidean distances, best (smallest) first; ``metric="cos"`` stores and searches unit vectors (zero vectors
refused) and returns their inner products, the cosine similarities, best first. Ties: equal scores -> lower
id first (with ids given to add(), equal scores at the k-th place are kept in storage order, then listed by
id).

Ids, removal and filters (see Index): ``add(x, ids=...)`` / ``upsert`` / ``remove`` / ``compact`` and
``search(q, k, filter=...)``. The search kernels rank stored rows and take an allow-bitmap over them
(medqk.index._ids), tested before a row enters the top-k: removed and filtered-out rows are never returned
and never crowd allowed ones out of the k results.

k: ``search(q, k)`` takes k in 1..ntotal and always returns (nq, k) arrays; a k larger than the number of
stored vectors raises ValueError before anything is allocated (padding to any k, as faiss does, let
``search(q, 10**9)`` ask for gigabytes; to get every vector, pass ``k=index.ntotal``). Only an index that
does not scan every vector can find fewer than k for a query (IVF, whose probed lists may hold fewer than
k vectors): its rows end with id -1 and score -inf (ip) / +inf (l2).
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import _backend
from .._validate import threads_arg
from ..kernels import pack_s8, quantize_rows_s8
from ..quantizers import ScalarQuantizer
from . import _topk
from ._ids import RowIds, as_ids, first_duplicate, pack_bits, unique_ids
from .spec import BYTES_PER_DIM, IndexSpec

METRICS = ("ip", "l2", "cos")
_QUERY_BLOCK = 1024
_DB_BLOCK = 16384
# remove() compacts the index by itself once more than this fraction of its stored rows are removed ones:
# until then a removed row still costs its scan time (its bit is tested after its score is computed)
AUTO_COMPACT_FRACTION = 0.25
# A filter that allows at most this fraction of the stored rows is searched by an exact scan of just those
# rows (each scored as the index's final stage scores, see Index.search) instead of the full scan with a mask.
# The exact scan costs about the fraction times a per-row price, the masked scan about an unfiltered search;
# bench/compare_filter.py measures both at 1% on MedQuAD (15,825 x 384, 1 thread), and they break even at
# about 20% for float32 / fp16 (a gathered BLAS product against a full one), 9% for int8 (its float re-scoring
# of codes), and 1.4-2.9% for the 4-bit and 8-bit table codecs, +rerank and IVF (a scalar table lookup per
# sub-code against the SIMD scan). Each class takes its value a little below its break-even
# (``exact_scan_fraction``; an index may set its own).
EXACT_SCAN_FRACTION = 0.012
EXACT_SCAN_FRACTION_FLOAT = 0.15
EXACT_SCAN_FRACTION_INT8 = 0.06
_EXACT_BLOCK = 1 << 20  # query x row scores computed at a time by the exact scan


def as_vectors(x, name: str, dim: int) -> np.ndarray:
    """float32 C-contiguous (n, dim); float64/float16 are converted, integers refused, NaN/Inf refused."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of floats, got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must have a floating dtype (float32; float16/float64 are converted), got {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, {dim}), got shape {x.shape}")
    if x.shape[1] != dim:
        raise ValueError(f"{name} has dimension {x.shape[1]} but the index has dim={dim}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 vectors)")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def check_k(k, live: int) -> int:
    """k as an int, or the error search() raises for a k that is not in 1..live (live: vectors searched)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if live == 0:
        raise RuntimeError("the index is empty: add(x) vectors before search()")
    if k > live:
        raise ValueError(f"k={k} is larger than the {live} vectors in the index "
                         f"(k must be in 1..len(index); k={live} returns them all)")
    return int(k)


def unit_vectors(x: np.ndarray, name: str) -> np.ndarray:
    """The rows of x (checked float32) scaled to norm 1 (metric "cos"); a zero row is refused."""
    norms = np.sqrt(np.einsum("ij,ij->i", x.astype(np.float64), x.astype(np.float64)))
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(f"{name} has {zero.size} zero vector(s) (first: row {zero[0]}): metric 'cos' needs a "
                         f"direction")
    return (x / norms[:, None]).astype(np.float32)


class Index:
    """Common front of every medqk index: train / add / search / save, and the ids of what it holds.

    Ids: ``add(x)`` numbers the vectors in insertion order (0, 1, ... as before); ``add(x, ids=...)`` gives
    them the caller's int64 ids (>= 0, unique, none already in the index). Both may be mixed: an ``add``
    without ids continues from one past the largest id ever given (see ``next_id``). ``search`` returns
    these ids, ``len(index)`` counts the vectors searched, ``vectors(ids)`` reconstructs them.
    """

    exact_scan_fraction = EXACT_SCAN_FRACTION  # see Index.search
    codec = None  # what train() fits, for the indexes that have one: is_trained and train() follow it

    def __init__(self, spec: IndexSpec, dim: int, metric: str):
        self.spec = spec
        self.dim = dim
        self.metric = metric
        self._rows = RowIds()

    # The number of stored rows (deleted ones included until compact()): what the subclasses index codes by.
    @property
    def _ntotal(self) -> int:
        return self._rows.rows

    @_ntotal.setter
    def _ntotal(self, rows: int) -> None:
        self._rows.resize(int(rows))

    # -- subclasses implement -------------------------------------------------------------------
    def _train(self, x: np.ndarray) -> None:
        if self.codec is not None:
            self.codec.train(x)

    def _add(self, x: np.ndarray) -> None:
        raise NotImplementedError

    def _scores_topk(self, q: np.ndarray, k: int, threads: int, allow=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by 'higher is better' scores: ip -> q.x ; l2 -> 2 q.x - |x|^2. ``allow``: None, or the
        bitmap of the rows that may enter the top-k (medqk.index._ids); rows end with -1 when fewer pass."""
        raise NotImplementedError

    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        raise NotImplementedError

    def _candidates(self, q: np.ndarray, k: int, threads: int, allow=None) -> np.ndarray:
        """Rows of k candidates for a re-ranking stage (codecs may skip their own final re-scoring)."""
        return self._scored_candidates(q, k, threads, allow)[1]

    def _scored_candidates(self, q: np.ndarray, k: int, threads: int, allow=None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of ``_candidates``: the scores the rows were selected by (higher first, equal -> lower
        row), in any order; medqk.distributed merges the candidates of index shards by them."""
        return self._scores_topk(q, k, threads) if allow is None else self._scores_topk(q, k, threads, allow)

    def _vectors_rows(self, rows: np.ndarray) -> np.ndarray:
        raise TypeError(f"index '{self.spec}' cannot reconstruct its vectors")

    def _score_rows(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Scores (nq, len(rows)) of the queries against the given rows, in the 'higher is better' form of
        _scores_topk and as the index's final stage scores them (the exact scan of a selective filter)."""
        v = self._vectors_rows(rows)
        s = q @ v.T
        return 2 * s - np.einsum("ij,ij->i", v, v) if self.metric == "l2" else s

    def _keep_rows(self, rows: np.ndarray) -> None:
        """Keeps only the stored rows ``rows`` (increasing), renumbered 0.. (compact())."""
        raise NotImplementedError

    def _delete_rows(self, rows: np.ndarray) -> None:
        """Rows just removed (an index that tracks deletions itself, as hnswlib's graph, is told here)."""

    # -- public API ---------------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return self.codec is None or self.codec.is_trained

    @property
    def ntotal(self) -> int:
        """Number of vectors in the index (those removed not counted): ``len(index)``."""
        return self._rows.live

    def __len__(self) -> int:
        return self._rows.live

    @property
    def next_id(self) -> int:
        """The id the next ``add(x)`` without ids gives its first vector: one past the largest id ever given."""
        return self._rows.next_id

    def ids(self) -> np.ndarray:
        """The ids of the vectors in the index, in storage order (int64)."""
        live = self._rows.live_mask()
        ids = self._rows.row_ids()
        return ids.copy() if live is None else ids[live]

    @property
    def nbytes(self) -> int:
        """Bytes held by the index (codes plus codec parameters and per-vector terms)."""
        _, arrays = self._state()
        return int(sum(a.nbytes for a in arrays.values()))

    @property
    def bytes_per_vector(self) -> float:
        """Bytes stored per vector by the codes (codec parameters and index overhead excluded)."""
        return BYTES_PER_DIM[self.spec.base] * self.dim

    def _vectors_in(self, x, name: str) -> np.ndarray:
        """x checked (as_vectors), and scaled to unit norm for metric "cos"."""
        x = as_vectors(x, name, self.dim)
        return unit_vectors(x, name) if self.metric == "cos" else x

    def train(self, x: np.ndarray) -> Index:
        """Fits the codec on sample vectors x (n, dim). Float codecs need no training (no-op)."""
        self._train(self._vectors_in(x, "x"))
        return self

    def add(self, x: np.ndarray, ids=None) -> Index:
        """Adds vectors x (n, dim). ``ids``: their int64 ids (n,), each >= 0, unique, and not in the index
        already (ValueError naming ``ids``; :meth:`upsert` replaces vectors); None: ``next_id``,
        ``next_id + 1``, ... (insertion order, 0.. for an index that was never given ids). May be called
        repeatedly."""
        x = self._vectors_in(x, "x")
        if not self.is_trained:
            raise RuntimeError(f"index '{self.spec}' must be trained before add(): call train(x) first")
        new_ids = self._rows.new_ids(x.shape[0], ids)
        self._add(x)
        self._rows.append(x.shape[0], new_ids)
        return self

    def vectors(self, ids=None) -> np.ndarray:
        """The stored vectors (float32; reconstructions for quantized codes), all (storage order, as
        :meth:`ids`) or those of ``ids`` (KeyError for an id not in the index)."""
        if ids is None:
            live = self._rows.live_mask()
            rows = np.arange(self._ntotal) if live is None else np.flatnonzero(live)
        else:
            shape = np.shape(ids)
            rows = self._rows.rows_of(as_ids(np.reshape(ids, -1), "ids"))
            return self._vectors_rows(rows).reshape(tuple(shape) + (self.dim,))
        return self._vectors_rows(rows)

    def remove(self, ids) -> int:
        """Removes the vectors of ``ids`` (int64; ids not in the index are ignored, not an error) and returns
        how many were removed. Searches never return them again; their space is reclaimed by
        :meth:`compact`, which runs by itself once removed rows exceed ``AUTO_COMPACT_FRACTION`` (25%) of the
        stored ones."""
        ids = as_ids(np.atleast_1d(ids), "ids")
        rows = self._rows.rows_of(unique_ids(ids), missing="skip")
        if rows.size:
            self._rows.delete(rows)
            self._delete_rows(rows)
            self._auto_compact()
        return int(rows.size)

    def upsert(self, x: np.ndarray, ids) -> Index:
        """Adds vectors x (n, dim) under ``ids`` (n,), replacing the vectors those ids have (if any). The new
        vectors are encoded before anything is removed: an error leaves the index as it was."""
        x = self._vectors_in(x, "x")
        ids = as_ids(np.atleast_1d(ids), "ids", x.shape[0])
        if first_duplicate(ids) is not None:
            raise ValueError("ids has duplicates: each id takes one vector")
        if not self.is_trained:
            raise RuntimeError(f"index '{self.spec}' must be trained before upsert(): call train(x) first")
        old = self._rows.rows_of(ids, missing="skip")
        self._add(x)
        if old.size:
            self._rows.delete(old)
            self._delete_rows(old)
        self._rows.append(x.shape[0], ids)
        self._auto_compact()
        return self

    def compact(self) -> Index:
        """Drops the removed vectors' rows from the stored codes (ids stay as they are)."""
        live = self._rows.live_mask()
        if live is not None:
            rows = np.flatnonzero(live)
            self._keep_rows(rows)
            self._rows.keep(rows)
        return self

    def _auto_compact(self) -> None:
        if self._rows.n_deleted > AUTO_COMPACT_FRACTION * self._rows.rows:
            self.compact()

    def _allowed_rows(self, filter) -> "np.ndarray | None":
        """The rows a search may return (bool per stored row), or None for all: live, and allowed by
        ``filter`` (see search)."""
        live = self._rows.live_mask()
        if filter is None:
            return live
        if callable(filter):
            mask = np.zeros(self._rows.rows, dtype=bool)
            rows = np.arange(self._rows.rows) if live is None else np.flatnonzero(live)
            ids = self._rows.row_ids()
            mask[rows] = np.fromiter((bool(filter(int(i))) for i in ids[rows]), dtype=bool, count=len(rows))
            return mask
        f = np.asarray(filter)
        if f.dtype == bool:
            if f.ndim != 1 or f.shape[0] != self._rows.next_id:
                raise ValueError(f"filter: a boolean mask has one entry per id 0..next_id - 1 ({self._rows.next_id} "
                                 f"entries for this index), got shape {f.shape}")
            mask = f[: self._rows.rows] if self._rows.ids is None else f[self._rows.ids]  # row r's id is r / ids[r]
        elif np.issubdtype(f.dtype, np.integer) or f.size == 0:
            rows = self._rows.rows_of(as_ids(f.reshape(-1), "filter"), missing="skip")  # repeats: same rows
            mask = np.zeros(self._rows.rows, dtype=bool)
            mask[rows] = True
            return mask  # rows_of gives live rows only
        else:
            raise TypeError(f"filter must be an array of ids, a boolean mask over ids or a callable id -> bool, got "
                            f"{type(filter).__name__} of dtype {f.dtype}")
        return mask if live is None else mask & live

    def _exact_topk(self, q: np.ndarray, k: int, rows: np.ndarray,
                    query_block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of just ``rows`` by _score_rows (ties -> lower row), padded with -inf / -1. ``query_block``:
        queries scored per _score_rows call (default: as many as keep about _EXACT_BLOCK scores); a shard of
        medqk.distributed passes its whole index's, so that query-side products (BLAS) see the same shapes."""
        nq = q.shape[0]
        out_s = np.full((nq, k), -np.inf, dtype=np.float32)
        out_i = np.full((nq, k), -1, dtype=np.int64)
        if rows.size == 0:
            return out_s, out_i
        kk = min(k, rows.size)
        step = query_block or max(1, _EXACT_BLOCK // rows.size)
        for q0 in range(0, nq, step):
            s = np.ascontiguousarray(self._score_rows(q[q0 : q0 + step], rows), dtype=np.float32)
            best, cols = _topk.block_topk(s, kk, 0)  # rows increase with the columns: the same tie rule
            out_s[q0 : q0 + step, :kk] = best
            out_i[q0 : q0 + step, :kk] = rows[cols]
        return out_s, out_i

    def search(self, q: np.ndarray, k: int, *, threads: int | None = None,
               filter=None) -> tuple[np.ndarray, np.ndarray]:
        """The k best vectors for each query q (nq, dim) (a single (dim,) query is accepted).

        ``k``: 1..len(index); a larger k raises ValueError (see the module doc: the results are always
        (nq, k), and only IVF, which scans part of the index, or a filter allowing fewer than k vectors,
        can end a row with id -1).

        ``filter``: the ids a result may have: an array of ids (ids not in the index are ignored), a boolean
        mask over the ids (length ``next_id``: entry i for id i), or a callable id -> bool (called once per
        stored vector in Python: far slower, for filters no array can express). Removed vectors are never
        returned, filter or not. The filter is applied inside the scan: a vector that is not allowed never
        enters the top-k (and, for ``+rerank``, never becomes a candidate), so k allowed results come back
        whenever k are allowed. A filter allowing at most ``exact_scan_fraction`` of the stored rows (15% for
        float32 / fp16, 6% for int8, 1.2% for the others: see EXACT_SCAN_FRACTION) is searched by an exact
        scan of just those rows, scored as the index's last stage scores (the float
        vectors, the int8 codes with the float query, the float ADC tables, or the ``+rerank`` codec; IVF
        by its float reconstructions, over every list): at least as accurate as the masked scan.

        Returns (scores float32 (nq, k), ids int64 (nq, k)), best first; see the module doc for the
        score meaning and the tie rule.
        """
        k = check_k(k, len(self))
        q = self._vectors_in(q, "q")
        nthreads = threads_arg(threads)
        allowed = self._allowed_rows(filter)
        if allowed is None:
            scores, rows = self._scores_topk(q, int(k), nthreads)
        elif filter is not None and np.count_nonzero(allowed) <= self.exact_scan_fraction * self._rows.rows:
            scores, rows = self._exact_topk(q, int(k), np.flatnonzero(allowed))
        else:
            bits = self._rows.live_bits() if filter is None else pack_bits(allowed)
            scores, rows = self._scores_topk(q, int(k), nthreads, bits)
        return self._finish(q, scores, self._rows.to_user(rows))

    range_search = True  # False for the indexes that do not score every vector (IVF, HNSW)

    def search_range(self, q: np.ndarray, threshold: float, *,
                     filter=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every vector within ``threshold`` of each query q (nq, dim) (a single (dim,) query is accepted):
        ip / cos: score >= threshold; l2: squared distance <= threshold. ``filter`` as in :meth:`search`;
        removed vectors are never returned.

        Returns (lims int64 (nq + 1,), scores float32, ids int64), faiss's layout: query i's results are
        scores[lims[i]:lims[i + 1]], ids[...], best first, equal scores -> lower id. Every allowed vector is
        scored as the index's last stage scores it (the exact scan of a selective filter in :meth:`search`):
        float32 / fp16: the float vectors, so the result is the exact range search up to float32 rounding of
        the scores; int8: the codes with the float query; the PQ-family and rabitq: their ADC / estimator
        scores; ``+rerank``: the re-ranking codec's, over every vector (not only a first stage's candidates).
        Flat indexes only (IVF and HNSW score part of the index: TypeError).
        """
        if not self.range_search:
            raise TypeError(f"search_range needs a flat index; '{self.spec}' scores only part of the index "
                            "(IVF lists, HNSW graph)")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
                or not np.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        q = self._vectors_in(q, "q")
        if len(self) == 0:
            raise RuntimeError("the index is empty: add(x) vectors before search_range()")
        allowed = self._allowed_rows(filter)
        rows = np.arange(self._rows.rows) if allowed is None else np.flatnonzero(allowed)
        nq = q.shape[0]
        hit_q, hit_rows, hit_s = [], [], []
        step = max(1, _EXACT_BLOCK // max(nq, 1))
        qn = np.einsum("ij,ij->i", q, q)[:, None] if self.metric == "l2" else None
        for r0 in range(0, rows.size, step):
            block = rows[r0 : r0 + step]
            s = np.asarray(self._score_rows(q, block), dtype=np.float32)
            if self.metric == "l2":  # the 'higher is better' form back to squared distances, as search returns
                s = np.maximum(qn - s, 0).astype(np.float32)
                qi, cols = np.nonzero(s <= threshold)
            else:
                qi, cols = np.nonzero(s >= threshold)
            hit_q.append(qi)
            hit_rows.append(block[cols])
            hit_s.append(s[qi, cols])
        qi = np.concatenate(hit_q) if hit_q else np.empty(0, np.int64)
        ids = self._rows.to_user(np.concatenate(hit_rows)) if hit_rows else np.empty(0, np.int64)
        scores = np.concatenate(hit_s) if hit_s else np.empty(0, np.float32)
        order = np.lexsort((ids, scores if self.metric == "l2" else -scores, qi))  # per query, best first
        lims = np.zeros(nq + 1, dtype=np.int64)
        np.cumsum(np.bincount(qi, minlength=nq), out=lims[1:])
        return lims, scores[order].astype(np.float32, copy=False), ids[order].astype(np.int64, copy=False)

    def _finish(self, q, scores, ids):
        """Scores in the metric's form and the final order: best first, equal scores -> lower id."""
        if self.metric == "l2":
            qn = np.einsum("ij,ij->i", q, q)[:, None]
            scores = np.maximum(qn - scores, 0).astype(np.float32)  # ids -1 (IVF): score -inf -> +inf
            order = np.lexsort((ids, scores), axis=1)  # rounding may have made distinct scores equal
        elif self._rows.ids is not None:  # rows were ranked by (score, row): own ids may be in another order
            order = np.lexsort((np.where(ids >= 0, ids, np.iinfo(np.int64).max), -scores), axis=1)
        else:
            return scores.astype(np.float32, copy=False), ids
        scores = np.take_along_axis(scores, order, axis=1)
        ids = np.take_along_axis(ids, order, axis=1)
        return scores.astype(np.float32, copy=False), ids

    def save(self, path) -> None:
        """Writes the index to ``path`` atomically (temporary file + rename); see medqk.index.io."""
        from .io import save_index

        save_index(self, path)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(spec='{self.spec}', dim={self.dim}, metric='{self.metric}', "
                f"ntotal={self.ntotal})")


class FlatFloatIndex(Index):
    """Exhaustive search over float32 vectors (BLAS) or fp16 vectors (native fp16 kernel with a fused
    top-k; the Numba backend converts blocks to float32 and uses BLAS)."""

    exact_scan_fraction = EXACT_SCAN_FRACTION_FLOAT

    def __init__(self, spec: IndexSpec, dim: int, metric: str, dtype=np.float32):
        super().__init__(spec, dim, metric)
        self._dtype = np.dtype(dtype)
        self._data = np.empty((0, dim), dtype=self._dtype)
        self._norms = np.empty(0, dtype=np.float32)

    def _add(self, x: np.ndarray) -> None:
        stored = x.astype(self._dtype)
        self._data = np.concatenate([self._data, stored]) if len(self._data) else stored
        xs = stored.astype(np.float32)
        self._norms = np.concatenate([self._norms, np.einsum("ij,ij->i", xs, xs)])

    def _vectors_rows(self, rows):
        return self._data[rows].astype(np.float32, copy=False)

    def _score_rows(self, q, rows):
        s = q @ self._vectors_rows(rows).T
        return 2 * s - self._norms[rows] if self.metric == "l2" else s

    def _keep_rows(self, rows):
        self._data, self._norms = self._data[rows], self._norms[rows]

    def _scores_topk(self, q, k, threads, allow=None):
        if self._dtype == np.float16 and _backend.backend == "native" and q.shape[0] <= 256:
            # Small batches: native fp16 kernel (F16C / NEON fcvtl) with the top-k fused, no float32 copy of the
            # store (which would cost a full conversion per batch). Large batches amortize a blockwise float32
            # conversion over BLAS, which is faster per query there (measured on all MedQuAD dev queries).
            alpha, bias = (2.0, -self._norms) if self.metric == "l2" else (1.0, None)
            return _backend._core.f16_search_topk(q, self._data.view(np.uint16), alpha, bias, k, threads, allow)
        # BLAS scores; the selection of each block skips the rows `allow` clears (block_topk: tested only for
        # the scores that would enter the top-k, no pass over the block), so they come out only as padding,
        # written as id -1
        bias = -self._norms if self.metric == "l2" else None
        best_s = best_i = None
        for q0 in range(0, q.shape[0], _QUERY_BLOCK):
            qb = q[q0 : q0 + _QUERY_BLOCK]
            bs = bi = None
            for j0 in range(0, self._ntotal, _DB_BLOCK):
                block = self._data[j0 : j0 + _DB_BLOCK].astype(np.float32, copy=False)
                s = qb @ block.T
                if self.metric == "l2":
                    s *= 2
                if bias is not None:
                    s += bias[j0 : j0 + _DB_BLOCK]
                s_top, i_top = _topk.block_topk(s, k, j0, threads, allow)
                bs, bi = (s_top, i_top) if bs is None else _topk.merge_topk(bs, bi, s_top, i_top, k)
            best_s = bs if best_s is None else np.concatenate([best_s, bs])
            best_i = bi if best_i is None else np.concatenate([best_i, bi])
        if allow is not None:
            best_i = np.where(best_s == -np.inf, -1, best_i)
        return best_s, best_i

    def _state(self):
        return {}, {"data": self._data, "norms": self._norms}

    def _load_state(self, config, arrays):
        self._data, self._norms = arrays["data"], arrays["norms"]
        self._ntotal = self._data.shape[0]


def s8_topk(qcode, packed, alpha, bias, k: int, threads: int, allow=None):
    """Top-k of alpha[q] * (qcode[q] . code) + bias[v] over packed int8 codes (bias may be None), on the
    packed codes' backend: (scores float32 (nq, k), ids int64 (nq, k)), ties -> lower id; only the rows the
    bitmap ``allow`` sets (None: all; medqk.index._ids)."""
    alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    if packed.backend == "native":
        return _backend._core.s8_search_topk(qcode, packed._native, alpha, bias, k, threads, allow)
    from ..kernels import _numba_search

    nb = _backend.numba_kernels()
    scores = np.empty((qcode.shape[0], k), dtype=np.float32)
    ids = np.empty((qcode.shape[0], k), dtype=np.int64)
    empty = np.empty(0, dtype=np.float32)
    with nb.threads(threads):
        _numba_search.s8_search_topk(qcode, packed._rows, alpha, bias if bias is not None else empty, k, scores, ids,
                                     no_bits(allow))
    return scores, ids


def no_bits(allow) -> np.ndarray:
    """The Numba twins' form of an allow-bitmap: the bitmap, or an empty array for None."""
    return np.empty(0, dtype=np.uint8) if allow is None else allow


GEMM_DB_BLOCK = 32768  # vectors decoded to int8 at a time by the batched paths of the compact codecs


def s8_blocked_topk(u, metric: str, ntotal: int, decode, sqnorms, kc: int, threads: int,
                    allow=None) -> tuple[np.ndarray, np.ndarray]:
    """Top kc (scores, ids) per query by the int8 GEMM over the stored vectors decoded to int8 block by block
    (the batched search of the compact codecs, medqk.index.lut4 and .pq8): u (nq, d') float32 with
    q . x_hat ~ u . decoded + c(q), the constant c(q) left out (it does not change a query's order);
    decode(v0, n) -> int8 (n, d') for vectors v0 .. v0 + n - 1; sqnorms(v0, n) -> |x_hat|^2 for l2, which
    ranks by 2 q . x_hat - |x_hat|^2. Blocks are merged exactly (ties -> lower id). ``allow``: the bitmap of
    the rows that may be returned (None: all); blocks start at multiples of 8 rows, so each takes a slice."""
    qcode, sigma = quantize_rows_s8(u)
    alpha = 2 * sigma if metric == "l2" else sigma
    nq = u.shape[0]
    best_s = np.full((nq, kc), -np.inf, dtype=np.float32)
    best_i = np.full((nq, kc), -1, dtype=np.int64)
    for v0 in range(0, ntotal, GEMM_DB_BLOCK):
        n = min(GEMM_DB_BLOCK, ntotal - v0)
        bias = -sqnorms(v0, n) if metric == "l2" else None
        block_allow = None if allow is None else allow[v0 // 8 : (v0 + n + 7) // 8]
        s, i = s8_topk(qcode, pack_s8(decode(v0, n)), alpha, bias, min(kc, n), threads, block_allow)
        if v0 == 0 and n == ntotal:
            return s, i
        s = np.concatenate([best_s, s], axis=1)
        i = np.concatenate([best_i, np.where(i >= 0, i + v0, -1)], axis=1)
        order = np.lexsort((np.where(i >= 0, i, np.iinfo(np.int64).max), -s), axis=1)[:, :kc]
        best_s, best_i = np.take_along_axis(s, order, axis=1), np.take_along_axis(i, order, axis=1)
    return best_s, best_i


class FlatInt8Index(Index):
    """Exhaustive search over int8 codes of a per-dimension scalar quantizer, with the exact int8 GEMM.

    Queries are scaled by the codec's per-dimension scale and quantized per row to int8; the int8 dot
    product then gives  q . x_hat = sigma_q * (qcode . code) + q . offset  (x_hat = offset + scale * code),
    so zero points cost nothing at search time. For l2, |x_hat|^2 is kept per vector from add().
    """

    exact_scan_fraction = EXACT_SCAN_FRACTION_INT8

    def __init__(self, spec: IndexSpec, dim: int, metric: str, **codec_options):
        super().__init__(spec, dim, metric)
        self.codec = ScalarQuantizer(8, **codec_options)
        self._codes = np.empty((0, dim), dtype=np.int8)
        self._sqnorms = np.empty(0, dtype=np.float32)
        self._packed = None
        self._packed_key = None

    @property
    def quantizer(self) -> ScalarQuantizer:
        """Deprecated name of ``codec`` (what every index calls its trained part): kept through 0.2, then removed."""
        warnings.warn("FlatInt8Index.quantizer is deprecated: use .codec", DeprecationWarning, stacklevel=2)
        return self.codec

    def _add(self, x):
        codes = self.codec.encode(x)
        self._codes = np.concatenate([self._codes, codes]) if len(self._codes) else codes
        rec = self.codec.decode(codes)
        self._sqnorms = np.concatenate([self._sqnorms, np.einsum("ij,ij->i", rec, rec)])
        self._packed = None

    def _vectors_rows(self, rows):
        return self.codec.decode(self._codes[rows])

    def _score_rows(self, q, rows):
        return self.score_ids(q, np.broadcast_to(rows, (q.shape[0], rows.size)))

    def _keep_rows(self, rows):
        self._codes, self._sqnorms = self._codes[rows], self._sqnorms[rows]
        self._packed = None

    def _packed_codes(self):
        # Packed once per (backend, ISA) and reused; add() invalidates it. The ISA is the native module's:
        # the Numba backend must not read it (it runs without that module)
        native = _backend.backend == "native"
        key = (_backend.backend, _backend._core.active_isa() if native else None)
        if self._packed is None or self._packed_key != key:
            self._packed = pack_s8(self._codes)
            self._packed_key = key
        return self._packed

    def _scores_topk(self, q, k, threads, allow=None):
        return self._rescore(q, self._candidates(q, min(self._ntotal, 2 * k), threads, allow), k)

    def _scored_candidates(self, q, k, threads, allow=None):
        qs = q * self.codec.scale
        qcode, sigma = quantize_rows_s8(qs)
        if self.metric == "l2":
            alpha, bias = 2 * sigma, -self._sqnorms
        else:
            alpha, bias = sigma, None
        return s8_topk(qcode, self._packed_codes(), alpha, bias, k, threads, allow)

    def score_ids(self, q: np.ndarray, cand: np.ndarray, threads: int = 0) -> np.ndarray:
        """Float scores of the float queries against the stored codes of ``cand`` (nq, kc), exactly
        q . x_hat (ip) or 2 q . x_hat - |x_hat|^2 (l2), with x_hat = offset + scale * code."""
        qs = np.ascontiguousarray(q * self.codec.scale, dtype=np.float32)
        cand = np.ascontiguousarray(cand, dtype=np.int64)
        if _backend.backend == "native":
            s = _backend._core.s8_score_candidates(qs, self._codes, cand, threads)
        else:
            from ..kernels import _numba_search

            s = np.empty(cand.shape, dtype=np.float32)
            with _backend.numba_kernels().threads(threads):
                _numba_search.s8_score_candidates(qs, self._codes, cand, s)
        s = s + (q @ self.codec.offset)[:, None].astype(np.float32)
        if self.metric == "l2":
            s = 2 * s - self._sqnorms[cand]
        return s

    def rerank_topk(self, q: np.ndarray, cand: np.ndarray, k: int, threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The best k of each row of candidates ``cand`` (nq, kc) by their ``score_ids`` scores (ties -> lower
        id; ids -1 score -inf), as (scores, ids) of shape (nq, min(k, kc)). Natively one fused call (scores by
        the ISA's s8_score_candidates kernel, query constant, selection): on MedQuAD, pq96x4fs+rerank:int8's
        re-scoring of 200 candidates per query went from ~38 us (scores, then numpy lexsort) to ~12 us."""
        cand = np.ascontiguousarray(cand, dtype=np.int64)
        k = min(k, cand.shape[1])
        if _backend.backend == "native":
            qs = np.ascontiguousarray(q * self.codec.scale, dtype=np.float32)
            qbias = np.ascontiguousarray(q @ self.codec.offset, dtype=np.float32)
            sqnorms = self._sqnorms if self.metric == "l2" else None
            return _backend._core.s8_rerank_topk(qs, self._codes, cand, qbias, sqnorms, k, threads)
        s = self.score_ids(q, cand, threads)
        order = np.lexsort((cand, -s), axis=1)[:, :k]
        return np.take_along_axis(s, order, axis=1), np.take_along_axis(cand, order, axis=1)

    def _rescore(self, q: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Re-scores the int8 candidates with the float query and keeps the best k.

        The int8 scan ranks by the quantized query; re-scoring a few extra candidates with the float query
        removes the query's rounding from the final order (about +0.001 R@10 on MedQuAD for 2x candidates).
        """
        return self.rerank_topk(q, cand, k)

    def _state(self):
        qz = self.codec
        config = {"codec": qz.config()}
        arrays = {"codes": self._codes, "sqnorms": self._sqnorms}
        if qz.is_trained:
            arrays.update(scale=qz.scale, offset=qz.offset)
        return config, arrays

    def _load_state(self, config, arrays):
        if "scale" in arrays:
            self.codec.scale, self.codec.offset = arrays["scale"], arrays["offset"]
        self._codes, self._sqnorms = arrays["codes"], arrays["sqnorms"]
        self._ntotal = self._codes.shape[0]


class RerankIndex(Index):
    """Searches ``base`` for ``rerank_factor * k`` candidates (at most ntotal), then re-scores them with
    ``refine``.

    ``refine`` holds a finer copy of the same vectors (float32, fp16 or int8 reconstruction); scores
    returned are the refined ones, so they compare with other specs' scores.
    """

    def __init__(self, spec: IndexSpec, dim: int, metric: str, base: Index, refine: Index, rerank_factor: int = 4):
        super().__init__(spec, dim, metric)
        if isinstance(rerank_factor, bool) or not isinstance(rerank_factor, (int, np.integer)) or rerank_factor < 1:
            raise ValueError(f"rerank_factor must be an int >= 1, got {rerank_factor!r}")
        self.base, self.refine, self.rerank_factor = base, refine, int(rerank_factor)

    @property
    def is_trained(self) -> bool:
        return self.base.is_trained and self.refine.is_trained

    def _train(self, x):
        self.base._train(x)
        self.refine._train(x)

    def _add(self, x):
        for part in (self.base, self.refine):
            part._add(x)
            part._ntotal += x.shape[0]

    def _score_rows(self, q, rows):
        return self.refine._score_rows(q, rows)

    def _delete_rows(self, rows):
        self.base._delete_rows(rows)
        self.refine._delete_rows(rows)

    def _keep_rows(self, rows):
        for part in (self.base, self.refine):  # the parts' rows are their own ids: renumbered as well
            part._keep_rows(rows)
            part._rows.resize(len(rows))

    def _scores_topk(self, q, k, threads, allow=None):
        kc = min(self._ntotal, self.rerank_factor * k)
        cand = self.base._candidates(q, kc, threads, allow)  # only allowed rows become candidates
        return self._rerank(q, cand, k, threads)

    def _rerank(self, q, cand, k, threads):
        """The best min(k, kc) of the candidate rows ``cand`` (nq, kc; -1: none) by the refine codec's scores,
        as (scores, rows), ties -> lower row (medqk.distributed re-ranks each shard's part of a candidate
        list with it)."""
        kc = cand.shape[1]
        out_s = np.empty((q.shape[0], min(k, kc)), dtype=np.float32)
        out_i = np.empty((q.shape[0], min(k, kc)), dtype=np.int64)
        if hasattr(self.refine, "rerank_topk"):
            return self.refine.rerank_topk(q, cand, k, threads)
        for q0 in range(0, q.shape[0], 256):
            c = cand[q0 : q0 + 256]
            if hasattr(self.refine, "score_ids"):
                s = self.refine.score_ids(q[q0 : q0 + 256], c, threads)
            else:
                # an IVF base pads with id -1 when its probed lists hold fewer than kc vectors: those
                # must score -inf, not as vector -1 (the last one)
                valid = c >= 0
                rows = np.where(valid, c, 0).reshape(-1)
                vecs = self.refine._vectors_rows(rows).reshape(c.shape[0], kc, self.dim)
                s = np.einsum("qcd,qd->qc", vecs, q[q0 : q0 + 256])
                if self.metric == "l2":
                    s = 2 * s - np.einsum("qcd,qcd->qc", vecs, vecs)
                s = np.where(valid, s, -np.inf)
            order = np.lexsort((c, -s), axis=1)[:, :k]
            out_s[q0 : q0 + 256] = np.take_along_axis(s, order, axis=1)
            out_i[q0 : q0 + 256] = np.take_along_axis(c, order, axis=1)
        return out_s, out_i

    def _vectors_rows(self, rows):
        return self.refine._vectors_rows(rows)  # the finer copy

    @property
    def nbytes(self) -> int:
        return self.base.nbytes + self.refine.nbytes

    @property
    def bytes_per_vector(self) -> float:
        return self.base.bytes_per_vector + self.refine.bytes_per_vector

    def _state(self):
        bc, ba = self.base._state()
        rc, ra = self.refine._state()
        config = {"rerank_factor": self.rerank_factor, "base": bc, "refine": rc}
        arrays = {f"base.{k}": v for k, v in ba.items()}
        arrays.update({f"refine.{k}": v for k, v in ra.items()})
        return config, arrays

    def _load_state(self, config, arrays):
        self.base._load_state(config["base"], {k[5:]: v for k, v in arrays.items() if k.startswith("base.")})
        self.refine._load_state(config["refine"], {k[7:]: v for k, v in arrays.items() if k.startswith("refine.")})
        self._ntotal = self.base._ntotal

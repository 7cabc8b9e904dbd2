"""Inverted-file index over 4-bit PQ codes: ``ivf<nlist>,pq<M>x4fs`` (and ``ivf<nlist>,opq,pq<M>x4fs``).

Training: a coarse k-means with ``nlist`` centroids (squared L2, random distinct seeds drawn with ``seed``,
at most ``coarse_iter`` Lloyd iterations on a seeded sample of at most ``coarse_max_train`` vectors,
default 64 * nlist; an empty cluster takes the point farthest from its centroid in the largest cluster),
then the PQ codec is trained on the residuals ``x - c(x)`` of that sample, ``c(x)`` being the centroid of
its list. Adding puts each vector in the list a query equal to it would probe first (ip: largest x.c,
as faiss does with an inner-product quantizer; l2: nearest c) and stores the PQ code of its residual there.
For ip this beat the nearest centroid (the smallest residual) on MedQuAD at small nprobe: R@10 0.377 vs
0.356 at nprobe 1, 0.625 vs 0.611 at 8, the same at nlist (ivf1024,pq96x4fs), because vectors then sit
in the lists their neighbours' queries probe.

Search probes the ``nprobe`` lists whose centroid scores best for the query (ip: largest q.c; l2:
smallest |q - c|^2, ties -> lower list id) and ranks x_hat = c_l + r_hat by its PQ score computed with
tables quantized to uint8:

- ip: q.x_hat = q.c_l + q.r_hat. One set of PQ tables per query serves every list; q.c_l is a per-list
  constant. The tables are quantized to uint8 with one step per query (entries (t - min) / step rounded),
  and the list constant enters the integer ranking as round((q.c_l + sum of the minima) / step), so keys
  of all lists share one integer scale.
- l2: |q - x_hat|^2 = |q - c_l|^2 - (2 (q - c_l).r_hat - |r_hat|^2): per-list tables (the PQ l2 tables of
  the query residual q - c_l), all the probed lists of a query quantized with one shared step, the list
  constant -|q - c_l|^2 (written 2 q.c_l - |c_l|^2, |q|^2 left out as for every l2 index) again folded
  into the integer key. Per-list tables cost nprobe table computations per query (faiss computes them
  per list too); storing a per-vector term instead would leave -|x_hat|^2 out of the scan's ranking.

The scan (native: csrc/runtime/ivf_search.cpp, the lut4 kernels of every ISA, queries of a chunk that
probe the same list scanning it together, so its codes are read once per chunk; Numba twin:
medqk/kernels/_numba_ivf.py, the same ids and keys) keeps the k best integer keys. Returned scores are
those keys in float units, step * (key + the query's key shift): the PQ score within the table
quantization (at most (S + 1) / 2 steps off, S subspaces), and in the order of the keys. Ties: among
equal keys the vectors of lower lists (then added earlier) are kept, and listed by lower id. There is no
float re-scoring of candidates: re-scoring the 2k best keys with the float tables changed R@10 on all
MedQuAD dev queries by at most 0.0008 either way (ivf128, ivf1024, nprobe 1..32) and took 40-60% of the
scan time (at 1M vectors the candidates' codes are long out of cache when a query's last list is done).
As the base of ``+rerank``, the ``rerank_factor * k`` best keys are the candidates.

``nprobe`` (default min(16, nlist)) is set at creation, changed with ``index.nprobe = 32`` or per call
with ``search(q, k, nprobe=32)``; it must be in 1..nlist (larger values are refused: they would scan
nothing more). With ``nprobe == nlist`` every vector is scanned. Behind ``+rerank:<codec>`` the IVF part
is ``index.base``: set ``index.base.nprobe``.
"""

from __future__ import annotations

import contextvars

import numpy as np

from .. import _backend
from .._progress import progress_bar
from .._warnings import warn_spec_data
from ..kernels._layout import lut4_even
from . import _topk
from ._memory import aligned
from .flat import Index, no_bits
from .flat_codes import Lut4Packer
from .lut4 import check_subspaces

_QUERY_CHUNK = 4096  # queries per native call: the scan shares list reads among them (l2: 4096 // nprobe)
_ASSIGN_BLOCK = 16384
# list key bound: a key (table sum <= 127 * lut4.MAX_SUBSPACES < 2^23, plus the list key) stays below 2^24,
# exact as float32 (the scan returns keys as floats); the native scan refuses larger list keys
_KEY_LIMIT = 1 << 23
_NPROBE = contextvars.ContextVar("medqk_ivf_nprobe", default=None)
_ENCODE_CHUNK = 65536  # vectors encoded per step of add() (one progress-bar step; bounds the residuals' copy)
# faiss's rule of thumb (min_points_per_centroid): fewer training vectors per list than this and the coarse
# k-means finds little structure, the lists a query probes miss most of its neighbours (SpecDataWarning)
MIN_VECTORS_PER_LIST = 39


def _check_nprobe(nprobe, nlist: int) -> int:
    if isinstance(nprobe, bool) or not isinstance(nprobe, (int, np.integer)) or not 1 <= nprobe <= nlist:
        raise ValueError(f"nprobe must be an int in 1..nlist={nlist}, got {nprobe!r}")
    return int(nprobe)


def nearest_centroids(x: np.ndarray, cents: np.ndarray, cnorms: np.ndarray | None = None):
    """Nearest centroid (squared L2; equal distances -> lower index) of each row of x, and the squared
    distance, by blocks of BLAS products |c|^2 - 2 x.c."""
    if cnorms is None:
        cnorms = np.einsum("ij,ij->i", cents, cents)
    assign = np.empty(x.shape[0], dtype=np.int64)
    dist = np.empty(x.shape[0], dtype=np.float32)
    for i in range(0, x.shape[0], _ASSIGN_BLOCK):
        xb = x[i : i + _ASSIGN_BLOCK]
        s = cnorms[None, :] - 2 * (xb @ cents.T)
        a = np.argmin(s, axis=1)
        assign[i : i + len(xb)] = a
        dist[i : i + len(xb)] = np.maximum(s[np.arange(len(xb)), a] + np.einsum("ij,ij->i", xb, xb), 0)
    return assign, dist


def coarse_kmeans(x: np.ndarray, nlist: int, max_iter: int, rng: np.random.Generator, tol: float = 1e-4,
                  progress: bool | None = False) -> np.ndarray:
    """nlist centroids (nlist, d) float32 of x by Lloyd's k-means (see the module doc); ``progress``: a bar
    over the iterations (medqk._progress)."""
    n = x.shape[0]
    cents = x[np.sort(rng.choice(n, nlist, replace=False))].copy()
    columns = np.ascontiguousarray(x.T)  # the cluster sums: one bincount per dimension
    prev = np.inf
    bar = progress_bar(progress, max_iter, f"ivf{nlist} coarse k-means")
    for _ in range(max_iter):
        assign, dist = nearest_centroids(x, cents)
        counts = np.bincount(assign, minlength=nlist)
        for c in np.flatnonzero(counts == 0):  # repair: the worst point of the largest cluster
            big = int(np.argmax(counts))
            members = np.flatnonzero(assign == big)
            far = members[np.argmax(dist[members])]
            assign[far], dist[far] = c, 0.0
            counts[big] -= 1
            counts[c] = 1
        # float64 sums of every cluster (all non-empty now), one weighted bincount per dimension: 5x faster
        # than gathering x in cluster order for np.add.reduceat (65,536 x 384: 0.22 -> 0.04 s per iteration)
        sums = np.stack([np.bincount(assign, weights=col, minlength=nlist) for col in columns], axis=1)
        cents = (sums / counts[:, None]).astype(np.float32)
        err = float(dist.sum())
        bar.update(1)
        if prev - err <= tol * max(err, 1e-30):
            break
        prev = err
    bar.close()
    return cents


class IVFLUT4Index(Index):
    """IVF over 4-bit PQ codes of residuals (see the module doc). ``codec``: a PQ4Codec or OPQCodec."""

    range_search = False  # scores only the probed part: search_range refuses it

    def __init__(self, spec, dim: int, metric: str, nlist: int, codec, *, nprobe: int | None = None,
                 coarse_iter: int = 20, coarse_max_train: int | None = None, seed: int = 1234):
        super().__init__(spec, dim, metric)
        if isinstance(nlist, bool) or not isinstance(nlist, (int, np.integer)) or nlist < 1:
            raise ValueError(f"nlist must be a positive int, got {nlist!r}")
        self.nlist = int(nlist)
        self.nprobe = min(16, self.nlist) if nprobe is None else nprobe
        for name, v in (("coarse_iter", coarse_iter), ("coarse_max_train", coarse_max_train)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.coarse_iter = int(coarse_iter)
        self.coarse_max_train = 64 * self.nlist if coarse_max_train is None else int(coarse_max_train)
        self.seed = seed
        self.codec = codec
        self.n_sub = check_subspaces(spec, dim, codec.n_sub(dim))
        self.packer = Lut4Packer(self.n_sub)  # each list packed in the flat 4-bit layout, from a block start
        self.centroids: np.ndarray | None = None  # (nlist, dim) float32
        self._cnorms: np.ndarray | None = None
        self._cents_t: np.ndarray | None = None  # centroids.T, C-contiguous (the probe's product)
        self._packed = np.empty(0, dtype=np.uint8)
        self._list_blocks = np.zeros(self.nlist + 1, dtype=np.int64)
        self._list_starts = np.zeros(self.nlist + 1, dtype=np.int64)
        self._list_ids = np.empty(0, dtype=np.int64)

    # -- nprobe ---------------------------------------------------------------------------------
    @property
    def nprobe(self) -> int:
        """Lists scanned per query, 1..nlist."""
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value) -> None:
        self._nprobe = _check_nprobe(value, self.nlist)

    def search(self, q, k, *, threads=None, filter=None, nprobe=None):
        """As :meth:`Index.search`; ``nprobe`` (1..nlist) overrides ``self.nprobe`` for this call."""
        token = _NPROBE.set(None if nprobe is None else _check_nprobe(nprobe, self.nlist))
        try:
            return super().search(q, k, threads=threads, filter=filter)
        finally:
            _NPROBE.reset(token)

    # -- training and adding --------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return self.centroids is not None and self.codec.is_trained

    @property
    def bytes_per_vector(self) -> float:
        """Code bytes plus the 8-byte id each list keeps per vector."""
        return self.packer.bytes_per_vector + 8

    def list_sizes(self) -> np.ndarray:
        """Number of vectors in each inverted list (nlist,)."""
        return np.diff(self._list_starts)

    def _train(self, x):
        n = x.shape[0]
        if n < self.nlist:
            raise ValueError(f"IVF training needs at least nlist={self.nlist} vectors (one per list), got {n}")
        if min(n, self.coarse_max_train) < MIN_VECTORS_PER_LIST * self.nlist:
            self._warn_small_lists(min(n, self.coarse_max_train))
        rng = np.random.default_rng(self.seed)
        sample = x[np.sort(rng.choice(n, self.coarse_max_train, replace=False))] if n > self.coarse_max_train else x
        progress = getattr(self.codec, "progress", None)  # the codec's option covers the whole index
        cents = coarse_kmeans(sample, self.nlist, self.coarse_iter, rng, progress=progress)
        self.centroids, self._cents_t = cents, None
        self._cnorms = np.einsum("ij,ij->i", cents, cents)
        self.codec.train(sample - cents[self._assign(sample)])

    def _warn_small_lists(self, n: int) -> None:
        # What goes wrong, measured on 2,000 MedQuAD vectors (384-d): ivf1024,pq96x4fs held 3.2 MB, more than
        # the vectors in float32 (3.1 MB), for R@10 0.70 at nprobe 16 (ivf32: 0.68, at 0.2 MB).
        most = n // MIN_VECTORS_PER_LIST
        better = "a flat spec"
        if most >= 2:  # the largest power of two with 39 per list
            better = f"ivf{1 << (most.bit_length() - 1)} (or fewer lists) or a flat spec"
        need = MIN_VECTORS_PER_LIST * self.nlist
        warn_spec_data(
            f"ivf{self.nlist} trained on {n:,} vectors, {n / self.nlist:.1f} per list: the coarse k-means "
            f"needs at least {MIN_VECTORS_PER_LIST} per list (faiss's rule of thumb; {need:,} vectors) to "
            f"place its lists, and over a collection this size its {self.nlist:,} float32 centroids alone "
            f"take {self.nlist / n:.0%} of the space of the vectors in float32; use {better}"
        )

    def _add(self, x):
        assign = self._assign(x)
        new_codes = np.empty((x.shape[0], self.n_sub), dtype=np.uint8)
        progress = getattr(self.codec, "progress", None)
        bar = progress_bar(progress, x.shape[0], f"ivf{self.nlist} encode", "vec")
        for i in range(0, x.shape[0], _ENCODE_CHUNK):
            part = slice(i, i + _ENCODE_CHUNK)
            new_codes[part] = self.codec.encode_sub(x[part] - self.centroids[assign[part]])
            bar.update(len(assign[part]))
        bar.close()
        n_old = self._ntotal
        old_lists = np.repeat(np.arange(self.nlist), self.list_sizes())
        old_codes = self.packer.unpack(self._packed, self._slots()) if n_old else new_codes[:0]
        lists = np.concatenate([old_lists, assign])
        ids = np.concatenate([self._list_ids, np.arange(n_old, n_old + x.shape[0], dtype=np.int64)])
        codes = np.concatenate([old_codes.astype(np.uint8), new_codes])
        order = np.argsort(lists, kind="stable")  # within a list: earlier vectors first
        counts = np.bincount(lists, minlength=self.nlist)
        self._set_lists(counts, ids[order], codes[order])

    def _assign(self, x: np.ndarray) -> np.ndarray:
        """The list of each vector: the one a query equal to it would probe first (ip: largest x.c, l2:
        nearest c; equal scores -> lower list)."""
        if self.metric == "l2":
            return nearest_centroids(x, self.centroids, self._cnorms)[0]
        assign = np.empty(x.shape[0], dtype=np.int64)
        for i in range(0, x.shape[0], _ASSIGN_BLOCK):
            assign[i : i + _ASSIGN_BLOCK] = np.argmax(x[i : i + _ASSIGN_BLOCK] @ self.centroids.T, axis=1)
        return assign

    def _set_lists(self, counts: np.ndarray, ids: np.ndarray, codes: np.ndarray) -> None:
        self._list_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        B = self.packer.block
        self._list_blocks = np.concatenate([[0], np.cumsum(-(-counts // B))]).astype(np.int64)
        self._list_ids = np.ascontiguousarray(ids, dtype=np.int64)
        # each list starts on a block: pack codes placed at their slots (padding slots code 0)
        padded = np.zeros((int(self._list_blocks[-1]) * B, self.n_sub), dtype=np.uint8)
        padded[self._slots()] = codes
        self._packed = aligned(self.packer.pack(padded))

    def _slots(self) -> np.ndarray:
        """Slot (position in the packed layout, packer.block per block) of each stored vector, list order."""
        sizes = self.list_sizes()
        within = np.arange(int(self._list_starts[-1])) - np.repeat(self._list_starts[:-1], sizes)
        return np.repeat(self._list_blocks[:-1] * self.packer.block, sizes) + within

    def _vectors_rows(self, rows):
        """Reconstructed float32 vectors c_l + r_hat of rows."""
        ids = np.asarray(rows, dtype=np.int64).reshape(-1)
        where = np.empty(self._ntotal, dtype=np.int64)
        where[self._list_ids] = np.arange(self._ntotal)
        pos = where[ids]
        lists = np.searchsorted(self._list_starts, pos, side="right") - 1
        rec = self.codec.decode_sub(self.packer.unpack(self._packed, self._slots()[pos]))
        return rec + self.centroids[lists]

    def _keep_rows(self, rows):
        """Keeps the stored rows ``rows`` (increasing), renumbered 0..: each list keeps its kept vectors in
        their order."""
        keep = np.zeros(self._ntotal, dtype=bool)
        keep[rows] = True
        kept = keep[self._list_ids]  # list order
        lists = np.repeat(np.arange(self.nlist), self.list_sizes())[kept]
        codes = self.packer.unpack(self._packed, self._slots()[kept])
        new_ids = np.searchsorted(rows, self._list_ids[kept])
        self._set_lists(np.bincount(lists, minlength=self.nlist), new_ids, codes)

    # -- search -------------------------------------------------------------------------------
    def _candidates(self, q, k, threads, allow=None):
        return self._search(q, k, threads, allow)[1]

    def _scores_topk(self, q, k, threads, allow=None):
        return self._search(q, k, threads, allow)

    def _probe(self, q: np.ndarray, nprobe: int, threads: int = 1):
        """Lists to scan (nq, nprobe) best first, and their scores: q.c (ip) or 2 q.c - |c|^2 (l2)."""
        if self._cents_t is None:  # q @ (d, nlist) C-contiguous: 10% faster than q @ centroids.T
            self._cents_t = np.ascontiguousarray(self.centroids.T)
        s = q @ self._cents_t
        if self.metric == "l2":
            s = 2 * s - self._cnorms[None, :]
        best, lists = _topk.block_topk(np.ascontiguousarray(s, dtype=np.float32), nprobe, 0, threads)
        return np.ascontiguousarray(lists), np.ascontiguousarray(best, dtype=np.float32)

    def _search(self, q, k, threads, allow=None):
        nprobe = _NPROBE.get() or self._nprobe
        chunk = _QUERY_CHUNK if self.metric != "l2" else max(1, 4096 // nprobe)
        out_s = np.empty((q.shape[0], k), dtype=np.float32)
        out_i = np.empty((q.shape[0], k), dtype=np.int64)
        for q0 in range(0, q.shape[0], chunk):
            qc = q[q0 : q0 + chunk]
            probes, bias = self._probe(qc, nprobe, threads)
            luts, keys, step, shift = self._tables(qc, probes, bias, threads)
            kf, i = self._scan(luts, probes, keys, k, threads, allow)
            s = (step[:, None] * (kf.astype(np.float64) + shift[:, None])).astype(np.float32)
            out_s[q0 : q0 + chunk], out_i[q0 : q0 + chunk] = np.where(i >= 0, s, -np.inf), i
        return out_s, out_i

    def _tables(self, q, probes, bias, threads):
        """uint8 tables (nq, nlut, S_even, 16), integer list keys (nq, nprobe), and per query the table step
        and the key shift (float64): the PQ score of a key K is about step * (K + shift)."""
        nq, nprobe = probes.shape
        if self.metric != "l2":  # ip, cos
            tables = self.codec.tables(q, "ip", threads)[:, None]
        else:
            resid = (q[:, None, :] - self.centroids[probes]).reshape(nq * nprobe, self.dim)
            tables = self.codec.tables(resid, "l2", threads).reshape(nq, nprobe, self.n_sub, 16)
        tables = np.ascontiguousarray(tables, dtype=np.float32)
        luts, step, offsets = self._quantize(tables)
        # the list's float constant and its tables' offsets, in units of the step: one integer scale for all
        # lists. Shifted per query to start at 0 (a constant per query ranks nothing differently), so keys
        # are non-negative, at most _KEY_LIMIT, and sum + key below 2^24 (2^23 + 127 * MAX_SUBSPACES).
        step = step.astype(np.float64)
        keys = np.rint((bias.astype(np.float64) + offsets) / step[:, None])
        shift = keys.min(axis=1)
        keys = np.clip(keys - shift[:, None], 0, _KEY_LIMIT).astype(np.int32)
        return luts, keys, step, shift

    @staticmethod
    def _quantize(tables: np.ndarray):
        """(luts, step, offsets) of the float tables (nq, nlut, S, 16): one step per query (native
        ivf_quantize_tables or its Numba twin, identical)."""
        if _backend.backend == "native":
            return _backend._core.ivf_quantize_tables(tables)
        from ..kernels import _numba_ivf

        nq, nlut, S, _ = tables.shape
        luts = np.empty((nq, nlut, lut4_even(S), 16), dtype=np.uint8)
        step = np.empty(nq, dtype=np.float32)
        offsets = np.empty((nq, nlut), dtype=np.float64)
        _numba_ivf.ivf_quantize_tables(tables, luts, step, offsets)
        return luts, step, offsets

    def _scan(self, luts, probes, keys, k, threads, allow=None):
        """The k best integer keys (as float32) and ids of each query (native or the Numba twin, identical);
        ``allow``: None or the bitmap of the rows (the values of ``_list_ids``) that may be returned, tested by
        the scan for its candidates only (no pass over the index per filter)."""
        if _backend.backend == "native":
            return _backend._core.ivf_lut4_search(luts, probes, keys, self._packed, self._list_blocks,
                                                  self._list_starts, self._list_ids, k, threads, allow)
        from ..kernels import _numba_ivf

        nq = probes.shape[0]
        kf = np.empty((nq, k), dtype=np.float32)
        ids = np.empty((nq, k), dtype=np.int64)
        with _backend.numba_kernels().threads(threads):
            _numba_ivf.ivf_lut4_search(luts, probes, keys, self._packed, self._list_blocks, self._list_starts,
                                       self._list_ids, k, kf, ids, no_bits(allow))
        return kf, ids

    # -- save / load ----------------------------------------------------------------------------
    def _state(self):
        config, arrays = self.codec.state()
        arrays = dict(arrays)
        if self.centroids is not None:
            arrays["coarse_centroids"] = self.centroids
        arrays.update(packed=self._packed, list_blocks=self._list_blocks, list_starts=self._list_starts,
                      list_ids=self._list_ids)
        return {"codec": config, "nlist": self.nlist, "nprobe": self._nprobe, "coarse_iter": self.coarse_iter,
                "coarse_max_train": self.coarse_max_train}, arrays

    def _load_state(self, config, arrays):
        from .._errors import IndexFileError

        self.codec.load_state(arrays)
        if "coarse_centroids" in arrays:
            cents = np.array(arrays["coarse_centroids"], dtype=np.float32)
            if cents.shape != (self.nlist, self.dim):
                raise IndexFileError(f"corrupt IVF centroids: shape {cents.shape}, expected {(self.nlist, self.dim)}")
            self.centroids, self._cnorms = cents, np.einsum("ij,ij->i", cents, cents)
            self._cents_t = None
        starts = np.array(arrays["list_starts"], dtype=np.int64)
        blocks = np.array(arrays["list_blocks"], dtype=np.int64)
        ids = np.array(arrays["list_ids"], dtype=np.int64)
        packed = np.asarray(arrays["packed"], dtype=np.uint8)
        sizes = np.diff(starts)
        ok = (starts.shape == (self.nlist + 1,) and blocks.shape == (self.nlist + 1,) and starts[0] == 0
              and blocks[0] == 0 and (sizes >= 0).all()
              and (np.diff(blocks) == -(-sizes // self.packer.block)).all()
              and ids.shape == (starts[-1],)
              and packed.shape == (self.packer.packed_bytes(int(blocks[-1]) * self.packer.block),)
              and np.array_equal(np.sort(ids), np.arange(len(ids))))
        if not ok:
            raise IndexFileError("corrupt IVF lists: list_starts, list_blocks, list_ids and packed do not agree")
        self._list_starts, self._list_blocks, self._list_ids, self._packed = starts, blocks, ids, aligned(packed)
        self._ntotal = len(ids)

"""A medqk index split over shards, in this process or on Ray, that answers exactly as one index would.

>>> import numpy as np
>>> from medqk.distributed import ShardedIndex
>>> x = np.random.default_rng(0).standard_normal((1000, 64)).astype(np.float32)
>>> index = ShardedIndex("int8", 64, shards=4)            # engine="ray" puts each shard in a Ray actor
>>> index.train(x).add(x)                                   # doctest: +ELLIPSIS
ShardedIndex(...)
>>> scores, ids = index.search(x[:5], k=10)

**Design.** The driver (this object) trains the spec's codec once, on the sample given to :meth:`train`, and
ships the trained, empty index to every shard (a :class:`~medqk.distributed._shard.Shard`: a Ray actor with
``engine="ray"``, a plain object with ``engine="local"``). ``add`` routes each vector to shard ``id % shards``
(ids as in :class:`medqk.index.Index`: the caller's int64 ids, or ``next_id``, ``next_id + 1``, ...): a
deterministic rule that spreads consecutive ids evenly and sends an id's later ``upsert``, ``remove``,
``vectors`` and filters to the shard that holds it. The driver numbers every added vector in call order (its
"seq": the row one index built by the same calls would give it), the shards keep those numbers.

**Exact results.** A search checks the queries (NaN / Inf refused before anything is sent), fans the batch out
and merges on the driver by the rule one index selects by: higher score first, equal scores -> lower seq (one
index's lower row), and, for IVF, equal keys -> lower list, then lower seq (its storage position). Two-stage
indexes take two rounds, as one index takes two steps: each shard returns the candidates of its first stage
(int8 codes, 4-bit tables, PQ, IVF, or the base of ``+rerank``) with the scores that selected them; the driver
keeps the ``kc`` best of all (``kc`` as one index computes it from all stored rows), and each shard re-ranks
its part of that list with the final scores (float re-scoring of int8 codes, the float ADC tables, or the
``+rerank`` codec). A filter allowing few rows takes the exact scan one index would take (decided on the
total). Shards compute every score with the same kernels, the same query chunks and the same per-row
arithmetic as one index, so the merged ids and scores equal one index's bit for bit, for the specs whose
per-vector scores do not depend on where the vector sits among the others. Not so: ``float32`` (and ``fp16``
past 256 queries or on the Numba backend, and a selective filter's exact scan of float32, fp16 or IVF
vectors), which one index scores with BLAS matrix products whose rounding of a vector's score depends on the
block it falls in, and ``rabitq``, whose stored factors come from a BLAS rotation of each add() batch (one
index differs with the batches too): there the merged scores equal one index's to float32 rounding, and the
ids up to the order of near-ties. The scans' float keys (4-bit tables: ``alpha * sum + beta``; IVF: ``step *
key``) are merged as floats: distinct integer sums give distinct floats while their magnitude stays below 2^23
steps, which one index's own merge of its threads' parts relies on too. ``hnsw`` is refused: a graph search
depends on the whole graph.

**Failures.** A shard that does not answer (its actor died) makes the call raise
:class:`ShardUnavailableError` naming the shard; no partial top-k is ever returned. After :meth:`save` (or
:func:`load`), :meth:`restart_shard` starts a dead shard again from its saved files when nothing changed
since; ``search(..., retry=True)`` does that once by itself.

**Progress.** ``progress`` (as everywhere in medqk, :mod:`medqk._progress`: None shows tqdm bars on stderr
only when it is a terminal, True always, False never) covers the long steps: the codec's training on the
driver (its own bars, for the specs whose codec has them), and a bar over the vectors of :meth:`add` and
:meth:`upsert` (fed to the shards ``ADD_CHUNK`` vectors at a time, counted as each shard takes its part) and
over the shards of :meth:`save` and :func:`load` (counted as each shard has written or read its files).

**Files.** :meth:`save` writes a folder: per shard its index file and its seq file, the trained empty index
(``codec-*.mqk``), and ``manifest.json`` last, each atomically; every save writes new file names and removes
the previous save's files only once the new manifest is in place, so a crash leaves the old or the new save,
never a mix. Each file names the next by its checksum (manifest -> seq file -> index file), and the manifest
carries the checksum of its own content, so a shard file of another save or another index is refused, as is
a damaged file, the manifest included (:class:`medqk.index.IndexFileError`).
With Ray, shards read and write the folder themselves: it must be on a file system every node sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets

import numpy as np

from .. import index as _index
from .._errors import IndexFileError
from .._files import atomic_file
from .._progress import progress_bar
from .._validate import threads_arg
from ..index import flat as _flat
from ..index import ivf as _ivf
from ..index._ids import as_ids, first_duplicate, unique_ids
from ..index.flat import FlatFloatIndex, FlatInt8Index, RerankIndex
from ..index.ivf import IVFLUT4Index
from ..index.lut4 import FlatLUT4Index
from ..index.pq8 import FlatPQ8Index
from ..index.rabitq import FlatRaBitQIndex
from ._engine import ShardUnavailableError, make_engine
from ._shard import file_checksum, index_to_bytes, ivf_part

MANIFEST = "manifest.json"
FORMAT = "medqk-sharded-index"
FORMAT_VERSION = 2  # 2: the manifest carries its checksum; version 1 folders (without) are still read
_NONE = np.iinfo(np.int64).max  # sort key of a missing result (-1): after every real one
# Vectors sent to the shards per step of add() / upsert(): one progress step, and a bound on the copy each
# step ships (65536 x 1024-d float32: 256 MiB). A shard appends the parts of consecutive steps in order.
ADD_CHUNK = 65536

# How one index of each kind searches: "one" stage (its _scores_topk), or a first stage of candidates then
# a re-ranking; the candidate count of a two-stage kind is min(stored rows, factor * k).
_ONE_STAGE = (FlatFloatIndex, FlatPQ8Index, FlatRaBitQIndex, IVFLUT4Index)


def _candidate_factor(index) -> int | None:
    """Candidates per result of a two-stage index (None: one stage)."""
    if isinstance(index, RerankIndex):
        return index.rerank_factor
    if isinstance(index, FlatInt8Index):
        return 2  # FlatInt8Index._scores_topk: 2 k int8 candidates re-scored with the float query
    if isinstance(index, FlatLUT4Index):
        return getattr(index.codec, "rescore_factor", 2)  # FlatLUT4Index._search
    return None


def _check_shardable(index) -> None:
    parts = [index.base, index.refine] if isinstance(index, RerankIndex) else [index]
    for part in parts:
        if not isinstance(part, _ONE_STAGE + (FlatInt8Index, FlatLUT4Index)):
            raise ValueError(f"spec '{index.spec}' cannot be sharded exactly: a {type(part).__name__} search "
                             f"depends on all its vectors at once (an HNSW graph is walked as a whole); use a "
                             f"flat, PQ or IVF spec")


def _merge(parts: list[tuple], m: int, by_list: bool, nq: int) -> dict:
    """The best m of per-shard results (shard, (scores, rows, seq, ids, lists)) per query: higher score,
    then (IVF) lower list, then lower seq; rows -1 last. Returns the columns as arrays (nq, m), padded with
    -inf / -1 when fewer exist, and the shard of each."""
    none = (np.full((nq, 0), -np.inf, np.float32),) + tuple(np.full((nq, 0), -1, np.int64) for _ in range(4))
    parts = list(parts) or [(-1, none)]  # no shard had a candidate (IVF lists without an allowed vector)
    cols = {"scores": [], "rows": [], "seq": [], "ids": [], "lists": [], "shard": []}
    for shard, (scores, rows, seq, ids, lists) in parts:
        cols["scores"].append(scores)
        cols["rows"].append(rows)
        cols["seq"].append(seq)
        cols["ids"].append(ids)
        cols["lists"].append(lists if lists is not None else np.zeros_like(rows))
        cols["shard"].append(np.full(rows.shape, shard, dtype=np.int64))
    arr = {name: np.concatenate(v, axis=1) for name, v in cols.items()}
    valid = arr["rows"] >= 0
    keys = [np.where(valid, arr["seq"], _NONE)]
    if by_list:
        keys.append(np.where(valid, arr["lists"], _NONE))
    keys.append(np.where(valid, -arr["scores"], np.inf))
    order = np.lexsort(keys, axis=1)[:, :m]
    out = {name: np.take_along_axis(a, order, axis=1) for name, a in arr.items()}
    valid = np.take_along_axis(valid, order, axis=1)
    out["scores"] = np.where(valid, out["scores"], -np.inf).astype(np.float32)
    for name in ("rows", "seq", "ids", "shard"):
        out[name] = np.where(valid, out[name], -1)
    short = m - order.shape[1]
    if short > 0:
        nq = order.shape[0]
        out = {name: np.concatenate([a, np.full((nq, short), -np.inf if name == "scores" else -1, dtype=a.dtype)],
                                    axis=1) for name, a in out.items()}
    return out


class ShardedIndex:
    """An index of ``spec`` (see :func:`medqk.index.create`; ``metric``, ``rerank_factor`` and the spec's
    options as there) over ``shards`` shards; ``engine``: ``"local"`` (shards in this process) or ``"ray"``
    (one Ray actor per shard, on the cluster at ``address``, each started with ``actor_options``);
    ``progress``: bars during training, adding, saving (None: when stderr is a terminal). See the module doc
    for the routing rule, the exactness, the failure model and the progress bars."""

    def __init__(self, spec: str, dim: int, metric: str = "ip", *, shards: int, engine: str = "local",
                 address: str | None = None, actor_options: dict | None = None, rerank_factor: int | None = None,
                 progress: bool | None = None, **options):
        if isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or shards < 1:
            raise ValueError(f"shards must be a positive int, got {shards!r}")
        parsed = _index.parse_spec(spec)
        if "progress" in {o for part in (parsed.base, parsed.rerank) if part for o in _index._accepted(part)}:
            options["progress"] = progress  # the codec's training bars follow the index's setting
        template = _index.create(spec, dim, metric, rerank_factor=rerank_factor, **options)
        _check_shardable(template)
        self._setup(template, int(shards), make_engine(engine, address, actor_options), progress)

    def _setup(self, template, shards: int, engine, progress: bool | None = None) -> None:
        self.progress = progress
        self._template = template
        self.spec, self.dim, self.metric = template.spec, template.dim, template.metric
        self.engine = engine.name  # "local" or "ray"
        self.shards = shards
        self._engine = engine
        self._handles: list | None = None
        self._stats = [(0, 0)] * shards  # (stored rows, live vectors) per shard
        self._next_id = 0
        self._next_seq = 0
        self._codec_id: str | None = None
        self._blob: bytes | None = None
        self._saved: tuple[str, dict] | None = None  # (folder, manifest) while nothing changed since a save

    # -- properties ----------------------------------------------------------------------------
    @property
    def actors(self) -> list:
        """The shards: Ray actor handles (engine "ray") or :class:`~medqk.distributed._shard.Shard` objects
        (engine "local"), shard i at position i; empty before the index is trained."""
        return list(self._handles or [])

    @property
    def is_trained(self) -> bool:
        return self._template.is_trained

    @property
    def ntotal(self) -> int:
        return sum(live for _, live in self._stats)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def next_id(self) -> int:
        return self._next_id

    def shard_sizes(self) -> list[int]:
        """Vectors held by each shard."""
        return [live for _, live in self._stats]

    def shard_of(self, ids) -> np.ndarray:
        """The shard of each id: ``id % shards``."""
        return as_ids(np.atleast_1d(ids), "ids") % self.shards

    @property
    def nprobe(self) -> int:
        """Lists probed per query (IVF specs; for ``+rerank`` the IVF base's)."""
        part = ivf_part(self._template)
        if part is None:
            raise AttributeError(f"spec '{self.spec}' has no nprobe (not an IVF spec)")
        return part.nprobe

    @nprobe.setter
    def nprobe(self, value) -> None:
        part = ivf_part(self._template)
        if part is None:
            raise AttributeError(f"spec '{self.spec}' has no nprobe (not an IVF spec)")
        part.nprobe = value
        if self._handles:
            self._call("set_nprobe", {i: (part.nprobe,) for i in range(self.shards)})
        self._saved = None

    def __repr__(self) -> str:
        return (f"ShardedIndex(spec='{self.spec}', dim={self.dim}, metric='{self.metric}', shards={self.shards}, "
                f"engine='{self.engine}', ntotal={self.ntotal})")

    # -- engine --------------------------------------------------------------------------------
    def _call(self, method: str, args: dict[int, tuple], done=None) -> dict:
        """Every shard's answer to ``method`` (``args`` per shard); ``done(shard, answer)`` as each answers."""
        return self._engine.call(self._handles, method, args, done)

    def _each_shard(self, method: str, args: dict[int, tuple], desc: str) -> dict:
        """_call with a progress bar over the shards (``desc``), stepped as each answers."""
        bar = progress_bar(self.progress, len(args), desc, "shard")
        try:
            return self._call(method, args, lambda shard, answer: bar.update(1))
        finally:
            bar.close()

    def _feed(self, method: str, x: np.ndarray, ids: np.ndarray, seq: np.ndarray) -> None:
        """Sends x (ids, seqs) to their shards' ``method`` (add / upsert), ADD_CHUNK vectors per step, under
        a progress bar over the vectors."""
        n = x.shape[0]
        bar = progress_bar(self.progress, n, f"{method} to {self.shards} shards", "vec")
        try:
            for start in range(0, n, ADD_CHUNK):
                part = slice(start, start + ADD_CHUNK)
                routed = self._split(ids[part])
                sent = {s: (x[part][p], ids[part][p], seq[part][p]) for s, p in routed.items()}
                self._update(self._call(method, sent, lambda shard, stats: bar.update(len(routed[shard]))))
        finally:
            bar.close()

    def _all(self, method: str, *args, only_filled: bool = False) -> dict:
        return self._call(method, {i: args for i in range(self.shards) if not only_filled or self._stats[i][0]})

    def _start(self) -> None:
        """Ships the trained empty index to the shards (once)."""
        if self._handles is not None:
            return
        self._blob = index_to_bytes(self._template)
        self._codec_id = file_checksum_of_bytes(self._blob)
        self._handles = self._engine.start([{"number": i, "template": self._blob} for i in range(self.shards)])

    def close(self) -> None:
        """Stops the shards (kills the Ray actors); the index is unusable afterwards."""
        if self._handles:
            self._engine.stop(self._handles)
        self._handles = []
        self._stats = [(0, 0)] * self.shards

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- building ------------------------------------------------------------------------------
    def train(self, x: np.ndarray) -> ShardedIndex:
        """Trains the codec on x (n, dim) here, on the driver (as :meth:`medqk.index.Index.train`), then ships
        the trained index to the shards."""
        if self._handles:
            raise RuntimeError("the index is trained and its shards started: train a new ShardedIndex")
        self._template.train(x)
        self._start()
        return self

    def _check_x(self, x) -> np.ndarray:
        """x checked as one index checks it (dtype, shape, NaN / Inf, cos: zero vectors), not normalized: the
        shards' indexes normalize it as one index does."""
        self._template._vectors_in(x, "x")
        return _flat.as_vectors(x, "x", self.dim)

    def _ready(self, what: str) -> None:
        if not self._template.is_trained:
            raise RuntimeError(f"index '{self.spec}' must be trained before {what}(): call train(x) first")
        self._start()

    def _split(self, ids: np.ndarray) -> dict[int, np.ndarray]:
        """Positions of ids per shard (in their order)."""
        owner = ids % self.shards
        return {s: np.flatnonzero(owner == s) for s in range(self.shards) if (owner == s).any()}

    def add(self, x: np.ndarray, ids=None) -> ShardedIndex:
        """Adds vectors x (n, dim) under ``ids`` (as :meth:`medqk.index.Index.add`), each to shard
        ``id % shards``. Checked in full (ids already present included) before any shard changes. The first
        add must give every shard a vector's worth of data: at least ``shards`` vectors."""
        x = self._check_x(x)
        self._ready("add")
        n = x.shape[0]
        if self.ntotal == 0 and self._next_seq == 0 and n < self.shards:
            raise ValueError(f"shards={self.shards} is larger than the data: {n} vector(s) in the first add(); "
                             f"use at most {n} shards")
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        else:
            ids = as_ids(ids, "ids", n)
            dup = first_duplicate(ids)
            if dup is not None:
                raise ValueError(f"ids has duplicates (e.g. {dup}); use upsert() to replace vectors")
            self._call("check_new", {s: (ids[p],) for s, p in self._split(ids).items()})
        seq = np.arange(self._next_seq, self._next_seq + n, dtype=np.int64)
        self._saved = None
        self._feed("add", x, ids, seq)
        self._next_seq += n
        self._next_id = max(self._next_id, int(ids.max()) + 1)
        return self

    def upsert(self, x: np.ndarray, ids) -> ShardedIndex:
        """Adds x under ``ids``, replacing the vectors those ids have (as :meth:`medqk.index.Index.upsert`)."""
        x = self._check_x(x)
        ids = as_ids(np.atleast_1d(ids), "ids", x.shape[0])
        if first_duplicate(ids) is not None:
            raise ValueError("ids has duplicates: each id takes one vector")
        self._ready("upsert")
        seq = np.arange(self._next_seq, self._next_seq + len(ids), dtype=np.int64)
        self._saved = None
        self._feed("upsert", x, ids, seq)
        self._next_seq += len(ids)
        self._next_id = max(self._next_id, int(ids.max()) + 1)
        self._auto_compact()
        return self

    def remove(self, ids) -> int:
        """Removes the vectors of ``ids`` (ids not in the index ignored); returns how many were removed.
        Compacts every shard at the moment one index would (``AUTO_COMPACT_FRACTION`` of all stored rows)."""
        ids = unique_ids(as_ids(np.atleast_1d(ids), "ids"))
        if not self._handles or ids.size == 0:
            return 0
        self._saved = None
        out = self._call("remove", {s: (ids[p],) for s, p in self._split(ids).items()})
        self._update({s: stats for s, (_, stats) in out.items()})
        self._auto_compact()
        return int(sum(count for count, _ in out.values()))

    def compact(self) -> ShardedIndex:
        """Drops removed vectors' rows on every shard."""
        if self._handles:
            self._saved = None
            self._update(self._all("compact"))
        return self

    def _auto_compact(self) -> None:
        rows = sum(r for r, _ in self._stats)
        deleted = rows - self.ntotal
        if deleted > _flat.AUTO_COMPACT_FRACTION * rows:
            self.compact()

    def _update(self, stats: dict) -> None:
        for s, st in stats.items():
            self._stats[s] = tuple(st)

    # -- reading -------------------------------------------------------------------------------
    def _contents(self, with_vectors: bool):
        if not self._handles:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, self.dim), np.float32)
        out = self._all("contents", with_vectors, only_filled=True)
        seq = np.concatenate([out[s][0] for s in sorted(out)] or [np.empty(0, np.int64)])
        order = np.argsort(seq, kind="stable")
        ids = np.concatenate([out[s][1] for s in sorted(out)] or [np.empty(0, np.int64)])[order]
        vecs = None
        if with_vectors:
            vecs = np.concatenate([out[s][2] for s in sorted(out)] or [np.empty((0, self.dim), np.float32)])[order]
        return seq[order], ids, vecs

    def ids(self) -> np.ndarray:
        """The ids of the vectors in the index, in the order one index would store them."""
        return self._contents(False)[1]

    def vectors(self, ids=None) -> np.ndarray:
        """The stored vectors (as :meth:`medqk.index.Index.vectors`): all, in :meth:`ids` order, or those of
        ``ids`` (any shape; KeyError for an id not in the index)."""
        if ids is None:
            return self._contents(True)[2]
        shape = np.shape(ids)
        flat = as_ids(np.reshape(ids, -1), "ids")
        out = np.empty((flat.size, self.dim), dtype=np.float32)
        if flat.size:
            if not self._handles:
                raise KeyError(f"ids not in the index: {flat[:5].tolist()}")
            parts = self._split(flat)
            got = self._call("vectors", {s: (flat[p],) for s, p in parts.items()})
            for s, p in parts.items():
                out[p] = got[s]
        return out.reshape(tuple(shape) + (self.dim,))

    # -- search --------------------------------------------------------------------------------
    def _shard_filters(self, filter) -> dict[int, object]:
        """Each shard's part of a search filter (checked as one index checks it): its allowed ids, or the
        callable itself."""
        if callable(filter):
            return {s: filter for s in range(self.shards)}
        f = np.asarray(filter)
        if f.dtype == bool:
            if f.ndim != 1 or f.shape[0] != self._next_id:
                raise ValueError(f"filter: a boolean mask has one entry per id 0..next_id - 1 ({self._next_id} "
                                 f"entries for this index), got shape {f.shape}")
            allowed = np.flatnonzero(f).astype(np.int64)
        elif np.issubdtype(f.dtype, np.integer) or f.size == 0:
            allowed = unique_ids(as_ids(f.reshape(-1), "filter"))
        else:
            raise TypeError(f"filter must be an array of ids, a boolean mask over ids or a callable id -> bool, got "
                            f"{type(filter).__name__} of dtype {f.dtype}")
        owner = allowed % self.shards
        return {s: allowed[owner == s] for s in range(self.shards)}

    def search(self, q: np.ndarray, k: int, *, threads: int | None = None, filter=None, nprobe: int | None = None,
               retry: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The k best vectors for each query, as :meth:`medqk.index.Index.search` over all shards (``filter``
        and, for IVF specs, ``nprobe`` as there; ``threads`` per shard). ``retry``: when a shard is
        unavailable and the index is as last saved or loaded, restart it from its files and search again
        (once). Raises :class:`ShardUnavailableError` naming a shard that does not answer."""
        try:
            return self._search(q, k, threads, filter, nprobe)
        except ShardUnavailableError as e:
            if not retry or self._saved is None:
                raise
            self.restart_shard(e.shard)
            return self._search(q, k, threads, filter, nprobe)

    def _search(self, q, k, threads, filter, nprobe):
        k = _flat.check_k(k, self.ntotal)
        q = self._template._vectors_in(q, "q")  # NaN / Inf refused here, before any shard is asked
        nthreads = threads_arg(threads)
        if nprobe is not None:
            part = ivf_part(self._template)
            if part is None:
                raise TypeError(f"nprobe is for IVF specs, not '{self.spec}'")
            nprobe = _ivf._check_nprobe(nprobe, part.nlist)
        filled = [s for s in range(self.shards) if self._stats[s][0]]
        rows_total = sum(r for r, _ in self._stats)
        token = None
        if filter is not None:
            parts = self._shard_filters(filter)
            token = secrets.token_hex(8)
            counts = self._call("prepare_filter", {s: (token, parts[s]) for s in filled})
            allowed = sum(counts.values())
            if allowed <= self._template.exact_scan_fraction * rows_total:
                step = max(1, _flat._EXACT_BLOCK // allowed) if allowed else 1
                out = self._call("exact", {s: (q, k, token, step) for s in filled})
                return self._finish(q, _merge(sorted(out.items()), k, False, len(q)))
        factor = _candidate_factor(self._template)
        by_list = ivf_part(self._template) is not None
        if factor is None:
            out = self._call("first_stage", {s: (q, min(k, self._stats[s][0]), nthreads, token, nprobe, False)
                                             for s in filled})
            return self._finish(q, _merge(sorted(out.items()), k, by_list, len(q)))
        kc = min(rows_total, factor * k)
        # the 4-bit table codecs choose their scan by the candidate count: each shard is given one index's
        # (their kernels pad a shard with fewer rows); the others take at most their rows
        base = self._template.base if isinstance(self._template, RerankIndex) else self._template
        fixed = isinstance(base, FlatLUT4Index)
        out = self._call("first_stage", {s: (q, kc if fixed else min(kc, self._stats[s][0]), nthreads, token, nprobe,
                                             True) for s in filled})
        cand = _merge(sorted(out.items()), kc, by_list, len(q))
        second = {}
        for s in filled:
            mine = cand["shard"] == s
            width = int(mine.sum(axis=1).max())
            if width == 0:
                continue
            # this shard's candidates of each query, first in each row, padded with -1
            order = np.argsort(~mine, axis=1, kind="stable")[:, :width]
            rows = np.where(np.take_along_axis(mine, order, axis=1), np.take_along_axis(cand["rows"], order, axis=1),
                            -1)
            second[s] = (q, np.ascontiguousarray(rows), k, nthreads)
        out = self._call("second_stage", second) if second else {}
        return self._finish(q, _merge(sorted(out.items()), k, False, len(q)))

    def _finish(self, q, merged: dict) -> tuple[np.ndarray, np.ndarray]:
        """One index's Index._finish: the metric's scores and the final order (best first, equal -> lower id)."""
        scores, ids = merged["scores"], merged["ids"]
        if self.metric == "l2":
            qn = np.einsum("ij,ij->i", q, q)[:, None]
            scores = np.maximum(qn - scores, 0).astype(np.float32)
            order = np.lexsort((ids, scores), axis=1)
        else:
            order = np.lexsort((np.where(ids >= 0, ids, _NONE), -scores), axis=1)
        return (np.take_along_axis(scores, order, axis=1).astype(np.float32, copy=False),
                np.take_along_axis(ids, order, axis=1))

    # -- files ---------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Writes the index to the folder ``path`` (created if missing; its parent must exist): see the
        module doc. Only this save's files and the previous save's are touched."""
        path = os.fspath(path)
        self._ready("save")
        os.makedirs(path, exist_ok=True)
        previous = _read_manifest(path) if os.path.exists(os.path.join(path, MANIFEST)) else None
        gen = secrets.token_hex(6)
        codec_file = f"codec-{gen}.mqk"
        written = [codec_file]
        try:
            with atomic_file(os.path.join(path, codec_file)) as f:
                f.write(self._blob)
            stems = {s: f"shard-{s:04d}-{gen}" for s in range(self.shards)}
            written += [stems[s] + ext for s in stems for ext in (".mqk", ".seq")]
            files = self._each_shard("save", {s: (path, stems[s], self._codec_id) for s in range(self.shards)},
                                     "save shards")
            part = ivf_part(self._template)
            manifest = {"format": FORMAT, "version": FORMAT_VERSION, "spec": str(self.spec), "dim": self.dim,
                        "metric": self.metric, "shards": self.shards, "routing": "id % shards",
                        "next_id": self._next_id, "next_seq": self._next_seq, "codec_id": self._codec_id,
                        "codec_file": codec_file, "nprobe": None if part is None else part.nprobe,
                        "shard_files": [files[s] for s in range(self.shards)]}
            manifest["checksum"] = _manifest_checksum(manifest)
            with atomic_file(os.path.join(path, MANIFEST)) as f:
                f.write(json.dumps(manifest, indent=1).encode())
        except BaseException:
            for name in written:
                try:
                    os.unlink(os.path.join(path, name))
                except OSError:
                    pass
            raise
        if previous is not None:
            old = [previous.get("codec_file")] + [f.get(k) for f in previous.get("shard_files", [])
                                                  for k in ("index", "seq")]
            for name in old:
                if isinstance(name, str) and name not in written and os.path.basename(name) == name:
                    try:
                        os.unlink(os.path.join(path, name))
                    except OSError:
                        pass
        self._saved = (path, manifest)

    def restart_shard(self, shard: int) -> None:
        """Starts shard ``shard`` again from the files of the last save (or load), when nothing changed
        since (RuntimeError otherwise); its old actor is killed if it still exists."""
        if self._saved is None:
            raise RuntimeError(f"shard {shard} cannot be restarted: the index changed since it was last saved or "
                               f"loaded (or never was)")
        path, manifest = self._saved
        try:
            self._engine.stop([self._handles[shard]])
        except Exception:  # already gone
            pass
        spec = _shard_spec(path, manifest, shard)
        self._handles[shard] = self._engine.start([spec])[0]


def file_checksum_of_bytes(blob: bytes) -> str:
    return blob[-32:].hex()


def _manifest_checksum(manifest: dict) -> str:
    """SHA-256 (hex) of the manifest's content but its checksum, in a canonical JSON form."""
    content = {key: value for key, value in manifest.items() if key != "checksum"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _read_manifest(path: str) -> dict:
    name = os.path.join(path, MANIFEST)
    try:
        with open(name, "rb") as f:
            manifest = json.loads(f.read().decode())
    except FileNotFoundError:
        raise IndexFileError(f"{path!r} holds no sharded index ({MANIFEST} missing)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IndexFileError(f"{name!r} is not a sharded index manifest: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFileError(f"{name!r} is not a sharded index manifest")
    if manifest.get("version") not in (1, FORMAT_VERSION):
        raise IndexFileError(f"{name!r} has format version {manifest.get('version')!r}; this release reads "
                             f"1 to {FORMAT_VERSION}")
    if manifest["version"] >= 2 and manifest.get("checksum") != _manifest_checksum(manifest):
        raise IndexFileError(f"{name!r} is damaged: its content does not match its checksum")
    files = manifest.get("shard_files")
    if not isinstance(files, list) or len(files) != manifest.get("shards") or not files:
        raise IndexFileError(f"{name!r} is corrupt: {manifest.get('shards')!r} shards but shard files {files!r}")
    return manifest


def _shard_spec(path: str, manifest: dict, shard: int) -> dict:
    entry = manifest["shard_files"][shard]
    seq_path = os.path.join(path, entry["seq"])
    if not os.path.exists(seq_path) or file_checksum(seq_path) != entry.get("seq_checksum"):
        raise IndexFileError(f"shard {shard}: {seq_path!r} is missing or is not the file the manifest names "
                             f"(checksums differ)")
    return {"number": shard, "index_path": os.path.join(path, entry["index"]), "seq_path": seq_path,
            "codec_id": manifest["codec_id"]}


def load(path, *, engine: str = "local", address: str | None = None, actor_options: dict | None = None,
         progress: bool | None = None) -> ShardedIndex:
    """A ShardedIndex saved with :meth:`ShardedIndex.save` in the folder ``path``, its shards started on
    ``engine``; :class:`medqk.index.IndexFileError` for a missing, damaged or mismatched file. ``progress``:
    a bar over the shards as they have read their files (None: when stderr is a terminal), and the index's
    setting afterwards."""
    path = os.fspath(path)
    manifest = _read_manifest(path)
    codec_path = os.path.join(path, str(manifest.get("codec_file")))
    template = _index.load(codec_path)
    if file_checksum(codec_path) != manifest.get("codec_id"):
        raise IndexFileError(f"{codec_path!r} is not the codec of this sharded index (checksum differs from the "
                             f"manifest's codec_id)")
    if (str(template.spec), template.dim, template.metric) != (manifest["spec"], manifest["dim"], manifest["metric"]):
        raise IndexFileError(f"{codec_path!r} holds '{template.spec}' dim {template.dim} {template.metric}; the "
                             f"manifest says '{manifest['spec']}' dim {manifest['dim']} {manifest['metric']}")
    specs = [_shard_spec(path, manifest, s) for s in range(manifest["shards"])]
    index = ShardedIndex.__new__(ShardedIndex)
    index._setup(template, int(manifest["shards"]), make_engine(engine, address, actor_options), progress)
    with open(codec_path, "rb") as f:
        index._blob = f.read()
    index._codec_id = manifest["codec_id"]
    index._handles = index._engine.start(specs)
    try:
        described = index._each_shard("describe", {s: () for s in range(index.shards)}, "load shards")
        for s, d in described.items():
            entry = manifest["shard_files"][s]
            if (d["spec"], d["dim"], d["metric"]) != (manifest["spec"], manifest["dim"], manifest["metric"]):
                raise IndexFileError(f"shard {s} holds '{d['spec']}' dim {d['dim']} {d['metric']}; the manifest "
                                     f"says '{manifest['spec']}' dim {manifest['dim']} {manifest['metric']}")
            if (d["rows"], d["live"]) != (entry.get("rows"), entry.get("live")):
                raise IndexFileError(f"shard {s} holds {d['rows']} rows, {d['live']} live; the manifest says "
                                     f"{entry.get('rows')}, {entry.get('live')}")
            index._stats[s] = (d["rows"], d["live"])
    except BaseException:
        index.close()
        raise
    part = ivf_part(template)
    if part is not None and manifest.get("nprobe") is not None:
        part.nprobe = int(manifest["nprobe"])  # the codec file keeps the nprobe of the first start
    index._next_id = int(manifest["next_id"])
    index._next_seq = int(manifest["next_seq"])
    index._saved = (path, manifest)
    return index


__all__ = ["ShardUnavailableError", "ShardedIndex", "load"]


def __dir__() -> list[str]:
    # the index and file helpers are imported here for the driver's use, not exported: dir() shows the API
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})

"""One shard of a :class:`medqk.distributed.ShardedIndex`: a medqk index holding the vectors routed to it
(under their own ids), and the insertion number ("seq") of each of its stored rows.

A seq is the position a vector would have in the rows of one index built by the same calls: the driver
numbers every added (or upserted) vector once, in call order. A shard's rows are in increasing seq (vectors
are appended, ``compact`` keeps the order), so wherever one index breaks a tie by the lower row, the merged
result breaks it by the lower seq.

The shard never compacts itself (its index's automatic compaction is switched off): one index compacts when
its removed rows pass a fraction of all its rows, which the driver alone knows, and the number of stored rows
decides how many candidates a two-stage search keeps; the driver calls :meth:`Shard.compact` on every shard
at the moment one index would compact.

Plain Python and numpy: the local engine holds these objects, the Ray engine runs the class as an actor.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from .. import _container
from .._errors import IndexFileError
from .._progress import bars
from ..index import load as load_index
from ..index._ids import as_ids, pack_bits
from ..index.flat import RerankIndex
from ..index.ivf import IVFLUT4Index

SEQ_MAGIC = b"MEDQKSEQ"
SEQ_VERSION = 1
_RESCORE_CHUNK = 512  # queries per FlatLUT4Index._rescore call: its _search's chunk (the tables' BLAS shape)


def index_to_bytes(index) -> bytes:
    """The medqk index file of ``index`` (medqk.index.io), as bytes."""
    fd, path = tempfile.mkstemp(suffix=".mqk")
    os.close(fd)
    try:
        index.save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def index_from_bytes(blob: bytes):
    fd, path = tempfile.mkstemp(suffix=".mqk")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        return load_index(path)
    finally:
        os.unlink(path)


def file_checksum(path) -> str:
    """The SHA-256 a medqk container file ends with (hex): its identity, verified whenever it is read."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 32:
            raise IndexFileError(f"{os.fspath(path)!r} is too short to be a medqk file")
        f.seek(-32, os.SEEK_END)
        return f.read(32).hex()


def ivf_part(index):
    """The IVF index searched first (the index, or the base of a ``+rerank``), or None."""
    part = index.base if isinstance(index, RerankIndex) else index
    return part if isinstance(part, IVFLUT4Index) else None


class Shard:
    """Shard ``number``: from the bytes of a trained empty index (``template``), or from the files a
    :meth:`save` wrote (``index_path``, ``seq_path``; checked against ``codec_id``)."""

    def __init__(self, number: int, template: bytes | None = None, *, index_path=None, seq_path=None,
                 codec_id: str | None = None):
        self.number = int(number)
        if template is not None:
            self.index = index_from_bytes(template)
            self.seq = np.empty(0, dtype=np.int64)
        else:
            self.index, self.seq = self._read(index_path, seq_path, codec_id)
        self.index._auto_compact = lambda: None  # the driver decides (see the module doc)
        self._mask = None  # (token, allowed rows) of the search being prepared
        self._row_lists = None  # IVF: the list of each stored row

    def _read(self, index_path, seq_path, codec_id):
        name = f"shard {self.number}"
        try:
            header, arrays = _container.read(os.fspath(seq_path), SEQ_MAGIC, (SEQ_VERSION,), "a medqk shard file",
                                             IndexFileError)
        except IndexFileError as e:  # damaged: said with the shard's number
            raise IndexFileError(f"{name}: {e}") from None
        if header.get("shard") != self.number or header.get("codec_id") != codec_id:
            raise IndexFileError(f"{name}: {os.fspath(seq_path)!r} belongs to another sharded index or shard "
                                 f"(shard {header.get('shard')}, codec {header.get('codec_id')!r}; the manifest "
                                 f"says shard {self.number}, codec {codec_id!r})")
        if file_checksum(index_path) != header.get("index_checksum"):
            raise IndexFileError(f"{name}: {os.fspath(index_path)!r} is not the index file saved with "
                                 f"{os.fspath(seq_path)!r} (checksums differ)")
        try:
            index = load_index(index_path)
        except IndexFileError as e:
            raise IndexFileError(f"{name}: {e}") from None
        seq = np.array(arrays["seq"], dtype=np.int64)
        if seq.shape != (index._ntotal,) or (seq.size > 1 and (np.diff(seq) <= 0).any()):
            raise IndexFileError(f"{name}: corrupt seq array (shape {seq.shape} for {index._ntotal} rows, or not "
                                 f"increasing)")
        return index, seq

    # -- state ---------------------------------------------------------------------------------
    def stats(self) -> tuple[int, int]:
        """(stored rows, live vectors)."""
        return self.index._ntotal, len(self.index)

    def describe(self) -> dict:
        return {"spec": str(self.index.spec), "dim": self.index.dim, "metric": self.index.metric,
                "rows": self.index._ntotal, "live": len(self.index), "nbytes": self.index.nbytes}

    def save(self, folder: str, stem: str, codec_id: str) -> dict:
        """Writes ``<stem>.mqk`` (the index) and ``<stem>.seq`` (the seqs, naming the index file by its
        checksum and the sharded index by ``codec_id``), each atomically; returns their names and checksums."""
        index_path = os.path.join(folder, stem + ".mqk")
        seq_path = os.path.join(folder, stem + ".seq")
        self.index.save(index_path)
        header = {"shard": self.number, "codec_id": codec_id, "index_checksum": file_checksum(index_path)}
        _container.write(seq_path, SEQ_MAGIC, SEQ_VERSION, header, {"seq": self.seq})
        return {"index": os.path.basename(index_path), "seq": os.path.basename(seq_path),
                "seq_checksum": file_checksum(seq_path), "rows": self.index._ntotal, "live": len(self.index)}

    def set_nprobe(self, nprobe: int) -> None:
        ivf_part(self.index).nprobe = nprobe

    # -- changes -------------------------------------------------------------------------------
    def check_new(self, ids: np.ndarray) -> None:
        """Raises the error ``add`` would for ids already here, changing nothing."""
        self.index._rows.new_ids(len(ids), ids)

    def add(self, x: np.ndarray, ids: np.ndarray, seq: np.ndarray) -> tuple[int, int]:
        with bars(False):  # the driver's bar counts these vectors: none of the index's own
            self.index.add(x, ids=ids)
        self._appended(seq)
        return self.stats()

    def upsert(self, x: np.ndarray, ids: np.ndarray, seq: np.ndarray) -> tuple[int, int]:
        with bars(False):
            self.index.upsert(x, ids)
        self._appended(seq)
        return self.stats()

    def _appended(self, seq):
        self.seq = np.concatenate([self.seq, np.asarray(seq, dtype=np.int64)])
        self._row_lists = None

    def remove(self, ids: np.ndarray) -> tuple[int, tuple[int, int]]:
        return self.index.remove(ids), self.stats()

    def compact(self) -> tuple[int, int]:
        live = self.index._rows.live_mask()
        if live is not None:
            self.index.compact()
            self.seq = self.seq[live]
            self._row_lists = None
        return self.stats()

    # -- reading -------------------------------------------------------------------------------
    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return self.index.vectors(ids)

    def contents(self, with_vectors: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(seq, ids, vectors or None) of the live vectors, storage order."""
        live = self.index._rows.live_mask()
        seq = self.seq if live is None else self.seq[live]
        return seq, self.index.ids(), self.index.vectors() if with_vectors else None

    # -- search --------------------------------------------------------------------------------
    def prepare_filter(self, token: str, filter) -> int:
        """Evaluates this shard's part of a search's filter (ids routed here, or a callable id -> bool) and
        keeps it for the search ``token``; returns how many live vectors it allows."""
        if callable(filter):
            allowed = self.index._allowed_rows(filter)
        else:
            allowed = self.index._allowed_rows(as_ids(filter, "filter"))
        self._mask = (token, allowed)
        return int(allowed.sum())

    def _bits(self, token):
        """The allow-bitmap of a search: its prepared filter, or the live rows (None: every row)."""
        if token is None:
            return self.index._rows.live_bits()
        if self._mask is None or self._mask[0] != token:
            raise RuntimeError(f"shard {self.number}: the filter of search {token} was not prepared")
        return pack_bits(self._mask[1])

    def _rows_out(self, scores, rows, lists: bool = False):
        """(scores float32, rows, seqs, ids, IVF lists or None) of result rows (-1: none)."""
        rows = np.asarray(rows, dtype=np.int64)
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        seq = np.where(valid, self.seq[safe] if self.seq.size else 0, -1)
        ids = self.index._rows.to_user(rows)
        row_lists = None
        if lists:
            row_lists = np.where(valid, self._lists()[safe] if self.seq.size else 0, -1)
        return np.asarray(scores, dtype=np.float32), rows, seq, ids, row_lists

    def _lists(self) -> np.ndarray:
        if self._row_lists is None:
            ivf = ivf_part(self.index)
            self._row_lists = np.empty(ivf._ntotal, dtype=np.int64)
            self._row_lists[ivf._list_ids] = np.repeat(np.arange(ivf.nlist), ivf.list_sizes())
        return self._row_lists

    def first_stage(self, q, k: int, threads: int, token, nprobe, scored_candidates: bool):
        """The k best rows by the index's first stage: its whole search (``scored_candidates`` False) or
        the candidates a re-ranking stage would re-score, with the scores that selected them."""
        part = self.index.base if isinstance(self.index, RerankIndex) and scored_candidates else self.index
        bits = self._bits(token)
        ivf = ivf_part(self.index)
        old = None
        if nprobe is not None:
            old, ivf.nprobe = ivf.nprobe, nprobe
        try:
            fn = part._scored_candidates if scored_candidates else part._scores_topk
            scores, rows = fn(q, k, threads) if bits is None else fn(q, k, threads, bits)
        finally:
            if old is not None:
                ivf.nprobe = old
        return self._rows_out(scores, rows, lists=ivf is not None)

    def second_stage(self, q, cand: np.ndarray, k: int, threads: int):
        """The best k of this shard's part of a candidate list (rows, -1: none) by the index's final scores,
        computed as one index computes them."""
        index = self.index
        if isinstance(index, RerankIndex):
            scores, rows = index._rerank(q, cand, k, threads)
        elif hasattr(index, "rerank_topk"):  # int8: its float re-scoring of the int8 candidates
            scores, rows = index.rerank_topk(q, cand, k, threads)
        else:  # 4-bit codes: the float ADC tables, per chunk of queries as their search makes them
            kk = min(k, cand.shape[1])
            scores = np.empty((q.shape[0], kk), dtype=np.float32)
            rows = np.empty((q.shape[0], kk), dtype=np.int64)
            for q0 in range(0, q.shape[0], _RESCORE_CHUNK):
                part = slice(q0, q0 + _RESCORE_CHUNK)
                scores[part], rows[part] = index._rescore(q[part], cand[part], kk, threads)
        return self._rows_out(scores, rows)

    def exact(self, q, k: int, token, query_block: int):
        """The exact scan of a selective filter over this shard's allowed rows."""
        self._bits(token)
        rows = np.flatnonzero(self._mask[1])
        scores, rows = self.index._exact_topk(q, k, rows, query_block)
        return self._rows_out(scores, rows)

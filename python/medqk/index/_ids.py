"""The ids of an index's stored rows, which rows are deleted, and the allow-bitmaps searches take.

An index stores its vectors in rows 0 .. rows - 1 (its codes, in the order they were added); the search
kernels rank rows. ``RowIds`` maps rows to the user's int64 ids and back, and keeps the deleted rows
(``remove`` marks them; ``compact`` drops them from the codes). Until an id is given or a row is dropped,
a row's id is its number (``ids`` is None): the indexes of earlier releases, without any cost.

Bitmaps handed to the kernels: uint8, bit ``r & 7`` of byte ``r >> 3`` set when row r may be returned
(numpy ``packbits(..., bitorder="little")``), ``ceil(rows / 8)`` bytes.
"""

from __future__ import annotations

import numpy as np


def as_ids(ids, name: str, n: int | None = None) -> np.ndarray:
    """int64 (m,) from a 1-D integer array or sequence (n: the length it must have); a clear error otherwise."""
    arr = np.asarray(ids)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise TypeError(f"{name} must be integers (int64), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} ids for {n} vectors")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has ids above the int64 range")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be >= 0 (-1 marks a missing result), got {int(arr.min())}")
    return arr


def unique_ids(ids: np.ndarray) -> np.ndarray:
    """The distinct values of an int64 array, sorted: np.unique's result by a sort and one compare (numpy 2.4's
    np.unique hashes, about 40x slower on 10^6 ids: half a second for a filter of 500,000 ids)."""
    s = np.sort(ids)
    return s[np.concatenate(([True], s[1:] != s[:-1]))] if s.size else s


def first_duplicate(ids: np.ndarray) -> int | None:
    """A value that occurs more than once in ``ids`` (the smallest), or None."""
    s = np.sort(ids)
    dup = np.flatnonzero(s[1:] == s[:-1])
    return int(s[dup[0]]) if dup.size else None


def pack_bits(allowed: np.ndarray) -> np.ndarray:
    """A bool per row -> the kernels' bitmap."""
    return np.packbits(allowed, bitorder="little")


class RowIds:
    """Row <-> id map and deleted rows of one index (see the module doc)."""

    def __init__(self):
        self.rows = 0
        self.ids: np.ndarray | None = None  # id of each row; None: row r has id r
        self.deleted: np.ndarray | None = None  # bool per row; None: none deleted
        self.n_deleted = 0
        self.next_id = 0  # the id add(x) without ids gives first: one past the largest id ever given
        self._lookup = None  # (sorted live ids, their rows), built on demand
        self._live_bits = None

    @property
    def live(self) -> int:
        return self.rows - self.n_deleted

    def resize(self, rows: int) -> None:
        """Sets the row count of an index whose rows are their ids (the parts of a ``+rerank`` index, an
        index being loaded); no-op when it is already that."""
        if rows == self.rows:
            return
        if self.ids is not None or self.deleted is not None:
            raise RuntimeError("the rows of an index with ids or deletions change only through add / compact")
        self.rows = rows
        self.next_id = rows
        self._lookup = self._live_bits = None

    def row_ids(self) -> np.ndarray:
        return np.arange(self.rows, dtype=np.int64) if self.ids is None else self.ids

    def live_mask(self) -> np.ndarray | None:
        return None if self.deleted is None else ~self.deleted

    def live_bits(self) -> np.ndarray | None:
        """The bitmap of the live rows (kept until the rows change: one object, so that the kinds that derive
        another bitmap from it can keep theirs too), or None when none is deleted."""
        if self.deleted is None:
            return None
        if self._live_bits is None:
            self._live_bits = pack_bits(~self.deleted)
        return self._live_bits

    def new_ids(self, n: int, ids) -> np.ndarray | None:
        """The ids of n rows about to be added (checked: unique, none live already); None: the rows' numbers
        (no map needed). Changes nothing: ``append`` does once the codes are stored."""
        if ids is None:
            if self.ids is None and self.next_id == self.rows:
                return None
            return np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        ids = as_ids(ids, "ids", n)
        dup = first_duplicate(ids)
        if dup is not None:
            raise ValueError(f"ids has duplicates (e.g. {dup}); use upsert() to replace vectors")
        if self.live:
            rows = self.rows_of(ids, missing="skip")
            if rows.size:
                raise ValueError(f"ids already in the index (e.g. {int(self.row_ids()[rows[0]])}); use upsert() "
                                 f"to replace them")
        return ids

    def append(self, n: int, ids: np.ndarray | None) -> None:
        if ids is not None and self.ids is None:
            self.ids = np.arange(self.rows, dtype=np.int64)
        if self.ids is not None:
            self.ids = np.concatenate([self.ids, ids])
        if self.deleted is not None:
            self.deleted = np.concatenate([self.deleted, np.zeros(n, dtype=bool)])
        self.rows += n
        top = self.rows if ids is None else int(ids.max()) + 1
        self.next_id = max(self.next_id, top)
        self._lookup = self._live_bits = None

    def rows_of(self, ids: np.ndarray, missing: str = "raise") -> np.ndarray:
        """Rows of the live ids (int64 ids); missing ids: "raise" a KeyError, "skip" them, or "-1"."""
        if self.ids is None and self.deleted is None:
            found = ids < self.rows
            rows = ids
        else:
            if self._lookup is None:
                rows_all = np.arange(self.rows, dtype=np.int64)
                if self.deleted is not None:
                    rows_all = rows_all[~self.deleted]
                keys = self.row_ids()[rows_all]
                order = np.argsort(keys, kind="stable")
                self._lookup = (keys[order], rows_all[order])
            keys, krows = self._lookup
            pos = np.minimum(np.searchsorted(keys, ids), max(len(keys) - 1, 0))
            found = (keys[pos] == ids) if len(keys) else np.zeros(ids.shape, dtype=bool)
            rows = krows[pos] if len(keys) else np.zeros(ids.shape, dtype=np.int64)
        if missing == "raise" and not found.all():
            raise KeyError(f"ids not in the index: {ids[~found][:5].tolist()}")
        if missing == "skip":
            return rows[found]
        return np.where(found, rows, -1)

    def delete(self, rows: np.ndarray) -> None:
        if self.deleted is None:
            self.deleted = np.zeros(self.rows, dtype=bool)
        self.deleted[rows] = True
        self.n_deleted = int(self.deleted.sum())
        self._lookup = self._live_bits = None

    def keep(self, rows: np.ndarray) -> None:
        """Only rows (increasing) remain, renumbered 0..: their ids stay."""
        self.ids = self.row_ids()[rows]
        self.rows = len(rows)
        self.deleted, self.n_deleted = None, 0
        self._lookup = self._live_bits = None
        if np.array_equal(self.ids, np.arange(self.rows)) and self.next_id == self.rows:
            self.ids = None

    def to_user(self, rows: np.ndarray) -> np.ndarray:
        """Result rows (-1: none) -> ids (-1 stays)."""
        if self.ids is None:
            return rows
        return np.where(rows >= 0, self.ids[np.maximum(rows, 0)], -1)

    # -- save / load -------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict]:
        """(header fields, arrays) to save; both empty for an index with row-number ids and no deletions,
        whose file is then the format-1 file of earlier releases."""
        if self.ids is None and self.deleted is None and self.next_id == self.rows:
            return {}, {}
        arrays = {"row_ids": self.row_ids()}
        if self.deleted is not None:
            arrays["deleted_rows"] = pack_bits(self.deleted)
        return {"next_id": self.next_id}, arrays

    def load(self, rows: int, fields: dict, arrays: dict, error) -> None:
        self.rows = rows
        self.next_id = int(fields.get("next_id", rows))
        self.ids, self.deleted, self.n_deleted, self._lookup, self._live_bits = None, None, 0, None, None
        if "row_ids" in arrays:
            ids = np.array(arrays["row_ids"], dtype=np.int64)
            if ids.shape != (rows,) or (rows and (ids.min() < 0 or ids.max() >= self.next_id)):
                raise error(f"corrupt ids: row_ids has shape {ids.shape} for {rows} rows, or ids out of range")
            self.ids = ids
        if "deleted_rows" in arrays:
            bits = np.asarray(arrays["deleted_rows"], dtype=np.uint8)
            if bits.shape != ((rows + 7) // 8,):
                raise error(f"corrupt deletions: deleted_rows has shape {bits.shape} for {rows} rows")
            self.deleted = np.unpackbits(bits, count=rows, bitorder="little").astype(bool)
            self.n_deleted = int(self.deleted.sum())
        live = self.row_ids() if self.deleted is None else self.row_ids()[~self.deleted]
        if first_duplicate(live) is not None:
            raise error("corrupt ids: two live rows share an id")

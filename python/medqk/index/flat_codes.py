"""One packer per code layout, and the base of the flat indexes that store a codec's codes in one.

A packer turns a codec's sub-codes (n, S) uint8 into the packed layout its scan reads and back
(``pack`` / ``unpack``); the layouts themselves are written once in ``medqk.kernels._layout`` (Python and
the Numba twins) and csrc/runtime/code_layout.h (C++). ``Lut4Packer``: 4-bit codes in blocks of 32 vectors
(FlatLUT4Index, IVFLUT4Index); ``PQ8Packer``: byte codes in blocks of 64 (FlatPQ8Index).

``FlatCodesIndex`` keeps a codec and its packed codes: adding packs the new codes after the stored ones
(full blocks keep their bytes, only a last partial block is unpacked and packed again), ``codes()`` and
``vectors()`` read them back, and the saved state is the codec's plus what the subclass stores.
"""

from __future__ import annotations

import importlib

import numpy as np

from .. import _backend
from ..kernels import _layout
from ._memory import aligned, aligned_concat
from .flat import Index


class CodePacker:
    """A code layout: ``pack`` codes (n, width) uint8 into blocks of ``block`` vectors (the native pack, or
    its Numba twin), ``unpack`` them by position. Subclasses name the layout (``kernel``: the pack kernels
    are ``medqk._core.<kernel>_pack`` and ``kernels._numba_<kernel>.<kernel>_pack``) and read it back."""

    kernel: str
    block: int

    def __init__(self, width: int):
        self.width = int(width)

    def packed_bytes(self, n: int) -> int:
        """Bytes of n vectors (whole blocks)."""
        raise NotImplementedError

    def pack(self, codes: np.ndarray) -> np.ndarray:
        """Codes (n, width) -> the packed layout, flat uint8 of packed_bytes(n) bytes."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.shape[0] == 0:
            return np.empty(0, dtype=np.uint8)
        if _backend.backend == "native":
            return getattr(_backend._core, f"{self.kernel}_pack")(codes)
        twins = importlib.import_module(f"medqk.kernels._numba_{self.kernel}")
        out = np.empty(self.packed_bytes(codes.shape[0]), dtype=np.uint8)
        getattr(twins, f"{self.kernel}_pack")(codes, out)
        return out

    def unpack(self, packed: np.ndarray, ids, n: int | None = None) -> np.ndarray:
        """Codes (len(ids), width) uint8 of the vectors at positions ids; ids None: all n of them."""
        raise NotImplementedError


class Lut4Packer(CodePacker):
    """The 4-bit layout (kernels/_layout.py): ``width`` sub-codes in 0..15 per vector."""

    kernel = "lut4"
    block = _layout.LUT4_BLOCK

    @property
    def bytes_per_vector(self) -> float:
        return _layout.lut4_even(self.width) / 2

    def packed_bytes(self, n: int) -> int:
        return _layout.lut4_packed_bytes(n, self.width)

    def unpack(self, packed: np.ndarray, ids, n: int | None = None) -> np.ndarray:
        ids = np.arange(n) if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
        row = _layout.lut4_row(ids, _layout.lut4_even(self.width))[:, None]
        shift = _layout.lut4_shift(ids).astype(np.uint8)[:, None]
        return _layout.lut4_code(packed, row, np.arange(self.width)[None, :], shift)


class PQ8Packer(CodePacker):
    """The 8-bit layout (kernels/_layout.py): ``width`` byte codes per vector."""

    kernel = "pq8"
    block = _layout.PQ8_BLOCK

    @property
    def bytes_per_vector(self) -> float:
        return float(self.width)

    def packed_bytes(self, n: int) -> int:
        return _layout.pq8_packed_bytes(n, self.width)

    def unpack(self, packed: np.ndarray, ids, n: int | None = None) -> np.ndarray:
        blocks = _layout.pq8_blocks(packed, self.width)
        if ids is None:  # all of them: one transposing copy rather than a gather
            return np.ascontiguousarray(blocks.transpose(0, 2, 1).reshape(-1, self.width)[:n])
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        return np.ascontiguousarray(blocks[ids // self.block, :, ids % self.block])


class FlatCodesIndex(Index):
    """A flat index over ``codec``'s sub-codes stored by ``packer`` (see the module doc).

    The codec provides ``is_trained``, ``train``, ``encode_sub`` (n, S) uint8, ``decode_sub`` -> float32
    (n, d), and ``state()`` / ``load_state()``. Subclasses search, and say what they save besides the codec
    (``_code_arrays`` / ``_load_code_arrays``).
    """

    def __init__(self, spec, dim: int, metric: str, codec, packer):
        super().__init__(spec, dim, metric)
        self.codec = codec
        self.packer = packer
        self._packed = np.empty(0, dtype=np.uint8)

    @property
    def bytes_per_vector(self) -> float:
        return self.packer.bytes_per_vector

    def codes(self, ids=None) -> np.ndarray:
        """Sub-codes (n, S) of all vectors or of rows ids."""
        return self.packer.unpack(self._packed, ids, self._ntotal)

    def _vectors_rows(self, rows):
        return self.codec.decode_sub(self.codes(rows))

    def _keep_rows(self, rows):
        self._packed = aligned(self.packer.pack(self.codes(rows)))

    def _append_codes(self, sub: np.ndarray) -> None:
        """Packs sub-codes (m, S) after the stored ones. Blocks already full keep their bytes; only a last
        partial block is unpacked and packed again with the new codes (repacking everything made n adds of
        m vectors cost O(n^2 m))."""
        n_old = self._ntotal
        kept = n_old - n_old % self.packer.block
        tail = self.packer.unpack(self._packed, np.arange(kept, n_old))
        packed = self.packer.pack(np.concatenate([tail, np.asarray(sub, dtype=np.uint8)]))
        self._packed = aligned_concat([self._packed[: self.packer.packed_bytes(kept)], packed])

    def _set_codes(self, sub: np.ndarray) -> None:
        """Stores exactly the sub-codes (n, S), packed."""
        self._packed = aligned(self.packer.pack(sub))
        self._ntotal = sub.shape[0]

    def _code_arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _load_code_arrays(self, arrays) -> None:
        raise NotImplementedError

    def _state(self):
        config, arrays = self.codec.state()
        arrays.update(self._code_arrays())
        return {"codec": config}, arrays

    def _load_state(self, config, arrays):
        self.codec.load_state(arrays)
        self._load_code_arrays(arrays)

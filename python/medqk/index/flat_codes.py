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

import numpy as np

from .. import _backend
from ..kernels import _layout
from ._memory import aligned, aligned_concat
from .flat import Index


class Lut4Packer:
    """The 4-bit layout (kernels/_layout.py) for ``n_sub`` sub-codes in 0..15 per vector."""

    block = _layout.LUT4_BLOCK

    def __init__(self, n_sub: int):
        self.n_sub = int(n_sub)

    @property
    def bytes_per_vector(self) -> float:
        return _layout.lut4_even(self.n_sub) / 2

    def packed_bytes(self, n: int) -> int:
        """Bytes of n vectors (whole blocks)."""
        return _layout.lut4_packed_bytes(n, self.n_sub)

    def pack(self, codes: np.ndarray) -> np.ndarray:
        """Sub-codes (n, n_sub) -> the packed layout, flat uint8 of packed_bytes(n) bytes."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.shape[0] == 0:
            return np.empty(0, dtype=np.uint8)
        if _backend.backend == "native":
            return _backend._core.lut4_pack(codes)
        from ..kernels import _numba_lut4

        out = np.empty(self.packed_bytes(codes.shape[0]), dtype=np.uint8)
        _numba_lut4.lut4_pack(codes, out)
        return out

    def unpack(self, packed: np.ndarray, ids, n: int | None = None) -> np.ndarray:
        """Sub-codes (len(ids), n_sub) uint8 of the vectors at positions ids; ids None: all n of them."""
        ids = np.arange(n) if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
        row = _layout.lut4_row(ids, _layout.lut4_even(self.n_sub))[:, None]
        shift = _layout.lut4_shift(ids).astype(np.uint8)[:, None]
        return _layout.lut4_code(packed, row, np.arange(self.n_sub)[None, :], shift)


class PQ8Packer:
    """The 8-bit layout (kernels/_layout.py) for ``m`` byte codes per vector."""

    block = _layout.PQ8_BLOCK

    def __init__(self, m: int):
        self.m = int(m)

    @property
    def bytes_per_vector(self) -> float:
        return float(self.m)

    def packed_bytes(self, n: int) -> int:
        """Bytes of n vectors (whole blocks)."""
        return _layout.pq8_packed_bytes(n, self.m)

    def pack(self, codes: np.ndarray) -> np.ndarray:
        """Byte codes (n, m) -> the packed layout, flat uint8 of packed_bytes(n) bytes."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if _backend.backend == "native":
            return _backend._core.pq8_pack(codes)
        from ..kernels import _numba_pq8

        out = np.empty(self.packed_bytes(codes.shape[0]), dtype=np.uint8)
        _numba_pq8.pq8_pack(codes, out)
        return out

    def unpack(self, packed: np.ndarray, ids, n: int | None = None) -> np.ndarray:
        """Byte codes (len(ids), m) of the vectors at positions ids; ids None: all n of them."""
        blocks = _layout.pq8_blocks(packed, self.m)
        if ids is None:
            return np.ascontiguousarray(blocks.transpose(0, 2, 1).reshape(-1, self.m)[:n])
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
    def is_trained(self) -> bool:
        return self.codec.is_trained

    @property
    def bytes_per_vector(self) -> float:
        return self.packer.bytes_per_vector

    def _train(self, x):
        self.codec.train(x)

    def codes(self, ids=None) -> np.ndarray:
        """Sub-codes (n, S) of all vectors or of rows ids."""
        return self.packer.unpack(self._packed, ids, self._ntotal)

    def vectors(self, ids=None) -> np.ndarray:
        """Reconstructed float32 vectors, all or those of ``ids``."""
        return self.codec.decode_sub(self.codes(ids))

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

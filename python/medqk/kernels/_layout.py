"""The packed code layouts of the 4-bit and the 8-bit scans, written once for Python and the Numba twins.

Plain integer arithmetic: the same functions index numpy arrays (``medqk.index.flat_codes`` unpacks with
them) and compile inside the Numba twins (``_numba_lut4``, ``_numba_ivf``, ``_numba_pq8`` wrap them in
``njit``). The C++ runtime's copy of these formulas is csrc/runtime/code_layout.h; the kernels' contract is
stated in csrc/kernels/lut4_scan.h and csrc/kernels/pq8_scan.h.

4-bit layout (lut4_pack): vectors in blocks of 32; d sub-codes padded to d_even = d + (d & 1); a block is
16 * d_even bytes, for each pair of subspaces (2p, 2p + 1) 32 bytes:
    byte 32 p + i      (i < 16): code[v=i][2p]     | code[v=i+16][2p]     << 4
    byte 32 p + 16 + i (i < 16): code[v=i][2p + 1] | code[v=i+16][2p + 1] << 4
so sub-code s of vector v is ``(packed[lut4_row(v, d_even) + lut4_sub_offset(s)] >> lut4_shift(v)) & 15``.
Padding (odd d, the last partial block) is code 0.

8-bit layout (pq8_pack): vectors in blocks of 64; block b is m rows of 64 bytes, row s holding the
subspace-s codes of vectors 64 b .. 64 b + 63 (padding: code 0), i.e. ``packed.reshape(-1, m, 64)[b, s, j]``;
code s of vector v is ``packed[pq8_row(v, m) + pq8_sub_offset(s)]``.
"""

from __future__ import annotations

LUT4_BLOCK = 32  # vectors per block of the 4-bit layout (csrc/runtime/code_layout.h: kLut4Block)
PQ8_BLOCK = 64  # vectors per block of the 8-bit layout (csrc/kernels/pq8_scan.h: kPq8Block)


def lut4_even(d):
    """Sub-codes per vector as stored: d padded to even (a byte pairs two subspaces)."""
    return d + (d & 1)


def lut4_block_bytes(d_even):
    """Bytes of one block of 32 vectors."""
    return 16 * d_even


def lut4_packed_bytes(n, d):
    """Bytes of n vectors of d sub-codes (whole blocks)."""
    return (n + LUT4_BLOCK - 1) // LUT4_BLOCK * lut4_block_bytes(lut4_even(d))


def lut4_row(v, d_even):
    """Byte holding sub-code 0 of vector v (its block's start plus its lane v % 16)."""
    return (v // LUT4_BLOCK) * lut4_block_bytes(d_even) + v % 16


def lut4_sub_offset(s):
    """Offset of sub-code s from a vector's row byte."""
    return 32 * (s // 2) + 16 * (s & 1)


def lut4_shift(v):
    """Bit shift of vector v's nibble: the low one for lanes 0..15 of a block, the high one for 16..31."""
    return (v % LUT4_BLOCK) // 16 * 4


def lut4_code(packed, row, s, shift):
    """Sub-code s of the vector whose row byte and shift are ``row`` and ``shift``."""
    return (packed[row + lut4_sub_offset(s)] >> shift) & 15


def pq8_packed_bytes(n, m):
    """Bytes of n vectors of m byte codes (whole blocks)."""
    return (n + PQ8_BLOCK - 1) // PQ8_BLOCK * PQ8_BLOCK * m


def pq8_row(v, m):
    """Byte holding code 0 of vector v (its block's start plus its lane v % 64)."""
    return (v // PQ8_BLOCK) * (PQ8_BLOCK * m) + v % PQ8_BLOCK


def pq8_sub_offset(s):
    """Offset of code s from a vector's row byte (one 64-byte row per subspace)."""
    return PQ8_BLOCK * s


def pq8_blocks(packed, m):
    """The packed bytes viewed as [block, subspace, lane] (nblocks, m, 64), the same layout as pq8_row."""
    return packed.reshape(-1, m, PQ8_BLOCK)

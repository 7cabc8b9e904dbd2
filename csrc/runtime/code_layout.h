// The packed code layouts of the 4-bit and the 8-bit scans, written once for the C++ runtime (the Python
// and Numba copy: python/medqk/kernels/_layout.py). The kernels' contracts: kernels/lut4_scan.h and
// kernels/pq8_scan.h.
//
// 4-bit (lut4_pack): vectors in blocks of 32; d sub-codes padded to d_even = d + (d & 1); a block is
// 16 * d_even bytes, for each pair of subspaces (2p, 2p + 1) 32 bytes:
//     byte 32 p + i      (i < 16): code[v=i][2p]     | code[v=i+16][2p]     << 4
//     byte 32 p + 16 + i (i < 16): code[v=i][2p + 1] | code[v=i+16][2p + 1] << 4
// so sub-code s of vector v is (packed[lut4_row(v, d_even) + lut4_sub_offset(s)] >> lut4_shift(v)) & 15.
// Padding (odd d, the last partial block) is code 0.
//
// 8-bit (pq8_pack): vectors in blocks of 64; block b is m rows of 64 bytes, row s holding the subspace-s
// codes of vectors 64 b .. 64 b + 63 (padding: code 0); code s of vector v is
// packed[pq8_row(v, m) + pq8_sub_offset(s)].
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/pq8_scan.h"

namespace medqk {
namespace layout {

constexpr std::size_t kLut4Block = 32;  // vectors per block of the 4-bit layout

constexpr std::size_t lut4_even(std::size_t d) { return d + (d & 1); }
constexpr std::size_t lut4_block_bytes(std::size_t d_even) { return 16 * d_even; }
constexpr std::size_t lut4_blocks(std::size_t n) { return (n + kLut4Block - 1) / kLut4Block; }
// byte holding sub-code 0 of vector v: its block's start plus its lane v % 16
constexpr std::size_t lut4_row(std::size_t v, std::size_t d_even) {
  return (v / kLut4Block) * lut4_block_bytes(d_even) + v % 16;
}
constexpr std::size_t lut4_sub_offset(std::size_t s) { return 32 * (s / 2) + 16 * (s & 1); }
// the low nibble for lanes 0..15 of a block, the high one for 16..31
constexpr unsigned lut4_shift(std::size_t v) { return (v % kLut4Block) < 16 ? 0 : 4; }
inline unsigned lut4_code(const uint8_t* packed, std::size_t row, std::size_t s, unsigned shift) {
  return (packed[row + lut4_sub_offset(s)] >> shift) & 15;
}

constexpr std::size_t kPq8Block = kernels::kPq8Block;  // vectors per block of the 8-bit layout
constexpr std::size_t pq8_blocks(std::size_t n) { return (n + kPq8Block - 1) / kPq8Block; }
constexpr std::size_t pq8_block_bytes(std::size_t m) { return kPq8Block * m; }
constexpr std::size_t pq8_row(std::size_t v, std::size_t m) {
  return (v / kPq8Block) * pq8_block_bytes(m) + v % kPq8Block;
}
constexpr std::size_t pq8_sub_offset(std::size_t s) { return kPq8Block * s; }

}  // namespace layout
}  // namespace medqk

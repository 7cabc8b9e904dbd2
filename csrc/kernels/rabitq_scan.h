// Internal interface of the 1-bit RaBitQ scan (the codec: python/medqk/quantizers/rabitq.py).
//
// Layout (rabitq_pack, the same for every ISA): a code is W = ceil(d / 64) uint64 words, dimension i in bit
// i % 64 of word i / 64 (the codec's little-endian bytes read as words), padding bits 0. Vectors come in
// blocks of kRabitqBlock = 8; block b is W rows of 8 words, row w holding word w of vectors 8b .. 8b + 7
// (padding vectors: 0). A row is one AVX-512 register, two AVX2 registers or four NEON registers, so every
// lane of a register belongs to one vector and no horizontal sum is needed.
//
// A query is `bits` (1..8) bit planes of W words each (plane j holds bit j of every query code u_i, 0 past d).
// The scan writes, for nblocks blocks, ip[8 b + u] = sum_j 2^j popcount(code & plane_j) = sum_i b_i u_i:
// exact, < 64 W 2^bits (int32 for W < 2^17).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/operation.h"

namespace medqk {
namespace kernels {

constexpr std::size_t kRabitqBlock = 8;
constexpr std::size_t kRabitqMaxBits = 8;

using RabitqScan = void(const uint64_t* packed, std::size_t nblocks, std::size_t words, const uint64_t* planes,
                        std::size_t bits, int32_t* ip);
MEDQK_KERNEL_OPERATION(RabitqScanOp, RabitqScan)

namespace scalar {
RabitqScan rabitq_scan;
}  // namespace scalar
namespace avx2 {
RabitqScan rabitq_scan;
}  // namespace avx2
namespace avx512vnni {
RabitqScan rabitq_scan_vpopcntdq;  // vpopcntq: run only where cpu_features().avx512vpopcntdq
}  // namespace avx512vnni
namespace neon {
RabitqScan rabitq_scan;
}  // namespace neon

}  // namespace kernels
}  // namespace medqk

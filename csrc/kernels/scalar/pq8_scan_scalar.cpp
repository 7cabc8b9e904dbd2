// 8-bit PQ scans, portable references (the oracles of kernels/pq8_scan.h); the AVX2 versions are in
// kernels/avx2/pq8_scan_avx2.cpp.
#include "kernels/pq8_scan.h"

namespace medqk {
namespace kernels {
namespace scalar {

void pq8_scan(const uint8_t* lut, std::size_t m, const uint8_t* packed, std::size_t nblocks, uint16_t thr,
              uint16_t* sums, uint64_t* masks) {
  for (std::size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = packed + b * kPq8Block * m;
    uint16_t* out = sums + b * kPq8Block;
    for (std::size_t j = 0; j < kPq8Block; ++j) out[j] = 0;
    for (std::size_t s = 0; s < m; ++s) {
      const uint8_t* row = block + s * kPq8Block;
      const uint8_t* t = lut + s * 256;
      for (std::size_t j = 0; j < kPq8Block; ++j) out[j] = static_cast<uint16_t>(out[j] + t[row[j]]);
    }
    uint64_t mask = 0;
    for (std::size_t j = 0; j < kPq8Block; ++j) mask |= static_cast<uint64_t>(out[j] >= thr) << j;
    masks[b] = mask;
  }
}

std::size_t pq8_scan_group(const uint8_t* lut_t, std::size_t m, const uint8_t* packed, std::size_t nblocks,
                           const uint16_t* thr, uint32_t* hits, uint16_t* hit_sums) {
  std::size_t cnt = 0;
  for (std::size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = packed + b * kPq8Block * m;
    for (std::size_t j = 0; j < kPq8Block; ++j) {
      uint16_t acc[kPq8Group] = {};
      for (std::size_t s = 0; s < m; ++s) {
        const uint8_t* e = lut_t + (s * 256 + block[s * kPq8Block + j]) * kPq8Group;
        for (std::size_t g = 0; g < kPq8Group; ++g) acc[g] = static_cast<uint16_t>(acc[g] + e[g]);
      }
      for (std::size_t g = 0; g < kPq8Group; ++g) {
        if (acc[g] >= thr[g]) {
          hits[cnt] = static_cast<uint32_t>((b * kPq8Block + j) * kPq8Group + g);
          hit_sums[cnt++] = acc[g];
        }
      }
    }
  }
  return cnt;
}

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

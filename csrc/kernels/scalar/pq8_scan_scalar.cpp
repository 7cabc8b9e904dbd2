// 8-bit PQ scan, portable reference (the oracle of kernels/pq8_scan.h). Also the AVX2 path: AVX2 has
// only 16-entry byte shuffles, and 256-entry lookups by loads beat gathers on the AVX2 CPUs measured.
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

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

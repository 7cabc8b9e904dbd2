// Scalar reference of the 4-bit table scan: the oracle for the SIMD versions, written straight from the
// contract and layout in lut4_scan.h (every block's sums are stored, whatever its mask).
#include "kernels/lut4_scan.h"

namespace medqk {
namespace kernels {
namespace scalar {

void lut4_scan(const uint8_t* lut, std::size_t lut_stride, std::size_t nq, std::size_t d_even, const uint8_t* packed,
               std::size_t nblocks, uint32_t* out, std::size_t out_stride, const int32_t* thresholds, uint32_t* masks) {
  const std::size_t block_bytes = 16 * d_even;
  for (std::size_t j = 0; j < nq; ++j) {
    const uint8_t* tables = lut + j * lut_stride;  // query j: d_even tables of 16 entries
    for (std::size_t b = 0; b < nblocks; ++b) {
      const uint8_t* block = packed + b * block_bytes;
      uint32_t sums[32] = {};
      for (std::size_t p = 0; p < d_even / 2; ++p) {
        const uint8_t* codes = block + 32 * p;
        const uint8_t* t0 = tables + 32 * p;       // table of subspace 2p
        const uint8_t* t1 = tables + 32 * p + 16;  // table of subspace 2p + 1
        for (int i = 0; i < 16; ++i) {
          sums[i] += t0[codes[i] & 15] + t1[codes[16 + i] & 15];
          sums[i + 16] += t0[codes[i] >> 4] + t1[codes[16 + i] >> 4];
        }
      }
      uint32_t mask = 0;
      for (int v = 0; v < 32; ++v) {
        out[j * out_stride + b * 32 + v] = sums[v];
        mask |= static_cast<uint32_t>(static_cast<int32_t>(sums[v]) > thresholds[j]) << v;
      }
      masks[j * nblocks + b] = mask;
    }
  }
}

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

// 8-bit product-quantization scan (asymmetric distance computation), blocked over queries: each code
// row is read once for a block of up to kPq8QueryBlock queries, whose uint16 tables stay in L1/L2
// (faiss IndexPQ scans one query at a time, re-reading every code for every query).
// Portable code: per-byte table lookups are loads, which AVX2 gathers do not beat on Zen 3, so every
// ISA's dispatch row points here.
#include "kernels/pq8_scan.h"

namespace medqk {
namespace kernels {
namespace scalar {

void pq8_scan(const uint16_t* luts, std::size_t nqb, std::size_t m, const uint8_t* codes, std::size_t n,
              uint32_t* out, std::size_t ldo) {
  for (std::size_t v = 0; v < n; ++v) {
    const uint8_t* code = codes + v * m;
    for (std::size_t q = 0; q < nqb; ++q) {
      const uint16_t* lut = luts + q * m * 256;
      uint32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;  // four chains: the loads overlap
      std::size_t s = 0;
      for (; s + 4 <= m; s += 4) {
        a0 += lut[s * 256 + code[s]];
        a1 += lut[(s + 1) * 256 + code[s + 1]];
        a2 += lut[(s + 2) * 256 + code[s + 2]];
        a3 += lut[(s + 3) * 256 + code[s + 3]];
      }
      for (; s < m; ++s) a0 += lut[s * 256 + code[s]];
      out[q * ldo + v] = (a0 + a1) + (a2 + a3);
    }
  }
}

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

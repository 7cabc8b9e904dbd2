// Internal interface of the 8-bit PQ scan: codes are n rows of m bytes (one centroid index per
// subspace); luts are nqb query tables of m x 256 uint16 entries. out[q * ldo + v] = sum_s luts[q][s][code[v][s]]
// as uint32 (exact: at most 65535 * m).
#pragma once

#include <cstddef>
#include <cstdint>

namespace medqk {
namespace kernels {

using Pq8ScanFn = void (*)(const uint16_t* luts, std::size_t nqb, std::size_t m, const uint8_t* codes, std::size_t n,
                           uint32_t* out, std::size_t ldo);
constexpr std::size_t kPq8QueryBlock = 8;

namespace scalar {
void pq8_scan(const uint16_t* luts, std::size_t nqb, std::size_t m, const uint8_t* codes, std::size_t n,
              uint32_t* out, std::size_t ldo);
}  // namespace scalar

}  // namespace kernels
}  // namespace medqk

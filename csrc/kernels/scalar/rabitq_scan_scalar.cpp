// 1-bit RaBitQ scan, portable reference (the oracle of kernels/rabitq_scan.h).
#include "kernels/rabitq_scan.h"

namespace medqk {
namespace kernels {
namespace scalar {

void rabitq_scan(const uint64_t* packed, std::size_t nblocks, std::size_t words, const uint64_t* planes,
                 std::size_t bits, int32_t* ip) {
  for (std::size_t b = 0; b < nblocks; ++b) {
    uint64_t acc[kRabitqBlock] = {};
    for (std::size_t w = 0; w < words; ++w) {
      const uint64_t* row = packed + (b * words + w) * kRabitqBlock;
      for (std::size_t j = 0; j < bits; ++j) {
        const uint64_t plane = planes[j * words + w];
        for (std::size_t u = 0; u < kRabitqBlock; ++u) {
          acc[u] += static_cast<uint64_t>(__builtin_popcountll(row[u] & plane)) << j;
        }
      }
    }
    for (std::size_t u = 0; u < kRabitqBlock; ++u) ip[b * kRabitqBlock + u] = static_cast<int32_t>(acc[u]);
  }
}

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

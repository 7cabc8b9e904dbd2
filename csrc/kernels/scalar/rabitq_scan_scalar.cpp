// 1-bit RaBitQ scan, portable reference (the oracle of kernels/rabitq_scan.h).
#include "kernels/rabitq_scan.h"

namespace medqk {
namespace kernels {
namespace scalar {

// One vector at a time (the layout's slot of vector v, word w: block v / 8, row w, lane v % 8).
void rabitq_scan(const uint64_t* packed, std::size_t nblocks, std::size_t words, const uint64_t* planes,
                 std::size_t bits, int32_t* ip) {
  for (std::size_t v = 0; v < nblocks * kRabitqBlock; ++v) {
    const uint64_t* lane = packed + (v / kRabitqBlock) * words * kRabitqBlock + v % kRabitqBlock;
    uint64_t sum = 0;
    for (std::size_t j = 0; j < bits; ++j) {
      uint64_t count = 0;
      for (std::size_t w = 0; w < words; ++w)
        count += __builtin_popcountll(lane[w * kRabitqBlock] & planes[j * words + w]);
      sum += count << j;
    }
    ip[v] = static_cast<int32_t>(sum);
  }
}

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

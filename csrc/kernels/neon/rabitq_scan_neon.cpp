// 1-bit RaBitQ scan, NEON: a block row (word w of 8 vectors) is four registers of two words; cnt counts the
// bits of each byte of code & plane_j, a group of up to 4 planes is combined in bytes by Horner's rule
// (acc = 2 acc + count, high plane first: at most 8 (1 + 2 + 4 + 8) = 120 per byte), and pairwise widening
// adds (u8 -> u16 -> u32 -> u64) sum each 64-bit word, which is shifted by the group's lowest plane.
#include <arm_neon.h>

#include "kernels/rabitq_scan.h"

namespace medqk {
namespace kernels {
namespace neon {

namespace {
constexpr std::size_t kPlaneGroup = 4;  // planes summed in bytes before widening (see above)
}  // namespace

void rabitq_scan(const uint64_t* packed, std::size_t nblocks, std::size_t words, const uint64_t* planes,
                 std::size_t bits, int32_t* ip) {
  for (std::size_t b = 0; b < nblocks; ++b) {
    uint64x2_t acc[4] = {vdupq_n_u64(0), vdupq_n_u64(0), vdupq_n_u64(0), vdupq_n_u64(0)};
    for (std::size_t w = 0; w < words; ++w) {
      const uint64_t* row = packed + (b * words + w) * kRabitqBlock;
      uint8x16_t code[4];
      for (int r = 0; r < 4; ++r) code[r] = vreinterpretq_u8_u64(vld1q_u64(row + 2 * r));
      for (std::size_t j0 = 0; j0 < bits; j0 += kPlaneGroup) {
        const std::size_t j1 = j0 + kPlaneGroup < bits ? j0 + kPlaneGroup : bits;
        uint8x16_t s[4] = {vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0)};
        for (std::size_t j = j1; j-- > j0;) {
          const uint8x16_t plane = vreinterpretq_u8_u64(vdupq_n_u64(planes[j * words + w]));
          for (int r = 0; r < 4; ++r) s[r] = vaddq_u8(vaddq_u8(s[r], s[r]), vcntq_u8(vandq_u8(code[r], plane)));
        }
        const int64x2_t shift = vdupq_n_s64(static_cast<int64_t>(j0));
        for (int r = 0; r < 4; ++r) {
          const uint64x2_t sums = vpaddlq_u32(vpaddlq_u16(vpaddlq_u8(s[r])));
          acc[r] = vaddq_u64(acc[r], vshlq_u64(sums, shift));
        }
      }
    }
    // the low 32 bits of each sum (they fit: kernels/rabitq_scan.h), in lane order
    for (int r = 0; r < 4; r += 2) {
      const uint32x4_t both = vcombine_u32(vmovn_u64(acc[r]), vmovn_u64(acc[r + 1]));
      vst1q_s32(ip + b * kRabitqBlock + 2 * r, vreinterpretq_s32_u32(both));
    }
  }
}

}  // namespace neon
}  // namespace kernels
}  // namespace medqk

// NEON 4-bit table scan: vqtbl1q_u8 looks up 16 codes in one subspace's 16-entry table; results are
// widened into 16-bit accumulators (uaddw) and flushed to 32 bits every 128 pairs of subspaces
// (2 * 128 * 255 < 65536 per lane), so sums are exact. Layout in lut4_scan.h. armv8-a, no dotprod.
#include <arm_neon.h>

#include <algorithm>

#include "kernels/lut4_scan.h"

namespace medqk {
namespace kernels {
namespace neon {

namespace {
constexpr std::size_t kFlushPairs = 128;  // two lookups per pair and lane: 2 * 128 * 255 < 65536

void scan_one(const uint8_t* lut, std::size_t d_even, const uint8_t* packed, std::size_t nblocks, uint32_t* out,
              int32_t threshold, uint32_t* masks) {
  const int32x4_t thr = vdupq_n_s32(threshold);
  static const uint32_t kBits[4] = {1, 2, 4, 8};
  const uint32x4_t bits = vld1q_u32(kBits);
  const std::size_t pairs = d_even / 2;
  const std::size_t block_bytes = 16 * d_even;
  const uint8x16_t nibble = vdupq_n_u8(0x0f);
  for (std::size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = packed + b * block_bytes;
    uint32x4_t tot[8];
    for (auto& t : tot) t = vdupq_n_u32(0);
    for (std::size_t p0 = 0; p0 < pairs; p0 += kFlushPairs) {
      const std::size_t p1 = std::min(pairs, p0 + kFlushPairs);
      uint16x8_t acc[4];  // vectors 0-7, 8-15, 16-23, 24-31
      for (auto& a : acc) a = vdupq_n_u16(0);
      for (std::size_t p = p0; p < p1; ++p) {
        const uint8x16_t c0 = vld1q_u8(block + 32 * p);
        const uint8x16_t c1 = vld1q_u8(block + 32 * p + 16);
        const uint8x16_t t0 = vld1q_u8(lut + 32 * p);
        const uint8x16_t t1 = vld1q_u8(lut + 32 * p + 16);
        const uint8x16_t lo = vqtbl1q_u8(t0, vandq_u8(c0, nibble));
        const uint8x16_t lo2 = vqtbl1q_u8(t1, vandq_u8(c1, nibble));
        const uint8x16_t hi = vqtbl1q_u8(t0, vshrq_n_u8(c0, 4));
        const uint8x16_t hi2 = vqtbl1q_u8(t1, vshrq_n_u8(c1, 4));
        acc[0] = vaddw_u8(vaddw_u8(acc[0], vget_low_u8(lo)), vget_low_u8(lo2));
        acc[1] = vaddw_high_u8(vaddw_high_u8(acc[1], lo), lo2);
        acc[2] = vaddw_u8(vaddw_u8(acc[2], vget_low_u8(hi)), vget_low_u8(hi2));
        acc[3] = vaddw_high_u8(vaddw_high_u8(acc[3], hi), hi2);
      }
      for (int g = 0; g < 4; ++g) {
        tot[2 * g] = vaddw_u16(tot[2 * g], vget_low_u16(acc[g]));
        tot[2 * g + 1] = vaddw_high_u16(tot[2 * g + 1], acc[g]);
      }
    }
    uint32_t mask = 0;
    for (int g = 0; g < 8; ++g) {
      vst1q_u32(out + b * 32 + 4 * g, tot[g]);
      const uint32x4_t gt = vcgtq_s32(vreinterpretq_s32_u32(tot[g]), thr);
      mask |= vaddvq_u32(vandq_u32(gt, bits)) << (4 * g);
    }
    masks[b] = mask;
  }
}

}  // namespace

// Queries one at a time: sharing the code loads between queries, as the x86 scans do, is left until it can
// be measured on real ARM hardware (under qemu, timings mean nothing).
void lut4_scan(const uint8_t* lut, std::size_t lut_stride, std::size_t nq, std::size_t d_even, const uint8_t* packed,
               std::size_t nblocks, uint32_t* out, std::size_t out_stride, const int32_t* thresholds, uint32_t* masks) {
  for (std::size_t j = 0; j < nq; ++j) {
    scan_one(lut + j * lut_stride, d_even, packed, nblocks, out + j * out_stride, thresholds[j], masks + j * nblocks);
  }
}

}  // namespace neon
}  // namespace kernels
}  // namespace medqk

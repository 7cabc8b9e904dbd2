// 8-bit PQ scan with NEON (armv8-a): a 256-entry table is four 64-entry vqtbl4q_u8 tables; the first
// lookup zeroes codes >= 64, the next three (vqtbx4q_u8 on the code minus 64, 128, 192) fill in the
// rest, since an out-of-range index leaves the lane as it was. Two subspaces' lookups (each <= 127) add
// in 8 bits, then widen into uint16 sums; a block's 64 vectors are four registers per subspace row.
#include <arm_neon.h>

#include "kernels/pq8_scan.h"

namespace medqk {
namespace kernels {
namespace neon {

namespace {

struct Table256 {
  uint8x16x4_t q[4];
};

inline Table256 load_table(const uint8_t* t) {
  Table256 r;
  for (int i = 0; i < 4; ++i) r.q[i] = vld1q_u8_x4(t + 64 * i);
  return r;
}

inline uint8x16_t lookup(uint8x16_t c, const Table256& t) {
  uint8x16_t r = vqtbl4q_u8(t.q[0], c);
  r = vqtbx4q_u8(r, t.q[1], vsubq_u8(c, vdupq_n_u8(64)));
  r = vqtbx4q_u8(r, t.q[2], vsubq_u8(c, vdupq_n_u8(128)));
  return vqtbx4q_u8(r, t.q[3], vsubq_u8(c, vdupq_n_u8(192)));
}

}  // namespace

void pq8_scan(const uint8_t* lut, std::size_t m, const uint8_t* packed, std::size_t nblocks, uint16_t thr,
              uint16_t* sums, uint64_t* masks) {
  for (std::size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = packed + b * kPq8Block * m;
    uint16x8_t acc[8];
    for (auto& a : acc) a = vdupq_n_u16(0);
    for (std::size_t s = 0; s < m; s += 2) {
      const uint8_t* row = block + s * kPq8Block;
      const Table256 t0 = load_table(lut + s * 256);
      uint8x16_t r[4];
      for (int g = 0; g < 4; ++g) r[g] = lookup(vld1q_u8(row + 16 * g), t0);
      if (s + 1 < m) {
        const Table256 t1 = load_table(lut + (s + 1) * 256);
        for (int g = 0; g < 4; ++g) r[g] = vaddq_u8(r[g], lookup(vld1q_u8(row + kPq8Block + 16 * g), t1));
      }
      for (int g = 0; g < 4; ++g) {
        acc[2 * g] = vaddw_u8(acc[2 * g], vget_low_u8(r[g]));
        acc[2 * g + 1] = vaddw_high_u8(acc[2 * g + 1], r[g]);
      }
    }
    uint16_t* out = sums + b * kPq8Block;
    const uint16x8_t vthr = vdupq_n_u16(thr);
    static const uint16_t kBits[8] = {1, 2, 4, 8, 16, 32, 64, 128};
    const uint16x8_t bits = vld1q_u16(kBits);
    uint64_t mask = 0;
    for (int i = 0; i < 8; ++i) {
      vst1q_u16(out + 8 * i, acc[i]);
      mask |= static_cast<uint64_t>(vaddvq_u16(vandq_u16(vcgeq_u16(acc[i], vthr), bits))) << (8 * i);
    }
    masks[b] = mask;
  }
}

}  // namespace neon
}  // namespace kernels
}  // namespace medqk

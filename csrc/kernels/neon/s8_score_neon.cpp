// NEON candidate re-scoring (kernels/s8_score.h): the 16 lanes of the reference order in four 4-float
// registers, 16 int8 codes widened (s8 -> s16 -> s32) and converted per step; vmulq then vaddq (never
// vfmaq), so the sums equal the portable ones bit for bit.
#include <arm_neon.h>

#include "kernels/s8_score.h"

namespace medqk {
namespace kernels {
namespace neon {

namespace {

// q . row over d, the 16 lanes of the reference order in four registers
inline float score_row(const float* q, std::size_t d, const int8_t* row) {
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
  std::size_t j = 0;
  for (; j + 16 <= d; j += 16) {
    const int8x16_t b = vld1q_s8(row + j);
    const int16x8_t lo = vmovl_s8(vget_low_s8(b)), hi = vmovl_s8(vget_high_s8(b));
    a0 = vaddq_f32(a0, vmulq_f32(vld1q_f32(q + j), vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)))));
    a1 = vaddq_f32(a1, vmulq_f32(vld1q_f32(q + j + 4), vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)))));
    a2 = vaddq_f32(a2, vmulq_f32(vld1q_f32(q + j + 8), vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)))));
    a3 = vaddq_f32(a3, vmulq_f32(vld1q_f32(q + j + 12), vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)))));
  }
  float s[16];
  vst1q_f32(s, a0);
  vst1q_f32(s + 4, a1);
  vst1q_f32(s + 8, a2);
  vst1q_f32(s + 12, a3);
  return s8_score_finish(s, q, row, j, d);
}

}  // namespace

void s8_score_candidates(const float* q, std::size_t d, const int8_t* codes, std::size_t n, const int64_t* cand,
                         std::size_t kc, float* out) {
  s8_score_each(codes, n, d, cand, kc, out, [q, d](const int8_t* row) { return score_row(q, d, row); });
}

}  // namespace neon
}  // namespace kernels
}  // namespace medqk

// NEON fp16 scoring (armv8-a): fcvtl widens 4 halves per instruction, fmla accumulates.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "kernels/f16_scores.h"

namespace medqk {
namespace kernels {
namespace neon {

void f16_scores(const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n, float* out) {
  const std::size_t d4 = d / 4 * 4;
  for (std::size_t j = 0; j < n; ++j) {
    const uint16_t* xj = x + j * d;
    for (std::size_t i = 0; i < nq; ++i) {
      const float* qi = q + i * d;
      float32x4_t acc = vdupq_n_f32(0.0f);
      for (std::size_t p = 0; p < d4; p += 4) {
        const float32x4_t xv = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(xj + p)));
        acc = vfmaq_f32(acc, vld1q_f32(qi + p), xv);
      }
      float s = vaddvq_f32(acc);
      for (std::size_t p = d4; p < d; ++p) s += qi[p] * scalar::f16_to_f32(xj[p]);
      out[i * n + j] = s;
    }
  }
}

}  // namespace neon
}  // namespace kernels
}  // namespace medqk

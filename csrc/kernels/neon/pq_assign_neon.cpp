// NEON PQ assignment (armv8-a): 4 centroids per register of the transposed layout, fmla for the dot
// product, fmls for norm - 2 dot (one rounding), strict < per lane while scanning blocks in index order,
// then the lowest index among the lanes holding the minimum (the scalar reference's tie rule).
#include <arm_neon.h>

#include <cstdint>
#include <limits>

#include "kernels/pq_assign.h"

namespace medqk {
namespace kernels {
namespace neon {

void pq_assign(const float* x, std::size_t rows, std::size_t ldx, std::size_t m, std::size_t dsub, const float* ct,
               const float* norms, std::size_t kp, uint8_t* codes, float* dist, float* /*scratch*/) {
  const float32x4_t two = vdupq_n_f32(2.0f);
  const uint32x4_t step = vdupq_n_u32(4);
  const uint32_t lanes[4] = {0, 1, 2, 3};
  const uint32x4_t first = vld1q_u32(lanes);
  for (std::size_t j = 0; j < m; ++j) {
    const float* cj = ct + j * dsub * kp;
    const float* nj = norms + j * kp;
    for (std::size_t i = 0; i < rows; ++i) {
      const float* xs = x + i * ldx + j * dsub;
      const float xn = pq_squared_norm(xs, dsub);
      float32x4_t best = vdupq_n_f32(std::numeric_limits<float>::infinity());
      uint32x4_t idx = vdupq_n_u32(0), ci = first;
      for (std::size_t c = 0; c < kp; c += 4) {
        float32x4_t acc = vmulq_n_f32(vld1q_f32(cj + c), xs[0]);
        for (std::size_t p = 1; p < dsub; ++p) acc = vfmaq_n_f32(acc, vld1q_f32(cj + p * kp + c), xs[p]);
        const float32x4_t s = vfmsq_f32(vld1q_f32(nj + c), two, acc);
        const uint32x4_t lt = vcltq_f32(s, best);
        best = vbslq_f32(lt, s, best);
        idx = vbslq_u32(lt, ci, idx);
        ci = vaddq_u32(ci, step);
      }
      const float mn = vminvq_f32(best);
      const uint32x4_t eq = vceqq_f32(best, vdupq_n_f32(mn));
      const uint32_t code = vminvq_u32(vbslq_u32(eq, idx, vdupq_n_u32(0xffffffffu)));
      float d = mn + xn;
      if (d < 0.0f) d = 0.0f;
      codes[i * m + j] = static_cast<uint8_t>(code);
      dist[i * m + j] = d;
    }
  }
}

}  // namespace neon
}  // namespace kernels
}  // namespace medqk

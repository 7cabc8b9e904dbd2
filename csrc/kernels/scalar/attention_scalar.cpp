// Scalar reference of the fused attention (kernels/attention.h): dot products in order d, exponentials (expf)
// and sums in order j.
#include <cmath>

#include "kernels/attention.h"

namespace medqk {
namespace kernels {
namespace scalar {

void attention_head(const float* q, std::size_t ldq, const float* k, std::size_t ldk, const float* v, std::size_t ldv,
                    std::size_t len, std::size_t dh, float scale, float* out, std::size_t ldo, float* scratch) {
  float* p = scratch;  // len weights
  for (std::size_t i = 0; i < len; ++i) {
    const float* qi = q + i * ldq;
    float best = -INFINITY;
    for (std::size_t j = 0; j < len; ++j) {
      const float* kj = k + j * ldk;
      float dot = 0.0f;
      for (std::size_t d = 0; d < dh; ++d) dot += qi[d] * kj[d];
      p[j] = scale * dot;
      best = std::fmax(best, p[j]);
    }
    float total = 0.0f;
    for (std::size_t j = 0; j < len; ++j) {
      p[j] = std::exp(p[j] - best);
      total += p[j];
    }
    float* oi = out + i * ldo;
    for (std::size_t d = 0; d < dh; ++d) oi[d] = 0.0f;
    for (std::size_t j = 0; j < len; ++j) {
      const float* vj = v + j * ldv;
      for (std::size_t d = 0; d < dh; ++d) oi[d] += p[j] * vj[d];
    }
    const float inv = 1.0f / total;
    for (std::size_t d = 0; d < dh; ++d) oi[d] *= inv;
  }
}

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

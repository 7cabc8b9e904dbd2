// Scalar GELU (kernels/gelu.h), the order the Numba twin (kernels/_numba_encoder.py) follows.
#include <cmath>

#include "kernels/gelu.h"

namespace medqk {
namespace kernels {
namespace scalar {

void gelu(const float* x, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float z = std::fabs(v) * kSqrtHalf;
    const float t = 1.0f / (1.0f + kGeluP * z);
    const float tail = ((((kGeluA5 * t + kGeluA4) * t + kGeluA3) * t + kGeluA2) * t + kGeluA1) * t * std::exp(-z * z);
    out[i] = v >= 0.0f ? v * (1.0f - 0.5f * tail) : 0.5f * v * tail;
  }
}

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

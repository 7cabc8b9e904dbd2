// Float <-> int8 helpers around the integer GEMM. Portable loops written so the compiler vectorizes
// them at the baseline ISA; they are O(M*K) and O(M*N) next to the O(M*N*K) GEMM.
#include <cmath>

#include "medqk/medqk.h"

namespace medqk {

bool quantize_rows_s8(const float* x, std::size_t m, std::size_t k, std::size_t ldx, int8_t* q, float* scales) {
  for (std::size_t i = 0; i < m; ++i) {
    const float* xi = x + i * ldx;
    float amax = 0.0f;
    bool finite = true;
    for (std::size_t p = 0; p < k; ++p) {
      const float v = std::fabs(xi[p]);
      finite &= (v <= 3.4028234663852886e38f);  // false for NaN and Inf
      amax = v > amax ? v : amax;
    }
    if (!finite) return false;
    // The same float32 operations as the Numba twin (medqk.kernels._numba.quantize_rows_s8), so the
    // codes agree bit for bit: inv = 127 / amax in float32, then round half to even.
    const float inv = amax > 0.0f ? 127.0f / amax : 1.0f;
    scales[i] = amax > 0.0f ? amax / 127.0f : 1.0f;
    int8_t* qi = q + i * k;
    for (std::size_t p = 0; p < k; ++p) {
      float v = xi[p] * inv;
      v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
      // Adding and removing 1.5 * 2^23 rounds |v| < 2^22 half to even (the default rounding mode)
      // and, unlike nearbyint, vectorizes at SSE2.
      v = (v + 12582912.0f) - 12582912.0f;
      qi[p] = static_cast<int8_t>(v);
    }
  }
  return true;
}

void dequantize_s32_f32(const int32_t* acc, std::size_t m, std::size_t n, const float* row_scale,
                        const float* col_scale, const float* bias, float* out) {
  for (std::size_t i = 0; i < m; ++i) {
    const float rs = row_scale[i];
    const int32_t* ai = acc + i * n;
    float* oi = out + i * n;
    if (bias != nullptr) {
      for (std::size_t j = 0; j < n; ++j) oi[j] = static_cast<float>(ai[j]) * (rs * col_scale[j]) + bias[j];
    } else {
      for (std::size_t j = 0; j < n; ++j) oi[j] = static_cast<float>(ai[j]) * (rs * col_scale[j]);
    }
  }
}

}  // namespace medqk

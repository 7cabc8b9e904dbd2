// Float <-> int8 helpers around the integer GEMM. Portable loops written so the compiler vectorizes
// them at the baseline ISA; they are O(M*K) and O(M*N) next to the O(M*N*K) GEMM.
#include <cmath>
#include <cstring>

#include "medqk/medqk.h"

namespace medqk {

namespace {
constexpr float kTinyRow = 0x1p-119f;  // FLT_MIN * 128
}  // namespace

bool quantize_rows_s8(const float* x, std::size_t m, std::size_t k, std::size_t ldx, int8_t* q, float* scales) {
  for (std::size_t i = 0; i < m; ++i) {
    const float* xi = x + i * ldx;
    // max |x| on the bit patterns: for non-negative floats the integer order is the float order, and
    // NaN / Inf (exponent all ones) compare above every finite value, so one integer max reduction, which
    // the compiler vectorizes (a float max reduction it would not, without -ffast-math), finds both.
    // (signed int32: the sign bit is cleared, and SSE2 has a signed 32-bit compare but no unsigned one)
    int32_t max_bits = 0;
    for (std::size_t p = 0; p < k; ++p) {
      int32_t bits;
      std::memcpy(&bits, xi + p, 4);
      bits &= 0x7fffffff;
      max_bits = bits > max_bits ? bits : max_bits;
    }
    if (max_bits >= 0x7f800000) return false;
    float amax;
    std::memcpy(&amax, &max_bits, 4);
    // The same float32 operations as the Numba twin (medqk.kernels._numba.quantize_rows_s8), so the
    // codes agree bit for bit: inv = 127 / amax in float32, then round half to even. A row whose max|x|
    // is below kTinyRow (2^-119, where amax / 127 would be subnormal and, below ~3.7e-37, 127 / amax
    // overflows to inf) counts as a zero row: all codes 0, scale 1; its error is under 1.5e-36.
    const bool live = amax >= kTinyRow;
    const float inv = live ? 127.0f / amax : 1.0f;
    scales[i] = live ? amax / 127.0f : 1.0f;
    int8_t* qi = q + i * k;
    for (std::size_t p = 0; p < k; ++p) {
      // |x * inv| <= 127 up to one rounding, so the clamp can wait for the integer (float compares with
      // ternaries would block vectorization without -ffast-math). Adding and removing 1.5 * 2^23 rounds
      // |v| < 2^22 half to even (the default rounding mode) and, unlike nearbyint, vectorizes at SSE2.
      const float v = (xi[p] * inv + 12582912.0f) - 12582912.0f;
      int32_t i32 = static_cast<int32_t>(v);
      i32 = i32 > 127 ? 127 : (i32 < -127 ? -127 : i32);
      qi[p] = static_cast<int8_t>(i32);
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

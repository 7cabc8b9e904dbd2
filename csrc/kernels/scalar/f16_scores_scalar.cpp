// Scalar reference of the fp16 scoring kernel, with a portable IEEE half -> float conversion.
#include <cstring>

#include "kernels/f16_scores.h"

namespace medqk {
namespace kernels {
namespace scalar {

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // Inf / NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // normal: rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;  // +-0
  } else {        // subnormal half: normalize
    exp = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void f16_scores(const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n, float* out) {
  for (std::size_t j = 0; j < n; ++j) {
    const uint16_t* xj = x + j * d;
    for (std::size_t i = 0; i < nq; ++i) {
      const float* qi = q + i * d;
      float s = 0.0f;
      for (std::size_t p = 0; p < d; ++p) s += qi[p] * f16_to_f32(xj[p]);
      out[i * n + j] = s;
    }
  }
}

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

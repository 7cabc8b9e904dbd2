// AVX2 GELU (kernels/gelu.h): 8 values per step, the same formula with FMA Horner steps and the polynomial
// exp; a tail of fewer than 8 values goes through a zero-padded copy.
#include <immintrin.h>

#include <cstring>

#include "kernels/gelu.h"

namespace medqk {
namespace kernels {
namespace avx2 {

#include "kernels/avx2/math_avx2.h"

namespace {

inline __m256 gelu8(__m256 v) {
  const __m256 z = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), v), _mm256_set1_ps(kSqrtHalf));
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(kGeluP), z, one));
  __m256 poly = _mm256_fmadd_ps(_mm256_set1_ps(kGeluA5), t, _mm256_set1_ps(kGeluA4));
  poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(kGeluA3));
  poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(kGeluA2));
  poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(kGeluA1));
  const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(z, z)));
  const __m256 half_tail = _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_mul_ps(_mm256_mul_ps(poly, t), e));
  const __m256 pos = _mm256_mul_ps(v, _mm256_sub_ps(one, half_tail));
  const __m256 neg = _mm256_mul_ps(v, half_tail);
  return _mm256_blendv_ps(pos, neg, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
}

}  // namespace

void gelu(const float* x, std::size_t n, float* out) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, gelu8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    float tail[8] = {0};
    std::memcpy(tail, x + i, (n - i) * sizeof(float));
    _mm256_storeu_ps(tail, gelu8(_mm256_loadu_ps(tail)));
    std::memcpy(out + i, tail, (n - i) * sizeof(float));
  }
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

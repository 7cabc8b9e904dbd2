// AVX2 + F16C + FMA fp16 scoring: vcvtph2ps widens 8 halves per instruction; each converted vector row
// is reused for a tile of up to 4 queries (the conversion, not the FMA, is the cost to amortize).
#include <immintrin.h>

#include <algorithm>

#include "kernels/f16_scores.h"

namespace medqk {
namespace kernels {
namespace avx2 {

#include "kernels/avx2/math_avx2.h"

void f16_scores(const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n, float* out) {
  const std::size_t d8 = d / 8 * 8;
  for (std::size_t j = 0; j < n; ++j) {
    const uint16_t* xj = x + j * d;
    for (std::size_t i0 = 0; i0 < nq; i0 += 4) {
      const std::size_t rows = std::min<std::size_t>(4, nq - i0);
      __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
      for (std::size_t p = 0; p < d8; p += 8) {
        const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xj + p)));
        for (std::size_t r = 0; r < rows; ++r)
          acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q + (i0 + r) * d + p), xv, acc[r]);
      }
      for (std::size_t r = 0; r < rows; ++r) {
        float s = hsum(acc[r]);
        const float* qi = q + (i0 + r) * d;
        for (std::size_t p = d8; p < d; ++p) s += qi[p] * _cvtsh_ss(xj[p]);
        out[(i0 + r) * n + j] = s;
      }
    }
  }
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

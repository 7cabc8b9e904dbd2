// AVX2 candidate re-scoring (kernels/s8_score.h): the 16 lanes of the reference order in two 8-float
// registers, 16 int8 codes widened and converted per step; the multiply and the add stay apart, so the
// sums equal the portable ones bit for bit. Two rows are scored at once: each lane's add chain has the
// latency of an add per step, and two rows give the core two independent chains per register.
#include <immintrin.h>

#include "kernels/s8_score.h"

namespace medqk {
namespace kernels {
namespace avx2 {

namespace {

inline void widen16(const int8_t* p, __m256* lo, __m256* hi) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  *lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
  *hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
}

inline float finish(__m256 lo, __m256 hi, const float* q, const int8_t* row, std::size_t j, std::size_t d) {
  alignas(32) float s[16];
  _mm256_store_ps(s, lo);
  _mm256_store_ps(s + 8, hi);
  return s8_score_finish(s, q, row, j, d);
}

}  // namespace

void s8_score_candidates(const float* q, std::size_t d, const int8_t* codes, std::size_t n, const int64_t* cand,
                         std::size_t kc, float* out) {
  constexpr float kNone = -std::numeric_limits<float>::infinity();
  std::size_t c = 0;
  for (; c + 2 <= kc; c += 2) {
    s8_score_prefetch(codes, n, d, cand, c, kc);
    s8_score_prefetch(codes, n, d, cand, c + 1, kc);
    const bool ok0 = s8_score_valid(cand[c], n), ok1 = s8_score_valid(cand[c + 1], n);
    // an invalid id is scored as row 0 of its pair partner's store and then replaced by -inf
    const int8_t* r0 = codes + (ok0 ? static_cast<std::size_t>(cand[c]) * d : 0);
    const int8_t* r1 = codes + (ok1 ? static_cast<std::size_t>(cand[c + 1]) * d : 0);
    __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0;
    std::size_t j = 0;
    for (; j + 16 <= d; j += 16) {
      const __m256 q0 = _mm256_loadu_ps(q + j), q1 = _mm256_loadu_ps(q + j + 8);
      __m256 x0, x1, y0, y1;
      widen16(r0 + j, &x0, &x1);
      widen16(r1 + j, &y0, &y1);
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(q0, x0));
      b0 = _mm256_add_ps(b0, _mm256_mul_ps(q1, x1));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(q0, y0));
      b1 = _mm256_add_ps(b1, _mm256_mul_ps(q1, y1));
    }
    out[c] = ok0 ? finish(a0, b0, q, r0, j, d) : kNone;
    out[c + 1] = ok1 ? finish(a1, b1, q, r1, j, d) : kNone;
  }
  if (c < kc) {
    if (!s8_score_valid(cand[c], n)) {
      out[c] = kNone;
      return;
    }
    const int8_t* r0 = codes + static_cast<std::size_t>(cand[c]) * d;
    __m256 a0 = _mm256_setzero_ps(), b0 = a0;
    std::size_t j = 0;
    for (; j + 16 <= d; j += 16) {
      __m256 x0, x1;
      widen16(r0 + j, &x0, &x1);
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_loadu_ps(q + j), x0));
      b0 = _mm256_add_ps(b0, _mm256_mul_ps(_mm256_loadu_ps(q + j + 8), x1));
    }
    out[c] = finish(a0, b0, q, r0, j, d);
  }
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

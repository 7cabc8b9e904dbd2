// AVX2 fused attention (kernels/attention.h): k of the head transposed into scratch, so that 8 consecutive
// keys' scores are one FMA per coordinate; 4 query rows share each load of it. The softmax runs on whole
// vectors (padded keys score -inf, their weight is exactly 0), with the polynomial exp below; the weighted
// sum of v is 8 output coordinates per accumulator, one broadcast weight and one FMA per key.
#include <immintrin.h>

#include <cmath>

#include "kernels/attention.h"

namespace medqk {
namespace kernels {
namespace avx2 {

#include "kernels/avx2/math_avx2.h"

namespace {

// Scores of R query rows (from q, row stride ldq) against the len8 keys of kt (dh x len8), times scale,
// into s (R rows of len8); keys past len score -inf.
template <int R>
void scores(const float* q, std::size_t ldq, const float* kt, std::size_t len, std::size_t len8, std::size_t dh,
            float scale, float* s) {
  const __m256 sc = _mm256_set1_ps(scale);
  for (std::size_t jb = 0; jb < len8; jb += 8) {
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (std::size_t d = 0; d < dh; ++d) {
      const __m256 kv = _mm256_loadu_ps(kt + d * len8 + jb);
      for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(q + r * ldq + d), kv, acc[r]);
    }
    for (int r = 0; r < R; ++r) _mm256_storeu_ps(s + r * len8 + jb, _mm256_mul_ps(acc[r], sc));
  }
  for (int r = 0; r < R; ++r) {
    for (std::size_t j = len; j < len8; ++j) s[r * len8 + j] = -INFINITY;
  }
}

// One query row: softmax of its len8 scores in place, then out = the weighted mean of the len rows of v.
void softmax_weighted_sum(float* s, std::size_t len, std::size_t len8, const float* v, std::size_t ldv, std::size_t dh,
                          float* out) {
  __m256 best = _mm256_set1_ps(-INFINITY);
  for (std::size_t j = 0; j < len8; j += 8) best = _mm256_max_ps(best, _mm256_loadu_ps(s + j));
  const __m256 m = _mm256_set1_ps(hmax(best));
  __m256 total = _mm256_setzero_ps();
  for (std::size_t j = 0; j < len8; j += 8) {
    const __m256 p = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
    _mm256_storeu_ps(s + j, p);
    total = _mm256_add_ps(total, p);
  }
  const float inv = 1.0f / hsum(total);
  std::size_t d0 = 0;
  for (; d0 + 8 <= dh; d0 += 8) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();  // two chains over even and odd keys
    std::size_t j = 0;
    for (; j + 2 <= len; j += 2) {
      acc0 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + j), _mm256_loadu_ps(v + j * ldv + d0), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + j + 1), _mm256_loadu_ps(v + (j + 1) * ldv + d0), acc1);
    }
    if (j < len) acc0 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + j), _mm256_loadu_ps(v + j * ldv + d0), acc0);
    _mm256_storeu_ps(out + d0, _mm256_mul_ps(_mm256_add_ps(acc0, acc1), _mm256_set1_ps(inv)));
  }
  for (; d0 < dh; ++d0) {
    float acc = 0.0f;
    for (std::size_t j = 0; j < len; ++j) acc += s[j] * v[j * ldv + d0];
    out[d0] = acc * inv;
  }
}

}  // namespace

void attention_head(const float* q, std::size_t ldq, const float* k, std::size_t ldk, const float* v, std::size_t ldv,
                    std::size_t len, std::size_t dh, float scale, float* out, std::size_t ldo, float* scratch) {
  const std::size_t len8 = (len + 7) / 8 * 8;
  float* kt = scratch;
  float* s = kt + dh * len8;
  for (std::size_t d = 0; d < dh; ++d) {
    float* row = kt + d * len8;
    for (std::size_t j = 0; j < len; ++j) row[j] = k[j * ldk + d];
    for (std::size_t j = len; j < len8; ++j) row[j] = 0.0f;
  }
  std::size_t i = 0;
  for (; i + 4 <= len; i += 4) {
    scores<4>(q + i * ldq, ldq, kt, len, len8, dh, scale, s);
    for (int r = 0; r < 4; ++r) softmax_weighted_sum(s + r * len8, len, len8, v, ldv, dh, out + (i + r) * ldo);
  }
  for (; i < len; ++i) {
    scores<1>(q + i * ldq, ldq, kt, len, len8, dh, scale, s);
    softmax_weighted_sum(s, len, len8, v, ldv, dh, out + i * ldo);
  }
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

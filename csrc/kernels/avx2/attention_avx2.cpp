// AVX2 fused attention (kernels/attention.h): k of the head transposed into scratch, so that 8 consecutive
// keys' scores are one FMA per coordinate; 4 query rows share each load of it. The softmax runs on whole
// vectors (padded keys score -inf, their weight is exactly 0), with the polynomial exp of math_avx2.h; the
// weighted sum of v keeps 8 output coordinates per accumulator, 2 rows x 32 coordinates at a time, so every
// load of v serves two rows and 8 independent FMA chains hide the FMA latency.
#include <immintrin.h>

#include <cmath>

#include "kernels/attention.h"

namespace medqk {
namespace kernels {
namespace avx2 {

#include "kernels/avx2/math_avx2.h"

namespace {

// Scores of R query rows (from q, row stride ldq) against the len8 keys of kt (dh x len8), times scale,
// into s (R rows of len8); keys past len score -inf. 16 keys at a time give 2R independent FMA chains.
template <int R>
void scores(const float* q, std::size_t ldq, const float* kt, std::size_t len, std::size_t len8, std::size_t dh,
            float scale, float* s) {
  const __m256 sc = _mm256_set1_ps(scale);
  std::size_t jb = 0;
  for (; jb + 16 <= len8; jb += 16) {
    __m256 acc0[R], acc1[R];
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
    for (std::size_t d = 0; d < dh; ++d) {
      const __m256 k0 = _mm256_loadu_ps(kt + d * len8 + jb), k1 = _mm256_loadu_ps(kt + d * len8 + jb + 8);
      for (int r = 0; r < R; ++r) {
        const __m256 qd = _mm256_broadcast_ss(q + r * ldq + d);
        acc0[r] = _mm256_fmadd_ps(qd, k0, acc0[r]);
        acc1[r] = _mm256_fmadd_ps(qd, k1, acc1[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      _mm256_storeu_ps(s + r * len8 + jb, _mm256_mul_ps(acc0[r], sc));
      _mm256_storeu_ps(s + r * len8 + jb + 8, _mm256_mul_ps(acc1[r], sc));
    }
  }
  if (jb < len8) {
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

// One row of scores in place: their exponentials relative to the row's maximum (padded keys: exactly 0);
// returns 1 / their sum.
float softmax_weights(float* s, std::size_t len8) {
  __m256 best = _mm256_set1_ps(-INFINITY);
  for (std::size_t j = 0; j < len8; j += 8) best = _mm256_max_ps(best, _mm256_loadu_ps(s + j));
  const __m256 m = _mm256_set1_ps(hmax(best));
  __m256 total = _mm256_setzero_ps();
  for (std::size_t j = 0; j < len8; j += 8) {
    const __m256 p = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
    _mm256_storeu_ps(s + j, p);
    total = _mm256_add_ps(total, p);
  }
  return 1.0f / hsum(total);
}

// out row r (stride ldo) = inv[r] * sum_j p[r * len8 + j] v_j over the len rows of v, for R rows of weights:
// each load of v serves the R rows; C blocks of 8 coordinates give R * C independent FMA chains (sums in
// order j, as the scalar reference).
template <int R, int C>
void weighted_sums(const float* p, std::size_t len8, std::size_t len, const float* v, std::size_t ldv, std::size_t d0,
                   const float* inv, float* out, std::size_t ldo) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  }
  for (std::size_t j = 0; j < len; ++j) {
    __m256 vj[C];
    for (int c = 0; c < C; ++c) vj[c] = _mm256_loadu_ps(v + j * ldv + d0 + 8 * c);
    for (int r = 0; r < R; ++r) {
      const __m256 w = _mm256_broadcast_ss(p + r * len8 + j);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(w, vj[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      _mm256_storeu_ps(out + r * ldo + d0 + 8 * c, _mm256_mul_ps(acc[r][c], _mm256_set1_ps(inv[r])));
    }
  }
}

// R rows of weights (already exponentials, inv their 1 / sums) times v into R rows of out.
template <int R>
void weighted_rows(const float* p, std::size_t len8, std::size_t len, const float* v, std::size_t ldv, std::size_t dh,
                   const float* inv, float* out, std::size_t ldo) {
  std::size_t d0 = 0;
  for (; d0 + 32 <= dh; d0 += 32) weighted_sums<R, 4>(p, len8, len, v, ldv, d0, inv, out, ldo);
  for (; d0 + 8 <= dh; d0 += 8) weighted_sums<R, 1>(p, len8, len, v, ldv, d0, inv, out, ldo);
  for (; d0 < dh; ++d0) {
    for (int r = 0; r < R; ++r) {
      float acc = 0.0f;
      for (std::size_t j = 0; j < len; ++j) acc += p[r * len8 + j] * v[j * ldv + d0];
      out[r * ldo + d0] = acc * inv[r];
    }
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
  float inv[4];
  for (; i + 4 <= len; i += 4) {
    scores<4>(q + i * ldq, ldq, kt, len, len8, dh, scale, s);
    for (int r = 0; r < 4; ++r) inv[r] = softmax_weights(s + r * len8, len8);
    weighted_rows<2>(s, len8, len, v, ldv, dh, inv, out + i * ldo, ldo);
    weighted_rows<2>(s + 2 * len8, len8, len, v, ldv, dh, inv + 2, out + (i + 2) * ldo, ldo);
  }
  for (; i < len; ++i) {
    scores<1>(q + i * ldq, ldq, kt, len, len8, dh, scale, s);
    inv[0] = softmax_weights(s, len8);
    weighted_rows<1>(s, len8, len, v, ldv, dh, inv, out + i * ldo, ldo);
  }
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

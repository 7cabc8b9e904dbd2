// AVX2 + FMA PQ assignment: 8 centroids per register (the transposed layout of kernels/pq_assign.h), the
// sub-vector's coordinates broadcast once per (row, subspace) and kept in registers (dsub <= 8 is a
// template constant, so the p loop unrolls and the broadcasts leave the centroid loop). Two independent
// (score, index) chains of blocks hide the compare/blend latency when K = 256; they are merged by
// (score, lowest index), which keeps the tie rule of the scalar reference.
#include <immintrin.h>

#include <cstdint>
#include <limits>

#include "kernels/pq_assign.h"

namespace medqk {
namespace kernels {
namespace avx2 {

namespace {

// The lowest score over the 16 lanes of (b0, b1), and the lowest index among the lanes holding it.
inline void argmin16(__m256 b0, __m256i i0, __m256 b1, __m256i i1, float* best, uint32_t* idx) {
  __m256 mn = _mm256_min_ps(b0, b1);
  mn = _mm256_min_ps(mn, _mm256_permute2f128_ps(mn, mn, 1));
  mn = _mm256_min_ps(mn, _mm256_shuffle_ps(mn, mn, _MM_SHUFFLE(1, 0, 3, 2)));
  mn = _mm256_min_ps(mn, _mm256_shuffle_ps(mn, mn, _MM_SHUFFLE(2, 3, 0, 1)));
  const __m256i none = _mm256_set1_epi32(-1);  // as unsigned: larger than any index
  const __m256i c0 = _mm256_blendv_epi8(none, i0, _mm256_castps_si256(_mm256_cmp_ps(b0, mn, _CMP_EQ_OQ)));
  const __m256i c1 = _mm256_blendv_epi8(none, i1, _mm256_castps_si256(_mm256_cmp_ps(b1, mn, _CMP_EQ_OQ)));
  __m256i c = _mm256_min_epu32(c0, c1);
  c = _mm256_min_epu32(c, _mm256_permute2x128_si256(c, c, 1));
  c = _mm256_min_epu32(c, _mm256_shuffle_epi32(c, _MM_SHUFFLE(1, 0, 3, 2)));
  c = _mm256_min_epu32(c, _mm256_shuffle_epi32(c, _MM_SHUFFLE(2, 3, 0, 1)));
  *best = _mm256_cvtss_f32(mn);
  *idx = static_cast<uint32_t>(_mm256_cvtsi256_si32(c));
}

// One subspace j for all rows. D = dsub when it is a small constant, 0 for any other dsub.
template <std::size_t D>
void assign_subspace(const float* x, std::size_t rows, std::size_t ldx, std::size_t m, std::size_t dsub_any,
                     std::size_t j, const float* cj, const float* nj, std::size_t kp, uint8_t* codes, float* dist) {
  const std::size_t dsub = D != 0 ? D : dsub_any;
  const __m256 two = _mm256_set1_ps(2.0f);
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  const __m256i step = _mm256_set1_epi32(8);
  const __m256i first = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (std::size_t i = 0; i < rows; ++i) {
    const float* xs = x + i * ldx + j * dsub;
    float xn = 0.0f;
    for (std::size_t p = 0; p < dsub; ++p) xn += xs[p] * xs[p];
    __m256 best0 = inf, best1 = inf;
    __m256i idx0 = _mm256_setzero_si256(), idx1 = _mm256_setzero_si256();
    __m256i ci = first;
    std::size_t c = 0;
    for (; c + 16 <= kp; c += 16) {
      const __m256 x0 = _mm256_set1_ps(xs[0]);
      __m256 a0 = _mm256_mul_ps(x0, _mm256_loadu_ps(cj + c));
      __m256 a1 = _mm256_mul_ps(x0, _mm256_loadu_ps(cj + c + 8));
      for (std::size_t p = 1; p < dsub; ++p) {
        const __m256 xp = _mm256_set1_ps(xs[p]);
        a0 = _mm256_fmadd_ps(xp, _mm256_loadu_ps(cj + p * kp + c), a0);
        a1 = _mm256_fmadd_ps(xp, _mm256_loadu_ps(cj + p * kp + c + 8), a1);
      }
      const __m256 s0 = _mm256_fnmadd_ps(two, a0, _mm256_loadu_ps(nj + c));  // norm - 2 dot, one rounding
      const __m256 s1 = _mm256_fnmadd_ps(two, a1, _mm256_loadu_ps(nj + c + 8));
      const __m256 lt0 = _mm256_cmp_ps(s0, best0, _CMP_LT_OQ);
      const __m256 lt1 = _mm256_cmp_ps(s1, best1, _CMP_LT_OQ);
      const __m256i ci1 = _mm256_add_epi32(ci, step);
      best0 = _mm256_blendv_ps(best0, s0, lt0);
      idx0 = _mm256_blendv_epi8(idx0, ci, _mm256_castps_si256(lt0));
      best1 = _mm256_blendv_ps(best1, s1, lt1);
      idx1 = _mm256_blendv_epi8(idx1, ci1, _mm256_castps_si256(lt1));
      ci = _mm256_add_epi32(ci1, step);
    }
    if (c < kp) {  // kp is a multiple of 8: one block left
      __m256 a0 = _mm256_mul_ps(_mm256_set1_ps(xs[0]), _mm256_loadu_ps(cj + c));
      for (std::size_t p = 1; p < dsub; ++p) a0 = _mm256_fmadd_ps(_mm256_set1_ps(xs[p]), _mm256_loadu_ps(cj + p * kp + c), a0);
      const __m256 s0 = _mm256_fnmadd_ps(two, a0, _mm256_loadu_ps(nj + c));
      const __m256 lt0 = _mm256_cmp_ps(s0, best0, _CMP_LT_OQ);
      best0 = _mm256_blendv_ps(best0, s0, lt0);
      idx0 = _mm256_blendv_epi8(idx0, ci, _mm256_castps_si256(lt0));
    }
    float best;
    uint32_t idx;
    argmin16(best0, idx0, best1, idx1, &best, &idx);
    float d = best + xn;
    if (d < 0.0f) d = 0.0f;
    codes[i * m + j] = static_cast<uint8_t>(idx);
    dist[i * m + j] = d;
  }
}

using SubspaceFn = void (*)(const float*, std::size_t, std::size_t, std::size_t, std::size_t, std::size_t,
                            const float*, const float*, std::size_t, uint8_t*, float*);

SubspaceFn subspace_fn(std::size_t dsub) {
  switch (dsub) {
    case 1: return assign_subspace<1>;
    case 2: return assign_subspace<2>;
    case 3: return assign_subspace<3>;
    case 4: return assign_subspace<4>;
    case 5: return assign_subspace<5>;
    case 6: return assign_subspace<6>;
    case 7: return assign_subspace<7>;
    case 8: return assign_subspace<8>;
    default: return assign_subspace<0>;
  }
}

}  // namespace

void pq_assign(const float* x, std::size_t rows, std::size_t ldx, std::size_t m, std::size_t dsub, const float* ct,
               const float* norms, std::size_t kp, uint8_t* codes, float* dist) {
  const SubspaceFn fn = subspace_fn(dsub);
  for (std::size_t j = 0; j < m; ++j) fn(x, rows, ldx, m, dsub, j, ct + j * dsub * kp, norms + j * kp, kp, codes, dist);
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

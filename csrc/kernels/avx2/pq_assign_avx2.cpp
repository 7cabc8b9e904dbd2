// AVX2 + FMA PQ assignment, eight rows per register: a group of 8 rows is transposed once (8x8 in-register
// transposes) so that lane r of xt[col] holds x[row r, col]; then for every subspace and centroid c the 8
// scores are dsub FMAs against broadcast centroid coordinates, and the running argmin is vertical (cmp +
// min + blend per centroid, no horizontal reduction). Per (row, subspace) that is K * (dsub + ~5) / 8
// instructions, against K / 8 * (dsub + ~5) + ~30 when the lanes hold centroids instead (the reduction to
// one lane and the broadcasts of x dominate at K = 16). Even and odd centroids run in two chains (the
// min/blend latency) merged by (score, lower index), which keeps the scalar reference's tie rule.
#include <immintrin.h>

#include <cstdint>

#include "kernels/pq_assign.h"

namespace medqk {
namespace kernels {
namespace avx2 {

namespace {

constexpr std::size_t kLanes = 8;

// xt[col * 8 + r] = x[r * ldx + col] for r < rows (zero rows beyond), col < cols.
void transpose_rows(const float* x, std::size_t rows, std::size_t ldx, std::size_t cols, float* xt) {
  std::size_t col = 0;
  if (rows == kLanes) {
    for (; col + 8 <= cols; col += 8) {
      __m256 r0 = _mm256_loadu_ps(x + 0 * ldx + col), r1 = _mm256_loadu_ps(x + 1 * ldx + col);
      __m256 r2 = _mm256_loadu_ps(x + 2 * ldx + col), r3 = _mm256_loadu_ps(x + 3 * ldx + col);
      __m256 r4 = _mm256_loadu_ps(x + 4 * ldx + col), r5 = _mm256_loadu_ps(x + 5 * ldx + col);
      __m256 r6 = _mm256_loadu_ps(x + 6 * ldx + col), r7 = _mm256_loadu_ps(x + 7 * ldx + col);
      const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
      const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      r0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
      r1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
      r2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
      r3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
      r4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
      r5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
      r6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
      r7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
      float* o = xt + col * kLanes;
      _mm256_storeu_ps(o + 0 * kLanes, _mm256_permute2f128_ps(r0, r4, 0x20));
      _mm256_storeu_ps(o + 1 * kLanes, _mm256_permute2f128_ps(r1, r5, 0x20));
      _mm256_storeu_ps(o + 2 * kLanes, _mm256_permute2f128_ps(r2, r6, 0x20));
      _mm256_storeu_ps(o + 3 * kLanes, _mm256_permute2f128_ps(r3, r7, 0x20));
      _mm256_storeu_ps(o + 4 * kLanes, _mm256_permute2f128_ps(r0, r4, 0x31));
      _mm256_storeu_ps(o + 5 * kLanes, _mm256_permute2f128_ps(r1, r5, 0x31));
      _mm256_storeu_ps(o + 6 * kLanes, _mm256_permute2f128_ps(r2, r6, 0x31));
      _mm256_storeu_ps(o + 7 * kLanes, _mm256_permute2f128_ps(r3, r7, 0x31));
    }
  }
  for (; col < cols; ++col) {
    for (std::size_t r = 0; r < kLanes; ++r) xt[col * kLanes + r] = r < rows ? x[r * ldx + col] : 0.0f;
  }
}

// One subspace for the 8 transposed rows at xs (xs[p * 8 + r]). D = dsub when it is a small constant
// (the coordinates then stay in registers), 0 for any other dsub.
template <std::size_t D>
void assign_group(const float* xs, std::size_t dsub_any, const float* cj, const float* nj, std::size_t kp,
                  __m256i* code, __m256* dist) {
  const std::size_t dsub = D != 0 ? D : dsub_any;
  constexpr std::size_t kRegs = D != 0 ? D : 1;
  __m256 xv[kRegs];
  if (D != 0) {
    for (std::size_t p = 0; p < kRegs; ++p) xv[p] = _mm256_loadu_ps(xs + p * kLanes);
  }
  auto coord = [&](std::size_t p) { return D != 0 ? xv[p] : _mm256_loadu_ps(xs + p * kLanes); };
  // ||x||^2 in order p without FMA, as the scalar reference
  __m256 xn = _mm256_mul_ps(coord(0), coord(0));
  for (std::size_t p = 1; p < dsub; ++p) xn = _mm256_add_ps(xn, _mm256_mul_ps(coord(p), coord(p)));
  const __m256 two = _mm256_set1_ps(2.0f);
  const __m256 inf = _mm256_set1_ps(__builtin_inff());
  const __m256i step = _mm256_set1_epi32(2);
  __m256 best0 = inf, best1 = inf;
  __m256i idx0 = _mm256_setzero_si256(), idx1 = _mm256_setzero_si256();
  __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_set1_epi32(1);
  auto score = [&](std::size_t c) {
    __m256 acc = _mm256_mul_ps(coord(0), _mm256_broadcast_ss(cj + c));
    for (std::size_t p = 1; p < dsub; ++p) acc = _mm256_fmadd_ps(coord(p), _mm256_broadcast_ss(cj + p * kp + c), acc);
    return _mm256_fnmadd_ps(two, acc, _mm256_broadcast_ss(nj + c));  // norm - 2 dot, one rounding
  };
  for (std::size_t c = 0; c < kp; c += 2) {  // kp is a multiple of 8
    const __m256 s0 = score(c), s1 = score(c + 1);
    const __m256 lt0 = _mm256_cmp_ps(s0, best0, _CMP_LT_OQ), lt1 = _mm256_cmp_ps(s1, best1, _CMP_LT_OQ);
    best0 = _mm256_min_ps(s0, best0);  // s0 < best0 ? s0 : best0, the blend of the strict < test
    best1 = _mm256_min_ps(s1, best1);
    idx0 = _mm256_blendv_epi8(idx0, c0, _mm256_castps_si256(lt0));
    idx1 = _mm256_blendv_epi8(idx1, c1, _mm256_castps_si256(lt1));
    c0 = _mm256_add_epi32(c0, step);
    c1 = _mm256_add_epi32(c1, step);
  }
  // merge the chains: the odd one wins on a lower score, or an equal score at a lower index
  const __m256i take1 = _mm256_or_si256(
      _mm256_castps_si256(_mm256_cmp_ps(best1, best0, _CMP_LT_OQ)),
      _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(best1, best0, _CMP_EQ_OQ)), _mm256_cmpgt_epi32(idx0, idx1)));
  const __m256 best = _mm256_blendv_ps(best0, best1, _mm256_castsi256_ps(take1));
  *code = _mm256_blendv_epi8(idx0, idx1, take1);
  // max(0, d) returns d when d is NaN or -0, like the scalar `if (d < 0) d = 0`
  *dist = _mm256_max_ps(_mm256_setzero_ps(), _mm256_add_ps(best, xn));
}

using GroupFn = void (*)(const float*, std::size_t, const float*, const float*, std::size_t, __m256i*, __m256*);

GroupFn group_fn(std::size_t dsub) {
  switch (dsub) {
    case 1: return assign_group<1>;
    case 2: return assign_group<2>;
    case 3: return assign_group<3>;
    case 4: return assign_group<4>;
    case 5: return assign_group<5>;
    case 6: return assign_group<6>;
    case 7: return assign_group<7>;
    case 8: return assign_group<8>;
    default: return assign_group<0>;
  }
}

}  // namespace

void pq_assign(const float* x, std::size_t rows, std::size_t ldx, std::size_t m, std::size_t dsub, const float* ct,
               const float* norms, std::size_t kp, uint8_t* codes, float* dist, float* scratch) {
  const GroupFn fn = group_fn(dsub);
  const std::size_t cols = m * dsub;
  float* xt = scratch;  // 8 transposed rows: 12 KiB at d = 384
  alignas(32) int32_t code_lanes[kLanes];
  alignas(32) float dist_lanes[kLanes];
  for (std::size_t i0 = 0; i0 < rows; i0 += kLanes) {
    const std::size_t nr = rows - i0 < kLanes ? rows - i0 : kLanes;
    transpose_rows(x + i0 * ldx, nr, ldx, cols, xt);
    for (std::size_t j = 0; j < m; ++j) {
      __m256i c;
      __m256 d;
      fn(xt + j * dsub * kLanes, dsub, ct + j * dsub * kp, norms + j * kp, kp, &c, &d);
      _mm256_store_si256(reinterpret_cast<__m256i*>(code_lanes), c);
      _mm256_store_ps(dist_lanes, d);
      for (std::size_t r = 0; r < nr; ++r) {
        codes[(i0 + r) * m + j] = static_cast<uint8_t>(code_lanes[r]);
        dist[(i0 + r) * m + j] = dist_lanes[r];
      }
    }
  }
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

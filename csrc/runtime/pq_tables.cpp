// Per-query lookup tables of product quantization (asymmetric distance): the contribution of every
// centroid of every subspace to the score of each query. Baseline code (SSE2 / NEON intrinsics for the
// 16 centroids of the 4-bit codes, loops the compiler vectorizes otherwise); each entry is summed over the
// subspace's dimensions in order, without FMA, exactly as the Numba twin does (identical tables, so the
// quantized tables and the returned ids agree across backends).
#include <algorithm>
#include <vector>

#include "medqk/medqk.h"
#include "runtime/baseline_simd.h"
#include "runtime/thread_pool.h"

namespace medqk {

namespace {

// k = 16 (the 4-bit codes): the 16 sums stay in four vector registers across the dsub steps. The general
// loop below (k a run-time value) stores them and loads them back at every step, a chain of dependent
// store-to-load forwards per dimension. Multiply, then add (no FMA), in d order, as the
// general loop and the Numba twin do: the same floats.
void table16(const float* x, std::size_t m, std::size_t dsub, const float* ct, const float* norms, float* out) {
  for (std::size_t s = 0; s < m; ++s) {
    const float* xs = x + s * dsub;
    const float* cs = ct + s * dsub * 16;
    float* o = out + s * 16;
#if defined(__SSE2__)
    __m128 acc[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    for (std::size_t d = 0; d < dsub; ++d) {
      const __m128 v = _mm_set1_ps(xs[d]);
      for (int i = 0; i < 4; ++i) acc[i] = _mm_add_ps(acc[i], _mm_mul_ps(v, _mm_loadu_ps(cs + d * 16 + 4 * i)));
    }
    for (int i = 0; i < 4; ++i) {
      if (norms != nullptr) {
        acc[i] = _mm_sub_ps(_mm_mul_ps(_mm_set1_ps(2.0f), acc[i]), _mm_loadu_ps(norms + s * 16 + 4 * i));
      }
      _mm_storeu_ps(o + 4 * i, acc[i]);
    }
#elif defined(__ARM_NEON)
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    for (std::size_t d = 0; d < dsub; ++d) {
      const float32x4_t v = vdupq_n_f32(xs[d]);
      for (int i = 0; i < 4; ++i) acc[i] = vaddq_f32(acc[i], vmulq_f32(v, vld1q_f32(cs + d * 16 + 4 * i)));
    }
    for (int i = 0; i < 4; ++i) {
      if (norms != nullptr) acc[i] = vsubq_f32(vmulq_f32(vdupq_n_f32(2.0f), acc[i]), vld1q_f32(norms + s * 16 + 4 * i));
      vst1q_f32(o + 4 * i, acc[i]);
    }
#else
    for (int c = 0; c < 16; ++c) {
      float acc = 0.0f;
      for (std::size_t d = 0; d < dsub; ++d) acc += xs[d] * cs[d * 16 + c];
      o[c] = norms != nullptr ? 2.0f * acc - norms[s * 16 + c] : acc;
    }
#endif
  }
}

}  // namespace

void pq_tables(const float* x, std::size_t nq, std::size_t m, std::size_t dsub, const float* centroids, std::size_t k,
               bool l2, float* out, int threads) {
  // centroids (m, k, dsub) -> (m, dsub, k): the loop over k becomes contiguous
  std::vector<float> ct(m * dsub * k), norms(l2 ? m * k : 0);
  for (std::size_t s = 0; s < m; ++s) {
    for (std::size_t c = 0; c < k; ++c) {
      const float* cen = centroids + (s * k + c) * dsub;
      float nrm = 0.0f;
      for (std::size_t d = 0; d < dsub; ++d) {
        ct[(s * dsub + d) * k + c] = cen[d];
        nrm += cen[d] * cen[d];
      }
      if (l2) norms[s * k + c] = nrm;
    }
  }
  constexpr std::size_t kQueriesPerTask = 16;
  const std::size_t tasks = (nq + kQueriesPerTask - 1) / kQueriesPerTask;
  if (threads <= 0) threads = hardware_threads();
  if (nq * m * k * dsub < (std::size_t(1) << 18)) threads = 1;
  runtime::parallel_for(static_cast<int>(tasks), threads, [&](int t) {
    const std::size_t q0 = static_cast<std::size_t>(t) * kQueriesPerTask;
    const std::size_t q1 = std::min(nq, q0 + kQueriesPerTask);
    for (std::size_t q = q0; q < q1; ++q) {
      if (k == 16) {
        table16(x + q * m * dsub, m, dsub, ct.data(), l2 ? norms.data() : nullptr, out + q * m * k);
        continue;
      }
      for (std::size_t s = 0; s < m; ++s) {
        // restrict: without it the stores to o could alias the centroids and x, and every d would reload
        // them from memory instead of keeping xs[d] in a register
        const float* __restrict xs = x + q * m * dsub + s * dsub;
        float* __restrict o = out + (q * m + s) * k;
        const float* __restrict cs = ct.data() + s * dsub * k;
        for (std::size_t c = 0; c < k; ++c) o[c] = 0.0f;
        for (std::size_t d = 0; d < dsub; ++d) {
          const float v = xs[d];
          const float* __restrict row = cs + d * k;
          for (std::size_t c = 0; c < k; ++c) o[c] += v * row[c];
        }
        if (l2) {
          const float* nr = norms.data() + s * k;
          for (std::size_t c = 0; c < k; ++c) o[c] = 2.0f * o[c] - nr[c];
        }
      }
    }
  });
}

}  // namespace medqk

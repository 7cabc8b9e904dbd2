// Also the centroid update of PQ training (pq_centroid_sums).
//
// Score-aware PQ codes (ScaNN's anisotropic loss, Guo et al., ICML 2020): coordinate descent from the
// nearest centroids, each subspace in turn taking the centroid that minimizes
//     eta * (r . u)^2 + |r - (r . u) u|^2,   r = x_hat - x, u = x / |x|,
// with the other subspaces fixed, `passes` times over the subspaces. In float64, one vector at a time
// (a vector's state is d + 3 K doubles: it stays in L1), in the order of the Numba twin
// (python/medqk/kernels/_numba_pq_assign.py: pq_anisotropic), so the codes are equal bit for bit. It
// replaced numpy code doing the same with two (n, K) GEMMs and a dozen (n, K) temporaries per subspace
// and pass.
#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "medqk/medqk.h"
#include "runtime/thread_pool.h"

namespace medqk {

namespace {

#if defined(__SSE2__) || defined(__aarch64__)
// Two doubles in a register, baseline SSE2 or AArch64 NEON: each operation below names its SSE2 and its NEON
// intrinsic (MEDQK_D2(sse2, neon) picks the target's). mul_add multiplies, then adds (no FMA), as the scalar
// loop and the Numba twin do.
#if defined(__SSE2__)
using D2 = __m128d;
#define MEDQK_D2(sse2, neon) sse2
#else
using D2 = float64x2_t;
#define MEDQK_D2(sse2, neon) neon
#endif
inline D2 d2_set1(double v) { return MEDQK_D2(_mm_set1_pd, vdupq_n_f64)(v); }
inline D2 d2_load(const double* p) { return MEDQK_D2(_mm_loadu_pd, vld1q_f64)(p); }
inline void d2_store(double* p, D2 v) { MEDQK_D2(_mm_storeu_pd, vst1q_f64)(p, v); }
inline D2 d2_mul_add(D2 acc, D2 a, D2 b) {
  return MEDQK_D2(_mm_add_pd, vaddq_f64)(acc, MEDQK_D2(_mm_mul_pd, vmulq_f64)(a, b));
}
#undef MEDQK_D2
#define MEDQK_HAVE_D2 1
#endif

// cu[c] = u . c, cr[c] = r . c, g[c] = c_cur . c over the k centroids c of one subspace (cj: dsub x k), each
// summed over p in increasing order, multiply then add. Four centroids at a time in registers while p
// runs: the plain loop over all k kept the three running sums in memory, a store-forwarding chain per p
// (pq96x4fs: 3 x 16 sums per subspace, pass and vector).
inline void dots(const double* __restrict cj, const double* __restrict uj, const double* __restrict rj,
                 std::size_t dsub, std::size_t k, std::size_t cur, double* __restrict cu, double* __restrict cr,
                 double* __restrict g) {
  std::size_t c0 = 0;
#if defined(MEDQK_HAVE_D2)
  for (; c0 + 4 <= k; c0 += 4) {
    D2 a0 = d2_set1(0.0), a1 = a0, b0 = a0, b1 = a0, g0 = a0, g1 = a0;
    for (std::size_t p = 0; p < dsub; ++p) {
      const D2 up = d2_set1(uj[p]), rp = d2_set1(rj[p]), qp = d2_set1(cj[p * k + cur]);
      const D2 v0 = d2_load(cj + p * k + c0), v1 = d2_load(cj + p * k + c0 + 2);
      a0 = d2_mul_add(a0, up, v0);
      a1 = d2_mul_add(a1, up, v1);
      b0 = d2_mul_add(b0, rp, v0);
      b1 = d2_mul_add(b1, rp, v1);
      g0 = d2_mul_add(g0, qp, v0);
      g1 = d2_mul_add(g1, qp, v1);
    }
    d2_store(cu + c0, a0);
    d2_store(cu + c0 + 2, a1);
    d2_store(cr + c0, b0);
    d2_store(cr + c0 + 2, b1);
    d2_store(g + c0, g0);
    d2_store(g + c0 + 2, g1);
  }
#endif
  for (std::size_t c = c0; c < k; ++c) {
    double a = 0.0, b = 0.0, e = 0.0;
    for (std::size_t p = 0; p < dsub; ++p) {
      const double v = cj[p * k + c];
      a += uj[p] * v;
      b += rj[p] * v;
      e += cj[p * k + cur] * v;
    }
    cu[c] = a;
    cr[c] = b;
    g[c] = e;
  }
}

// ct: the centroids as float64, transposed per subspace (m x dsub x k), so that every loop over the k
// centroids below is unit-stride and vectorizes; each sum still runs over p in increasing order.
void refine_one(const float* x, std::size_t m, std::size_t k, std::size_t dsub, const double* __restrict ct,
                const double* __restrict cn, double w, int passes, uint8_t* __restrict codes, double* __restrict u,
                double* __restrict r, double* __restrict cu, double* __restrict cr, double* __restrict g,
                double* __restrict gain) {
  const std::size_t d = m * dsub;
  double nrm2 = 0.0;
  for (std::size_t p = 0; p < d; ++p) nrm2 += static_cast<double>(x[p]) * static_cast<double>(x[p]);
  const double nrm = std::sqrt(nrm2);
  for (std::size_t p = 0; p < d; ++p) u[p] = nrm > 0.0 ? static_cast<double>(x[p]) / nrm : 0.0;
  for (std::size_t j = 0; j < m; ++j) {
    for (std::size_t p = 0; p < dsub; ++p) {
      r[j * dsub + p] = ct[(j * dsub + p) * k + codes[j]] - static_cast<double>(x[j * dsub + p]);
    }
  }
  double rpar = 0.0;
  for (std::size_t p = 0; p < d; ++p) rpar += r[p] * u[p];
  for (int pass = 0; pass < passes; ++pass) {
    for (std::size_t j = 0; j < m; ++j) {
      const double* cj = ct + j * dsub * k;
      const double* uj = u + j * dsub;
      double* rj = r + j * dsub;
      const std::size_t cur = codes[j];
      // u . c, r . c and c_cur . c for every centroid c of subspace j
      dots(cj, uj, rj, dsub, k, cur, cu, cr, g);
      // moving subspace j from c_cur to c changes x_hat by delta = c - c_cur: r . u by delta . u, |r|^2 by
      // 2 delta . r + |delta|^2 = 2 delta . r + |c|^2 - 2 c . c_cur + |c_cur|^2
      const double* cnj = cn + j * k;
      const double two_rpar = 2.0 * rpar, cu_cur = cu[cur], cr_cur = cr[cur], cn_cur = cnj[cur];
      for (std::size_t c = 0; c < k; ++c) {
        const double dpar = cu[c] - cu_cur;
        const double dd = cnj[c] - 2.0 * g[c] + cn_cur;
        gain[c] = w * dpar * (two_rpar + dpar) + 2.0 * (cr[c] - cr_cur) + dd;
      }
      gain[cur] = 0.0;  // staying put: exactly 0, so the loss never rises
      std::size_t best = 0;
      for (std::size_t c = 1; c < k; ++c) best = gain[c] < gain[best] ? c : best;  // lowest index among ties
      if (best != cur) {
        rpar += cu[best] - cu_cur;
        for (std::size_t p = 0; p < dsub; ++p) rj[p] += cj[p * k + best] - cj[p * k + cur];
        codes[j] = static_cast<uint8_t>(best);
      }
    }
  }
}

}  // namespace

void pq_anisotropic(const float* x, std::size_t n, std::size_t m, std::size_t k, std::size_t dsub,
                    const float* centroids, double eta, int passes, uint8_t* codes, int threads) {
  std::vector<double> ct(m * dsub * k), cn(m * k);
  for (std::size_t j = 0; j < m; ++j) {
    for (std::size_t c = 0; c < k; ++c) {
      double s = 0.0;
      for (std::size_t p = 0; p < dsub; ++p) {
        const double v = static_cast<double>(centroids[(j * k + c) * dsub + p]);
        ct[(j * dsub + p) * k + c] = v;
        s += v * v;
      }
      cn[j * k + c] = s;
    }
  }
  if (threads <= 0) threads = hardware_threads();
  if (n < 64) threads = 1;
  constexpr std::size_t kRows = 256;
  const std::size_t blocks = (n + kRows - 1) / kRows;
  runtime::parallel_for(static_cast<int>(blocks), threads, [&](int b) {
    std::vector<double> u(m * dsub), r(m * dsub), cu(k), cr(k), g(k), gain(k);
    const std::size_t i1 = std::min(n, (static_cast<std::size_t>(b) + 1) * kRows);
    for (std::size_t i = static_cast<std::size_t>(b) * kRows; i < i1; ++i) {
      refine_one(x + i * m * dsub, m, k, dsub, ct.data(), cn.data(), eta - 1.0, passes, codes + i * m, u.data(),
                 r.data(), cu.data(), cr.data(), g.data(), gain.data());
    }
  });
}

void pq_centroid_sums(const float* x, std::size_t n, std::size_t m, std::size_t k, std::size_t dsub,
                      const uint8_t* codes, double* sums, int64_t* counts, int threads) {
  std::fill(sums, sums + m * k * dsub, 0.0);
  std::fill(counts, counts + m * k, int64_t(0));
  if (threads <= 0) threads = hardware_threads();
  if (n * m < (std::size_t(1) << 16)) threads = 1;
  // one task per subspace: each cell's sum still adds its rows in increasing order
  runtime::parallel_for(static_cast<int>(m), threads, [&](int jt) {
    const std::size_t j = static_cast<std::size_t>(jt);
    double* sj = sums + j * k * dsub;
    int64_t* cj = counts + j * k;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t c = codes[i * m + j];
      const float* xi = x + i * m * dsub + j * dsub;
      for (std::size_t p = 0; p < dsub; ++p) sj[c * dsub + p] += static_cast<double>(xi[p]);
      ++cj[c];
    }
  });
}

}  // namespace medqk

// Scalar reference of the PQ assignment (the oracle): every sum in float32 in order p (starting from
// x[0] * c[0]), no FMA, strict < while scanning centroids in index order (lowest index wins a tie). The Numba
// twin (python/medqk/kernels/_numba_pq_assign.py) does the same operations, so the two agree bit for bit.
#include <limits>

#include "kernels/pq_assign.h"

namespace medqk {
namespace kernels {
namespace scalar {

void pq_assign(const float* x, std::size_t rows, std::size_t ldx, std::size_t m, std::size_t dsub, const float* ct,
               const float* norms, std::size_t kp, uint8_t* codes, float* dist, float* /*scratch*/) {
  for (std::size_t j = 0; j < m; ++j) {  // subspace outer: its centroids stay in L1 across the rows
    const float* cj = ct + j * dsub * kp;
    const float* nj = norms + j * kp;
    for (std::size_t i = 0; i < rows; ++i) {
      const float* xs = x + i * ldx + j * dsub;
      const float xn = pq_squared_norm(xs, dsub);
      // scores of all centroids, p outer: the c loop vectorizes (SSE2) without changing any sum's order
      float acc[256];  // kp <= 256 (uint8 codes)
      for (std::size_t c = 0; c < kp; ++c) acc[c] = xs[0] * cj[c];
      for (std::size_t p = 1; p < dsub; ++p) {
        for (std::size_t c = 0; c < kp; ++c) acc[c] += xs[p] * cj[p * kp + c];
      }
      float best = std::numeric_limits<float>::infinity();
      std::size_t idx = 0;
      for (std::size_t c = 0; c < kp; ++c) {
        const float score = nj[c] - 2.0f * acc[c];
        if (score < best) {
          best = score;
          idx = c;
        }
      }
      float d = best + xn;
      if (d < 0.0f) d = 0.0f;  // NaN stays NaN: the Python layer reports it
      codes[i * m + j] = static_cast<uint8_t>(idx);
      dist[i * m + j] = d;
    }
  }
}

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

// PQ / k-means assignment front end: builds the transposed centroid layout and the centroid norms once per
// call (M x K x dsub floats, small next to x), then spreads blocks of rows over the thread pool. The
// kernel walks its block subspace by subspace, so one subspace's centroids (8 KiB at K = 256, dsub = 8)
// stay in L1 while the rows stream past.
#include "kernels/pq_assign.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "medqk/medqk.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"

namespace medqk {

namespace {
constexpr std::size_t kRowBlock = 128;
}  // namespace

void pq_assign(Isa isa, const float* x, std::size_t n, std::size_t m, std::size_t k, std::size_t dsub,
               const float* centroids, uint8_t* codes, float* dist, int threads) {
  const kernels::PqAssignFn assign = runtime::kernel<kernels::PqAssignOp>(isa);
  const std::size_t lanes = kernels::kPqAssignLanes;
  const std::size_t kp = (k + lanes - 1) / lanes * lanes;
  std::vector<float> ct(m * dsub * kp, 0.0f);
  std::vector<float> norms(m * kp, std::numeric_limits<float>::infinity());  // padding never wins
  for (std::size_t j = 0; j < m; ++j) {
    for (std::size_t c = 0; c < k; ++c) {
      const float* cc = centroids + (j * k + c) * dsub;
      float nrm = 0.0f;
      for (std::size_t p = 0; p < dsub; ++p) {
        nrm += cc[p] * cc[p];
        ct[(j * dsub + p) * kp + c] = cc[p];
      }
      norms[j * kp + c] = nrm;
    }
  }
  if (threads <= 0) threads = hardware_threads();
  if (n * m * kp * dsub < (std::size_t(1) << 18)) threads = 1;  // a wake-up costs more than the work
  const std::size_t ldx = m * dsub;
  const std::size_t blocks = (n + kRowBlock - 1) / kRowBlock;
  runtime::parallel_for(static_cast<int>(blocks), threads, [&](int t) {
    const std::size_t r0 = static_cast<std::size_t>(t) * kRowBlock, rows = std::min(kRowBlock, n - r0);
    std::vector<float> scratch(lanes * ldx);
    assign(x + r0 * ldx, rows, ldx, m, dsub, ct.data(), norms.data(), kp, codes + r0 * m, dist + r0 * m,
           scratch.data());
  });
}

}  // namespace medqk

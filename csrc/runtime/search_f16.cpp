// fp16 flat search with the top-k fused into the scan (as search_s8.cpp does for int8 codes):
// score(i, j) = alpha * (q_i . float(x_j)) + bias[j], larger first, equal scores -> lower id.
#include <algorithm>
#include <vector>

#include "kernels/f16_scores.h"
#include "medqk/medqk.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"
#include "runtime/topk.h"

namespace medqk {

namespace {
constexpr std::size_t kQueryBlock = 32;
constexpr std::size_t kDbBlock = 512;
}  // namespace

void f16_search_topk(Isa isa, const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n,
                     float alpha, const float* bias, std::size_t topk, float* scores, int64_t* ids, int threads) {
  f16_search_topk(isa, q, nq, d, x, n, alpha, bias, topk, scores, ids, threads, nullptr);
}

void f16_search_topk(Isa isa, const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n,
                     float alpha, const float* bias, std::size_t topk, float* scores, int64_t* ids, int threads,
                     const uint8_t* allow) {
  const kernels::F16ScoresFn score = runtime::kernel<kernels::F16ScoresOp>(isa);
  if (threads <= 0) threads = hardware_threads();
  const std::size_t q_blocks = (nq + kQueryBlock - 1) / kQueryBlock;
  const std::size_t db_blocks = (n + kDbBlock - 1) / kDbBlock;
  std::size_t parts = q_blocks >= static_cast<std::size_t>(threads) ? 1 : static_cast<std::size_t>(threads);
  parts = std::max<std::size_t>(1, std::min(parts, db_blocks));
  if (nq * n * d < (std::size_t(1) << 20)) {
    threads = 1;
    parts = 1;
  }
  std::vector<std::vector<runtime::Hit>> partial(parts > 1 ? nq * parts : 0);
  runtime::parallel_for(static_cast<int>(q_blocks * parts), threads, [&](int t) {
    const std::size_t qb = static_cast<std::size_t>(t) / parts, part = static_cast<std::size_t>(t) % parts;
    const std::size_t q0 = qb * kQueryBlock, mq = std::min(kQueryBlock, nq - q0);
    const std::size_t b0 = db_blocks * part / parts * kDbBlock;
    const std::size_t b1 = std::min(n, db_blocks * (part + 1) / parts * kDbBlock);
    std::vector<float> tile(mq * kDbBlock);
    std::vector<runtime::TopK> heaps(mq);
    for (auto& h : heaps) h.reset(topk);
    for (std::size_t j0 = b0; j0 < b1; j0 += kDbBlock) {
      const std::size_t nb = std::min(kDbBlock, b1 - j0);
      score(q + q0 * d, mq, d, x + j0 * d, nb, tile.data());
      for (std::size_t i = 0; i < mq; ++i) {
        float* sc = tile.data() + i * nb;
        if (bias != nullptr) {
          for (std::size_t j = 0; j < nb; ++j) sc[j] = alpha * sc[j] + bias[j0 + j];
        } else {
          for (std::size_t j = 0; j < nb; ++j) sc[j] = alpha * sc[j];
        }
        runtime::offer(heaps[i], sc, nb, static_cast<int64_t>(j0), allow);
      }
    }
    for (std::size_t i = 0; i < mq; ++i) {
      if (parts == 1) {
        runtime::write_sorted(heaps[i].hits(), topk, scores + (q0 + i) * topk, ids + (q0 + i) * topk);
      } else {
        partial[(q0 + i) * parts + part] = std::move(heaps[i].hits());
      }
    }
  });
  if (parts > 1) runtime::merge_parts(partial, nq, parts, topk, scores, ids);
}

}  // namespace medqk

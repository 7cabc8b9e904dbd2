// Exact int8 search with the top-k fused into the scan: the database (B, packed for one ISA) is
// multiplied by a block of queries one block of columns at a time, and each int32 tile is folded into
// per-query heaps at once, so nq x N scores are never materialized.
//
// score(i, j) = alpha[i] * float(dot(a_i, b_j)) + bias[j]   (bias optional; float32, no FMA contraction,
// the same operations as the Numba twin so both pick the same ids). Order: larger score first, equal
// scores -> lower id first. Missing results (topk > n) are score -inf, id -1.
#include <algorithm>
#include <limits>
#include <vector>

#include "medqk/medqk.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"
#include "runtime/topk.h"

namespace medqk {

using runtime::Hit;
using runtime::TopK;
using runtime::write_sorted;

namespace {

constexpr std::size_t kQueryBlock = 32;   // queries per tile (rows of A)
constexpr std::size_t kDbBlock = 1024;    // database vectors per tile: 32 x 1024 int32 = 128 KiB

}  // namespace

void search_s8_topk(Isa isa, const int8_t* a, std::size_t nq, std::size_t k, const uint8_t* packed, std::size_t n,
                    const float* alpha, const float* bias, std::size_t topk, float* scores, int64_t* ids,
                    int threads) {
  const kernels::GemmS8Kernel& kernel = *runtime::gemm_s8_kernel(isa);
  const std::size_t panel_bytes = kernel.packed_bytes(kernel.panel_cols, k);
  if (threads <= 0) threads = hardware_threads();
  const std::size_t q_blocks = (nq + kQueryBlock - 1) / kQueryBlock;
  // Enough query blocks: one task each over the whole database. Otherwise split the database too and
  // merge the partial top-k lists.
  std::size_t parts = q_blocks >= static_cast<std::size_t>(threads) ? 1 : static_cast<std::size_t>(threads);
  const std::size_t db_blocks = (n + kDbBlock - 1) / kDbBlock;
  parts = std::max<std::size_t>(1, std::min(parts, db_blocks));
  if (nq * n * k < (std::size_t(1) << 20)) {
    threads = 1;
    parts = 1;
  }
  std::vector<std::vector<Hit>> partial(parts > 1 ? nq * parts : 0);

  const int tasks = static_cast<int>(q_blocks * parts);
  runtime::parallel_for(tasks, threads, [&](int t) {
    const std::size_t qb = static_cast<std::size_t>(t) / parts, part = static_cast<std::size_t>(t) % parts;
    const std::size_t q0 = qb * kQueryBlock, mq = std::min(kQueryBlock, nq - q0);
    const std::size_t b0 = db_blocks * part / parts * kDbBlock;
    const std::size_t b1 = std::min(n, db_blocks * (part + 1) / parts * kDbBlock);
    std::vector<int32_t> tile(mq * kDbBlock);
    std::vector<float> row_scores(kDbBlock);
    std::vector<TopK> heaps(mq);
    for (auto& h : heaps) h.reset(topk);
    for (std::size_t j0 = b0; j0 < b1; j0 += kDbBlock) {
      const std::size_t nb = std::min(kDbBlock, b1 - j0);
      // j0 is a multiple of kDbBlock, hence of the panel width: the panels from j0 on form a packed matrix.
      const uint8_t* block = packed + (j0 / kernel.panel_cols) * panel_bytes;
      kernel.gemm(a + q0 * k, mq, k, k, block, nb, 0, nb, tile.data(), nb);
      for (std::size_t i = 0; i < mq; ++i) {
        const float al = alpha[q0 + i];
        const int32_t* row = tile.data() + i * nb;
        float* sc = row_scores.data();
        // Two passes: a branch-free loop the compiler vectorizes, then a cheap scan against the
        // current k-th score (most candidates fail it once the heap is full).
        if (bias != nullptr) {
          const float* bj = bias + j0;
          for (std::size_t j = 0; j < nb; ++j) sc[j] = al * static_cast<float>(row[j]) + bj[j];
        } else {
          for (std::size_t j = 0; j < nb; ++j) sc[j] = al * static_cast<float>(row[j]);
        }
        runtime::offer(heaps[i], sc, nb, static_cast<int64_t>(j0));
      }
    }
    for (std::size_t i = 0; i < mq; ++i) {
      if (parts == 1) {
        write_sorted(heaps[i].hits(), topk, scores + (q0 + i) * topk, ids + (q0 + i) * topk);
      } else {
        partial[(q0 + i) * parts + part] = std::move(heaps[i].hits());
      }
    }
  });
  if (parts > 1) runtime::merge_parts(partial, nq, parts, topk, scores, ids);
}

}  // namespace medqk

namespace medqk {

void s8_score_candidates(const float* qs, std::size_t nq, std::size_t d, const int8_t* codes, std::size_t n,
                         const int64_t* cand, std::size_t kc, float* out, int threads) {
  if (threads <= 0) threads = hardware_threads();
  if (nq * kc * d < (std::size_t(1) << 18)) threads = 1;
  constexpr std::size_t kQueriesPerTask = 8;
  const std::size_t tasks = (nq + kQueriesPerTask - 1) / kQueriesPerTask;
  runtime::parallel_for(static_cast<int>(tasks), threads, [&](int t) {
    const std::size_t q1 = std::min(nq, (static_cast<std::size_t>(t) + 1) * kQueriesPerTask);
    for (std::size_t q = static_cast<std::size_t>(t) * kQueriesPerTask; q < q1; ++q) {
      const float* qq = qs + q * d;
      for (std::size_t c = 0; c < kc; ++c) {
        const int64_t v = cand[q * kc + c];
        if (v < 0 || static_cast<std::size_t>(v) >= n) {
          out[q * kc + c] = -std::numeric_limits<float>::infinity();
          continue;
        }
        const int8_t* row = codes + static_cast<std::size_t>(v) * d;
        // 16 partial sums, lane l adding the products j = l (mod 16) in order, then a fixed tree: the
        // compiler keeps the lanes in four SSE registers (four independent add chains instead of one),
        // and the Numba twin adds in exactly this order.
        float s[16] = {};
        std::size_t j = 0;
        for (; j + 16 <= d; j += 16) {
          for (int l = 0; l < 16; ++l) s[l] += qq[j + l] * static_cast<float>(row[j + l]);
        }
        for (int l = 0; j + l < d; ++l) s[l] += qq[j + l] * static_cast<float>(row[j + l]);
        for (int l = 0; l < 8; ++l) s[l] += s[l + 8];
        for (int l = 0; l < 4; ++l) s[l] += s[l + 4];
        out[q * kc + c] = (s[0] + s[2]) + (s[1] + s[3]);
      }
    }
  });
}

}  // namespace medqk

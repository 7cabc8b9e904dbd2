// Exact int8 search with the top-k fused into the scan: the database (B, packed for one ISA) is
// multiplied by a block of queries one block of columns at a time, and each int32 tile is folded into
// per-query heaps at once, so nq x N scores are never materialized.
//
// score(i, j) = alpha[i] * float(dot(a_i, b_j)) + bias[j]   (bias optional; float32, no FMA contraction,
// the same operations as the Numba twin so both pick the same ids). Order: larger score first, equal
// scores -> lower id first. Missing results (topk > n) are score -inf, id -1.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/gemm_s8s8_s32.h"
#include "kernels/s8_score.h"
#include "medqk/medqk.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"
#include "runtime/topk.h"

namespace medqk {

using runtime::Hit;
using runtime::TopK;
using runtime::write_sorted;

namespace {

constexpr std::size_t kQueryBlock = 32;  // queries per tile (rows of A)
constexpr std::size_t kDbTarget = 1024;  // about this many database vectors per tile: 32 x 1024 int32 = 128 KiB

// An int32 bound under which no dot product can score above `worst` (al > 0): |fl(al * fl(d)) - al * d| is
// below 2.4e-7 * |al * d|, so d <= t - |t| * 1e-6 - 2 (t = worst / al) scores below worst. Conservative:
// the exact float score decides for every dot that passes.
inline int32_t dot_bound(float worst, float al) {
  const double t = static_cast<double>(worst) / static_cast<double>(al);
  const double b = std::floor(t - std::fabs(t) * 1e-6 - 2.0);
  if (b <= static_cast<double>(std::numeric_limits<int32_t>::min())) return std::numeric_limits<int32_t>::min();
  if (b >= static_cast<double>(std::numeric_limits<int32_t>::max())) return std::numeric_limits<int32_t>::max();
  return static_cast<int32_t>(b);
}

// offer() of the scores al * dot without writing them: 16 int32 dots at a time are tested against the
// bound of the current k-th score (baseline SIMD), and only those past it get their float score, which
// is what the heap compares (the same pushes as offer() on the float scores). Rows `allow` clears are skipped.
inline void offer_scaled(TopK& heap, const int32_t* row, std::size_t n, float al, int64_t id0, const uint8_t* allow) {
  const std::size_t r0 = static_cast<std::size_t>(id0);
  std::size_t j = 0;
  for (; j < n && !heap.full(); ++j) {
    if (runtime::row_allowed(allow, r0 + j)) heap.push(al * static_cast<float>(row[j]), id0 + static_cast<int64_t>(j));
  }
  if (j == n) return;
  int32_t bound = dot_bound(heap.worst_score(), al);
  auto one = [&](std::size_t u) {
    const float s = al * static_cast<float>(row[u]);
    if (s > heap.worst_score()) {
      heap.push(s, id0 + static_cast<int64_t>(u));
      bound = dot_bound(heap.worst_score(), al);
    }
  };
  for (; j + 16 <= n; j += 16) {
    unsigned mask = runtime::greater_mask16(row + j, bound);
    if (mask != 0 && allow != nullptr) mask &= runtime::allowed_bits(allow, r0 + j, 16);
    for (; mask != 0; mask &= mask - 1) one(j + static_cast<std::size_t>(__builtin_ctz(mask)));
  }
  for (; j < n; ++j) {
    if (row[j] > bound && runtime::row_allowed(allow, r0 + j)) one(j);
  }
}

}  // namespace

void s8_search_topk(Isa isa, const int8_t* a, std::size_t nq, std::size_t k, const uint8_t* packed, std::size_t n,
                    const float* alpha, const float* bias, std::size_t topk, float* scores, int64_t* ids, int threads) {
  s8_search_topk(isa, a, nq, k, packed, n, alpha, bias, topk, scores, ids, threads, nullptr);
}

void s8_search_topk(Isa isa, const int8_t* a, std::size_t nq, std::size_t k, const uint8_t* packed, std::size_t n,
                    const float* alpha, const float* bias, std::size_t topk, float* scores, int64_t* ids, int threads,
                    const uint8_t* allow) {
  const kernels::GemmS8Kernel& kernel = runtime::kernel<kernels::GemmS8Op>(isa);
  const std::size_t panel_bytes = kernel.packed_bytes(kernel.panel_cols, k);
  // whole panels per tile (16, 24, 32 columns... by ISA), so that every tile starts at a panel
  const std::size_t kDbBlock = std::max<std::size_t>(1, kDbTarget / kernel.panel_cols) * kernel.panel_cols;
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
      // j0 is a multiple of kDbBlock, a whole number of panels: the panels from j0 on form a packed matrix.
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
          runtime::offer(heaps[i], sc, nb, static_cast<int64_t>(j0), allow);
        } else if (al > 0.0f) {
          offer_scaled(heaps[i], row, nb, al, static_cast<int64_t>(j0), allow);
        } else {
          for (std::size_t j = 0; j < nb; ++j) sc[j] = al * static_cast<float>(row[j]);
          runtime::offer(heaps[i], sc, nb, static_cast<int64_t>(j0), allow);
        }
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

namespace {
constexpr std::size_t kQueriesPerTask = 8;  // candidate re-scoring: queries per task
}  // namespace

void s8_score_candidates(Isa isa, const float* qs, std::size_t nq, std::size_t d, const int8_t* codes, std::size_t n,
                         const int64_t* cand, std::size_t kc, float* out, int threads) {
  const kernels::S8ScoreCandidatesFn score = runtime::kernel<kernels::S8ScoreOp>(isa);
  if (threads <= 0) threads = hardware_threads();
  if (nq * kc * d < (std::size_t(1) << 18)) threads = 1;
  const std::size_t tasks = (nq + kQueriesPerTask - 1) / kQueriesPerTask;
  runtime::parallel_for(static_cast<int>(tasks), threads, [&](int t) {
    const std::size_t q1 = std::min(nq, (static_cast<std::size_t>(t) + 1) * kQueriesPerTask);
    for (std::size_t q = static_cast<std::size_t>(t) * kQueriesPerTask; q < q1; ++q) {
      score(qs + q * d, d, codes, n, cand + q * kc, kc, out + q * kc);
    }
  });
}

void s8_rerank_topk(Isa isa, const float* qs, std::size_t nq, std::size_t d, const int8_t* codes, std::size_t n,
                    const int64_t* cand, std::size_t kc, const float* qbias, const float* sqnorms, std::size_t topk,
                    float* scores, int64_t* ids, int threads) {
  const kernels::S8ScoreCandidatesFn score = runtime::kernel<kernels::S8ScoreOp>(isa);
  if (threads <= 0) threads = hardware_threads();
  if (nq * kc * d < (std::size_t(1) << 18)) threads = 1;
  const std::size_t tasks = (nq + kQueriesPerTask - 1) / kQueriesPerTask;
  runtime::parallel_for(static_cast<int>(tasks), threads, [&](int t) {
    std::vector<float> s(kc);
    std::vector<Hit> hits(kc);
    const std::size_t q1 = std::min(nq, (static_cast<std::size_t>(t) + 1) * kQueriesPerTask);
    for (std::size_t q = static_cast<std::size_t>(t) * kQueriesPerTask; q < q1; ++q) {
      const int64_t* cq = cand + q * kc;
      score(qs + q * d, d, codes, n, cq, kc, s.data());
      for (std::size_t c = 0; c < kc; ++c) {
        float v = s[c];
        if (qbias != nullptr) v = v + qbias[q];
        if (sqnorms != nullptr && cq[c] >= 0 && static_cast<std::size_t>(cq[c]) < n) {
          v = 2.0f * v;
          v = v - sqnorms[cq[c]];
        }
        hits[c] = Hit{v, cq[c]};
      }
      const std::size_t m = std::min(topk, kc);
      std::partial_sort(hits.begin(), hits.begin() + static_cast<std::ptrdiff_t>(m), hits.end(), runtime::better);
      for (std::size_t t2 = 0; t2 < topk; ++t2) {
        scores[q * topk + t2] = t2 < m ? hits[t2].score : -std::numeric_limits<float>::infinity();
        ids[q * topk + t2] = t2 < m ? hits[t2].id : -1;
      }
    }
  });
}

}  // namespace medqk

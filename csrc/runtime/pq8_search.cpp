// 8-bit PQ search front end: uint16 table quantization and the top-k over query blocks.
// Ranking is by the exact uint32 table sums (ties -> lower id); score = alpha[q] * sum + beta[q].
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "medqk/medqk.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"
#include "runtime/topk.h"
#include "runtime/round.h"

namespace medqk {

namespace {
constexpr std::size_t kChunk = 1024;  // code rows per scan call
}

void pq8_decode_s8(const uint8_t* codes, std::size_t n, std::size_t m, const int8_t* table, std::size_t dsub,
                   int8_t* out) {
  for (std::size_t i = 0; i < n; ++i) {
    int8_t* o = out + i * m * dsub;
    for (std::size_t s = 0; s < m; ++s) {
      std::memcpy(o + s * dsub, table + (s * 256 + codes[i * m + s]) * dsub, dsub);
    }
  }
}

void pq8_quantize_tables(const float* tables, std::size_t nq, std::size_t m, uint16_t* luts, float* alpha,
                         float* beta) {
  for (std::size_t q = 0; q < nq; ++q) {
    const float* t = tables + q * m * 256;
    uint16_t* out = luts + q * m * 256;
    float span = 0.0f, offset = 0.0f;
    std::vector<float> lo(m);
    for (std::size_t s = 0; s < m; ++s) {
      float mn = t[s * 256], mx = t[s * 256];
      for (int c = 1; c < 256; ++c) {
        mn = std::min(mn, t[s * 256 + c]);
        mx = std::max(mx, t[s * 256 + c]);
      }
      lo[s] = mn;
      span = std::max(span, mx - mn);
      offset += mn;  // sequential float32 sum, as in the Numba twin
    }
    const float step = span > 0.0f ? span / 65535.0f : 1.0f;
    for (std::size_t s = 0; s < m; ++s) {
      for (int c = 0; c < 256; ++c) {
        out[s * 256 + c] = static_cast<uint16_t>(runtime::round_clamp((t[s * 256 + c] - lo[s]) / step, 65535));
      }
    }
    alpha[q] = step;
    beta[q] = offset;
  }
}

void pq8_search_topk(Isa isa, const uint16_t* luts, std::size_t nq, std::size_t m, const uint8_t* codes,
                     std::size_t n, const float* alpha, const float* beta, std::size_t topk, float* scores,
                     int64_t* ids, int threads) {
  const kernels::Pq8ScanFn scan = runtime::pq8_scan_kernel(isa);
  const std::size_t qb = kernels::kPq8QueryBlock;
  const std::size_t q_blocks = (nq + qb - 1) / qb;
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  if (threads <= 0) threads = hardware_threads();
  std::size_t parts = q_blocks >= static_cast<std::size_t>(threads) ? 1 : std::min<std::size_t>(threads, chunks);
  parts = std::max<std::size_t>(parts, 1);
  if (nq * n * m < (std::size_t(1) << 20)) {
    threads = 1;
    parts = 1;
  }
  std::vector<std::vector<runtime::Hit>> partial(parts > 1 ? nq * parts : 0);
  runtime::parallel_for(static_cast<int>(q_blocks * parts), threads, [&](int t) {
    const std::size_t b = static_cast<std::size_t>(t) / parts, part = static_cast<std::size_t>(t) % parts;
    const std::size_t q0 = b * qb, nqb = std::min(qb, nq - q0);
    const std::size_t c0 = chunks * part / parts, c1 = chunks * (part + 1) / parts;
    std::vector<uint32_t> sums(qb * kChunk);
    std::vector<runtime::SumsTopK> heaps(nqb);
    for (auto& h : heaps) h.reset(topk);
    for (std::size_t c = c0; c < c1; ++c) {
      const std::size_t v0 = c * kChunk, nv = std::min(kChunk, n - v0);
      scan(luts + q0 * m * 256, nqb, m, codes + v0 * m, nv, sums.data(), kChunk);
      for (std::size_t q = 0; q < nqb; ++q) {
        // sums <= 65535 * 256 < 2^24: exact as float keys and as int32
        heaps[q].offer(reinterpret_cast<const int32_t*>(sums.data() + q * kChunk), nv,
                            static_cast<int64_t>(v0));
      }
    }
    for (std::size_t q = 0; q < nqb; ++q) {
      auto& hits = heaps[q].hits();
      for (auto& h : hits) h.score = alpha[q0 + q] * h.score + beta[q0 + q];
      if (parts == 1) {
        runtime::write_sorted(hits, topk, scores + (q0 + q) * topk, ids + (q0 + q) * topk);
      } else {
        partial[(q0 + q) * parts + part] = std::move(hits);
      }
    }
  });
  if (parts > 1) runtime::merge_parts(partial, nq, parts, topk, scores, ids);
}

}  // namespace medqk

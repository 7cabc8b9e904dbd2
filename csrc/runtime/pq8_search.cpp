// 8-bit PQ search front end: exact float ADC top-k, with an 8-bit table scan as a conservative filter.
//
// The score of vector x for a query is the float32 sum of the query's table entries t[s][code_s(x)],
// added in subspace order from 0 (as the Numba twin adds them): that exact score ranks the results
// (ties -> lower id) and is returned. Summing m floats per vector from a random table position is what
// makes a plain ADC scan slow, so the scan kernel (kernels/pq8_scan.h) first sums 8-bit copies of the
// tables for 64 vectors at once, and only vectors whose 8-bit sum could still beat the current k-th
// score are scored in float. The filter drops nothing that could enter: with lo_s = min_c t[s][c] and
// one step per query, t[s][c] = lo_s + step * lut[s][c] + e[s][c], so for every vector
//     exact sum  <=  base + step * sum8 + E + R,     base = sum_s lo_s, E = sum_s max_c |e[s][c]|,
// R bounding the float rounding of the m additions; a vector is scored when sum8 >= the threshold
// floor((worst - base - E - R) / step) - 1 (the -1 absorbs the rounding of this double arithmetic).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/pq8_scan.h"
#include "medqk/medqk.h"
#include "runtime/aligned.h"
#include "runtime/code_layout.h"
#include "runtime/dispatch.h"
#include "runtime/round.h"
#include "runtime/thread_pool.h"
#include "runtime/topk.h"

namespace medqk {

namespace {

constexpr std::size_t kB = kernels::kPq8Block;
constexpr std::size_t kChunkBlocks = 16;  // 1,024 vectors per scan call: the threshold is refreshed per call
// The group scan does the same work per code for 1 or 16 queries (each code's lookups are shared by the
// group: kernels/pq8_scan.h), so a group pays off only from a few queries on: groups of fewer queries
// than this scan one query at a time. The value is a tuning choice.
constexpr std::size_t kGroupMinQueries = 5;

// One query's 8-bit tables and the constants of its filter.
struct QueryPlan {
  uint8_t* lut = nullptr;  // m x 256, entries <= kPq8LutMax
  double base = 0, slack = 0, step = 1;
  bool usable = true;  // false for non-finite tables: every vector is then scored in float
};

// Written as plain float loops over a subspace's 256 entries so that they vectorize at the baseline ISA
// (ternaries map onto minps / maxps; round_clamp is branch-free): this runs once per query and subspace
// over 256 entries, work of the order of a scan of thousands of vectors if left scalar.
void plan_query(const float* t, std::size_t m, QueryPlan* plan) {
  std::vector<float> lo(m), hi(m);
  float span = 0.0f;
  for (std::size_t s = 0; s < m; ++s) {
    const float* ts = t + s * 256;
    // 16 lanes of minima and maxima, folded at the end: a single running min is a serial chain (and
    // the compiler may not reorder a float min reduction without -ffast-math)
    float mn16[16], mx16[16];
    for (int u = 0; u < 16; ++u) mn16[u] = mx16[u] = ts[u];
    for (int c = 16; c < 256; c += 16) {
      for (int u = 0; u < 16; ++u) {
        mn16[u] = ts[c + u] < mn16[u] ? ts[c + u] : mn16[u];
        mx16[u] = ts[c + u] > mx16[u] ? ts[c + u] : mx16[u];
      }
    }
    float mn = mn16[0], mx = mx16[0];
    for (int u = 1; u < 16; ++u) {
      mn = std::min(mn, mn16[u]);
      mx = std::max(mx, mx16[u]);
    }
    lo[s] = mn;
    hi[s] = mx;
    span = std::max(span, mx - mn);
  }
  const float step = span > 0.0f ? span / static_cast<float>(kernels::kPq8LutMax) : 1.0f;
  const float inv = 1.0f / step;
  double base = 0, err = 0, magnitude = 0;
  for (std::size_t s = 0; s < m; ++s) {
    const float* ts = t + s * 256;
    const float l = lo[s];
    alignas(64) int32_t v[256];
    alignas(64) float r[256];
    for (int c = 0; c < 256; ++c) {  // no byte stores in these loops: they would alias ts and lo
      v[c] = runtime::round_clamp((ts[c] - l) * inv, kernels::kPq8LutMax);
      r[c] = std::fabs(ts[c] - (l + step * static_cast<float>(v[c])));
    }
    float e16[16] = {};
    for (int c = 0; c < 256; c += 16) {
      for (int u = 0; u < 16; ++u) e16[u] = r[c + u] > e16[u] ? r[c + u] : e16[u];
    }
    float e = 0.0f;
    for (int u = 0; u < 16; ++u) e = std::max(e, e16[u]);
    uint8_t* out = plan->lut + s * 256;
    for (int c = 0; c < 256; ++c) out[c] = static_cast<uint8_t>(v[c]);
    base += lo[s];
    err += e;
    magnitude += std::max(std::fabs(static_cast<double>(lo[s])), std::fabs(static_cast<double>(hi[s])));
  }
  // Rounding terms, both far below one step: the float32 sum of m terms from 0 is within
  // (m - 1) 2^-24 sum |terms| of the exact sum (first order; 2^-23 m here), and each e above, computed in
  // float from terms of at most |lo| + span + |t| <= 4 max(|lo|, |hi|), is within 2^-21 of that of the reals.
  const double rounding = std::ldexp(magnitude, -23) * static_cast<double>(m) + std::ldexp(magnitude, -19);
  plan->base = base;
  plan->step = step;
  plan->slack = (err + rounding) * (1 + 1e-9);
  plan->usable = std::isfinite(base) && std::isfinite(plan->slack) && std::isfinite(plan->step) && span > 0.0f;
}

// Bits v0 .. v0 + min(64, left) - 1 of the allow-bitmap (runtime/topk.h) as bits 0.. of a block's mask.
inline uint64_t allowed_bits64(const uint8_t* allow, std::size_t v0, std::size_t left) {
  uint64_t bits = runtime::allowed_bits(allow, v0, std::min<std::size_t>(32, left));
  if (left > 32)
    bits |= static_cast<uint64_t>(runtime::allowed_bits(allow, v0 + 32, std::min<std::size_t>(32, left - 32))) << 32;
  return bits;
}

// The lowest 8-bit sum a vector needs to possibly score >= worst (0 until the heap is full).
inline uint16_t threshold(const QueryPlan& p, const runtime::TopK& heap) {
  if (!p.usable || !heap.full()) return 0;
  const double t = std::floor((static_cast<double>(heap.worst_score()) - p.base - p.slack) / p.step) - 1;
  if (!(t > 0)) return 0;  // NaN included
  return t >= 65535 ? uint16_t(65535) : static_cast<uint16_t>(t);
}

// The exact score of the vector whose code 0 is at `row` (code_layout.h: pq8_row): float32, added in
// subspace order from 0.
inline float exact_score(const float* t, std::size_t m, const uint8_t* row) {
  float acc = 0.0f;
  for (std::size_t s = 0; s < m; ++s) acc += t[s * 256 + row[layout::pq8_sub_offset(s)]];
  return acc;
}

// The exact scores of vectors js[0 .. 8) of a block (m rows of 64 codes): eight independent float chains,
// each added in subspace order (the same floats as one at a time), so that the loads overlap instead of
// waiting on one chain's additions.
inline void exact_scores8(const float* t, std::size_t m, const uint8_t* block, const uint8_t* js, float* out) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (std::size_t s = 0; s < m; ++s) {
    const uint8_t* row = block + layout::pq8_sub_offset(s);
    const float* ts = t + s * 256;
    for (int u = 0; u < 8; ++u) acc[u] += ts[row[js[u]]];
  }
  for (int u = 0; u < 8; ++u) out[u] = acc[u];
}

}  // namespace

std::size_t pq8_packed_bytes(std::size_t n, std::size_t m) {
  return layout::pq8_blocks(n) * layout::pq8_block_bytes(m);
}

void pq8_pack(const uint8_t* codes, std::size_t n, std::size_t m, uint8_t* packed) {
  std::memset(packed, 0, pq8_packed_bytes(n, m));
  for (std::size_t i = 0; i < n; ++i) {
    uint8_t* row = packed + layout::pq8_row(i, m);
    for (std::size_t s = 0; s < m; ++s) row[layout::pq8_sub_offset(s)] = codes[i * m + s];
  }
}

void pq8_search_topk(Isa isa, const float* tables, std::size_t nq, std::size_t m, const uint8_t* packed, std::size_t n,
                     std::size_t topk, float* scores, int64_t* ids, int threads) {
  pq8_search_topk(isa, tables, nq, m, packed, n, topk, scores, ids, threads, nullptr);
}

void pq8_search_topk(Isa isa, const float* tables, std::size_t nq, std::size_t m, const uint8_t* packed, std::size_t n,
                     std::size_t topk, float* scores, int64_t* ids, int threads, const uint8_t* allow) {
  const kernels::Pq8Kernel& kernel = runtime::kernel<kernels::Pq8ScanOp>(isa);
  const kernels::Pq8ScanFn scan = kernel.scan;
  const kernels::Pq8ScanGroupFn scan_group = kernel.group;
  constexpr std::size_t kG = kernels::kPq8Group;
  const std::size_t nblocks = layout::pq8_blocks(n);
  const std::size_t chunks = (nblocks + kChunkBlocks - 1) / kChunkBlocks;
  if (threads <= 0) threads = hardware_threads();
  if (nq * n * m < (std::size_t(1) << 20)) threads = 1;
  // threads split the queries (each scans all vectors for its queries, chunk by chunk, a chunk's codes
  // staying in cache across them) or, with fewer queries than threads, the vectors too (then every part
  // keeps its own top-k, merged at the end: more work per query, so only when queries run out)
  const std::size_t groups = std::min<std::size_t>(static_cast<std::size_t>(threads), nq);
  const std::size_t parts = std::max<std::size_t>(1, std::min(static_cast<std::size_t>(threads) / groups, chunks));
  // A task takes its queries a few at a time: their float tables (m KiB each) and 8-bit tables stay in
  // cache while the group scans every chunk, so the float scoring of the vectors that pass the filter hits
  // cache instead of memory (the tables of a whole batch, 48 KiB per query at m = 48, would not fit).
  // With a group kernel, kG at a time: they share every code byte, and few vectors reach the float scoring.
  const std::size_t per_group =
      scan_group != nullptr
          ? kG
          : std::min<std::size_t>(16, std::max<std::size_t>(1, (std::size_t(384) << 10) / (m * 256 * 5)));
  std::vector<std::vector<runtime::Hit>> partial(parts > 1 ? nq * parts : 0);
  runtime::parallel_for(static_cast<int>(groups * parts), threads, [&](int task) {
    const std::size_t g = static_cast<std::size_t>(task) / parts, part = static_cast<std::size_t>(task) % parts;
    const std::size_t c0 = chunks * part / parts, c1 = chunks * (part + 1) / parts;
    std::vector<QueryPlan> plans(per_group);
    runtime::AlignedVector<uint8_t> luts(per_group * m * 256);
    std::vector<runtime::TopK> heaps(per_group);
    std::vector<uint16_t> sums(kChunkBlocks * kB);
    uint64_t masks[kChunkBlocks];
    runtime::AlignedVector<uint8_t> lut_t;  // the group scan's query-minor tables
    std::vector<uint32_t> hits;
    std::vector<uint16_t> hit_sums;
    for (std::size_t q0 = nq * g / groups, q_end = nq * (g + 1) / groups; q0 < q_end; q0 += per_group) {
      const std::size_t q1 = std::min(q_end, q0 + per_group);
      for (std::size_t q = q0; q < q1; ++q) {
        plans[q - q0].lut = luts.data() + (q - q0) * m * 256;
        plan_query(tables + q * m * 256, m, &plans[q - q0]);
        heaps[q - q0].reset(topk);
      }
      if (scan_group != nullptr && q1 - q0 >= kGroupMinQueries) {
        // several queries: the group scan, then the float scores of the (vector, query) pairs it reports
        lut_t.assign(m * 256 * kG, 0);
        for (std::size_t q = q0; q < q1; ++q) {
          const uint8_t* l = plans[q - q0].lut;
          for (std::size_t e = 0; e < m * 256; ++e) lut_t[e * kG + (q - q0)] = l[e];
        }
        hits.resize(kChunkBlocks * kB * kG);
        hit_sums.resize(kChunkBlocks * kB * kG);
        uint16_t thr[kG];
        for (std::size_t c = c0; c < c1; ++c) {
          const std::size_t b0 = c * kChunkBlocks, nb = std::min(kChunkBlocks, nblocks - b0);
          const uint8_t* chunk = packed + b0 * layout::pq8_block_bytes(m);
          for (std::size_t j = 0; j < kG; ++j) thr[j] = q0 + j < q1 ? threshold(plans[j], heaps[j]) : 65535;
          const std::size_t cnt = scan_group(lut_t.data(), m, chunk, nb, thr, hits.data(), hit_sums.data());
          for (std::size_t h = 0; h < cnt; ++h) {
            const std::size_t j = hits[h] % kG, v = b0 * kB + hits[h] / kG;
            // a padding vector, a row `allow` clears, or the threshold has risen
            if (v >= n || hit_sums[h] < thr[j] || !runtime::row_allowed(allow, v)) continue;
            const float score = exact_score(tables + (q0 + j) * m * 256, m, packed + layout::pq8_row(v, m));
            heaps[j].push(score, static_cast<int64_t>(v));
            thr[j] = threshold(plans[j], heaps[j]);
          }
        }
      } else {
        for (std::size_t c = c0; c < c1; ++c) {
          const std::size_t b0 = c * kChunkBlocks, nb = std::min(kChunkBlocks, nblocks - b0);
          const uint8_t* chunk = packed + b0 * layout::pq8_block_bytes(m);
          for (std::size_t q = q0; q < q1; ++q) {
            const QueryPlan& plan = plans[q - q0];
            const float* t = tables + q * m * 256;
            runtime::TopK& heap = heaps[q - q0];
            uint16_t thr = threshold(plan, heap);
            scan(plan.lut, m, chunk, nb, thr, sums.data(), masks);
            for (std::size_t b = 0; b < nb; ++b) {
              uint64_t mask = masks[b];
              const std::size_t v0 = (b0 + b) * kB;
              if (n - v0 < kB) mask &= (uint64_t(1) << (n - v0)) - 1;  // padding vectors of the last block
              // the rows `allow` clears, as two 32-bit halves of the block's 64
              if (allow != nullptr && mask != 0) mask &= allowed_bits64(allow, v0, n - v0);
              const uint8_t* block = chunk + b * layout::pq8_block_bytes(m);
              // the vectors still above the threshold (it may have risen since the scan), scored 8 at a time
              alignas(8) uint8_t js[kB + 8];
              std::size_t cnt = 0;
              for (; mask != 0; mask &= mask - 1) {
                const std::size_t j = static_cast<std::size_t>(__builtin_ctzll(mask));
                js[cnt] = static_cast<uint8_t>(j);
                cnt += sums[b * kB + j] >= thr;
              }
              for (std::size_t u = 0; u < cnt; u += 8) {
                for (std::size_t w = cnt; w < u + 8; ++w) js[w] = js[cnt - 1];  // pad the last group
                float sc[8];
                exact_scores8(t, m, block, js + u, sc);
                for (std::size_t w = u; w < std::min(cnt, u + 8); ++w) {
                  heap.push(sc[w - u], static_cast<int64_t>(v0 + js[w]));
                }
              }
              if (cnt != 0) thr = threshold(plan, heap);
            }
          }
        }
      }
      for (std::size_t q = q0; q < q1; ++q) {
        auto& hits_q = heaps[q - q0].hits();
        if (parts == 1) {
          runtime::write_sorted(hits_q, topk, scores + q * topk, ids + q * topk);
        } else {
          partial[q * parts + part] = std::move(hits_q);
        }
      }
    }
  });
  if (parts > 1) runtime::merge_parts(partial, nq, parts, topk, scores, ids);
}

void pq8_scan(Isa isa, const uint8_t* lut, std::size_t m, const uint8_t* packed, std::size_t nblocks, uint16_t thr,
              uint16_t* sums, uint64_t* masks) {
  runtime::kernel<kernels::Pq8ScanOp>(isa).scan(lut, m, packed, nblocks, thr, sums, masks);
}

}  // namespace medqk

namespace medqk {

std::size_t pq8_scan_group(Isa isa, const uint8_t* lut_t, std::size_t m, const uint8_t* packed, std::size_t nblocks,
                           const uint16_t* thr, uint32_t* hits, uint16_t* hit_sums) {
  kernels::Pq8ScanGroupFn fn = runtime::kernel<kernels::Pq8ScanOp>(isa).group;
  if (fn == nullptr) fn = kernels::scalar::pq8_scan_group;
  return fn(lut_t, m, packed, nblocks, thr, hits, hit_sums);
}

}  // namespace medqk

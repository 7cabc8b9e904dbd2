// 4-bit table-scan search: packing of the codes (the layout of runtime/code_layout.h) and the top-k
// front end. Ranking is by the exact uint32 table sums (ties -> lower id); the score returned is
// alpha[i] * sum + beta[i], undoing the per-query quantization of the tables.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/lut4_scan.h"
#include "medqk/medqk.h"
#include "runtime/aligned.h"
#include "runtime/code_layout.h"
#include "runtime/dispatch.h"
#include "runtime/round.h"
#include "runtime/thread_pool.h"
#include "runtime/topk.h"

namespace medqk {

namespace {
constexpr std::size_t kBlockVectors = layout::kLut4Block;
// 512 vectors scanned per call, then selected: a smaller chunk refreshes the threshold sooner, so the next
// call's masks skip more blocks, and a larger one spreads the cost of a call; 512 is the tuning between them
constexpr std::size_t kChunkBlocks = 16;
constexpr std::size_t kBatchQueries = 64;  // queries whose groups take each chunk in turn
}  // namespace

std::size_t lut4_packed_bytes(std::size_t n, std::size_t d) {
  return layout::lut4_blocks(n) * layout::lut4_block_bytes(layout::lut4_even(d));
}

void lut4_pack(const uint8_t* codes, std::size_t n, std::size_t d, uint8_t* packed) {
  const std::size_t d_even = layout::lut4_even(d);
  std::memset(packed, 0, lut4_packed_bytes(n, d));
  for (std::size_t v = 0; v < n; ++v) {
    uint8_t* row = packed + layout::lut4_row(v, d_even);
    const unsigned shift = layout::lut4_shift(v);
    for (std::size_t s = 0; s < d; ++s) {
      row[layout::lut4_sub_offset(s)] |= static_cast<uint8_t>((codes[v * d + s] & 15) << shift);
    }
  }
}

void lut4_decode_s8(const uint8_t* packed, std::size_t d, std::size_t v0, std::size_t n, std::size_t e,
                    const int32_t* sub, const int32_t* dim, const int16_t* table, std::size_t d_out, int8_t* out) {
  const std::size_t d_even = layout::lut4_even(d);
  std::vector<std::size_t> offset(e);  // byte of entry j's sub-code from a vector's row byte
  for (std::size_t j = 0; j < e; ++j) offset[j] = layout::lut4_sub_offset(static_cast<std::size_t>(sub[j]));
  std::vector<int32_t> acc(d_out);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t v = v0 + i;
    const uint8_t* row = packed + layout::lut4_row(v, d_even);
    const unsigned shift = layout::lut4_shift(v);
    std::fill(acc.begin(), acc.end(), 0);
    for (std::size_t j = 0; j < e; ++j) acc[dim[j]] += table[j * 16 + ((row[offset[j]] >> shift) & 15)];
    int8_t* o = out + i * d_out;
    for (std::size_t c = 0; c < d_out; ++c) o[c] = static_cast<int8_t>(std::clamp(acc[c], -127, 127));
  }
}

void lut4_search_topk(Isa isa, const uint8_t* luts, std::size_t nq, std::size_t d, const uint8_t* packed, std::size_t n,
                      const float* alpha, const float* beta, std::size_t topk, float* scores, int64_t* ids, int threads,
                      bool sorted) {
  lut4_search_topk(isa, luts, nq, d, packed, n, alpha, beta, topk, scores, ids, threads, sorted, nullptr);
}

void lut4_search_topk(Isa isa, const uint8_t* luts, std::size_t nq, std::size_t d, const uint8_t* packed, std::size_t n,
                      const float* alpha, const float* beta, std::size_t topk, float* scores, int64_t* ids, int threads,
                      bool sorted, const uint8_t* allow) {
  const kernels::Lut4ScanFn scan = runtime::kernel<kernels::Lut4ScanOp>(isa);
  const std::size_t d_even = layout::lut4_even(d);
  runtime::AlignedVector<uint8_t> aligned_luts;  // tables not on a cache line are scanned from a copy that is
  if (reinterpret_cast<std::uintptr_t>(luts) % 64 != 0) {
    aligned_luts.assign(luts, luts + nq * d_even * 16);
    luts = aligned_luts.data();
  }
  const std::size_t block_bytes = layout::lut4_block_bytes(d_even);
  const std::size_t nblocks = layout::lut4_blocks(n);
  const std::size_t nchunks = (nblocks + kChunkBlocks - 1) / kChunkBlocks;
  if (threads <= 0) threads = hardware_threads();
  // Queries go in groups of kLut4MaxQueries, which share every load of the codes; and the groups of a
  // batch of up to kBatchQueries scan each chunk of codes in turn while it is in cache, so that a large
  // database streams from memory once per batch rather than once per group. Threads split the queries
  // (whole groups) or, with fewer groups than threads, the vectors (every part then keeps its own top-k,
  // merged at the end).
  const std::size_t group = kernels::kLut4MaxQueries;
  const std::size_t ngroups = (nq + group - 1) / group;
  if (nq * n * d < (std::size_t(1) << 20)) threads = 1;
  const std::size_t qsplit = std::min<std::size_t>(static_cast<std::size_t>(threads), ngroups);
  const std::size_t parts = qsplit >= static_cast<std::size_t>(threads)
                                ? 1
                                : std::max<std::size_t>(1, std::min<std::size_t>(threads, nchunks));
  std::vector<std::vector<runtime::Hit>> partial(parts > 1 ? nq * parts : 0);
  const int tasks = static_cast<int>((parts > 1 ? 1 : qsplit) * parts);
  const std::size_t chunk_vectors = kChunkBlocks * kBlockVectors;
  // rows of sums one cache line more apart than 4 KiB: rows exactly 4 KiB apart alias in the load/store
  // unit (4K aliasing) and cost a third of the scan speed
  const std::size_t sums_stride = chunk_vectors + 16;
  const int32_t max_sum = static_cast<int32_t>(kernels::kLut4MaxEntry * d_even);  // the top-k's bins span 0..it
  runtime::parallel_for(tasks, threads, [&](int t) {
    const std::size_t nsplit = parts > 1 ? 1 : qsplit;
    const std::size_t split = static_cast<std::size_t>(t) / parts, part = static_cast<std::size_t>(t) % parts;
    const std::size_t qa = ngroups * split / nsplit * group, qb = std::min(nq, ngroups * (split + 1) / nsplit * group);
    const std::size_t c0 = nchunks * part / parts, c1 = nchunks * (part + 1) / parts;
    std::vector<uint32_t> sums(group * sums_stride), masks(group * kChunkBlocks);
    int32_t thresholds[kernels::kLut4MaxQueries];
    std::vector<runtime::BinnedTopK> heaps(std::min(kBatchQueries, qb - qa));
    for (std::size_t q0 = qa; q0 < qb; q0 += kBatchQueries) {
      const std::size_t q1 = std::min(qb, q0 + kBatchQueries);
      for (std::size_t q = q0; q < q1; ++q) heaps[q - q0].reset(topk, max_sum);
      // chunk boundaries in blocks; the first chunk of a part is a single block, so that the heaps have a
      // threshold (the k-th best of what they saw) before the kernel tests the next thousand vectors
      const std::size_t first = c0 * kChunkBlocks, last = std::min(nblocks, c1 * kChunkBlocks);
      for (std::size_t b0 = first; b0 < last;) {
        const std::size_t nb = std::min(b0 == first ? std::size_t(1) : kChunkBlocks, last - b0);
        const std::size_t v0 = b0 * kBlockVectors, nv = std::min(nb * kBlockVectors, n - v0);
        for (std::size_t g0 = q0; g0 < q1; g0 += group) {
          const std::size_t nqg = std::min(group, q1 - g0);
          for (std::size_t j = 0; j < nqg; ++j) thresholds[j] = heaps[g0 - q0 + j].threshold();
          scan(luts + g0 * d_even * 16, d_even * 16, nqg, d_even, packed + b0 * block_bytes, nb, sums.data(),
               sums_stride, thresholds, masks.data());
          // sums <= 127 * kLut4MaxSubspaces < 2^23: exact as int32 keys and as the floats written out
          for (std::size_t j = 0; j < nqg; ++j) {
            heaps[g0 - q0 + j].offer_masked(reinterpret_cast<const int32_t*>(sums.data() + j * sums_stride),
                                            masks.data() + j * nb, nb, nv, static_cast<int64_t>(v0), allow);
          }
        }
        b0 += nb;
      }
      for (std::size_t q = q0; q < q1; ++q) {
        // unsorted output skips the sort of the k best (a tenth of the search at k = 200); parts are
        // merged (and so sorted) anyway
        auto& hits = heaps[q - q0].hits(sorted || parts > 1);
        for (auto& h : hits) h.score = alpha[q] * h.score + beta[q];
        if (parts == 1) {
          if (sorted) {
            runtime::write_sorted(hits, topk, scores + q * topk, ids + q * topk);
          } else {
            runtime::write_hits(hits, topk, scores + q * topk, ids + q * topk);
          }
        } else {
          partial[q * parts + part] = std::move(hits);
        }
      }
    }
  });
  if (parts > 1) runtime::merge_parts(partial, nq, parts, topk, scores, ids);
}

void lut4_quantize_tables(const float* tables, std::size_t nq, std::size_t s, uint8_t* luts, float* alpha,
                          float* beta) {
  const std::size_t s_even = layout::lut4_even(s);  // tables padded as the codes are
  std::vector<float> lo(s);
  for (std::size_t q = 0; q < nq; ++q) {
    const float* t = tables + q * s * 16;
    uint8_t* out = luts + q * s_even * 16;
    float span = 0.0f, offset = 0.0f;
    for (std::size_t j = 0; j < s; ++j) {
      float mn, mx;
      runtime::min_max16(t + j * 16, &mn, &mx);
      lo[j] = mn;
      span = std::max(span, mx - mn);
      offset += mn;  // sequential float32 sum, the same order as the Numba twin
    }
    const float max_entry = static_cast<float>(kernels::kLut4MaxEntry);
    const float step = span > 0.0f ? span / max_entry : 1.0f;
    const int32_t top = static_cast<int32_t>(kernels::kLut4MaxEntry);
    for (std::size_t j = 0; j < s; ++j) runtime::quantize16<true>(t + j * 16, lo[j], step, top, out + j * 16);
    if (s_even != s) std::memset(out + s * 16, 0, 16);
    alpha[q] = step;
    beta[q] = offset;
  }
}

void lut4_score_candidates(const float* tables, std::size_t nq, std::size_t s, const uint8_t* packed,
                           const int64_t* cand, std::size_t kc, float* scores) {
  const std::size_t s_even = layout::lut4_even(s);
  for (std::size_t q = 0; q < nq; ++q) {
    const float* t = tables + q * s * 16;
    for (std::size_t c = 0; c < kc; ++c) {
      const int64_t v = cand[q * kc + c];
      if (v < 0) {
        scores[q * kc + c] = -std::numeric_limits<float>::infinity();
        continue;
      }
      const std::size_t row = layout::lut4_row(static_cast<std::size_t>(v), s_even);
      const unsigned shift = layout::lut4_shift(static_cast<std::size_t>(v));
      float acc = 0.0f;
      for (std::size_t j = 0; j < s; ++j) acc += t[j * 16 + layout::lut4_code(packed, row, j, shift)];
      scores[q * kc + c] = acc;
    }
  }
}

}  // namespace medqk

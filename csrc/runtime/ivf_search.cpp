// IVF front end over 4-bit codes: per query, scan its probed inverted lists with the lut4 scan kernel of
// the active ISA (the same kernels and 32-vector block layout as the flat fast scan) and keep the topk
// best by an integer key in a SumsTopK reservoir.
//
// Key of a vector of probed list p: sum of its uint8 table entries + probe_keys[p], where probe_keys[p]
// is the list's float constant (q . c_l for ip; 2 q.c_l - |c_l|^2 and the per-list table offsets for l2)
// divided by the query's table step and rounded (python/medqk/index/ivf.py computes it): sums of one
// query then compare across lists on one integer scale. The reservoir breaks equal keys by storage
// position (list_starts[l] + index in the list; lists are visited in increasing order, so positions, not
// ids, increase during the scan, which is what its tie rule needs); the kept hits are then written by
// key, equal keys by id. There is no float re-scoring of the candidates: re-scoring the 2k best keys with
// the float tables changed MedQuAD's R@10 by at most 0.0008 either way (ivf128 and ivf1024, nprobe 1..32),
// and it reads every candidate's codes again at random, long out of cache once the query's last list has
// been scanned.
#include <algorithm>
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
constexpr std::size_t kChunkBlocks = 32;  // 1024 vectors scanned per kernel call, then selected
// Largest table entry: the x86 lut4 kernels add two lookups in 8 bits (kernels/lut4_scan.h).
constexpr int32_t kLutMax = static_cast<int32_t>(kernels::kLut4MaxEntry);
constexpr std::size_t kQueriesPerChunk = 4096;  // queries sharing the list visits (< 2^16: packed in a key)

// Bit u set where p[u] > thr, u < 16 (float compare; baseline SSE2 / NEON, as greater_mask16 in topk.h).
inline unsigned greater_mask16_f32(const float* p, float thr) {
#if defined(__SSE2__)
  const __m128 t = _mm_set1_ps(thr);
  unsigned mask = 0;
  for (int i = 0; i < 4; ++i) {
    mask |= static_cast<unsigned>(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(p + 4 * i), t))) << (4 * i);
  }
  return mask;
#elif defined(__ARM_NEON)
  const float32x4_t t = vdupq_n_f32(thr);
  static const uint32_t kBits[4] = {1, 2, 4, 8};
  const uint32x4_t bits = vld1q_u32(kBits);
  unsigned mask = 0;
  for (int i = 0; i < 4; ++i) {
    mask |= vaddvq_u32(vandq_u32(vcgtq_f32(vld1q_f32(p + 4 * i), t), bits)) << (4 * i);
  }
  return mask;
#else
  unsigned mask = 0;
  for (int u = 0; u < 16; ++u) mask |= static_cast<unsigned>(p[u] > thr) << u;
  return mask;
#endif
}

// Float -> uint32 with the same order (larger float, larger key); -0 maps like +0, so that equal floats
// give equal keys and the id decides, as in a float compare.
inline uint32_t ordered_bits(float f) {
  if (f == 0.0f) f = 0.0f;
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

}  // namespace

void ivf_lut4_search(Isa isa, const uint8_t* luts, std::size_t nq, std::size_t d, std::size_t nlut,
                     const int64_t* probes, const int32_t* probe_keys, std::size_t nprobe, const uint8_t* packed,
                     const int64_t* list_blocks, const int64_t* list_starts, const int64_t* list_ids, std::size_t nlist,
                     std::size_t topk, float* keys, int64_t* ids, int threads) {
  ivf_lut4_search(isa, luts, nq, d, nlut, probes, probe_keys, nprobe, packed, list_blocks, list_starts, list_ids, nlist,
                  topk, keys, ids, threads, nullptr);
}

void ivf_lut4_search(Isa isa, const uint8_t* luts, std::size_t nq, std::size_t d, std::size_t nlut,
                     const int64_t* probes, const int32_t* probe_keys, std::size_t nprobe, const uint8_t* packed,
                     const int64_t* list_blocks, const int64_t* list_starts, const int64_t* list_ids, std::size_t nlist,
                     std::size_t topk, float* keys, int64_t* ids, int threads, const uint8_t* allow) {
  const kernels::Lut4ScanFn scan = runtime::kernel<kernels::Lut4ScanOp>(isa);
  constexpr std::size_t kGroup = kernels::kLut4MaxQueries;
  const std::size_t d_even = layout::lut4_even(d);
  const std::size_t block_bytes = layout::lut4_block_bytes(d_even);  // a list's codes: whole blocks
  const std::size_t table_bytes = 16 * d_even;                       // one query's tables for one list
  if (threads <= 0) threads = hardware_threads();
  // see lut4_search.cpp: rows of sums exactly 4 KiB apart alias in the load/store unit
  const std::size_t sums_stride = kChunkBlocks * kBlockVectors + 16;
  // Queries go in chunks (one per thread, at most kQueriesPerChunk); a chunk visits the lists its queries
  // probe in increasing list order, and the queries of the chunk that probe one list scan it together, up
  // to kGroup per kernel call: the list's codes come from memory once per chunk instead of once per query,
  // and the kernel shares each load of them over the group. Scanning query by query read, at 1M vectors,
  // nlist=1024, nprobe=128, 6 MB of codes from DRAM per query (0.35x faiss's QPS; chunks of 64 queries:
  // 0.65x; whole batches, as faiss groups them: see bench/compare_ivf.py).
  const std::size_t chunk = std::min<std::size_t>(kQueriesPerChunk, (nq + threads - 1) / threads);
  const std::size_t tasks = (nq + chunk - 1) / chunk;
  runtime::parallel_for(static_cast<int>(tasks), threads, [&](int task) {
    const std::size_t qa = static_cast<std::size_t>(task) * chunk, qb = std::min(nq, qa + chunk);
    std::vector<uint32_t> sums(kGroup * sums_stride);
    std::vector<uint32_t> masks(kGroup * kChunkBlocks);
    runtime::AlignedVector<uint8_t> group_luts(kGroup * table_bytes);
    std::vector<runtime::SumsTopK> reservoirs(qb - qa);
    for (auto& r : reservoirs) r.reset(topk);
    // (query, probe) of the chunk's probes grouped by list, queries in order within a list: a counting
    // sort: linear in the probes and the lists, where sorting 64-bit keys is n log n with a branch each
    std::vector<std::size_t> first(nlist + 1, 0);
    std::vector<uint32_t> remaining(qb - qa, 0);  // probed lists of the query not scanned yet
    std::vector<uint32_t> seen(qb - qa, 0);       // blocks the query has scanned
    for (std::size_t q = qa; q < qb; ++q) {
      for (std::size_t p = 0; p < nprobe; ++p) {
        const int64_t l = probes[q * nprobe + p];
        if (l >= 0) {
          ++first[static_cast<std::size_t>(l) + 1];
          ++remaining[q - qa];
        }
      }
    }
    for (std::size_t l = 0; l < nlist; ++l) first[l + 1] += first[l];
    std::vector<uint32_t> visits(first[nlist]);
    {
      std::vector<std::size_t> fill(first.begin(), first.end() - 1);
      for (std::size_t q = qa; q < qb; ++q) {
        for (std::size_t p = 0; p < nprobe; ++p) {
          const int64_t l = probes[q * nprobe + p];
          if (l >= 0) visits[fill[static_cast<std::size_t>(l)]++] = static_cast<uint32_t>(((q - qa) << 16) | p);
        }
      }
    }
    // the kept hits by key, equal keys by id (write_sorted), as soon as the query's last list is scanned
    const auto finish = [&](std::size_t q) {
      std::vector<runtime::Hit>& hits = reservoirs[q - qa].hits();
      for (runtime::Hit& h : hits) h.id = list_ids[h.id];
      runtime::write_sorted(hits, topk, keys + q * topk, ids + q * topk);
    };
    for (std::size_t q = qa; q < qb; ++q) {
      if (remaining[q - qa] == 0) finish(q);  // no list to scan: empty results
    }
    for (std::size_t l = 0; l < nlist; ++l) {
      const std::size_t v0 = first[l], v1 = first[l + 1];
      if (v0 == v1) continue;
      const std::size_t n_l = static_cast<std::size_t>(list_starts[l + 1] - list_starts[l]);
      const std::size_t nblocks = static_cast<std::size_t>(list_blocks[l + 1] - list_blocks[l]);
      const uint8_t* codes = packed + static_cast<std::size_t>(list_blocks[l]) * block_bytes;
      for (std::size_t g0 = v0; g0 < v1; g0 += kGroup) {
        const std::size_t ng = std::min(kGroup, v1 - g0);
        std::size_t qj[kGroup], pj[kGroup];
        int32_t bias[kGroup], kthr[kGroup];
        for (std::size_t u = 0; u < ng; ++u) {
          qj[u] = visits[g0 + u] >> 16;
          pj[u] = visits[g0 + u] & 0xFFFF;
          bias[u] = probe_keys[(qa + qj[u]) * nprobe + pj[u]];
        }
        const uint8_t* lut;
        if (ng == 1) {
          lut = luts + ((qa + qj[0]) * nlut + (nlut == 1 ? 0 : pj[0])) * table_bytes;
        } else {  // the kernel reads a group's tables at one stride: copy them together
          for (std::size_t u = 0; u < ng; ++u) {
            std::memcpy(group_luts.data() + u * table_bytes,
                        luts + ((qa + qj[u]) * nlut + (nlut == 1 ? 0 : pj[u])) * table_bytes, table_bytes);
          }
          lut = group_luts.data();
        }
        for (std::size_t b0 = 0; b0 < nblocks;) {
          // the kernel compares the raw sums; the reservoir re-checks sum + bias, so a looser kernel
          // threshold only costs time. A call scans as many blocks as the group's queries have seen so
          // far (1 until every reservoir has a threshold, then 1, 2, 4, ... up to kChunkBlocks): with a
          // threshold from the first block alone, a third of a list went on to the reservoir.
          std::size_t nb = kChunkBlocks;
          for (std::size_t u = 0; u < ng; ++u) {
            const int32_t thr = reservoirs[qj[u]].threshold();
            if (thr == runtime::SumsTopK::kNoThreshold) nb = 1;
            nb = std::min<std::size_t>(nb, std::max<uint32_t>(1, seen[qj[u]]));
            kthr[u] = thr == runtime::SumsTopK::kNoThreshold ? thr : thr - bias[u];
          }
          nb = std::min(nb, nblocks - b0);
          scan(lut, table_bytes, ng, d_even, codes + b0 * block_bytes, nb, sums.data(), sums_stride, kthr,
               masks.data());
          const std::size_t v0b = b0 * kBlockVectors, nv = std::min(nb * kBlockVectors, n_l - v0b);
          // position = storage position (list_starts[l] + index): increasing, lists being visited in order
          for (std::size_t u = 0; u < ng; ++u) {
            reservoirs[qj[u]].offer_masked(reinterpret_cast<const int32_t*>(sums.data() + u * sums_stride),
                                           masks.data() + u * nb, nb, nv, list_starts[l] + static_cast<int64_t>(v0b),
                                           bias[u], allow, list_ids, static_cast<uint64_t>(list_starts[nlist]));
          }
          for (std::size_t u = 0; u < ng; ++u) seen[qj[u]] += static_cast<uint32_t>(nb);
          b0 += nb;
        }
        for (std::size_t u = 0; u < ng; ++u) {
          if (--remaining[qj[u]] == 0) finish(qa + qj[u]);
        }
      }
    }
  });
}

void select_topk_f32(const float* list_scores, std::size_t nq, std::size_t nlist, std::size_t nprobe, float* best,
                     int64_t* lists, int threads) {
  select_topk_f32(list_scores, nq, nlist, nprobe, best, lists, threads, nullptr, 0);
}

void select_topk_f32(const float* list_scores, std::size_t nq, std::size_t nlist, std::size_t nprobe, float* best,
                     int64_t* lists, int threads, const uint8_t* allow, std::size_t allow_first) {
  if (threads <= 0) threads = hardware_threads();
  const std::size_t tasks = std::min<std::size_t>(nq, 4 * static_cast<std::size_t>(threads));
  // The nprobe best kept sorted in an array of 64-bit keys (score order in the high half, then the
  // complement of the list id, so one integer compare applies the tie rule), each new one inserted from
  // the bottom; a vector compare against the current nprobe-th score skips the rest 16 at a time. A
  // binary heap (or a buffer cut by nth_element) branches on every list, and those branches are random;
  // here most lists cost one vector compare and no branch taken.
  runtime::parallel_for(static_cast<int>(tasks), threads, [&](int task) {
    std::vector<uint64_t> top(nprobe);
    for (std::size_t q = nq * task / tasks; q < nq * (task + 1) / tasks; ++q) {
      const float* s = list_scores + q * nlist;
      std::size_t size = 0;
      float threshold = -std::numeric_limits<float>::infinity();
      const auto offer = [&](std::size_t l) {
        const uint64_t key =
            (static_cast<uint64_t>(ordered_bits(s[l])) << 32) | (0xFFFFFFFFu - static_cast<uint32_t>(l));
        std::size_t j = size;
        if (size == nprobe) {
          j = nprobe - 1;
          if (top[j] >= key) return;
        } else {
          ++size;
        }
        while (j > 0 && top[j - 1] < key) {
          top[j] = top[j - 1];
          --j;
        }
        top[j] = key;
        if (size == nprobe) threshold = s[0xFFFFFFFFu - static_cast<uint32_t>(top[nprobe - 1])];
      };
      // column l may be returned when bit allow_first + l of allow is set, tested only for the columns that
      // would enter: a filter costs no pass over the scores
      std::size_t l = 0;
      for (; l < nlist && size < nprobe; ++l) {
        if (runtime::row_allowed(allow, allow_first + l)) offer(l);
      }
      for (; l < nlist; l += 16) {
        const std::size_t m = std::min<std::size_t>(16, nlist - l);
        unsigned mask = m == 16 ? greater_mask16_f32(s + l, threshold) : 0;
        if (m < 16) {
          for (std::size_t u = 0; u < m; ++u) mask |= static_cast<unsigned>(s[l + u] > threshold) << u;
        }
        if (mask != 0 && allow != nullptr) mask &= runtime::allowed_bits(allow, allow_first + l, m);
        while (mask != 0) {
          const int u = __builtin_ctz(mask);
          mask &= mask - 1;
          if (s[l + u] > threshold) offer(l + u);  // the threshold may have risen within these 16
        }
      }
      for (std::size_t t = 0; t < nprobe; ++t) {
        if (t >= size) {  // fewer than nprobe allowed columns: padding
          lists[q * nprobe + t] = -1;
          best[q * nprobe + t] = -std::numeric_limits<float>::infinity();
          continue;
        }
        const uint32_t id = 0xFFFFFFFFu - static_cast<uint32_t>(top[t]);
        lists[q * nprobe + t] = id;
        best[q * nprobe + t] = s[id];
      }
    }
  });
}

void ivf_quantize_tables(const float* tables, std::size_t nq, std::size_t nlut, std::size_t s, uint8_t* luts,
                         float* step, double* offsets) {
  const std::size_t s_even = layout::lut4_even(s);  // tables padded as the codes are
  std::vector<float> lo(nlut * s);
  for (std::size_t q = 0; q < nq; ++q) {
    const float* tq = tables + q * nlut * s * 16;
    float span = 0.0f;
    for (std::size_t j = 0; j < nlut * s; ++j) {
      float mn, mx;
      runtime::min_max16(tq + j * 16, &mn, &mx);
      lo[j] = mn;
      span = std::max(span, mx - mn);
    }
    const float st = span > 0.0f ? span / static_cast<float>(kLutMax) : 1.0f;
    const float inv = 1.0f / st;  // a product per entry: a division costs several multiplications
    for (std::size_t l = 0; l < nlut; ++l) {
      uint8_t* out = luts + (q * nlut + l) * s_even * 16;
      double off = 0.0;
      for (std::size_t j = 0; j < s; ++j) {
        const float* t = tq + (l * s + j) * 16;
        const float m = lo[l * s + j];
        runtime::quantize16<false>(t, m, inv, kLutMax, out + j * 16);
        off += static_cast<double>(m);
      }
      if (s_even != s) std::memset(out + s * 16, 0, 16);
      offsets[q * nlut + l] = off;
    }
    step[q] = st;
  }
}

}  // namespace medqk

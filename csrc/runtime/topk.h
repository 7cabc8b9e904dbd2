// Per-query bounded top-k shared by the search front ends: larger score first, equal scores -> lower id.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace medqk {
namespace runtime {

// Bit u set where p[u] > thr, u < 16. Baseline SIMD (SSE2 is part of x86-64, NEON of aarch64), written
// out because GCC does not vectorize it, and it runs once per 16 scanned vectors: most masks are 0, and the
// set bits are then visited without a branch per vector.
inline unsigned greater_mask16(const int32_t* p, int32_t thr) {
#if defined(__SSE2__)
  const __m128i t = _mm_set1_epi32(thr);
  const __m128i a = _mm_cmpgt_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), t);
  const __m128i b = _mm_cmpgt_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 4)), t);
  const __m128i c = _mm_cmpgt_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)), t);
  const __m128i d = _mm_cmpgt_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 12)), t);
  // compare results are 0 / -1: the signed packs keep them, in order
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d))));
#elif defined(__ARM_NEON)
  const int32x4_t t = vdupq_n_s32(thr);
  const uint16x8_t ab = vcombine_u16(vmovn_u32(vcgtq_s32(vld1q_s32(p), t)), vmovn_u32(vcgtq_s32(vld1q_s32(p + 4), t)));
  const uint16x8_t cd =
      vcombine_u16(vmovn_u32(vcgtq_s32(vld1q_s32(p + 8), t)), vmovn_u32(vcgtq_s32(vld1q_s32(p + 12), t)));
  static const uint16_t kBits[8] = {1, 2, 4, 8, 16, 32, 64, 128};
  const uint16x8_t bits = vld1q_u16(kBits);
  return vaddvq_u16(vandq_u16(ab, bits)) | (static_cast<unsigned>(vaddvq_u16(vandq_u16(cd, bits))) << 8);
#else
  unsigned mask = 0;
  for (int u = 0; u < 16; ++u) mask |= static_cast<unsigned>(p[u] > thr) << u;
  return mask;
#endif
}

struct Hit {
  float score;
  int64_t id;
};

// "a ranks before b": higher score, then lower id. A closure object rather than a function, so that the
// std algorithms given `better` call it inline instead of through a function pointer (2-3x on sorts).
constexpr auto better = [](const Hit& a, const Hit& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
};

// A bounded heap whose top is the worst kept hit.
class TopK {
 public:
  void reset(std::size_t k) {
    k_ = k;
    hits_.clear();
    hits_.reserve(k);
  }
  // Candidates arrive in increasing id order within one scan, so an equal score never beats the worst.
  inline void push(float score, int64_t id) {
    if (hits_.size() < k_) {
      hits_.push_back({score, id});
      std::push_heap(hits_.begin(), hits_.end(), better);
    } else if (better(Hit{score, id}, hits_.front())) {
      std::pop_heap(hits_.begin(), hits_.end(), better);
      hits_.back() = {score, id};
      std::push_heap(hits_.begin(), hits_.end(), better);
    }
  }
  bool full() const { return hits_.size() == k_; }
  float worst_score() const { return hits_.front().score; }
  std::vector<Hit>& hits() { return hits_; }

 private:
  std::size_t k_ = 0;
  std::vector<Hit> hits_;
};

inline void write_sorted(std::vector<Hit>& hits, std::size_t topk, float* scores, int64_t* ids) {
  std::sort(hits.begin(), hits.end(), better);
  for (std::size_t t = 0; t < topk; ++t) {
    if (t < hits.size()) {
      scores[t] = hits[t].score;
      ids[t] = hits[t].id;
    } else {
      scores[t] = -std::numeric_limits<float>::infinity();
      ids[t] = -1;
    }
  }
}

// Offers scores[0:n] with ids id0.. (increasing) to the heap: a cheap compare against the k-th score
// first, since most candidates fail it once the heap is full (ties lose: their ids are higher).
inline void offer(TopK& heap, const float* scores, std::size_t n, int64_t id0) {
  std::size_t j = 0;
  for (; j < n && !heap.full(); ++j) heap.push(scores[j], id0 + static_cast<int64_t>(j));
  float worst = heap.full() ? heap.worst_score() : 0.0f;
  for (; j < n; ++j) {
    if (scores[j] > worst) {
      heap.push(scores[j], id0 + static_cast<int64_t>(j));
      worst = heap.worst_score();
    }
  }
}

// Top-k of exact integer sums below 2^24 (the table scans), by a reservoir rather than a heap: a sum
// enters the buffer only when it beats the threshold, and when the buffer is full it is cut back to the k
// best (nth_element) and the threshold rises to the k-th best sum. Per candidate that is one compare
// (vectorized, or done by the scan kernel itself: offer_masked), and an append for the few that pass; a
// heap costs O(log k) branchy steps for each of those, which dominated the scan at k = 200.
// Tie rule: ids arrive in increasing order, so a later sum equal to the threshold ranks after the kept
// one it equals: only a strictly greater sum can enter once the buffer has been cut.
class SumsTopK {
 public:
  static constexpr int32_t kNoThreshold = std::numeric_limits<int32_t>::min();

  void reset(std::size_t k) {
    k_ = k;
    cap_ = std::max<std::size_t>(4 * k, 64);
    hits_.clear();
    hits_.reserve(cap_);
    threshold_ = kNoThreshold;
  }

  // Offers sums[0:n] with ids id0.. (increasing).
  void offer(const int32_t* sums, std::size_t n, int64_t id0) {
    if (k_ == 0) return;
    for (std::size_t j = 0; j < n; j += 16) {
      if (n - j < 16) {  // the tail of the last chunk
        unsigned mask = 0;
        for (std::size_t u = j; u < n; ++u) mask |= static_cast<unsigned>(sums[u] > threshold_) << (u - j);
        take(sums + j, mask, id0 + static_cast<int64_t>(j));
        break;
      }
      take(sums + j, greater_mask16(sums + j, threshold_), id0 + static_cast<int64_t>(j));
      if (threshold_ == kNoThreshold && hits_.size() >= k_) cut();  // a first threshold, as early as possible
    }
  }

  // The same for sums in blocks of 32 with, per block, a mask of the sums that beat an earlier threshold
  // (made by the scan kernel): only the blocks with a candidate are read. n (<= 32 * nblocks) bounds ids.
  // `bias` is added to every sum (the IVF scan: a per-list constant; the kernel was then given the
  // threshold minus bias); sum + bias must stay in [0, 2^24) so that keys are exact as floats.
  void offer_masked(const int32_t* sums, const uint32_t* masks, std::size_t nblocks, std::size_t n, int64_t id0,
                    int32_t bias = 0) {
    if (k_ == 0) return;
    for (std::size_t b = 0; b < nblocks; ++b) {
      uint32_t mask = masks[b];
      if (mask == 0) continue;
      if (n - 32 * b < 32) mask &= (uint32_t(1) << (n - 32 * b)) - 1;  // padding vectors of the last block
      take(sums + 32 * b, mask, id0 + static_cast<int64_t>(32 * b), bias);
      if (threshold_ == kNoThreshold && hits_.size() >= k_) cut();  // a first threshold, as early as possible
    }
  }

  int32_t threshold() const { return threshold_; }

  // The k best (unordered), for write_sorted / merge_parts.
  std::vector<Hit>& hits() {
    if (hits_.size() > k_) cut();
    return hits_;
  }

 private:
  // Sums p[u] for the set bits u of mask, unless the threshold has risen past them meanwhile.
  void take(const int32_t* p, uint32_t mask, int64_t id0, int32_t bias = 0) {
    while (mask != 0) {
      const int u = __builtin_ctz(mask);
      mask &= mask - 1;
      const int32_t key = p[u] + bias;
      if (key <= threshold_) continue;
      hits_.push_back({static_cast<float>(key), id0 + u});
      if (hits_.size() == cap_) cut();
    }
  }

  int32_t cut() {
    std::nth_element(hits_.begin(), hits_.begin() + (k_ - 1), hits_.end(), better);
    hits_.resize(k_);
    threshold_ = static_cast<int32_t>(hits_[k_ - 1].score);  // nth_element: the k-th best sits there
    return threshold_;
  }

  std::size_t k_ = 0, cap_ = 0;
  std::vector<Hit> hits_;
  int32_t threshold_ = 0;
};

// Merges the per-part top-k lists of each query (partial[q * parts + p]) into the outputs.
inline void merge_parts(std::vector<std::vector<Hit>>& partial, std::size_t nq, std::size_t parts, std::size_t topk,
                        float* scores, int64_t* ids) {
  for (std::size_t q = 0; q < nq; ++q) {
    std::vector<Hit> all;
    for (std::size_t p = 0; p < parts; ++p) {
      auto& h = partial[q * parts + p];
      all.insert(all.end(), h.begin(), h.end());
    }
    write_sorted(all, topk, scores + q * topk, ids + q * topk);
  }
}

}  // namespace runtime
}  // namespace medqk

// Per-query bounded top-k shared by the search front ends: larger score first, equal scores -> lower id.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "runtime/baseline_simd.h"

namespace medqk {
namespace runtime {

// Bit u set where p[u] > thr, u < 16 (int32 or float; false for NaN as the scalar compare). Baseline SIMD
// (SSE2 is part of x86-64, NEON of aarch64), written out because GCC does not vectorize it, and it runs
// once per 16 scanned scores: most masks are 0, and the set bits are then visited without a branch per score.
#if defined(__SSE2__)
inline __m128i greater4(const int32_t* p, int32_t thr) {
  return _mm_cmpgt_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), _mm_set1_epi32(thr));
}
inline __m128i greater4(const float* p, float thr) {
  return _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(p), _mm_set1_ps(thr)));
}
#elif defined(__ARM_NEON)
inline uint32x4_t greater4(const int32_t* p, int32_t thr) { return vcgtq_s32(vld1q_s32(p), vdupq_n_s32(thr)); }
inline uint32x4_t greater4(const float* p, float thr) { return vcgtq_f32(vld1q_f32(p), vdupq_n_f32(thr)); }
#endif

template <typename T>
inline unsigned greater_mask16(const T* p, T thr) {
#if defined(__SSE2__)
  // compare results are 0 / -1: the signed packs keep them, in order
  const __m128i ab = _mm_packs_epi32(greater4(p, thr), greater4(p + 4, thr));
  const __m128i cd = _mm_packs_epi32(greater4(p + 8, thr), greater4(p + 12, thr));
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_packs_epi16(ab, cd)));
#elif defined(__ARM_NEON)
  const uint16x8_t ab = vcombine_u16(vmovn_u32(greater4(p, thr)), vmovn_u32(greater4(p + 4, thr)));
  const uint16x8_t cd = vcombine_u16(vmovn_u32(greater4(p + 8, thr)), vmovn_u32(greater4(p + 12, thr)));
  static const uint16_t kBits[8] = {1, 2, 4, 8, 16, 32, 64, 128};
  const uint16x8_t bits = vld1q_u16(kBits);
  return vaddvq_u16(vandq_u16(ab, bits)) | (static_cast<unsigned>(vaddvq_u16(vandq_u16(cd, bits))) << 8);
#else
  unsigned mask = 0;
  for (int u = 0; u < 16; ++u) mask |= static_cast<unsigned>(p[u] > thr) << u;
  return mask;
#endif
}

// Allow-bitmaps (the `allow` argument of the search front ends): bit r & 7 of byte r >> 3 set when row r may
// enter the top-k (numpy packbits, bitorder="little"); nullptr allows every row. Rows are tested before they
// are offered to a top-k, so a search returns the topk best allowed rows (and pads only when fewer exist).
inline bool row_allowed(const uint8_t* allow, std::size_t row) {
  return allow == nullptr || ((allow[row >> 3] >> (row & 7)) & 1u) != 0;
}
// Bits row .. row + count - 1 of the bitmap (count 1..32; those rows must exist) as bits 0 .. count - 1.
inline uint32_t allowed_bits(const uint8_t* allow, std::size_t row, std::size_t count) {
  const uint64_t all = count >= 32 ? 0xffffffffu : (uint64_t(1) << count) - 1;
  if (allow == nullptr) return static_cast<uint32_t>(all);
  const std::size_t first = row >> 3, last = (row + count - 1) >> 3;
  uint64_t w = 0;
  for (std::size_t b = first; b <= last; ++b) w |= static_cast<uint64_t>(allow[b]) << (8 * (b - first));
  return static_cast<uint32_t>((w >> (row & 7)) & all);
}

// The mask of block b of a 32-vector scan (rows id0 + 32 b ..) without the padding vectors past n and
// without the rows `allow` clears. With `row_of` (the IVF scan: id0 + u is a storage position), `allow` is
// over row_of[id0 + u] instead, a bitmap of row_limit bits (a row outside it is not allowed), tested only for
// the bits still set: the work follows the candidates, not the index size.
inline uint32_t block_mask(uint32_t mask, std::size_t b, std::size_t n, int64_t id0, const uint8_t* allow,
                           const int64_t* row_of = nullptr, uint64_t row_limit = 0) {
  if (n - 32 * b < 32) mask &= (uint32_t(1) << (n - 32 * b)) - 1;  // padding vectors of the last block
  if (allow == nullptr || mask == 0) return mask;
  if (row_of == nullptr) {
    return mask & allowed_bits(allow, static_cast<std::size_t>(id0) + 32 * b, std::min<std::size_t>(32, n - 32 * b));
  }
  const int64_t* rows = row_of + id0 + static_cast<int64_t>(32 * b);
  for (uint32_t m = mask; m != 0; m &= m - 1) {
    const int u = __builtin_ctz(m);
    const uint64_t r = static_cast<uint64_t>(rows[u]);
    if (r >= row_limit || !row_allowed(allow, static_cast<std::size_t>(r))) mask &= ~(uint32_t(1) << u);
  }
  return mask;
}

struct Hit {
  float score;
  int64_t id;
};

// "a ranks before b": higher score, then lower id. A closure object rather than a function, so that the
// std algorithms given `better` call it inline instead of through a function pointer (a sort calls it
// n log n times).
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

// hits[0:topk] as they are (padded with -inf / -1).
inline void write_hits(const std::vector<Hit>& hits, std::size_t topk, float* scores, int64_t* ids) {
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

inline void write_sorted(std::vector<Hit>& hits, std::size_t topk, float* scores, int64_t* ids) {
  // the reservoirs below hand over their hits already in order: one linear check then saves the sort
  if (!std::is_sorted(hits.begin(), hits.end(), better)) std::sort(hits.begin(), hits.end(), better);
  write_hits(hits, topk, scores, ids);
}

// Offers scores[0:n] with ids id0.. (increasing) to the heap: a cheap compare against the k-th score
// first, since most candidates fail it once the heap is full (ties lose: their ids are higher). Rows the
// bitmap `allow` clears (row = id) are never offered.
inline void offer(TopK& heap, const float* scores, std::size_t n, int64_t id0, const uint8_t* allow = nullptr) {
  std::size_t j = 0;
  for (; j < n && !heap.full(); ++j) {
    if (row_allowed(allow, static_cast<std::size_t>(id0) + j)) heap.push(scores[j], id0 + static_cast<int64_t>(j));
  }
  if (j == n) return;
  float worst = heap.worst_score();
  auto one = [&](std::size_t u) {
    if (scores[u] > worst) {
      heap.push(scores[u], id0 + static_cast<int64_t>(u));
      worst = heap.worst_score();
    }
  };
  // blocks of 16 tested at once (baseline SIMD), then only the scores that beat the threshold, in order
  // (the same pushes as one compare per score: the threshold only rises)
  for (; j + 16 <= n; j += 16) {
    unsigned mask = greater_mask16(scores + j, worst);
    if (mask != 0 && allow != nullptr) mask &= allowed_bits(allow, static_cast<std::size_t>(id0) + j, 16);
    for (; mask != 0; mask &= mask - 1) one(j + static_cast<std::size_t>(__builtin_ctz(mask)));
  }
  for (; j < n; ++j) {
    if (row_allowed(allow, static_cast<std::size_t>(id0) + j)) one(j);
  }
}

// A monotone map of the scores to uint32 (a < b exactly when ord(a) < ord(b)), and back.
template <typename T>
struct KeyOrder;
template <>
struct KeyOrder<int32_t> {
  static uint32_t ord(int32_t v) { return static_cast<uint32_t>(v) ^ 0x80000000u; }
  static int32_t value(uint32_t o) { return static_cast<int32_t>(o ^ 0x80000000u); }
  static constexpr int32_t lowest() { return std::numeric_limits<int32_t>::min(); }
};

// A hit as one 64-bit key, larger = better: ord(score) << 32 | (2^32 - 1 - id) (ids < 2^32), so that the
// tie rule (equal score -> lower id) is a single integer compare; the top-k buffers below keep these.
template <typename T>
inline uint64_t hit_key(T score, int64_t id) {
  return static_cast<uint64_t>(KeyOrder<T>::ord(score)) << 32 | (0xffffffffu - static_cast<uint64_t>(id));
}
template <typename T>
inline T key_score(uint64_t key) {
  return KeyOrder<T>::value(static_cast<uint32_t>(key >> 32));
}

// Cuts keys [first, last) (more than k) so that the k best come first (nth_element, unordered) and
// returns the k-th best score; the caller drops the rest.
template <typename T>
inline T keep_best(uint64_t* first, uint64_t* last, std::size_t k) {
  std::nth_element(first, first + (k - 1), last, std::greater<uint64_t>());
  return key_score<T>(first[k - 1]);  // the k-th best sits there
}

// The hits of keys [first, last), best first (sorted = false: in the keys' order), for write_sorted /
// merge_parts: sorting the 64-bit keys is one integer compare per step where sorting the hits takes a
// float and an id compare (MedQuAD pq96x4fs, k = 200: the sort in write_sorted was a tenth of the search).
template <typename T>
inline void keys_to_hits(uint64_t* first, uint64_t* last, std::vector<Hit>& hits, bool sorted = true) {
  if (sorted) std::sort(first, last, std::greater<uint64_t>());
  hits.clear();
  for (const uint64_t* key = first; key != last; ++key) {
    hits.push_back({static_cast<float>(key_score<T>(*key)), static_cast<int64_t>(0xffffffffu - (*key & 0xffffffffu))});
  }
}

// Top-k by a reservoir rather than a heap, for the exact integer sums of the table scans (T = int32_t; a
// float KeyOrder would serve the int8 / fp16 scans, but there the heap above passes fewer scores: its
// threshold rises with every push, the reservoir's only at a cut): a score enters the buffer only when it
// beats the threshold, and when the buffer is full it is cut back to the k best (nth_element) and the
// threshold rises to the k-th best.
// Per candidate that is one compare (done by the scan kernel itself: offer_masked), and an
// append for the few that pass; a heap costs O(log k) branchy steps for each of those, which dominated
// the table scans at k = 200, where the scan kernel tests a threshold of the previous chunk anyway.
// Tie rule: ids arrive in increasing order, so a later score equal to the threshold ranks after the kept
// one it equals: only a strictly greater score can enter once the buffer has been cut.
// The buffer holds one 64-bit key per hit, ord(score) << 32 | (2^32 - 1 - id) (ids < 2^32): "better" is
// then one integer compare, where (score, id) pairs need a two-field comparator with a branch on equal
// scores.
template <typename T>
class ReservoirTopK {
 public:
  static constexpr T kNoThreshold = KeyOrder<T>::lowest();

  void reset(std::size_t k) {
    k_ = k;
    cap_ = std::max<std::size_t>(4 * k, 64);
    if (keys_.size() < cap_ + 1) keys_.resize(cap_ + 1);  // + 1: the branch-free append writes one ahead
    size_ = 0;
    hits_.clear();
    threshold_ = kNoThreshold;
  }

  // Scores in blocks of 32 with, per block, a mask of the scores that beat an earlier threshold (made by
  // the scan kernel): only the blocks with a candidate are read. n (<= 32 * nblocks) bounds ids. `bias`
  // is added to every score (the IVF scan: a per-list constant; the kernel was then given the threshold
  // minus bias). Rows (ids) the bitmap `allow` clears are dropped from the masks; with `row_of`, the ids are
  // storage positions and `allow` (row_limit bits) is over row_of[id] (block_mask).
  void offer_masked(const T* scores, const uint32_t* masks, std::size_t nblocks, std::size_t n, int64_t id0, T bias = 0,
                    const uint8_t* allow = nullptr, const int64_t* row_of = nullptr, uint64_t row_limit = 0) {
    if (k_ == 0) return;
    for (std::size_t b = 0; b < nblocks; ++b) {
      if (masks[b] == 0) continue;
      const uint32_t mask = block_mask(masks[b], b, n, id0, allow, row_of, row_limit);
      take(scores + 32 * b, mask, id0 + static_cast<int64_t>(32 * b), bias);
      if (threshold_ == kNoThreshold && size_ >= k_) cut();  // a first threshold, as early as possible
    }
  }

  T threshold() const { return threshold_; }

  // The k best, best first, for write_sorted / merge_parts.
  std::vector<Hit>& hits() {
    if (size_ > k_) cut();
    keys_to_hits<T>(keys_.data(), keys_.data() + size_, hits_);
    return hits_;
  }

 private:
  // Scores p[u] + bias for the set bits u of mask, unless the threshold has risen past them meanwhile:
  // the key is written and the count advanced by the test, without a branch on it (with the kernel's
  // stale threshold many fail it, and as a branch that mispredicted).
  void take(const T* p, uint32_t mask, int64_t id0, T bias = 0) {
    for (; mask != 0; mask &= mask - 1) {
      const int u = __builtin_ctz(mask);
      const T v = p[u] + bias;
      keys_[size_] = hit_key(v, id0 + u);
      size_ += static_cast<std::size_t>(v > threshold_);
      if (size_ == cap_) cut();
    }
  }

  void cut() {
    threshold_ = keep_best<T>(keys_.data(), keys_.data() + size_, k_);
    size_ = k_;
  }

  std::size_t k_ = 0, cap_ = 0, size_ = 0;
  std::vector<uint64_t> keys_;  // keys_[0:size_] kept
  std::vector<Hit> hits_;
  T threshold_ = kNoThreshold;
};

using SumsTopK = ReservoirTopK<int32_t>;

// Top-k of non-negative integer sums below a known bound (the 4-bit table scan: at most 127 per subspace),
// with the same interface and tie rule as SumsTopK. A histogram of the kept sums in 1,024 bins raises the
// threshold with every append, to the lower edge of the bin where the k best end (a valid bound: at least
// k kept sums are >= it); the buffer is compacted by a linear filter against it when full, and cut exactly
// (nth_element) only when the filter frees too little (many sums in one bin) and at the end. The reservoir
// above raises its threshold only at cuts, so more sums pass between them, and every cut is a selection:
// MedQuAD pq96x4fs at k = 200 spent half its time there.
class BinnedTopK {
 public:
  static constexpr int32_t kNoThreshold = std::numeric_limits<int32_t>::min();

  void reset(std::size_t k, int32_t max_value) {
    k_ = k;
    cap_ = std::max<std::size_t>(4 * k, 64);
    if (keys_.size() < cap_ + 1) keys_.resize(cap_ + 1);  // + 1: the branch-free append writes one ahead
    size_ = 0;
    hits_.clear();
    shift_ = 0;
    while ((max_value >> shift_) >= static_cast<int32_t>(kBins)) ++shift_;
    std::fill(hist_, hist_ + kBins, 0u);
    bin_ = -1;
    above_ = 0;
    threshold_ = kNoThreshold;
  }

  // Scores (0 <= score <= max_value) in blocks of 32 with, per block, a mask of those above an earlier
  // threshold (SumsTopK::offer_masked). Once there is a threshold, a masked score is appended without a
  // branch on the test against the current threshold (the key is written, the count advances by the
  // test): with a scan's stale threshold half of them fail it, and as a branch that mispredicted.
  // Rows (ids) the bitmap `allow` clears are dropped from the masks.
  void offer_masked(const int32_t* scores, const uint32_t* masks, std::size_t nblocks, std::size_t n, int64_t id0,
                    const uint8_t* allow = nullptr) {
    if (k_ == 0) return;
    for (std::size_t b = 0; b < nblocks; ++b) {
      if (masks[b] == 0) continue;
      uint32_t mask = block_mask(masks[b], b, n, id0, allow);
      const int32_t* p = scores + 32 * b;
      const int64_t base = id0 + static_cast<int64_t>(32 * b);
      for (; mask != 0 && bin_ < 0; mask &= mask - 1) {  // the first k: no threshold yet
        const int u = __builtin_ctz(mask);
        keys_[size_++] = hit_key(p[u], base + u);
        ++hist_[p[u] >> shift_];
        if (size_ == k_) first_bin();
      }
      for (; mask != 0; mask &= mask - 1) {
        const int u = __builtin_ctz(mask);
        const int32_t v = p[u];
        const std::size_t pass = v > threshold_;
        const int b = v >> shift_;
        keys_[size_] = hit_key(v, base + u);
        size_ += pass;
        hist_[b] += static_cast<uint32_t>(pass);
        above_ += pass & static_cast<std::size_t>(b > bin_);
        if (above_ >= k_) raise();
        if (size_ == cap_) compact();
      }
    }
  }

  int32_t threshold() const { return threshold_; }

  // The k best, best first; or (sorted = false) in no particular order, without the sort.
  std::vector<Hit>& hits(bool sorted = true) {
    if (size_ > k_) cut();
    keys_to_hits<int32_t>(keys_.data(), keys_.data() + size_, hits_, sorted);
    return hits_;
  }

 private:
  static constexpr std::size_t kBins = 1024;

  // bin_ = the highest bin with at least k kept sums in it or above; above_ = those strictly above it
  void first_bin() {
    std::size_t cum = 0;
    int b = static_cast<int>(kBins) - 1;
    for (; b > 0 && cum + hist_[b] < k_; --b) cum += hist_[b];
    bin_ = b;
    above_ = cum;
    threshold_ = bin_ << shift_;  // >= k sums are >= it: a sum equal to it, arriving later, cannot enter
  }

  // above_ >= k: the bins above bin_ alone hold k sums; move up while that stays true
  void raise() {
    while (above_ >= k_) {
      ++bin_;
      above_ -= hist_[bin_];
    }
    threshold_ = bin_ << shift_;
  }

  void compact() {
    const uint32_t keep_ord = KeyOrder<int32_t>::ord(threshold_);
    std::size_t w = 0;
    for (std::size_t i = 0; i < size_; ++i) {
      if (static_cast<uint32_t>(keys_[i] >> 32) >= keep_ord) keys_[w++] = keys_[i];
    }
    size_ = w;
    for (int b = 0; b < bin_; ++b) hist_[b] = 0;  // the sums below the threshold's bin are gone
    if (size_ > cap_ / 2) cut();
  }

  void cut() {
    threshold_ = keep_best<int32_t>(keys_.data(), keys_.data() + size_, k_);
    size_ = k_;
    // the histogram again of the k kept sums: the threshold's bin holds the k-th best
    std::fill(hist_, hist_ + kBins, 0u);
    for (std::size_t i = 0; i < size_; ++i) ++hist_[key_score<int32_t>(keys_[i]) >> shift_];
    bin_ = threshold_ >> shift_;
    std::size_t cum = 0;
    for (int b = bin_ + 1; b < static_cast<int>(kBins); ++b) cum += hist_[b];
    above_ = cum;
  }

  std::size_t k_ = 0, cap_ = 0, size_ = 0;
  std::vector<uint64_t> keys_;  // keys_[0:size_] kept, ord(score) << 32 | (2^32 - 1 - id)
  std::vector<Hit> hits_;
  int shift_ = 0;
  uint32_t hist_[kBins];
  int bin_ = -1;
  std::size_t above_ = 0;
  int32_t threshold_ = kNoThreshold;
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

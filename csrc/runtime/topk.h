// Per-query bounded top-k shared by the search front ends: larger score first, equal scores -> lower id.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace medqk {
namespace runtime {

struct Hit {
  float score;
  int64_t id;
};

// "a ranks before b": higher score, then lower id.
inline bool better(const Hit& a, const Hit& b) { return a.score > b.score || (a.score == b.score && a.id < b.id); }

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

// The same for exact integer sums below 2^24 (float keys stay exact), one branch per 16 candidates:
// the OR of 16 integer compares vectorizes, and most groups beat nothing.
inline void offer_sums(TopK& heap, const int32_t* sums, std::size_t n, int64_t id0) {
  std::size_t j = 0;
  for (; j < n && !heap.full(); ++j) heap.push(static_cast<float>(sums[j]), id0 + static_cast<int64_t>(j));
  int32_t worst = heap.full() ? static_cast<int32_t>(heap.worst_score()) : -1;
  for (; j < n; j += 16) {
    const std::size_t end = std::min(n, j + 16);
    int any = 0;
    for (std::size_t u = j; u < end; ++u) any |= sums[u] > worst;
    if (!any) continue;
    for (std::size_t u = j; u < end; ++u) {
      if (sums[u] > worst) {
        heap.push(static_cast<float>(sums[u]), id0 + static_cast<int64_t>(u));
        worst = static_cast<int32_t>(heap.worst_score());
      }
    }
  }
}

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

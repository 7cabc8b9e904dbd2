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

}  // namespace runtime
}  // namespace medqk

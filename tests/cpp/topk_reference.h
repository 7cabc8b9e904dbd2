// The reference of the C++ search tests: brute force, every vector scored and ranked (larger score first,
// ties -> lower id, the contract of every medqk search), and the comparison of one query's returned ids
// and scores with it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace medqk_test {

// score(v) for v < n is the exact score of vector v (an integer or a float type). Returns the first rank
// t < k where ids[t] or scores[t] differ from the reference (ids -1 and any score past n; scores compared
// as float), with the id wanted there in *want_id; -1 when all k ranks agree.
template <class Score>
long first_topk_mismatch(std::size_t n, std::size_t k, const int64_t* ids, const float* scores, Score score,
                         long long* want_id) {
  using S = decltype(score(std::size_t(0)));
  std::vector<std::pair<S, long long>> ranked;  // (-score, id): ascending order is the ranking
  ranked.reserve(n);
  for (std::size_t v = 0; v < n; ++v) ranked.push_back({-score(v), static_cast<long long>(v)});
  std::sort(ranked.begin(), ranked.end());
  for (std::size_t t = 0; t < k; ++t) {
    const bool have = t < n;
    *want_id = have ? ranked[t].second : -1;
    if (ids[t] != *want_id || (have && scores[t] != static_cast<float>(-ranked[t].first))) {
      return static_cast<long>(t);
    }
  }
  return -1;
}

}  // namespace medqk_test

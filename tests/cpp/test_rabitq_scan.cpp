// The 1-bit RaBitQ scan of every variant this binary has and this CPU runs (medqk.h: rabitq_pack,
// rabitq_scan_ints, rabitq_search_topk): the integers equal a bit-by-bit reference computed here from the
// bytes (sum over the dimensions of b_i u_i), and the search equals a brute force over the same float32
// expression in the same order, (add + a) + mult ((c1 ip + c2 pop) + c3) (the library has no FMA
// contraction: the same bits), ranked score desc, id asc, over the rows an allow-bitmap lets in, padded with
// -inf / -1. d around bytes and 64-bit words, n around the blocks of 8 and the chunks of 512, 1 to 8 planes,
// codes all ones (padding bits set: they must be ignored) and all zeros, duplicate rows (ties), k past n,
// more queries than a group of 8, one and two threads.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "medqk/medqk.h"
#include "variants.h"

namespace {

int bit(const uint8_t* bytes, std::size_t i) { return (bytes[i / 8] >> (i % 8)) & 1; }

}  // namespace

int main() {
  std::mt19937 rng(26);
  std::normal_distribution<float> normal;
  int failures = 0, cases = 0;
  const std::size_t dims[] = {1, 7, 8, 9, 63, 64, 65, 100, 129, 384};
  const std::size_t ns[] = {1, 7, 8, 9, 65, 600};
  const std::size_t bit_counts[] = {1, 3, 4, 5, 8};
  medqk_test::for_each_variant("rabitq_scan", [&](medqk::Isa isa, const std::string& variant) {
    for (std::size_t dim : dims) {
      const std::size_t nbytes = (dim + 7) / 8;
      for (std::size_t n : ns) {
        for (std::size_t bits : bit_counts) {
          const std::size_t nq = n == 600 ? 9 : 2;  // 9: more than one group of queries
          std::vector<uint8_t> codes(n * nbytes), planes(nq * bits * nbytes);
          for (auto& c : codes) c = static_cast<uint8_t>(rng());
          for (std::size_t v = n / 2; v < n; ++v) {  // duplicate rows: equal scores, ids decide
            std::copy_n(codes.begin() + (v - n / 2) * nbytes, nbytes, codes.begin() + v * nbytes);
          }
          std::fill_n(codes.begin(), nbytes, 255);  // every bit, padding included
          if (n > 1) std::fill_n(codes.begin() + nbytes, nbytes, 0);
          for (auto& p : planes) p = static_cast<uint8_t>(rng());
          std::fill_n(planes.begin(), bits * nbytes, 255);  // query 0: every u_i = 2^bits - 1
          std::vector<uint64_t> packed(medqk::rabitq_packed_words(n, dim));
          std::vector<int32_t> pop(n), ip(nq * n);
          medqk::rabitq_pack(codes.data(), n, dim, packed.data(), pop.data());
          // the reference integers, one dimension at a time
          std::vector<int32_t> want_ip(nq * n), want_pop(n);
          for (std::size_t v = 0; v < n; ++v) {
            for (std::size_t i = 0; i < dim; ++i) want_pop[v] += bit(&codes[v * nbytes], i);
            for (std::size_t q = 0; q < nq; ++q) {
              int32_t s = 0;
              for (std::size_t i = 0; i < dim; ++i) {
                if (!bit(&codes[v * nbytes], i)) continue;
                for (std::size_t j = 0; j < bits; ++j) s += bit(&planes[(q * bits + j) * nbytes], i) << j;
              }
              want_ip[q * n + v] = s;
            }
          }
          for (int threads : {1, 2}) {
            medqk::rabitq_scan_ints(isa, packed.data(), n, dim, planes.data(), nq, bits, ip.data(), threads);
            ++cases;
            if (ip != want_ip || pop != want_pop) {
              if (failures++ < 10) {
                std::printf("FAIL ints variant=%s d=%zu n=%zu bits=%zu threads=%d\n", variant.c_str(), dim, n, bits,
                            threads);
              }
            }
          }
          // the search
          std::vector<float> mult(n), add(n), a(nq), c1(nq), c2(nq), c3(nq);
          for (std::size_t v = 0; v < n; ++v) {
            const std::size_t src = v >= n / 2 && n > 1 ? v - n / 2 : v;
            mult[v] = src == v ? normal(rng) : mult[src];
            add[v] = src == v ? normal(rng) : add[src];
          }
          for (std::size_t q = 0; q < nq; ++q)
            a[q] = normal(rng), c1[q] = normal(rng), c2[q] = normal(rng), c3[q] = normal(rng);
          std::vector<uint8_t> allow((n + 7) / 8);
          for (auto& b : allow) b = static_cast<uint8_t>(rng());
          const medqk::RabitqQueries queries{planes.data(), nq, bits, a.data(), c1.data(), c2.data(), c3.data()};
          const std::size_t k = n == 600 ? 10 : n + 3;
          for (const uint8_t* allow_p :
               {static_cast<const uint8_t*>(nullptr), static_cast<const uint8_t*>(allow.data())}) {
            for (int threads : {1, 2}) {
              std::vector<float> scores(nq * k);
              std::vector<int64_t> ids(nq * k);
              medqk::rabitq_search_topk(isa, packed.data(), pop.data(), mult.data(), add.data(), n, dim, queries, k,
                                        scores.data(), ids.data(), threads, allow_p);
              for (std::size_t q = 0; q < nq; ++q) {
                std::vector<std::pair<float, int64_t>> ranked;  // (-score, id): ascending is the ranking
                for (std::size_t v = 0; v < n; ++v) {
                  if (allow_p != nullptr && !((allow_p[v >> 3] >> (v & 7)) & 1)) continue;
                  const float t =
                      c1[q] * static_cast<float>(want_ip[q * n + v]) + c2[q] * static_cast<float>(want_pop[v]) + c3[q];
                  ranked.push_back({-(add[v] + a[q] + mult[v] * t), static_cast<int64_t>(v)});
                }
                std::sort(ranked.begin(), ranked.end());
                ++cases;
                for (std::size_t r = 0; r < k; ++r) {
                  const bool have = r < ranked.size();
                  const int64_t want_id = have ? ranked[r].second : -1;
                  const float want_score = have ? -ranked[r].first : -std::numeric_limits<float>::infinity();
                  if (ids[q * k + r] != want_id || scores[q * k + r] != want_score) {
                    if (failures++ < 10) {
                      std::printf(
                          "FAIL search variant=%s d=%zu n=%zu bits=%zu allow=%d threads=%d q=%zu rank %zu: "
                          "id %lld want %lld\n",
                          variant.c_str(), dim, n, bits, allow_p != nullptr, threads, q, r,
                          static_cast<long long>(ids[q * k + r]), static_cast<long long>(want_id));
                    }
                    break;
                  }
                }
              }
            }
          }
        }
      }
    }
  });
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures == 0 ? 0 : 1;
}

// The allow-bitmap of the search front ends (medqk.h): with a bitmap, the 4-bit table search and the 8-bit PQ
// search of every scan variant this CPU runs return exactly the brute-force top-k of the allowed vectors
// (ties -> lower id), padded with -inf / -1 only when fewer than k are allowed. Densities 0, 2%, 50% and
// 100%; n around the 32- and 64-vector blocks (a bitmap byte straddling a block and the last partial byte);
// k small (the running thresholds) and past n (every allowed vector ranked, then the padding).
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "medqk/medqk.h"
#include "topk_reference.h"
#include "variants.h"

namespace {

struct Allowed {
  std::vector<uint8_t> bits;      // the bitmap, ceil(n / 8) bytes
  std::vector<std::size_t> rows;  // the allowed rows, increasing
  std::vector<long long> pos;     // row -> index in rows, -1 when not allowed
};

Allowed draw(std::mt19937& rng, std::size_t n, double density) {
  Allowed a;
  a.bits.assign((n + 7) / 8, 0);
  a.pos.assign(n, -1);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (std::size_t r = 0; r < n; ++r) {
    if (u(rng) < density) {
      a.bits[r >> 3] |= static_cast<uint8_t>(1u << (r & 7));
      a.pos[r] = static_cast<long long>(a.rows.size());
      a.rows.push_back(r);
    }
  }
  return a;
}

// The query's results with ids as indices into the allowed rows (a disallowed id becomes -2, never wanted),
// compared with the brute force over the allowed rows; prints the first mismatch.
template <class Score>
bool matches(const Allowed& a, std::size_t k, const int64_t* ids, const float* scores, Score score, const char* what,
             const std::string& variant, std::size_t n) {
  std::vector<int64_t> sub(k);
  for (std::size_t t = 0; t < k; ++t) sub[t] = ids[t] < 0 ? -1 : (a.pos[ids[t]] < 0 ? -2 : a.pos[ids[t]]);
  long long want = 0;
  const long t = medqk_test::first_topk_mismatch(
      a.rows.size(), k, sub.data(), scores, [&](std::size_t v) { return score(a.rows[v]); }, &want);
  if (t < 0) return true;
  std::printf("FAIL %s variant=%s n=%zu allowed=%zu k=%zu rank %ld: got %lld want %lld\n", what, variant.c_str(), n,
              a.rows.size(), k, t, static_cast<long long>(sub[t]), want);
  return false;
}

}  // namespace

int main() {
  std::mt19937 rng(25);
  int failures = 0, cases = 0;
  const std::size_t ns[] = {1, 9, 31, 33, 64, 65, 200, 1000};
  const double densities[] = {0.0, 0.02, 0.5, 1.0};
  const std::size_t nq = 6;  // the 8-bit search scans groups of 5 and more queries together
  medqk_test::for_each_variant("lut4_scan", [&](medqk::Isa isa, const std::string& variant) {
    const std::size_t d = 17, d_even = 18;
    for (std::size_t n : ns) {
      std::vector<uint8_t> codes(n * d), luts(nq * d_even * 16, 0);
      for (auto& c : codes) c = rng() & 15;
      for (std::size_t q = 0; q < nq; ++q) {
        for (std::size_t i = 0; i < d * 16; ++i) luts[q * d_even * 16 + i] = static_cast<uint8_t>(rng() & 127);
      }
      std::vector<uint8_t> packed(medqk::lut4_packed_bytes(n, d));
      medqk::lut4_pack(codes.data(), n, d, packed.data());
      std::vector<float> alpha(nq, 1.0f), beta(nq, 0.0f);
      for (double density : densities) {
        const Allowed a = draw(rng, n, density);
        for (std::size_t k : {std::size_t(3), n + 2}) {
          std::vector<float> scores(nq * k);
          std::vector<int64_t> ids(nq * k);
          medqk::lut4_search_topk(isa, luts.data(), nq, d, packed.data(), n, alpha.data(), beta.data(), k,
                                  scores.data(), ids.data(), 1, true, a.bits.data());
          for (std::size_t q = 0; q < nq; ++q) {
            ++cases;
            const auto score = [&](std::size_t v) {
              long long s = 0;
              for (std::size_t j = 0; j < d; ++j) s += luts[q * d_even * 16 + j * 16 + codes[v * d + j]];
              return s;
            };
            failures += !matches(a, k, ids.data() + q * k, scores.data() + q * k, score, "lut4", variant, n);
          }
        }
      }
    }
  });
  medqk_test::for_each_variant("pq8_scan", [&](medqk::Isa isa, const std::string& variant) {
    const std::size_t m = 5;
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (std::size_t n : ns) {
      std::vector<uint8_t> codes(n * m);
      for (auto& c : codes) c = static_cast<uint8_t>(rng() & 255);
      std::vector<float> tables(nq * m * 256);
      for (auto& t : tables) t = u(rng);
      std::vector<uint8_t> packed(medqk::pq8_packed_bytes(n, m));
      medqk::pq8_pack(codes.data(), n, m, packed.data());
      for (double density : densities) {
        const Allowed a = draw(rng, n, density);
        for (std::size_t k : {std::size_t(3), n + 2}) {
          std::vector<float> scores(nq * k);
          std::vector<int64_t> ids(nq * k);
          medqk::pq8_search_topk(isa, tables.data(), nq, m, packed.data(), n, k, scores.data(), ids.data(), 1,
                                 a.bits.data());
          for (std::size_t q = 0; q < nq; ++q) {
            ++cases;
            const auto score = [&](std::size_t v) {
              float s = 0.0f;  // the contract: float32, subspace order from 0
              for (std::size_t j = 0; j < m; ++j) s += tables[(q * m + j) * 256 + codes[v * m + j]];
              return s;
            };
            failures += !matches(a, k, ids.data() + q * k, scores.data() + q * k, score, "pq8", variant, n);
          }
        }
      }
    }
  });
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures == 0 ? 0 : 1;
}

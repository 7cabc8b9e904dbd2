// pq_assign of every ISA this binary has and this CPU runs against a double-precision reference:
// random data (codes equal wherever the best and second-best distances are further apart than rounding,
// distances within a tolerance that grows with dsub) and small integers (every sum exact, so ties are
// real and the lowest centroid index must win on every ISA).
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "medqk/medqk.h"
#include "variants.h"

namespace {

int check(medqk::Isa isa, std::size_t n, std::size_t m, std::size_t k, std::size_t dsub, bool integers,
          std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(-2, 2);
  std::vector<float> x(n * m * dsub), cents(m * k * dsub);
  for (auto& v : x) v = integers ? static_cast<float>(small(rng)) : normal(rng);
  for (auto& v : cents) v = integers ? static_cast<float>(small(rng)) : normal(rng);
  std::vector<uint8_t> codes(n * m);
  std::vector<float> dist(n * m);
  medqk::pq_assign(isa, x.data(), n, m, k, dsub, cents.data(), codes.data(), dist.data(), 2);
  int failures = 0;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < m; ++j) {
      const float* xs = x.data() + (i * m + j) * dsub;
      double best = INFINITY, second = INFINITY, xn = 0, cmax = 0;
      std::size_t arg = 0;
      std::vector<double> d(k);
      for (std::size_t p = 0; p < dsub; ++p) xn += double(xs[p]) * xs[p];
      for (std::size_t c = 0; c < k; ++c) {
        const float* cc = cents.data() + (j * k + c) * dsub;
        double s = 0, cn = 0;
        for (std::size_t p = 0; p < dsub; ++p) {
          s += (double(xs[p]) - cc[p]) * (double(xs[p]) - cc[p]);
          cn += double(cc[p]) * cc[p];
        }
        cmax = std::max(cmax, cn);
        d[c] = s;
        if (s < best) {
          second = best;
          best = s;
          arg = c;
        } else if (s < second) {
          second = s;
        }
      }
      const double scale = xn + cmax;
      const double tol = 4.0 * (dsub + 2) * std::ldexp(1.0, -24) * scale;
      const std::size_t got = codes[i * m + j];
      bool ok = got < k && std::fabs(dist[i * m + j] - d[got]) <= tol + 1e-6 * d[got] && d[got] <= best + 2 * tol;
      if (integers || second - best > 1e-5 * scale) ok = ok && got == arg;
      if (!ok) {
        if (failures < 5) {
          std::printf(
              "FAIL isa=%s n=%zu m=%zu k=%zu dsub=%zu int=%d row %zu sub %zu: code %zu want %zu, dist %g want %g\n",
              medqk::isa_name(isa), n, m, k, dsub, int(integers), i, j, got, arg, double(dist[i * m + j]), best);
        }
        ++failures;
      }
    }
  }
  return failures;
}

}  // namespace

int main() {
  std::mt19937 rng(11);
  int failures = 0, cases = 0;
  medqk_test::for_each_variant("pq_assign", [&](medqk::Isa isa, const std::string&) {
    for (std::size_t k : {1, 5, 16, 33, 256}) {
      for (std::size_t dsub : {1, 2, 3, 4, 7, 8, 9, 16, 17}) {
        for (std::size_t n : {1, 17, 300}) {
          for (bool integers : {false, true}) {
            failures += check(isa, n, 3, k, dsub, integers, rng);
            ++cases;
          }
        }
      }
    }
  });
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures == 0 ? 0 : 1;
}

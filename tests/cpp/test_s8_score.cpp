// s8_score_candidates of every ISA this binary has and this CPU runs: bit for bit equal to the scalar
// kernel (one summation order everywhere, kernels/s8_score.h), within a d-scaled tolerance of a
// double-precision reference, -inf for ids outside [0, n); d sweeps the odd sizes around the 16-lane step,
// codes include the edge values -128 and 127, and kc odd and even (the AVX2 kernel scores rows in pairs).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "medqk/medqk.h"
#include "variants.h"

namespace {

int check(medqk::Isa isa, const std::string& variant, std::size_t d, std::size_t kc, std::mt19937& rng) {
  const std::size_t nq = 3, n = 50;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> byte(-128, 127);
  std::uniform_int_distribution<int64_t> id(-1, static_cast<int64_t>(n));  // -1 and n are out of range
  std::vector<float> q(nq * d);
  std::vector<int8_t> codes(n * d);
  std::vector<int64_t> cand(nq * kc);
  for (auto& v : q) v = normal(rng);
  for (auto& v : codes) v = static_cast<int8_t>(byte(rng));
  for (std::size_t j = 0; j < d; ++j) {
    codes[j] = -128;
    codes[d + j] = 127;
  }
  for (auto& v : cand) v = id(rng);
  cand[0] = 0;
  cand[kc - 1] = 1;
  std::vector<float> got(nq * kc), want(nq * kc);
  medqk::s8_score_candidates(isa, q.data(), nq, d, codes.data(), n, cand.data(), kc, got.data(), 1);
  // the scalar oracle, forced for this one call (the variant under test is forced around it)
  medqk::force_kernel_variant("s8_score_candidates", "scalar");
  medqk::s8_score_candidates(medqk::Isa::scalar, q.data(), nq, d, codes.data(), n, cand.data(), kc, want.data(), 1);
  medqk::force_kernel_variant("s8_score_candidates", variant);
  int failures = 0;
  for (std::size_t i = 0; i < nq * kc; ++i) {
    const int64_t v = cand[i];
    const float* qq = q.data() + (i / kc) * d;
    double ref = -INFINITY, mag = 0;
    if (v >= 0 && static_cast<std::size_t>(v) < n) {
      ref = 0;
      for (std::size_t j = 0; j < d; ++j) {
        ref += double(qq[j]) * codes[static_cast<std::size_t>(v) * d + j];
        mag += std::fabs(double(qq[j]) * codes[static_cast<std::size_t>(v) * d + j]);
      }
    }
    const bool same_bits = std::memcmp(&got[i], &want[i], sizeof(float)) == 0;
    const bool close = std::isinf(ref) ? (std::isinf(got[i]) && got[i] < 0)
                                       : std::fabs(got[i] - ref) <= 2.0 * d * std::ldexp(1.0, -24) * mag + 1e-6;
    if (!same_bits || !close) {
      if (failures < 5) {
        std::printf("FAIL isa=%s d=%zu kc=%zu item %zu (id %lld): got %.9g, scalar %.9g, reference %.9g\n",
                    medqk::isa_name(isa), d, kc, i, static_cast<long long>(v), double(got[i]), double(want[i]), ref);
      }
      ++failures;
    }
  }
  return failures;
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  int failures = 0, cases = 0;
  medqk_test::for_each_variant("s8_score_candidates", [&](medqk::Isa isa, const std::string& variant) {
    for (std::size_t d : {1, 2, 3, 7, 15, 16, 17, 31, 33, 63, 65, 127, 129, 384}) {
      for (std::size_t kc : {1, 2, 3, 9, 16, 17}) {
        failures += check(isa, variant, d, kc, rng);
        ++cases;
      }
    }
  });
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures == 0 ? 0 : 1;
}

// Every gemm_w4a8 variant this CPU runs (the chain in runtime/dispatch.cpp, no hand-kept list) against an
// int64 reference: D exactly, over odd shapes, partial groups and the edge values (-128 activations, +-127
// levels); and the float output on data where every float sum is exact (small integers, power-of-two scales),
// so any summation order must give the reference's bits.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "medqk/medqk.h"
#include "variants.h"

namespace {

int failures = 0;
int cases = 0;

struct Weights {
  std::size_t n, k, group_size, groups;
  std::vector<uint8_t> codes;
  std::vector<int8_t> levels;
};

Weights make_weights(std::size_t n, std::size_t k, std::size_t group_size, bool extremes, std::mt19937& rng) {
  Weights w{
      n, k, group_size, (k + group_size - 1) / group_size, std::vector<uint8_t>(n * k), std::vector<int8_t>(n * 16)};
  std::uniform_int_distribution<int> code(0, 15), level(-127, 127), coin(0, 1);
  for (auto& c : w.codes) c = static_cast<uint8_t>(code(rng));
  for (auto& l : w.levels) l = static_cast<int8_t>(extremes ? (coin(rng) ? 127 : -127) : level(rng));
  return w;
}

std::vector<int8_t> make_a(std::size_t m, std::size_t k, bool extremes, std::mt19937& rng) {
  std::vector<int8_t> a(m * k);
  std::uniform_int_distribution<int> any(-128, 127), coin(0, 1);
  for (auto& x : a) x = static_cast<int8_t>(extremes ? (coin(rng) ? 127 : -128) : any(rng));
  return a;
}

int64_t ref_d(const Weights& w, const std::vector<int8_t>& a, std::size_t i, std::size_t j, std::size_t g) {
  int64_t d = 0;
  for (std::size_t p = g * w.group_size; p < std::min(w.k, (g + 1) * w.group_size); ++p) {
    d += int64_t(a[i * w.k + p]) * w.levels[j * 16 + w.codes[j * w.k + p]];
  }
  return d;
}

void check_s32(medqk::Isa isa, const std::string& variant, std::size_t m, std::size_t n, std::size_t k,
               std::size_t group_size, bool extremes, int threads, std::mt19937& rng) {
  ++cases;
  const Weights w = make_weights(n, k, group_size, extremes, rng);
  const std::vector<int8_t> a = make_a(m, k, extremes, rng);
  std::vector<uint8_t> packed(medqk::pack_w4_bytes(isa, n, k, group_size));
  medqk::pack_w4(isa, w.codes.data(), n, k, k, w.levels.data(), group_size, packed.data());
  std::vector<int32_t> d(m * n * w.groups, 0x5a5a5a5a);
  medqk::gemm_w4a8_s32(isa, a.data(), m, k, k, packed.data(), n, group_size, d.data(), threads);
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      for (std::size_t g = 0; g < w.groups; ++g) {
        const int64_t want = ref_d(w, a, i, j, g), got = d[(i * n + j) * w.groups + g];
        if (got != want) {
          if (failures++ < 10) {
            std::printf(
                "FAIL %s m=%zu n=%zu k=%zu group=%zu extremes=%d threads=%d at (%zu,%zu,%zu): got %lld "
                "want %lld\n",
                variant.c_str(), m, n, k, group_size, int(extremes), threads, i, j, g, (long long)got, (long long)want);
          }
          return;
        }
      }
    }
  }
}

void check_f32(medqk::Isa isa, const std::string& variant, std::size_t m, std::size_t n, std::size_t k,
               std::size_t group_size, bool with_zeros, int threads, std::mt19937& rng) {
  ++cases;
  Weights w = make_weights(n, k, group_size, false, rng);
  std::uniform_int_distribution<int> small(-3, 3), zero(0, 15), pow2(-1, 1);
  for (auto& l : w.levels) l = static_cast<int8_t>(small(rng));
  std::vector<int8_t> a(m * k);
  for (auto& x : a) x = static_cast<int8_t>(small(rng));
  std::vector<float> rs(m), scales(n * w.groups), bias(n);
  std::vector<int8_t> zeros(n * w.groups);
  for (auto& v : rs) v = std::ldexp(1.0f, pow2(rng));
  for (auto& v : scales) v = std::ldexp(1.0f, pow2(rng));
  for (auto& v : bias) v = static_cast<float>(small(rng));
  for (auto& v : zeros) v = static_cast<int8_t>(zero(rng));
  std::vector<uint8_t> packed(medqk::pack_w4_bytes(isa, n, k, group_size));
  medqk::pack_w4(isa, w.codes.data(), n, k, k, w.levels.data(), group_size, packed.data());
  std::vector<float> out(m * n, -7.0f);
  medqk::gemm_w4a8_f32(isa, a.data(), m, k, k, packed.data(), n, group_size, rs.data(), scales.data(),
                       with_zeros ? zeros.data() : nullptr, bias.data(), out.data(), threads);
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      double sum = 0;
      for (std::size_t g = 0; g < w.groups; ++g) {
        int64_t asum = 0;
        for (std::size_t p = g * group_size; p < std::min(k, (g + 1) * group_size); ++p) asum += a[i * k + p];
        const int64_t z = with_zeros ? zeros[j * w.groups + g] : 0;
        sum += double(scales[j * w.groups + g]) * double(ref_d(w, a, i, j, g) - z * asum);
      }
      const double want = rs[i] * sum + bias[j];  // every term a small integer times a power of two: exact
      if (double(out[i * n + j]) != want) {
        if (failures++ < 10) {
          std::printf("FAIL f32 %s m=%zu n=%zu k=%zu group=%zu zeros=%d at (%zu,%zu): got %.9g want %.9g\n",
                      variant.c_str(), m, n, k, group_size, int(with_zeros), i, j, double(out[i * n + j]), want);
        }
        return;
      }
    }
  }
}

}  // namespace

int main() {
  std::mt19937 rng(23);
  medqk_test::for_each_variant("gemm_w4a8", [&](medqk::Isa isa, const std::string& variant) {
    // (m, n, k, group): m across the row tiles, n odd (half panels), k odd with partial last groups
    const std::size_t shapes[][4] = {{1, 1, 1, 32},    {1, 7, 33, 32},    {2, 5, 64, 64},  {3, 9, 100, 32},
                                     {4, 3, 128, 128}, {5, 17, 257, 64},  {9, 6, 191, 96}, {17, 11, 300, 128},
                                     {6, 33, 31, 32},  {1, 64, 1024, 256}};
    for (const auto& s : shapes) {
      for (bool extremes : {false, true}) check_s32(isa, variant, s[0], s[1], s[2], s[3], extremes, 1, rng);
      for (bool zeros : {false, true}) check_f32(isa, variant, s[0], s[1], s[2], s[3], zeros, 1, rng);
    }
    check_s32(isa, variant, 40, 300, 4096, 128, true, 2, rng);  // enough work for two threads
    check_f32(isa, variant, 40, 300, 4096, 128, true, 2, rng);
  });
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures == 0 ? 0 : 1;
}

// Every ISA this binary has and this CPU runs, against an int64 reference: odd shapes, edge values,
// threads. Under qemu this is what proves the NEON paths (run with -cpu cortex-a72 / cortex-a76 / max).
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "medqk/medqk.h"

namespace {

int failures = 0;

enum class Fill { random, all_min, all_max, mixed_extremes, zeros };

void fill(std::vector<int8_t>& v, Fill f, std::mt19937& rng, bool negate) {
  std::uniform_int_distribution<int> any(-128, 127), coin(0, 1);
  for (auto& x : v) {
    switch (f) {
      case Fill::random: x = static_cast<int8_t>(any(rng)); break;
      case Fill::all_min: x = -128; break;
      case Fill::all_max: x = negate ? -128 : 127; break;
      case Fill::mixed_extremes: x = coin(rng) ? int8_t(127) : int8_t(-128); break;
      case Fill::zeros: x = 0; break;
    }
  }
}

void check(medqk::Isa isa, std::size_t m, std::size_t n, std::size_t k, Fill f, int threads, std::mt19937& rng) {
  std::vector<int8_t> a(m * k), b(n * k);
  fill(a, f, rng, false);
  fill(b, f, rng, true);
  std::vector<uint8_t> packed(medqk::pack_s8_bytes(isa, n, k));
  medqk::pack_s8(isa, b.data(), n, k, k, packed.data());
  std::vector<int32_t> c(m * n, 0x5a5a5a5a);
  medqk::gemm_s8s8_s32_packed(isa, a.data(), m, k, k, packed.data(), n, c.data(), n, threads);
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      int64_t ref = 0;
      for (std::size_t p = 0; p < k; ++p) ref += int64_t(a[i * k + p]) * int64_t(b[j * k + p]);
      if (int64_t(c[i * n + j]) != ref) {
        if (failures < 10) {
          std::printf("FAIL isa=%s m=%zu n=%zu k=%zu fill=%d threads=%d at (%zu,%zu): got %d want %lld\n",
                      medqk::isa_name(isa), m, n, k, int(f), threads, i, j, c[i * n + j], (long long)ref);
        }
        ++failures;
        return;
      }
    }
  }
}

// The float-output path (fused where the kernel supports it) equals int32 GEMM + dequantize_s32_f32.
void check_f32(medqk::Isa isa, std::size_t m, std::size_t n, std::size_t k, bool with_bias, int threads,
               std::mt19937& rng) {
  std::vector<int8_t> a(m * k), b(n * k);
  fill(a, Fill::random, rng, false);
  fill(b, Fill::random, rng, false);
  std::uniform_real_distribution<float> scale(0.001f, 2.0f);
  std::vector<float> rs(m), cs(n), bias(n);
  for (auto& v : rs) v = scale(rng);
  for (auto& v : cs) v = scale(rng);
  for (auto& v : bias) v = scale(rng) - 1.0f;
  std::vector<uint8_t> packed(medqk::pack_s8_bytes(isa, n, k));
  medqk::pack_s8(isa, b.data(), n, k, k, packed.data());
  std::vector<int32_t> acc(m * n);
  medqk::gemm_s8s8_s32_packed(isa, a.data(), m, k, k, packed.data(), n, acc.data(), n, 1);
  std::vector<float> want(m * n), got(m * n, -7.0f);
  medqk::dequantize_s32_f32(acc.data(), m, n, rs.data(), cs.data(), with_bias ? bias.data() : nullptr, want.data());
  medqk::gemm_s8s8_f32_packed(isa, a.data(), m, k, k, packed.data(), n, rs.data(), cs.data(),
                              with_bias ? bias.data() : nullptr, got.data(), threads);
  for (std::size_t i = 0; i < m * n; ++i) {
    if (got[i] != want[i]) {
      if (failures < 10) {
        std::printf("FAIL f32 isa=%s m=%zu n=%zu k=%zu bias=%d at %zu: got %g want %g\n", medqk::isa_name(isa), m, n, k,
                    int(with_bias), i, got[i], want[i]);
      }
      ++failures;
      return;
    }
  }
}

}  // namespace

int main() {
  std::mt19937 rng(12345);
  const std::size_t sizes[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 63, 65, 127, 129};
  int cases = 0;
  for (medqk::Isa isa : medqk::supported_isas()) {
    std::printf("gemm_s8s8_s32: testing isa=%s\n", medqk::isa_name(isa));
    for (std::size_t m : sizes)
      for (std::size_t n : {std::size_t(1), std::size_t(7), std::size_t(16), std::size_t(17), std::size_t(33)})
        for (std::size_t k : sizes) {
          check(isa, m, n, k, Fill::random, 1, rng);
          ++cases;
        }
    for (std::size_t n : sizes) {
      check(isa, 5, n, 64, Fill::random, 1, rng);
      ++cases;
    }
    for (Fill f : {Fill::all_min, Fill::all_max, Fill::mixed_extremes, Fill::zeros}) {
      for (std::size_t k : {std::size_t(1), std::size_t(2), std::size_t(33), std::size_t(1024), std::size_t(4099)}) {
        check(isa, 9, 19, k, f, 1, rng);
        ++cases;
      }
    }
    // Largest K for which int32 accumulation is exact: all -128 x -128 gives 131071 * 2^14 < 2^31.
    check(isa, 1, 3, medqk::kMaxGemmK, Fill::all_min, 1, rng);
    // ... also through several row tiles and k blocks (where partial sums wrap and are added back)
    check(isa, 13, 33, medqk::kMaxGemmK, Fill::all_min, 1, rng);
    check(isa, 25, 5, medqk::kMaxGemmK, Fill::mixed_extremes, 2, rng);
    // Blocked paths (several row blocks and k blocks) and both thread splits.
    check(isa, 150, 70, 1100, Fill::random, 2, rng);
    check(isa, 200, 5, 300, Fill::random, 2, rng);
    check(isa, 64, 256, 256, Fill::mixed_extremes, 2, rng);
    // AVX2 widens B first from 12 rows on (boundary), in row blocks of at most 256 rows
    check(isa, 11, 30, 300, Fill::random, 1, rng);
    check(isa, 12, 30, 300, Fill::random, 1, rng);
    check(isa, 300, 50, 70, Fill::mixed_extremes, 1, rng);
    cases += 7;
    // float output: edge tiles, several k blocks (K > 768), both thread splits
    for (std::size_t m : {std::size_t(1), std::size_t(13), std::size_t(100)})
      for (std::size_t n : {std::size_t(1), std::size_t(33), std::size_t(130)})
        for (std::size_t k : {std::size_t(5), std::size_t(770), std::size_t(2000)}) {
          check_f32(isa, m, n, k, (m + n) % 2 == 0, 2, rng);
          ++cases;
        }
  }
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures == 0 ? 0 : 1;
}

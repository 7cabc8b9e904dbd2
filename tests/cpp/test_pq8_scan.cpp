// The 8-bit PQ scan of every ISA this binary has and this CPU runs equals a direct sum (sums and masks),
// and pq8_search_topk equals brute-force exact ADC (float32 sums in subspace order, ties -> lower id) on
// ids and scores bit for bit: odd subspace counts, n not a multiple of 64, all-127 and all-0 tables, codes
// 0 and 255, tables with many equal entries (ties), one and two threads.
#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "medqk/medqk.h"
#include "topk_reference.h"
#include "variants.h"

int main() {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  int failures = 0, cases = 0;
  const std::size_t ns[] = {1, 63, 64, 65, 200, 3000};
  const std::size_t ms[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 48, 63, 65, 127, 129, 256};
  medqk_test::for_each_variant("pq8_scan", [&](medqk::Isa isa, const std::string&) {
    for (std::size_t n : ns) {
      for (std::size_t m : ms) {
        if (n * m > 200000) continue;  // keeps the test quick under qemu
        for (int fill = 0; fill < 4; ++fill) {
          // fill 0: random, 1: every entry 127 and codes 255, 2: zeros and codes 0, 3: coarse (ties)
          std::vector<uint8_t> codes(n * m);
          for (auto& c : codes) c = fill == 1 ? 255 : fill == 2 ? 0 : static_cast<uint8_t>(rng());
          std::vector<uint8_t> packed(medqk::pq8_packed_bytes(n, m));
          medqk::pq8_pack(codes.data(), n, m, packed.data());
          std::vector<uint8_t> lut(m * 256);
          for (auto& v : lut) v = fill == 1 ? 127 : fill == 2 ? 0 : static_cast<uint8_t>(rng() % 128);
          const std::size_t nblocks = (n + 63) / 64;
          std::vector<uint16_t> sums(nblocks * 64);
          std::vector<uint64_t> masks(nblocks);
          const uint16_t thr = static_cast<uint16_t>(fill == 1 ? 127 * m : 60 * m);
          medqk::pq8_scan(isa, lut.data(), m, packed.data(), nblocks, thr, sums.data(), masks.data());
          ++cases;
          for (std::size_t v = 0; v < nblocks * 64; ++v) {
            unsigned want = 0;
            for (std::size_t s = 0; s < m; ++s) want += lut[s * 256 + (v < n ? codes[v * m + s] : 0)];
            const bool bit = (masks[v / 64] >> (v % 64)) & 1;
            if (sums[v] != want || bit != (want >= thr)) {
              if (failures < 10) {
                std::printf("FAIL scan isa=%s n=%zu m=%zu fill=%d v=%zu: sum %u want %u, bit %d\n",
                            medqk::isa_name(isa), n, m, fill, v, static_cast<unsigned>(sums[v]), want, bit);
              }
              ++failures;
              break;
            }
          }
          // the search: float tables (coarse values for fill 3, so that many scores tie)
          const std::size_t nq = 6, k = std::min<std::size_t>(n + 2, 25);  // 6: AVX2 takes the group scan from 5
          std::vector<float> tables(nq * m * 256);
          for (auto& t : tables) t = fill == 3 ? static_cast<float>(static_cast<int>(rng() % 4)) : normal(rng);
          // the exact ADC score: float32 sums in subspace order
          auto adc = [&](std::size_t q, std::size_t v) {
            float acc = 0.0f;
            for (std::size_t s = 0; s < m; ++s) acc += tables[(q * m + s) * 256 + codes[v * m + s]];
            return acc;
          };
          for (int threads : {1, 2}) {
            std::vector<float> scores(nq * k);
            std::vector<int64_t> ids(nq * k);
            medqk::pq8_search_topk(isa, tables.data(), nq, m, packed.data(), n, k, scores.data(), ids.data(), threads);
            for (std::size_t q = 0; q < nq; ++q) {
              long long want_id = 0;
              auto score = [&](std::size_t v) { return adc(q, v); };
              const long t = medqk_test::first_topk_mismatch(n, k, &ids[q * k], &scores[q * k], score, &want_id);
              ++cases;
              if (t >= 0 && failures++ < 10) {
                std::printf(
                    "FAIL search isa=%s n=%zu m=%zu fill=%d threads=%d q=%zu rank %ld: "
                    "id %lld want %lld\n",
                    medqk::isa_name(isa), n, m, fill, threads, q, t, static_cast<long long>(ids[q * k + t]), want_id);
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

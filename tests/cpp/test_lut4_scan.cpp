// The 4-bit table scan of every ISA this binary has and this CPU runs equals the scalar oracle, and the
// scalar oracle equals a direct sum; odd subspace counts, n not a multiple of 32, all-127 tables (the
// largest entry allowed)
// (sums far past 16 bits: the flush to 32 bits must be exact); batches of queries that fill the groups
// the kernels scan together and leave remainders (1..9 queries), each query with its own tables; every
// sum is checked (k = n + 2 ranks all vectors, then the padding); k = 3 exercises the running threshold.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/lut4_scan.h"
#include "medqk/medqk.h"
#include "runtime/dispatch.h"
#include "topk_reference.h"
#include "variants.h"

namespace {

// Every scan kernel this CPU runs (the variants of the dispatch's chain, including those no ISA path picks
// here, such as the vpshufb form on a VBMI CPU), called directly against the scalar kernel:
// masks for several thresholds (none, negative, typical, above every sum), and the sums of the blocks that
// have a candidate; d over odd and even sizes (half rows, single rows, 16-bit flushes), 1..4 queries with
// tables far apart, all-127 tables.
// Past the old limit of 1028 (1029, 1536, 4096, and kLut4MaxSubspaces, odd and even), where 16-bit lanes
// must be flushed many times and all-127 tables give sums far past 2^16: fewer query counts there.
int check_raw_kernels(std::mt19937& rng, int& cases) {
  int failures = 0;
  // every variant of the chain this CPU runs, scalar (the oracle) excepted
  struct Named {
    std::string name;
    medqk::kernels::Lut4ScanFn fn;
  };
  std::vector<Named> kernels;
  for (const medqk::KernelVariantInfo& v : medqk::kernel_variants("lut4_scan")) {
    if (v.runnable && v.name != "scalar")
      kernels.push_back({v.name, *medqk::runtime::kernel_variant_by_name<medqk::kernels::Lut4ScanOp>(v.name)});
  }
  const std::size_t kMax = medqk::kLut4MaxSubspaces;
  const std::size_t ds[] = {1,  2,   3,   4,   7,   15,  16,   17,   31,   33,   63,       65,
                            96, 127, 129, 384, 511, 514, 1028, 1029, 1536, 4096, kMax - 1, kMax};
  for (const Named& k : kernels) {
    std::printf("lut4_scan: raw kernel %s\n", k.name.c_str());
    for (std::size_t d : ds) {
      const std::size_t d_even = d + (d & 1), nblocks = 3, n = 32 * nblocks;
      for (std::size_t nq = 1; nq <= medqk::kernels::kLut4MaxQueries; ++nq) {
        for (int fill = 0; fill < 2; ++fill) {
          if (d > 4096 && fill == 0 && nq > 1) continue;  // keeps the test quick: all-127 is where sums peak
          std::vector<uint8_t> codes(n * d);
          for (auto& c : codes) c = rng() & 15;
          std::vector<uint8_t> packed(medqk::lut4_packed_bytes(n, d));
          medqk::lut4_pack(codes.data(), n, d, packed.data());
          const std::size_t stride = d_even * 16 + 64 * (nq % 3);  // tables not back to back
          std::vector<uint8_t> lut(nq * stride, 0);
          for (std::size_t q = 0; q < nq; ++q) {
            for (std::size_t i = 0; i < d * 16; ++i)
              lut[q * stride + i] = fill ? 127 : static_cast<uint8_t>(rng() & 127);
          }
          const int32_t typical = static_cast<int32_t>(63 * d);
          // the largest sum is 127 * d_even (all-127 tables): thresholds one below and at it
          const int32_t top = static_cast<int32_t>(127 * d_even);
          for (int32_t thr : {std::numeric_limits<int32_t>::min(), int32_t(-5), typical, top - 1, top}) {
            std::vector<int32_t> thresholds(nq, thr);
            const std::size_t out_stride = n + 16;
            std::vector<uint32_t> want(nq * out_stride, 0), got(nq * out_stride, 0);
            std::vector<uint32_t> want_masks(nq * nblocks), got_masks(nq * nblocks);
            medqk::kernels::scalar::lut4_scan(lut.data(), stride, nq, d_even, packed.data(), nblocks, want.data(),
                                              out_stride, thresholds.data(), want_masks.data());
            k.fn(lut.data(), stride, nq, d_even, packed.data(), nblocks, got.data(), out_stride, thresholds.data(),
                 got_masks.data());
            ++cases;
            for (std::size_t q = 0; q < nq; ++q) {
              for (std::size_t b = 0; b < nblocks; ++b) {
                bool ok = got_masks[q * nblocks + b] == want_masks[q * nblocks + b];
                for (std::size_t v = 0; ok && want_masks[q * nblocks + b] && v < 32; ++v) {
                  ok = got[q * out_stride + 32 * b + v] == want[q * out_stride + 32 * b + v];
                }
                if (!ok && failures++ < 10) {
                  std::printf("FAIL raw %s d=%zu nq=%zu fill=%d thr=%d q=%zu block=%zu\n", k.name.c_str(), d, nq, fill,
                              thr, q, b);
                }
              }
            }
          }
        }
      }
    }
  }
  return failures;
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  int failures = 0, cases = 0;
  const std::size_t ns[] = {1, 31, 32, 33, 100};
  // 16-bit finish up to d_even 512; past the old limit of 1028 up to kLut4MaxSubspaces (n = 33 there)
  const std::size_t ds[] = {1,
                            2,
                            3,
                            15,
                            16,
                            17,
                            384,
                            511,
                            514,
                            600,
                            1028,
                            1029,
                            1536,
                            4096,
                            medqk::kLut4MaxSubspaces - 1,
                            medqk::kLut4MaxSubspaces};
  medqk_test::for_each_variant("lut4_scan", [&](medqk::Isa isa, const std::string&) {
    for (std::size_t n : ns) {
      for (std::size_t d : ds) {
        if (d > 1028 && n != 33) continue;
        for (int fill = 0; fill < 2; ++fill) {
          for (std::size_t nq :
               {std::size_t(1), std::size_t(2), std::size_t(3), std::size_t(4), std::size_t(5), std::size_t(9)}) {
            if (d > 400 && nq > 3) continue;  // keeps the test quick; the large d are there for the flushes
            for (std::size_t k : {n + 2, std::size_t(3)}) {  // every vector ranked; a small k (thresholds)
              const std::size_t d_even = d + (d & 1);
              std::vector<uint8_t> codes(n * d), luts(nq * d_even * 16, 0);
              for (auto& c : codes) c = rng() & 15;
              for (std::size_t q = 0; q < nq; ++q) {
                for (std::size_t i = 0; i < d * 16; ++i) {
                  luts[q * d_even * 16 + i] = fill && q % 2 == 0 ? 127 : static_cast<uint8_t>(rng() & 127);
                }
              }
              std::vector<uint8_t> packed(medqk::lut4_packed_bytes(n, d));
              medqk::lut4_pack(codes.data(), n, d, packed.data());
              std::vector<float> alpha(nq, 1.0f), beta(nq, 0.0f);
              std::vector<float> scores(nq * k);
              std::vector<int64_t> ids(nq * k);
              medqk::lut4_search_topk(isa, luts.data(), nq, d, packed.data(), n, alpha.data(), beta.data(), k,
                                      scores.data(), ids.data(), 1);
              for (std::size_t q = 0; q < nq; ++q) {
                ++cases;
                long long want_id = 0;
                const long t = medqk_test::first_topk_mismatch(
                    n, k, ids.data() + q * k, scores.data() + q * k,
                    [&](std::size_t v) {
                      long long s = 0;
                      for (std::size_t j = 0; j < d; ++j) s += luts[q * d_even * 16 + j * 16 + codes[v * d + j]];
                      return s;
                    },
                    &want_id);
                if (t >= 0) {
                  if (failures < 10) {
                    std::printf("FAIL isa=%s n=%zu d=%zu fill=%d nq=%zu q=%zu rank %ld: id %lld want %lld\n",
                                medqk::isa_name(isa), n, d, fill, nq, q, t, static_cast<long long>(ids[q * k + t]),
                                want_id);
                  }
                  ++failures;
                }
              }
            }
          }
        }
      }
    }
  });
  failures += check_raw_kernels(rng, cases);
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures == 0 ? 0 : 1;
}

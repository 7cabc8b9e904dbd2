// Calls the installed medqk C++ API the way another project would: an exact int8 GEMM against a
// hand-computed product, then an int8 top-k search. Prints "consumer ok" and exits 0 when both agree.
#include <medqk/medqk.h>

#include <cstdint>
#include <cstdio>
#include <vector>

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}

}  // namespace

int main() {
  std::printf("medqk active ISA: %s\n", medqk::isa_name(medqk::active_isa()));

  // A (2 x 3) @ B (2 x 3)^T, the int8 extremes included: -128 * -128 * 3 = 49152 needs more than 16 bits.
  const int8_t a[] = {1, 2, 3, -128, -128, -128};
  const int8_t b[] = {4, 5, 6, -128, 127, -128};
  int32_t c[4] = {0, 0, 0, 0};
  medqk::gemm_s8s8_s32(a, 2, 3, 3, b, 2, 3, c, 2, /*threads=*/1);
  const int32_t want[] = {1 * 4 + 2 * 5 + 3 * 6, 1 * -128 + 2 * 127 + 3 * -128, -128 * 4 + -128 * 5 + -128 * 6,
                          16384 - 16256 + 16384};
  for (int i = 0; i < 4; ++i) expect(c[i] == want[i], "gemm_s8s8_s32 equals the exact product");

  // Top-2 by inner product of one query over four stored vectors, packed for the active ISA.
  const std::size_t n = 4, k = 8;
  std::vector<int8_t> db(n * k, 0);
  for (std::size_t p = 0; p < k; ++p) {
    db[0 * k + p] = 1;   // score 8
    db[1 * k + p] = 3;   // score 24: best
    db[2 * k + p] = -2;  // score -16
    db[3 * k + p] = 2;   // score 16: second
  }
  const medqk::Isa isa = medqk::active_isa();
  std::vector<uint8_t> packed(medqk::pack_s8_bytes(isa, n, k));
  medqk::pack_s8(isa, db.data(), n, k, k, packed.data());
  const std::vector<int8_t> query(k, 1);
  const float alpha = 0.5f;
  float scores[2];
  int64_t ids[2];
  medqk::s8_search_topk(isa, query.data(), 1, k, packed.data(), n, &alpha, nullptr, 2, scores, ids, 1);
  expect(ids[0] == 1 && ids[1] == 3, "s8_search_topk finds vectors 1 then 3");
  expect(scores[0] == 12.0f && scores[1] == 8.0f, "s8_search_topk scores are alpha * dot");
  // the name it had before 0.2 still links for one release (a deprecation warning, silenced here)
  float old_scores[2];
  int64_t old_ids[2];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  medqk::search_s8_topk(isa, query.data(), 1, k, packed.data(), n, &alpha, nullptr, 2, old_scores, old_ids, 1);
#pragma GCC diagnostic pop
  expect(old_ids[0] == ids[0] && old_ids[1] == ids[1] && old_scores[0] == scores[0],
         "search_s8_topk (deprecated name) gives what s8_search_topk gives");

  if (failures != 0) return 1;
  std::printf("consumer ok\n");
  return 0;
}

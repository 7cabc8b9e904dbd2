// Portable candidate re-scoring (kernels/s8_score.h): the reference order written out; the compiler keeps
// the 16 lanes in four SSE registers on x86-64 (four independent add chains instead of one).
#include "kernels/s8_score.h"

namespace medqk {
namespace kernels {
namespace scalar {

void s8_score_candidates(const float* q, std::size_t d, const int8_t* codes, std::size_t n, const int64_t* cand,
                         std::size_t kc, float* out) {
  s8_score_each(codes, n, d, cand, kc, out, [q, d](const int8_t* row) {
    float s[16] = {};
    std::size_t j = 0;
    for (; j + 16 <= d; j += 16) {
      for (int l = 0; l < 16; ++l) s[l] += q[j + l] * static_cast<float>(row[j + l]);
    }
    return s8_score_finish(s, q, row, j, d);
  });
}

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

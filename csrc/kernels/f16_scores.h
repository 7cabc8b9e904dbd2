// Internal interface of the fp16 scoring kernel: out[i * n + j] = sum_p q[i, p] * float(x[j, p]) for
// float32 queries q (nq x d) and IEEE half vectors x (n x d, stored as uint16). Float results differ
// between ISAs by summation order only (tests allow a tolerance that grows with d).
#pragma once

#include <cstddef>
#include <cstdint>

namespace medqk {
namespace kernels {

using F16ScoresFn = void (*)(const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n,
                             float* out);

namespace scalar {
void f16_scores(const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n, float* out);
float f16_to_f32(uint16_t h);
}  // namespace scalar
namespace avx2 {
void f16_scores(const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n, float* out);
}  // namespace avx2
namespace neon {
void f16_scores(const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n, float* out);
}  // namespace neon

}  // namespace kernels
}  // namespace medqk

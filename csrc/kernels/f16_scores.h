// Internal interface of the fp16 scoring kernel: out[i * n + j] = sum_p q[i, p] * float(x[j, p]) for
// float32 queries q (nq x d) and IEEE half vectors x (n x d, stored as uint16). Float results differ
// between ISAs by summation order only (tests allow a tolerance that grows with d).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/operation.h"

namespace medqk {
namespace kernels {

// The signature every ISA's kernel has, written once: each namespace below declares its kernel with it.
using F16Scores = void(const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n, float* out);
MEDQK_KERNEL_OPERATION(F16ScoresOp, F16Scores)  // the operation's tag (kernels/operation.h)

namespace scalar {
F16Scores f16_scores;
float f16_to_f32(uint16_t h);
}  // namespace scalar
namespace avx2 {
F16Scores f16_scores;
}  // namespace avx2
namespace neon {
F16Scores f16_scores;
}  // namespace neon

}  // namespace kernels
}  // namespace medqk

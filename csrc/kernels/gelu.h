// Internal interface of GELU in the erf form (BERT's "gelu"): out[i] = x[i] Phi(x[i]) = x (1 + erf(x / sqrt 2)) / 2.
//
// Arithmetic every kernel shares (float32): z = |x| / sqrt 2, t = 1 / (1 + p z), the Abramowitz & Stegun
// 7.1.26 tail erfc(z) ~ (a1 t + ... + a5 t^5) exp(-z^2) (|error| <= 1.5e-7), then x (1 - tail / 2) for
// x >= 0 and x tail / 2 below. The scalar kernel uses expf, SIMD ones the polynomial exp of their ISA
// (relative error < 4e-7); results differ between kernels by those roundings only.
#pragma once

#include <cstddef>

#include "kernels/operation.h"

namespace medqk {
namespace kernels {

// The A&S 7.1.26 constants, written once for every kernel.
constexpr float kGeluP = 0.3275911f;
constexpr float kGeluA1 = 0.254829592f, kGeluA2 = -0.284496736f, kGeluA3 = 1.421413741f, kGeluA4 = -1.453152027f,
                kGeluA5 = 1.061405429f;
constexpr float kSqrtHalf = 0.7071067811865476f;

using Gelu = void(const float* x, std::size_t n, float* out);
MEDQK_KERNEL_OPERATION(GeluOp, Gelu)  // the operation's tag (kernels/operation.h)

namespace scalar {
Gelu gelu;
}  // namespace scalar
namespace avx2 {
Gelu gelu;
}  // namespace avx2

}  // namespace kernels
}  // namespace medqk

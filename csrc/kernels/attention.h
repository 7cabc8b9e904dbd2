// Internal interface of the fused self-attention kernel (the encoder's softmax(q k^T * scale) v), one
// sequence and one head per call: rows i < len of
//
//   out[i] = sum_j p_ij v[j] / sum_j p_ij,   p_ij = exp(s_ij - max_j s_ij),   s_ij = scale * <q[i], k[j]>
//
// over the keys j < len only (padded keys take no part, as an additive -inf mask would give). q, k, v and
// out are rows of dh floats with row strides ldq, ldk, ldv, ldo (one head's columns of the (tokens, hidden)
// projections: no transpose is made by the caller). Rows past len are not written.
//
// Arithmetic: the scalar kernel sums each dot product in order d, then the exponentials and the weighted sum
// in order j, with expf; SIMD kernels sum in other orders (8 lanes, FMA) and use a polynomial exp whose
// relative error is below kAttentionExpRelError on the range they use (x <= 0; exp(x) for x < -87 is flushed
// to 0, below 2^-125). Float results differ between kernels only by those roundings (tests derive the
// bound).
#pragma once

#include <cstddef>

#include "kernels/operation.h"

namespace medqk {
namespace kernels {

constexpr double kAttentionExpRelError = 4e-7;  // < 2^-21: the SIMD exp polynomial on [-87, 0]

// scratch: at least attention_scratch_floats(len, dh) floats owned by the caller (ISA files allocate nothing).
inline std::size_t attention_scratch_floats(std::size_t len, std::size_t dh) {
  const std::size_t len8 = (len + 7) / 8 * 8;
  return dh * len8 + 4 * len8 + 64;
}

// The signature every ISA's kernel has, written once: each namespace below declares its kernel with it.
using AttentionHead = void(const float* q, std::size_t ldq, const float* k, std::size_t ldk, const float* v,
                           std::size_t ldv, std::size_t len, std::size_t dh, float scale, float* out, std::size_t ldo,
                           float* scratch);
MEDQK_KERNEL_OPERATION(AttentionOp, AttentionHead)  // the operation's tag (kernels/operation.h)

namespace scalar {
AttentionHead attention_head;
}  // namespace scalar
namespace avx2 {
AttentionHead attention_head;
}  // namespace avx2

}  // namespace kernels
}  // namespace medqk

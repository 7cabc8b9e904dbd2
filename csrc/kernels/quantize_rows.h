// Internal interface of the per-row int8 quantization kernels (medqk.h: quantize_rows_s8).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/operation.h"

namespace medqk {
namespace kernels {

// The signature every ISA's kernel has, written once: each namespace below declares its kernel with it.
using QuantizeRows = bool(const float* x, std::size_t m, std::size_t k, std::size_t ldx, int8_t* q, float* scales);
MEDQK_KERNEL_OPERATION(QuantizeRowsOp, QuantizeRows)  // the operation's tag (kernels/operation.h)

namespace scalar {
QuantizeRows quantize_rows_s8;
}  // namespace scalar
namespace avx2 {
QuantizeRows quantize_rows_s8;
}  // namespace avx2

}  // namespace kernels
}  // namespace medqk

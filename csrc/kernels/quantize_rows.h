// Internal interface of the per-row int8 quantization kernels (medqk.h: quantize_rows_s8).
#pragma once

#include <cstddef>
#include <cstdint>

namespace medqk {
namespace kernels {

using QuantizeRowsFn = bool (*)(const float* x, std::size_t m, std::size_t k, std::size_t ldx, int8_t* q,
                                float* scales);

namespace scalar {
bool quantize_rows_s8(const float* x, std::size_t m, std::size_t k, std::size_t ldx, int8_t* q, float* scales);
}  // namespace scalar
namespace avx2 {
bool quantize_rows_s8(const float* x, std::size_t m, std::size_t k, std::size_t ldx, int8_t* q, float* scales);
}  // namespace avx2

}  // namespace kernels
}  // namespace medqk

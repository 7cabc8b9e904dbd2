// Per-row int8 quantization built for -mavx2 (this file only).
#include "kernels/quantize_rows.h"
#include "kernels/quantize_rows_impl.h"

namespace medqk {
namespace kernels {
namespace avx2 {

bool quantize_rows_s8(const float* x, std::size_t m, std::size_t k, std::size_t ldx, int8_t* q, float* scales) {
  return quantize_rows_s8_impl(x, m, k, ldx, q, scales);
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

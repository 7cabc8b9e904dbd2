// Per-row int8 quantization built for the baseline ISA (the compiler vectorizes it: SSE2 on x86-64, NEON on aarch64).
#include "kernels/quantize_rows.h"
#include "kernels/quantize_rows_impl.h"

namespace medqk {
namespace kernels {
namespace scalar {

bool quantize_rows_s8(const float* x, std::size_t m, std::size_t k, std::size_t ldx, int8_t* q, float* scales) {
  return quantize_rows_s8_impl(x, m, k, ldx, q, scales);
}

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

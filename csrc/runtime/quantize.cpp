// Float <-> int8 helpers around the integer GEMM: the row quantization dispatches per ISA
// (kernels/quantize_rows_impl.h); the dequantization is a portable loop the compiler vectorizes.
#include <cmath>
#include <cstring>

#include "kernels/quantize_rows.h"
#include "medqk/medqk.h"
#include "runtime/dispatch.h"

namespace medqk {

bool quantize_rows_s8(const float* x, std::size_t m, std::size_t k, std::size_t ldx, int8_t* q, float* scales) {
  return runtime::kernel<kernels::QuantizeRowsOp>(active_isa())(x, m, k, ldx, q, scales);
}

void dequantize_s32_f32(const int32_t* acc, std::size_t m, std::size_t n, const float* row_scale,
                        const float* col_scale, const float* bias, float* out) {
  for (std::size_t i = 0; i < m; ++i) {
    const float rs = row_scale[i];
    const int32_t* ai = acc + i * n;
    float* oi = out + i * n;
    if (bias != nullptr) {
      for (std::size_t j = 0; j < n; ++j) oi[j] = static_cast<float>(ai[j]) * (rs * col_scale[j]) + bias[j];
    } else {
      for (std::size_t j = 0; j < n; ++j) oi[j] = static_cast<float>(ai[j]) * (rs * col_scale[j]);
    }
  }
}

}  // namespace medqk

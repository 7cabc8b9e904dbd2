// Per-row int8 quantization built for the baseline ISA (the compiler vectorizes it: SSE2 on x86-64, NEON on
// aarch64): kernels/quantize_rows_impl.h compiled in this namespace.
#include <cstring>

#include "kernels/quantize_rows.h"

namespace medqk::kernels::scalar {
#include "kernels/quantize_rows_impl.h"
}  // namespace medqk::kernels::scalar

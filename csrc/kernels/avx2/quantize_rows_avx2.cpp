// Per-row int8 quantization built for -mavx2 (this file only): kernels/quantize_rows_impl.h compiled in
// this namespace.
#include <cstring>

#include "kernels/quantize_rows.h"

namespace medqk::kernels::avx2 {
#include "kernels/quantize_rows_impl.h"
}  // namespace medqk::kernels::avx2

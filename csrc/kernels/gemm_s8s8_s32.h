// Internal interface of the INT8 GEMM kernels: one namespace per ISA, same four functions in each.
// Only raw pointers and sizes cross between ISA files (nothing here needs ISA flags to compile).
//
//   packed_bytes(n, k)          size of B packed in this ISA's layout
//   pack(b, n, k, ldb, packed)  B (n x k) -> packed; padding is zero so kernels may read whole panels
//   gemm(a, m, k, lda, packed, n, n0, n1, c, ldc)
//       C[0:m, n0:n1] = A[0:m, :] @ B[n0:n1, :]^T, n0 a multiple of kPanelCols (threads split there)
//
// Every layout is a sequence of self-contained panels of kPanelCols columns, each packed_bytes(kPanelCols, k)
// bytes (anything a kernel precomputes per column, such as column sums, lives inside its panel). So
// packed + (j / kPanelCols) * packed_bytes(kPanelCols, k) is a valid packed matrix of the columns from j on:
// the search kernels scan a database block by block this way.
#pragma once

#include <cstddef>
#include <cstdint>

namespace medqk {
namespace kernels {

// Float output for QuantizedLinear: out[i, j] = float(acc[i, j]) * (row_scale[i] * col_scale[j]) + bias[j]
// (bias may be null), the operations of medqk::dequantize_s32_f32, in the same order.
struct F32Epilogue {
  const float* row_scale;  // one per row of the A passed to the kernel
  const float* col_scale;  // indexed by absolute column
  const float* bias;       // indexed by absolute column, or nullptr
};

// The signatures of the GEMM entry points, written once: the ISA namespaces below declare theirs with them.
using GemmS8PackedBytes = std::size_t(std::size_t n, std::size_t k);
using GemmS8Pack = void(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed);
using GemmS8S32 = void(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                       std::size_t n, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc);
using GemmS8F32 = void(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                       std::size_t n, std::size_t n0, std::size_t n1, float* out, std::size_t ldo,
                       const F32Epilogue& ep);

// One row of the dispatch table. gemm_f32 (optional) fuses F32Epilogue into the last store of each tile,
// writing float C (out, row stride ldo) without an int32 pass over memory; it may keep int32 partial sums
// in `out` between k blocks.
struct GemmS8Kernel {
  std::size_t panel_cols;
  GemmS8PackedBytes* packed_bytes;
  GemmS8Pack* pack;
  GemmS8S32* gemm;
  GemmS8F32* gemm_f32;
};
struct GemmS8Op {  // the operation, for runtime::kernel<Op>: what one variant provides
  using Fn = GemmS8Kernel;
};

// What every GEMM ISA defines (kernels/<isa>/gemm_s8s8_s32_<isa>.cpp), declared in its namespace below.
#define MEDQK_GEMM_S8_DECLARATIONS              \
  extern const std::size_t kGemmS8PanelCols;    \
  GemmS8PackedBytes gemm_s8s8_s32_packed_bytes; \
  GemmS8Pack gemm_s8s8_s32_pack;                \
  GemmS8S32 gemm_s8s8_s32;

namespace scalar {
MEDQK_GEMM_S8_DECLARATIONS
}
namespace avx2 {
MEDQK_GEMM_S8_DECLARATIONS
}
namespace amx {
MEDQK_GEMM_S8_DECLARATIONS
}
namespace neon {
MEDQK_GEMM_S8_DECLARATIONS
}
namespace neon_dotprod {
MEDQK_GEMM_S8_DECLARATIONS
}
namespace avx512vnni {
MEDQK_GEMM_S8_DECLARATIONS
GemmS8F32 gemm_s8s8_f32;
}  // namespace avx512vnni

#undef MEDQK_GEMM_S8_DECLARATIONS

}  // namespace kernels
}  // namespace medqk

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

// One row of the dispatch table. gemm_f32 (optional) fuses F32Epilogue into the last store of each tile,
// writing float C (out, row stride ldo) without an int32 pass over memory; it may keep int32 partial sums
// in `out` between k blocks.
struct GemmS8Kernel {
  std::size_t panel_cols;
  std::size_t (*packed_bytes)(std::size_t n, std::size_t k);
  void (*pack)(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed);
  void (*gemm)(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
               std::size_t n, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc);
  void (*gemm_f32)(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t n, std::size_t n0, std::size_t n1, float* out, std::size_t ldo,
                   const F32Epilogue& ep);
};

namespace scalar {
extern const std::size_t kGemmS8PanelCols;
std::size_t gemm_s8s8_s32_packed_bytes(std::size_t n, std::size_t k);
void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed);
void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t n, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc);
}  // namespace scalar

namespace avx2 {
extern const std::size_t kGemmS8PanelCols;
std::size_t gemm_s8s8_s32_packed_bytes(std::size_t n, std::size_t k);
void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed);
void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t n, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc);
}  // namespace avx2

namespace amx {
extern const std::size_t kGemmS8PanelCols;
std::size_t gemm_s8s8_s32_packed_bytes(std::size_t n, std::size_t k);
void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed);
void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t n, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc);
}  // namespace amx

namespace neon {
extern const std::size_t kGemmS8PanelCols;
std::size_t gemm_s8s8_s32_packed_bytes(std::size_t n, std::size_t k);
void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed);
void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t n, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc);
}  // namespace neon

namespace avx512vnni {
void gemm_s8s8_f32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t n, std::size_t n0, std::size_t n1, float* out, std::size_t ldo,
                   const F32Epilogue& ep);
extern const std::size_t kGemmS8PanelCols;
std::size_t gemm_s8s8_s32_packed_bytes(std::size_t n, std::size_t k);
void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed);
void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t n, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc);
}  // namespace avx512vnni

namespace neon_dotprod {
extern const std::size_t kGemmS8PanelCols;
std::size_t gemm_s8s8_s32_packed_bytes(std::size_t n, std::size_t k);
void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed);
void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t n, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc);
}  // namespace neon_dotprod


}  // namespace kernels
}  // namespace medqk

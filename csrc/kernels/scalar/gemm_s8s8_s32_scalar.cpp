// Scalar reference INT8 GEMM: the oracle every SIMD path must equal bit for bit.
// Layout: "packed" B is B itself, row-major n x k with no padding.
#include <cstring>

#include "kernels/gemm_s8s8_s32.h"

namespace medqk {
namespace kernels {
namespace scalar {

const std::size_t kGemmS8PanelCols = 1;

std::size_t gemm_s8s8_s32_packed_bytes(std::size_t n, std::size_t k) { return n * k; }

void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed) {
  for (std::size_t j = 0; j < n; ++j) std::memcpy(packed + j * k, b + j * ldb, k);
}

void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t /*n*/, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc) {
  const int8_t* b = reinterpret_cast<const int8_t*>(packed);
  for (std::size_t i = 0; i < m; ++i) {
    const int8_t* ai = a + i * lda;
    for (std::size_t j = n0; j < n1; ++j) {
      const int8_t* bj = b + j * k;
      int32_t sum = 0;  // |sum| <= K * 2^14 < 2^31 for K <= kMaxGemmK
      for (std::size_t p = 0; p < k; ++p) sum += static_cast<int32_t>(ai[p]) * static_cast<int32_t>(bj[p]);
      c[i * ldc + j] = sum;
    }
  }
}

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

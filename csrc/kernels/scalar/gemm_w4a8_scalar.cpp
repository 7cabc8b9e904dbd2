// Scalar reference W4A8 GEMM: the oracle every SIMD path must equal bit for bit on D, and the float order the
// contract states (kernels/gemm_w4a8.h): per output, the groups in increasing g, each
// scales[n, g] * float(D - zeros * asum) added to a float sum, then * row_scale + bias.
//
// Layout (owned by this file): per column n, 16 bytes of levels, then ceil(k / 2) bytes of codes, code k in
// the low nibble of byte k / 2 when k is even, the high nibble when odd.
#include <algorithm>
#include <cstring>

#include "kernels/gemm_w4a8.h"

namespace medqk {
namespace kernels {
namespace scalar {

namespace {

std::size_t column_bytes(std::size_t k) { return 16 + (k + 1) / 2; }

std::size_t packed_bytes(std::size_t n, std::size_t k, std::size_t /*group_size*/) { return n * column_bytes(k); }

void pack(const uint8_t* codes, std::size_t n, std::size_t k, std::size_t ldc, const int8_t* levels,
          std::size_t /*group_size*/, uint8_t* packed) {
  for (std::size_t j = 0; j < n; ++j) {
    uint8_t* col = packed + j * column_bytes(k);
    std::memcpy(col, levels + j * 16, 16);
    std::memset(col + 16, 0, (k + 1) / 2);
    for (std::size_t p = 0; p < k; ++p) col[16 + p / 2] |= static_cast<uint8_t>(codes[j * ldc + p] << (4 * (p & 1)));
  }
}

void gemm(const W4A8Args& x, std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1) {
  for (std::size_t i = m0; i < m1; ++i) {
    const int8_t* ai = x.a + i * x.lda;
    for (std::size_t j = n0; j < n1; ++j) {
      const uint8_t* col = x.packed + j * column_bytes(x.k);
      const int8_t* levels = reinterpret_cast<const int8_t*>(col);
      float sum = 0.0f;
      for (std::size_t g = 0; g < x.groups; ++g) {
        int32_t d = 0;
        const std::size_t k1 = std::min(x.k, (g + 1) * x.group_size);
        for (std::size_t p = g * x.group_size; p < k1; ++p) {
          const int code = (col[16 + p / 2] >> (4 * (p & 1))) & 15;
          d += static_cast<int32_t>(ai[p]) * levels[code];
        }
        if (x.d != nullptr) {
          x.d[(i * x.n + j) * x.groups + g] = d;
          continue;
        }
        if (x.zeros != nullptr) d -= static_cast<int32_t>(x.zeros[j * x.groups + g]) * x.asum[i * x.groups + g];
        sum += x.scales[j * x.groups + g] * static_cast<float>(d);
      }
      if (x.out != nullptr) {
        const float v = x.row_scale[i] * sum;
        x.out[i * x.n + j] = x.bias != nullptr ? v + x.bias[j] : v;
      }
    }
  }
}

}  // namespace

const GemmW4Kernel kGemmW4A8 = {1, packed_bytes, pack, gemm};

}  // namespace scalar
}  // namespace kernels
}  // namespace medqk

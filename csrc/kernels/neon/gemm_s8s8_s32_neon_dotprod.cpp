// NEON dotprod (armv8.2-a+dotprod: sdot) INT8 GEMM. This is the only file compiled with +dotprod, so
// the compiler cannot slip sdot into code that runs on a CPU without it (Raspberry Pi 4, cortex-a72).
//
// sdot adds four int8 x int8 products into each int32 lane: exact, no intermediate narrower than 32 bits.
// Layout of packed B (owned by this file): panels of 8 columns; in a panel, for each quad of k
// (4q .. 4q+3), 32 bytes: [c0k0..c0k3 c1k0..c1k3 c2.. c3.. | c4.. c5.. c6.. c7..]; padding zero.
// An A quad broadcast to all four lanes then gives four columns per sdot.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "kernels/gemm_s8s8_s32.h"

namespace medqk {
namespace kernels {
namespace neon_dotprod {

namespace {

constexpr std::size_t kNR = 8;
constexpr int kMR = 8;

inline std::size_t k_quads(std::size_t k) { return (k + 3) / 4; }

inline int8x16_t load_quad(const int8_t* row, std::size_t q, std::size_t k) {
  uint32_t w = 0;
  const std::size_t p = 4 * q;
  if (p + 4 <= k) {
    std::memcpy(&w, row + p, 4);
  } else {
    std::memcpy(&w, row + p, k - p);  // little endian: the missing k stay zero
  }
  return vreinterpretq_s8_u32(vdupq_n_u32(w));
}

template <int R>
void micro_kernel(const int8_t* a, std::size_t lda, std::size_t k, const uint8_t* b, int32_t* c,
                  std::size_t ldc, std::size_t ncols) {
  int32x4_t acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = vdupq_n_s32(0);
  const std::size_t kq = k_quads(k);
  for (std::size_t q = 0; q < kq; ++q) {
    const int8x16_t b0 = vld1q_s8(reinterpret_cast<const int8_t*>(b + 32 * q));
    const int8x16_t b1 = vld1q_s8(reinterpret_cast<const int8_t*>(b + 32 * q + 16));
    for (int r = 0; r < R; ++r) {
      const int8x16_t av = load_quad(a + r * lda, q, k);
      acc0[r] = vdotq_s32(acc0[r], b0, av);
      acc1[r] = vdotq_s32(acc1[r], b1, av);
    }
  }
  for (int r = 0; r < R; ++r) {
    int32_t* cr = c + r * ldc;
    if (ncols == kNR) {
      vst1q_s32(cr, acc0[r]);
      vst1q_s32(cr + 4, acc1[r]);
    } else {
      int32_t tile[kNR];
      vst1q_s32(tile, acc0[r]);
      vst1q_s32(tile + 4, acc1[r]);
      std::memcpy(cr, tile, ncols * sizeof(int32_t));
    }
  }
}

using MicroKernel = void (*)(const int8_t*, std::size_t, std::size_t, const uint8_t*, int32_t*, std::size_t,
                             std::size_t);
constexpr MicroKernel kMicroKernels[kMR + 1] = {nullptr,         micro_kernel<1>, micro_kernel<2>,
                                                micro_kernel<3>, micro_kernel<4>, micro_kernel<5>,
                                                micro_kernel<6>, micro_kernel<7>, micro_kernel<8>};

}  // namespace

const std::size_t kGemmS8PanelCols = kNR;

std::size_t gemm_s8s8_s32_packed_bytes(std::size_t n, std::size_t k) {
  return ((n + kNR - 1) / kNR) * k_quads(k) * 32;
}

void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed) {
  const std::size_t kq = k_quads(k);
  std::memset(packed, 0, gemm_s8s8_s32_packed_bytes(n, k));
  for (std::size_t j = 0; j < n; ++j) {
    uint8_t* panel = packed + (j / kNR) * kq * 32;
    const std::size_t col = j % kNR;
    const std::size_t offset = (col / 4) * 16 + (col % 4) * 4;
    const int8_t* bj = b + j * ldb;
    for (std::size_t p = 0; p < k; ++p) panel[(p / 4) * 32 + offset + (p & 3)] = static_cast<uint8_t>(bj[p]);
  }
}

void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t /*n*/, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc) {
  const std::size_t panel_bytes = k_quads(k) * 32;
  for (std::size_t j0 = n0; j0 < n1; j0 += kNR) {
    const uint8_t* panel = packed + (j0 / kNR) * panel_bytes;
    const std::size_t ncols = std::min(kNR, n1 - j0);
    for (std::size_t i0 = 0; i0 < m; i0 += kMR) {
      const std::size_t rows = std::min<std::size_t>(kMR, m - i0);
      kMicroKernels[rows](a + i0 * lda, lda, k, panel, c + i0 * ldc + j0, ldc, ncols);
    }
  }
}

}  // namespace neon_dotprod
}  // namespace kernels
}  // namespace medqk

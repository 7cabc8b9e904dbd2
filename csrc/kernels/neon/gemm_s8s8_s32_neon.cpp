// NEON (armv8-a, no dotprod) INT8 GEMM, exact over the whole int8 range.
//
// smull multiplies int8 lanes into int16 (|a*b| <= 2^14 fits), and sadalp at once adds each pair of
// products into int32 lanes. Never two int16 products summed in int16: (-128)(-128) * 2 = 32768 would wrap.
//
// Layout of packed B (owned by this file): panels of 8 columns; in a panel, for each pair of k
// (2p, 2p+1), 16 bytes: [c0k0 c0k1 c1k0 c1k1 ... c7k0 c7k1]; padding zero. An A pair (a[2p], a[2p+1])
// duplicated over eight bytes lines up with it, so smull + sadalp give four columns per register.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "kernels/gemm_s8s8_s32.h"

namespace medqk {
namespace kernels {
namespace neon {

namespace {

constexpr std::size_t kNR = 8;
constexpr int kMR = 8;  // 16 accumulators of 32 q registers

inline std::size_t k_pairs(std::size_t k) { return (k + 1) / 2; }

inline int8x8_t load_pair(const int8_t* row, std::size_t p, std::size_t k) {
  uint16_t w;
  if (2 * p + 1 < k) {
    std::memcpy(&w, row + 2 * p, 2);
  } else {
    w = static_cast<uint8_t>(row[2 * p]);
  }
  return vreinterpret_s8_u16(vdup_n_u16(w));
}

template <int R>
void micro_kernel(const int8_t* a, std::size_t lda, std::size_t k, const uint8_t* b, int32_t* c,
                  std::size_t ldc, std::size_t ncols) {
  int32x4_t acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = vdupq_n_s32(0);
  const std::size_t kp = k_pairs(k);
  for (std::size_t p = 0; p < kp; ++p) {
    const int8x16_t bv = vld1q_s8(reinterpret_cast<const int8_t*>(b + 16 * p));
    const int8x8_t b_lo = vget_low_s8(bv), b_hi = vget_high_s8(bv);
    for (int r = 0; r < R; ++r) {
      const int8x8_t av = load_pair(a + r * lda, p, k);
      acc0[r] = vpadalq_s16(acc0[r], vmull_s8(b_lo, av));
      acc1[r] = vpadalq_s16(acc1[r], vmull_s8(b_hi, av));
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
  return ((n + kNR - 1) / kNR) * k_pairs(k) * 16;
}

void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed) {
  const std::size_t kp = k_pairs(k);
  std::memset(packed, 0, gemm_s8s8_s32_packed_bytes(n, k));
  for (std::size_t j = 0; j < n; ++j) {
    uint8_t* panel = packed + (j / kNR) * kp * 16;
    const std::size_t offset = (j % kNR) * 2;
    const int8_t* bj = b + j * ldb;
    for (std::size_t p = 0; p < k; ++p) panel[(p / 2) * 16 + offset + (p & 1)] = static_cast<uint8_t>(bj[p]);
  }
}

void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t /*n*/, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc) {
  const std::size_t panel_bytes = k_pairs(k) * 16;
  for (std::size_t j0 = n0; j0 < n1; j0 += kNR) {
    const uint8_t* panel = packed + (j0 / kNR) * panel_bytes;
    const std::size_t ncols = std::min(kNR, n1 - j0);
    for (std::size_t i0 = 0; i0 < m; i0 += kMR) {
      const std::size_t rows = std::min<std::size_t>(kMR, m - i0);
      kMicroKernels[rows](a + i0 * lda, lda, k, panel, c + i0 * ldc + j0, ldc, ncols);
    }
  }
}

}  // namespace neon
}  // namespace kernels
}  // namespace medqk

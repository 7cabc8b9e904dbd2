// The GEMM driver of the two NEON kernels (gemm_s8s8_s32_neon.cpp: smull + sadalp on k pairs,
// gemm_s8s8_s32_neon_dotprod.cpp: sdot on k quads), written once: micro-kernels of up to kMR rows x 8
// columns in 16 int32x4 accumulators, the panel / row-block loops, and the packed layout with its entry
// points (kernels/gemm_s8_pack_k_groups.h).
//
// Each file includes this inside its own ISA namespace (medqk::kernels::neon, ::neon_dotprod), after
// defining in its anonymous namespace kKGroup (k per group of B) and the struct Dot, the inner step on
// one group of k:
//   Dot::B Dot::load_b(const uint8_t* group)       the group's kNR * kKGroup bytes of a panel
//   Dot::A Dot::load_a(const int8_t* row, g, k)    group g of an A row (k past K read as zero)
//   Dot::add(int32x4_t& acc0, int32x4_t& acc1, B, A)  columns 0..3 into acc0, 4..7 into acc1
// So each file's copy is built with its own flags (+dotprod only in the dotprod file): no inline function
// with external linkage is shared between them. The including file includes <arm_neon.h>, <algorithm>,
// <cstring> and kernels/gemm_s8s8_s32.h first.

namespace {

constexpr std::size_t kNR = 8;  // columns per panel: two int32x4 accumulators per row
constexpr int kMR = 8;          // rows per micro-kernel: 16 accumulators of the 32 q registers

template <int R>
void micro_kernel(const int8_t* a, std::size_t lda, std::size_t k, const uint8_t* b, int32_t* c, std::size_t ldc,
                  std::size_t ncols) {
  int32x4_t acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = vdupq_n_s32(0);
  const std::size_t groups = (k + kKGroup - 1) / kKGroup;
  for (std::size_t g = 0; g < groups; ++g) {
    const typename Dot::B bg = Dot::load_b(b + kNR * kKGroup * g);
    for (int r = 0; r < R; ++r) Dot::add(acc0[r], acc1[r], bg, Dot::load_a(a + r * lda, g, k));
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

#include "kernels/gemm_s8_pack_k_groups.h"

void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t /*n*/, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc) {
  const std::size_t panel_bytes = gemm_s8s8_s32_packed_bytes(kNR, k);
  for (std::size_t j0 = n0; j0 < n1; j0 += kNR) {
    const uint8_t* panel = packed + (j0 / kNR) * panel_bytes;
    const std::size_t ncols = std::min(kNR, n1 - j0);
    for (std::size_t i0 = 0; i0 < m; i0 += kMR) {
      const std::size_t rows = std::min<std::size_t>(kMR, m - i0);
      kMicroKernels[rows](a + i0 * lda, lda, k, panel, c + i0 * ldc + j0, ldc, ncols);
    }
  }
}

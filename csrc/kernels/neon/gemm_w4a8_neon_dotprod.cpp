// NEON dotprod (armv8.2-a+dotprod: sdot) W4A8 GEMM: codes expanded by tbl through each column's 16 int8
// levels, then sdot, which adds four int8 x int8 products into each int32 lane with no narrower
// intermediate: exact for every a in [-128, 127] and level in [-127, 127]. Per 32 weights of one column and
// row: 2 sdot; the expansion (ld1, and / ushr, tbl per 16) is shared by a tile's rows. Only *_dotprod.cpp
// files get +dotprod (CMakeLists.txt), so no sdot reaches code a CPU without it runs.
//
// The layout, the packer and the loops are kernels/neon/gemm_w4a8_neon_driver.h, shared with the neon file.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm_w4a8.h"

namespace medqk {
namespace kernels {
namespace neon_dotprod {

namespace {

struct W4Dot {
  // 16 accumulators, 8 expanded columns, 4 tables, the mask and a row of activations: 30 q registers of 32
  static constexpr int kRows = 4;
  static inline int32x4_t add(int32x4_t acc, int8x16_t w, int8x16_t a) { return vdotq_s32(acc, w, a); }
};

}  // namespace

#include "kernels/neon/gemm_w4a8_neon_driver.h"

}  // namespace neon_dotprod
}  // namespace kernels
}  // namespace medqk

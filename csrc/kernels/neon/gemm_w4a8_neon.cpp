// NEON (armv8-a, no dotprod) W4A8 GEMM: codes expanded by tbl through each column's 16 int8 levels, then
// multiplied by the int8 activations, exact over the whole range (a = -128 and levels = +-127 included).
//
// The inner step on 16 products: smull multiplies the low 8 lanes into int16, smlal2 adds the high 8 lanes'
// products to them, sadalp adds each pair of int16 lanes into the int32 accumulator. An int16 lane then
// holds two products, |w a| <= 127 * 128 each, |sum| <= 32512 < 2^15: exact because the levels stop at
// +-127 (two (-128)(-128) products, as in the int8 GEMM, would wrap). Per 32 weights of one column and row:
// 2 x (smull, smlal2, sadalp); the expansion (ld1, and / ushr, tbl per 16) is shared by a tile's rows.
//
// The layout, the packer and the loops are kernels/neon/gemm_w4a8_neon_driver.h, shared with the dotprod
// file.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm_w4a8.h"

namespace medqk {
namespace kernels {
namespace neon {

namespace {

struct W4Dot {
  // 4 rows would need 16 accumulators, 4 int16 products, 8 expanded columns, 4 tables, the mask and a row
  // of activations: 34 q registers of 32
  static constexpr int kRows = 3;
  static inline int32x4_t add(int32x4_t acc, int8x16_t w, int8x16_t a) {
    return vpadalq_s16(acc, vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(a)), w, a));
  }
};

}  // namespace

#include "kernels/neon/gemm_w4a8_neon_driver.h"

}  // namespace neon
}  // namespace kernels
}  // namespace medqk

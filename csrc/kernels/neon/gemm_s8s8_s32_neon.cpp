// NEON (armv8-a, no dotprod) INT8 GEMM, exact over the whole int8 range.
//
// smull multiplies int8 lanes into int16 (|a*b| <= 2^14 fits), and sadalp at once adds each pair of
// products into int32 lanes. Never two int16 products summed in int16: (-128)(-128) * 2 = 32768 would wrap.
//
// Layout of packed B (kernels/gemm_s8_pack_k_groups.h, k pairs): panels of 8 columns; in a panel, for each
// pair of k (2p, 2p+1), 16 bytes: [c0k0 c0k1 c1k0 c1k1 ... c7k0 c7k1]; padding zero. An A pair (a[2p],
// a[2p+1]) duplicated over eight bytes lines up with it, so smull + sadalp give four columns per register.
// The driver (micro-kernels, loops, packing) is kernels/neon/gemm_s8s8_s32_neon_driver.h, shared with the
// dotprod file; this file gives it the step on one k pair.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "kernels/gemm_s8s8_s32.h"

namespace medqk {
namespace kernels {
namespace neon {

namespace {

constexpr std::size_t kKGroup = 2;

struct Dot {
  using B = int8x16_t;  // one k pair of the 8 columns: columns 0..3 in the low half, 4..7 in the high half
  using A = int8x8_t;

  static B load_b(const uint8_t* group) { return vld1q_s8(reinterpret_cast<const int8_t*>(group)); }

  // (a[2p], a[2p+1]) in each 16-bit lane; a[2p+1] read as 0 past an odd K
  static A load_a(const int8_t* row, std::size_t p, std::size_t k) {
    uint16_t w;
    if (2 * p + 1 < k) {
      std::memcpy(&w, row + 2 * p, 2);
    } else {
      w = static_cast<uint8_t>(row[2 * p]);
    }
    return vreinterpret_s8_u16(vdup_n_u16(w));
  }

  static void add(int32x4_t& acc0, int32x4_t& acc1, B b, A a) {
    acc0 = vpadalq_s16(acc0, vmull_s8(vget_low_s8(b), a));
    acc1 = vpadalq_s16(acc1, vmull_s8(vget_high_s8(b), a));
  }
};

}  // namespace

#include "kernels/neon/gemm_s8s8_s32_neon_driver.h"

}  // namespace neon
}  // namespace kernels
}  // namespace medqk

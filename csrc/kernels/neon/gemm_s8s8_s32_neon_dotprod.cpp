// NEON dotprod (armv8.2-a+dotprod: sdot) INT8 GEMM. This is the only file compiled with +dotprod, so
// the compiler cannot slip sdot into code that runs on a CPU without it (Raspberry Pi 4, cortex-a72).
//
// sdot adds four int8 x int8 products into each int32 lane: exact, no intermediate narrower than 32 bits.
// Layout of packed B (kernels/gemm_s8_pack_k_groups.h, k quads): panels of 8 columns; in a panel, for each
// quad of k (4q .. 4q+3), 32 bytes: [c0k0..c0k3 c1k0..c1k3 c2.. c3.. | c4.. c5.. c6.. c7..]; padding zero.
// An A quad broadcast to all four lanes then gives four columns per sdot.
// The driver (micro-kernels, loops, packing) is kernels/neon/gemm_s8s8_s32_neon_driver.h, shared with the
// plain NEON file and compiled here with +dotprod; this file gives it the step on one k quad.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "kernels/gemm_s8s8_s32.h"

namespace medqk {
namespace kernels {
namespace neon_dotprod {

namespace {

constexpr std::size_t kKGroup = 4;

struct Dot {
  struct B {
    int8x16_t lo, hi;  // columns 0..3, 4..7
  };
  using A = int8x16_t;

  static B load_b(const uint8_t* group) {
    const int8_t* g = reinterpret_cast<const int8_t*>(group);
    return {vld1q_s8(g), vld1q_s8(g + 16)};
  }

  // a[4q .. 4q+3] in each 32-bit lane; the k past K read as 0
  static A load_a(const int8_t* row, std::size_t q, std::size_t k) {
    uint32_t w = 0;
    const std::size_t p = 4 * q;
    if (p + 4 <= k) {
      std::memcpy(&w, row + p, 4);
    } else {
      std::memcpy(&w, row + p, k - p);  // little endian: the missing k stay zero
    }
    return vreinterpretq_s8_u32(vdupq_n_u32(w));
  }

  static void add(int32x4_t& acc0, int32x4_t& acc1, const B& b, A a) {
    acc0 = vdotq_s32(acc0, b.lo, a);
    acc1 = vdotq_s32(acc1, b.hi, a);
  }
};

}  // namespace

#include "kernels/neon/gemm_s8s8_s32_neon_driver.h"

}  // namespace neon_dotprod
}  // namespace kernels
}  // namespace medqk

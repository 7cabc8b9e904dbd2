// Internal interface of the W4A8 weight GEMM kernels: one namespace per ISA, the same three functions in
// each. Only raw pointers, sizes and the plain structs below cross between ISA files.
//
//   w4_packed_bytes(n, k, group_size)            size of the weights in this ISA's layout
//   w4_pack(codes, n, k, ldc, levels, group_size, packed)
//       codes uint8 (n x k, row stride ldc, each < 16), levels int8 (n x 16, each in [-127, 127]) -> packed.
//       Each ISA owns its layout (one packer per layout); the k past K and the columns past n are padding
//       the kernels never let reach a result.
//   gemm_w4a8(args, m0, m1, n0, n1)
//       rows [m0, m1) and columns [n0, n1) of the result; n0 a multiple of the ISA's panel width (threads
//       split there). With args.d set: D[m, n, g] = sum over k in group g of a[m, k] * levels[n, codes[n,
//       k]], exact int32 (|D| <= group_size * 128 * 127 < 2^31 for group_size <= kMaxW4GroupSize). With
//       args.out set: out[m, n] = row_scale[m] * sum_g scales[n, g] * float(D[m, n, g] - zeros[n, g] *
//       asum[m, g]) + bias[n] (the float sum in any order the kernel documents; zeros and bias may be null).
#pragma once

#include <cstddef>
#include <cstdint>

namespace medqk {
namespace kernels {

// The operands of one W4A8 product, as the runtime front end (runtime/gemm_w4a8.cpp) hands them to a kernel.
struct W4A8Args {
  const int8_t* a;  // activations (m x k, row stride lda)
  std::size_t m, k, lda;
  const uint8_t* packed;              // weights packed by this ISA's w4_pack
  std::size_t n, group_size, groups;  // groups = ceil(k / group_size)
  int32_t* d;                         // int32 output (m, n, groups), or nullptr for the float output
  float* out;                         // float output (m, n), or nullptr for the int32 output
  const float* row_scale;             // (m,)
  const float* scales;                // (n, groups), finite and >= 0
  const int8_t* zeros;                // (n, groups) in [0, 15], or nullptr
  const int32_t* asum;                // (m, groups): sum of a over each group; set (by the front end) when zeros is
  const float* bias;                  // (n,) or nullptr
};

using GemmW4PackedBytes = std::size_t(std::size_t n, std::size_t k, std::size_t group_size);
using GemmW4Pack = void(const uint8_t* codes, std::size_t n, std::size_t k, std::size_t ldc, const int8_t* levels,
                        std::size_t group_size, uint8_t* packed);
using GemmW4A8 = void(const W4A8Args& args, std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1);

// One row of the dispatch table: a layout and the kernel that reads it.
struct GemmW4Kernel {
  std::size_t panel_cols;
  GemmW4PackedBytes* packed_bytes;
  GemmW4Pack* pack;
  GemmW4A8* gemm;
};
struct GemmW4A8Op {  // the operation, for runtime::kernel<Op>: what one variant provides
  using Fn = const GemmW4Kernel*;
};

// What every W4A8 ISA defines (kernels/<isa>/gemm_w4a8_<isa>.cpp), declared in its namespace below.
#define MEDQK_GEMM_W4_DECLARATIONS extern const GemmW4Kernel kGemmW4A8;

namespace scalar {
MEDQK_GEMM_W4_DECLARATIONS
}
namespace avx2 {
MEDQK_GEMM_W4_DECLARATIONS
}
namespace avx512vnni {
MEDQK_GEMM_W4_DECLARATIONS
}
namespace neon {
MEDQK_GEMM_W4_DECLARATIONS
}
namespace neon_dotprod {
MEDQK_GEMM_W4_DECLARATIONS
}

#undef MEDQK_GEMM_W4_DECLARATIONS

}  // namespace kernels
}  // namespace medqk

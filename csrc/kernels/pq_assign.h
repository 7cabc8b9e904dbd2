// Internal interface of the PQ / k-means assignment kernel: for every row i of x and subspace j, the
// centroid c of subspace j minimising ||c||^2 - 2 <x_ij, c>, and max(that + ||x_ij||^2, 0).
//
// Layout (made by the front end, csrc/runtime/pq_assign.cpp, the same for every ISA): the centroids of
// subspace j transposed, ct[(j * dsub + p) * kp + c], so one load gives the p-th coordinate of 8 (AVX2)
// or 4 (NEON) consecutive centroids; kp = K rounded up to a multiple of kPqAssignLanes, padded centroids
// are 0 with norm +inf so they can never win. norms[j * kp + c] = ||c||^2 summed in float32 in order p.
//
// Arithmetic every kernel shares: ||x||^2 summed in float32 in order p (no FMA), score = norm - 2 * dot
// (2 * dot is exact, so one rounding), dist = max(score + ||x||^2, 0). Only the dot product differs between
// ISAs (the scalar one sums x[p] * c[p] in order p with separate roundings; SIMD kernels use FMA), so
// codes can differ between ISAs only when two scores are within rounding of each other.
// Tie rule: among equal scores the lowest centroid index wins (strict < while scanning in index order;
// SIMD kernels merge their lanes by (score, index)).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/operation.h"

namespace medqk {
namespace kernels {

constexpr std::size_t kPqAssignLanes = 8;

// rows x (m * dsub) floats at x (row stride ldx); codes and dist: rows x m (row stride m). scratch holds
// kPqAssignLanes * m * dsub floats owned by the caller (ISA files allocate nothing: a std::vector
// instantiated under -mavx2 could be the copy the linker keeps for baseline code).
// The signature every ISA's kernel has, written once: each namespace below declares its kernel with it.
using PqAssign = void(const float* x, std::size_t rows, std::size_t ldx, std::size_t m, std::size_t dsub,
                      const float* ct, const float* norms, std::size_t kp, uint8_t* codes, float* dist, float* scratch);
MEDQK_KERNEL_OPERATION(PqAssignOp, PqAssign)  // the operation's tag (kernels/operation.h)

// ||xs||^2 over dsub floats, summed in float32 in order p, multiply and add apart (the build has
// -ffp-contract=off): the norm every kernel adds to the best score. static: each ISA file keeps its own copy.
static inline float pq_squared_norm(const float* xs, std::size_t dsub) {
  float xn = 0.0f;
  for (std::size_t p = 0; p < dsub; ++p) xn += xs[p] * xs[p];
  return xn;
}

namespace scalar {
PqAssign pq_assign;
}  // namespace scalar
namespace avx2 {
PqAssign pq_assign;
}  // namespace avx2
namespace neon {
PqAssign pq_assign;
}  // namespace neon

}  // namespace kernels
}  // namespace medqk

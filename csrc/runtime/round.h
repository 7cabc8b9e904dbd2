// Round-half-to-even and clamp of table entries, in a form the compiler vectorizes at the baseline ISA.
#pragma once

#include <cstdint>

namespace medqk {
namespace runtime {

// clamp(round_half_even(v), 0, top) for -2^22 < v < 2^22 (table entries: 0 <= v <= top + rounding).
// Adding and removing 1.5 * 2^23 rounds half to even in the default rounding mode, as std::nearbyint
// and numpy.rint do, but unlike nearbyint it vectorizes without SSE4.1; the clamp is done on the integer
// (float compares in ternaries would block vectorization without -ffast-math).
inline int32_t round_clamp(float v, int32_t top) {
  const int32_t i = static_cast<int32_t>((v + 12582912.0f) - 12582912.0f);
  return i < 0 ? 0 : (i > top ? top : i);
}

}  // namespace runtime
}  // namespace medqk

// Quantization of lookup tables at the baseline ISA (SSE2 on x86-64, NEON on aarch64): the range of a
// 16-entry table, and round-half-to-even with clamp in a form the compiler vectorizes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "runtime/baseline_simd.h"

namespace medqk {
namespace runtime {

// Minimum and maximum of t[0:16]. Vector min / max: the sequential loop is a chain of dependent
// compares (minss / maxss, no vectorization without -ffast-math) and took most of the quantization
// time. Exact for finite values (min and max do not round; only the sign of a zero may differ, which
// changes no table entry and no offset).
inline void min_max16(const float* t, float* mn, float* mx) {
#if defined(__SSE2__)
  const __m128 a = _mm_loadu_ps(t), b = _mm_loadu_ps(t + 4), c = _mm_loadu_ps(t + 8), d = _mm_loadu_ps(t + 12);
  __m128 lo = _mm_min_ps(_mm_min_ps(a, b), _mm_min_ps(c, d));
  __m128 hi = _mm_max_ps(_mm_max_ps(a, b), _mm_max_ps(c, d));
  lo = _mm_min_ps(lo, _mm_shuffle_ps(lo, lo, _MM_SHUFFLE(1, 0, 3, 2)));
  hi = _mm_max_ps(hi, _mm_shuffle_ps(hi, hi, _MM_SHUFFLE(1, 0, 3, 2)));
  lo = _mm_min_ps(lo, _mm_shuffle_ps(lo, lo, _MM_SHUFFLE(2, 3, 0, 1)));
  hi = _mm_max_ps(hi, _mm_shuffle_ps(hi, hi, _MM_SHUFFLE(2, 3, 0, 1)));
  *mn = _mm_cvtss_f32(lo);
  *mx = _mm_cvtss_f32(hi);
#elif defined(__ARM_NEON)
  const float32x4_t a = vld1q_f32(t), b = vld1q_f32(t + 4), c = vld1q_f32(t + 8), d = vld1q_f32(t + 12);
  *mn = vminvq_f32(vminq_f32(vminq_f32(a, b), vminq_f32(c, d)));
  *mx = vmaxvq_f32(vmaxq_f32(vmaxq_f32(a, b), vmaxq_f32(c, d)));
#else
  float lo = t[0], hi = t[0];
  for (int c = 1; c < 16; ++c) {
    lo = std::min(lo, t[c]);
    hi = std::max(hi, t[c]);
  }
  *mn = lo;
  *mx = hi;
#endif
}

// clamp(round_half_even(v), 0, top) for -2^22 < v < 2^22 (table entries: 0 <= v <= top + rounding).
// Adding and removing 1.5 * 2^23 rounds half to even in the default rounding mode, as std::nearbyint
// and numpy.rint do, but unlike nearbyint it vectorizes without SSE4.1; the clamp is done on the integer
// (float compares in ternaries would block vectorization without -ffast-math).
inline int32_t round_clamp(float v, int32_t top) {
  const int32_t i = static_cast<int32_t>((v + 12582912.0f) - 12582912.0f);
  return i < 0 ? 0 : (i > top ? top : i);
}

// out[c] = round_clamp(f(t[c]), top) for c < 16, 0 <= top <= 255, with f(v) = (v - offset) * scale, or
// (v - offset) / scale with kDivide (IEEE division): the same float operations as the scalar round_clamp,
// four lanes at a time in GCC / Clang vector types (SSE2 or NEON instructions), then the clamp by the
// saturating narrowings int32 -> int16 -> uint8 and an unsigned min. GCC leaves the scalar loop
// unvectorized (a compare and select per entry).
template <bool kDivide>
inline void quantize16(const float* t, float offset, float scale, int32_t top, uint8_t* out) {
#if defined(__SSE2__) || defined(__ARM_NEON)
  typedef float F4 __attribute__((vector_size(16)));
  typedef int32_t I4 __attribute__((vector_size(16)));
  I4 r[4];
  for (int i = 0; i < 4; ++i) {
    F4 v;
    std::memcpy(&v, t + 4 * i, sizeof v);
    if constexpr (kDivide) {
      v = (v - offset) / scale;
    } else {
      v = (v - offset) * scale;
    }
    r[i] = __builtin_convertvector((v + 12582912.0f) - 12582912.0f, I4);  // integral: the cast is exact
  }
#if defined(__SSE2__)
  const __m128i bytes =
      _mm_packus_epi16(_mm_packs_epi32(__m128i(r[0]), __m128i(r[1])), _mm_packs_epi32(__m128i(r[2]), __m128i(r[3])));
  const __m128i top8 = _mm_set1_epi8(static_cast<char>(top));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_min_epu8(bytes, top8));
#else
  const int16x8_t lo = vcombine_s16(vqmovn_s32(int32x4_t(r[0])), vqmovn_s32(int32x4_t(r[1])));
  const int16x8_t hi = vcombine_s16(vqmovn_s32(int32x4_t(r[2])), vqmovn_s32(int32x4_t(r[3])));
  const uint8x16_t top8 = vdupq_n_u8(static_cast<uint8_t>(top));
  vst1q_u8(out, vminq_u8(vcombine_u8(vqmovun_s16(lo), vqmovun_s16(hi)), top8));
#endif
#else
  for (int c = 0; c < 16; ++c) {
    const float v = kDivide ? (t[c] - offset) / scale : (t[c] - offset) * scale;
    out[c] = static_cast<uint8_t>(round_clamp(v, top));
  }
#endif
}

}  // namespace runtime
}  // namespace medqk

// The last step of the x86 4-bit scans (avx2 and avx512vnni files include it): the 32-bit totals of one
// block of 32 vectors, kept as even / odd vectors of the low (0..15) and high (16..31) nibbles, are put
// back in natural order, stored, and compared with the query's threshold into the block's mask (bit u:
// sum of vector u > threshold). AVX2 instructions only; static, so each ISA file keeps its own copy built
// with its own flags (an inline function shared across them could be merged into the AVX-512 one).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace medqk {
namespace kernels {

static inline uint32_t lut4_store_block(__m256i lo_even, __m256i lo_odd, __m256i hi_even, __m256i hi_odd,
                                        uint32_t* out, int32_t threshold) {
  const __m256i lo_01 = _mm256_unpacklo_epi32(lo_even, lo_odd);  // v0 v1 v2 v3 | v8 .. v11
  const __m256i lo_23 = _mm256_unpackhi_epi32(lo_even, lo_odd);  // v4 v5 v6 v7 | v12 .. v15
  const __m256i hi_01 = _mm256_unpacklo_epi32(hi_even, hi_odd);
  const __m256i hi_23 = _mm256_unpackhi_epi32(hi_even, hi_odd);
  const __m256i v0 = _mm256_permute2x128_si256(lo_01, lo_23, 0x20);
  const __m256i v1 = _mm256_permute2x128_si256(lo_01, lo_23, 0x31);
  const __m256i v2 = _mm256_permute2x128_si256(hi_01, hi_23, 0x20);
  const __m256i v3 = _mm256_permute2x128_si256(hi_01, hi_23, 0x31);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), v0);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8), v1);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), v2);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 24), v3);
  const __m256i thr = _mm256_set1_epi32(threshold);
  auto bits = [&](__m256i v) {
    return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(v, thr))));
  };
  return bits(v0) | bits(v1) << 8 | bits(v2) << 16 | bits(v3) << 24;
}

}  // namespace kernels
}  // namespace medqk

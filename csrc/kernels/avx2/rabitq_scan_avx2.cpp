// 1-bit RaBitQ scan, AVX2: popcounts of 4-bit nibbles by vpshufb, summed per 64-bit lane by vpsadbw.
//
// A block row (word w of 8 vectors) is two registers. Per plane j of a group of up to 4 planes j0.., the
// byte counts of code & plane_j come weighted from the lookup, 2^(j - j0) popcount(nibble), so a group adds
// at most 8 (1 + 2 + 4 + 8) = 120 per byte, and two rows at most 240: no overflow. vpsadbw then sums each
// 64-bit lane's bytes (one vector's words), and the group's sums are shifted by j0 and added in 64 bits.
// The code's nibbles are split once per row: (code & plane) & 0x0f = (code & 0x0f) & plane and
// ((code & plane) >> 4) & 0x0f = ((code >> 4) & 0x0f) & (plane >> 4).
#include <immintrin.h>

#include <vector>

#include "kernels/rabitq_scan.h"

namespace medqk {
namespace kernels {
namespace avx2 {

namespace {
constexpr std::size_t kPlaneGroup = 4;  // planes summed in bytes before vpsadbw (see above)

// sum over the G planes j0 .. j0 + G - 1 of 2^(j - j0) popcount(code & plane_j) per byte, the code split
// into nibbles (G a constant: the plane loop unrolls and the lookup tables stay in registers)
template <std::size_t G>
inline __m256i group_counts(const __m256i* luts, __m256i lo, __m256i hi, const uint64_t* planes,
                            const uint64_t* planes_hi, std::size_t words) {
  __m256i s = _mm256_setzero_si256();
  for (std::size_t g = 0; g < G; ++g) {
    const __m256i p = _mm256_set1_epi64x(static_cast<long long>(planes[g * words]));
    const __m256i ph = _mm256_set1_epi64x(static_cast<long long>(planes_hi[g * words]));
    s = _mm256_add_epi8(s, _mm256_add_epi8(_mm256_shuffle_epi8(luts[g], _mm256_and_si256(lo, p)),
                                           _mm256_shuffle_epi8(luts[g], _mm256_and_si256(hi, ph))));
  }
  return s;
}

// Adds the weighted sums of planes j0 .. j0 + G - 1 over every word to acc0 / acc1 (vectors 0-3 / 4-7).
template <std::size_t G>
inline void scan_group(const uint64_t* block, std::size_t words, const uint64_t* planes, const uint64_t* planes_hi,
                       std::size_t j0, const __m256i* luts, __m256i& acc0, __m256i& acc1) {
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(j0));
  const uint64_t* p = planes + j0 * words;
  const uint64_t* ph = planes_hi + j0 * words;
  for (std::size_t w0 = 0; w0 < words; w0 += 2) {
    const std::size_t w1 = w0 + 2 < words ? w0 + 2 : words;  // two rows per vpsadbw (<= 240 per byte)
    __m256i s0 = zero, s1 = zero;
    for (std::size_t w = w0; w < w1; ++w) {
      const uint64_t* row = block + w * kRabitqBlock;
      const __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
      const __m256i c1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 4));
      const __m256i lo0 = _mm256_and_si256(c0, nibble), hi0 = _mm256_and_si256(_mm256_srli_epi16(c0, 4), nibble);
      const __m256i lo1 = _mm256_and_si256(c1, nibble), hi1 = _mm256_and_si256(_mm256_srli_epi16(c1, 4), nibble);
      s0 = _mm256_add_epi8(s0, group_counts<G>(luts, lo0, hi0, p + w, ph + w, words));
      s1 = _mm256_add_epi8(s1, group_counts<G>(luts, lo1, hi1, p + w, ph + w, words));
    }
    acc0 = _mm256_add_epi64(acc0, _mm256_sll_epi64(_mm256_sad_epu8(s0, zero), shift));
    acc1 = _mm256_add_epi64(acc1, _mm256_sll_epi64(_mm256_sad_epu8(s1, zero), shift));
  }
}
}  // namespace

void rabitq_scan(const uint64_t* packed, std::size_t nblocks, std::size_t words, const uint64_t* planes,
                 std::size_t bits, int32_t* ip) {
  // the planes shifted right by 4, for the high nibbles
  std::vector<uint64_t> planes_hi(bits * words);
  for (std::size_t e = 0; e < bits * words; ++e) planes_hi[e] = planes[e] >> 4;
  const __m256i count = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i luts[kPlaneGroup] = {count, _mm256_add_epi8(count, count), _mm256_slli_epi16(count, 2),
                                     _mm256_slli_epi16(count, 3)};  // counts <= 4: no bit crosses a byte
  const __m256i zero = _mm256_setzero_si256();
  for (std::size_t b = 0; b < nblocks; ++b) {
    const uint64_t* block = packed + b * words * kRabitqBlock;
    __m256i acc0 = zero, acc1 = zero;  // vectors 0-3, 4-7 of the block, one 64-bit sum each
    for (std::size_t j0 = 0; j0 < bits; j0 += kPlaneGroup) {
      switch (bits - j0 < kPlaneGroup ? bits - j0 : kPlaneGroup) {
        case 1: scan_group<1>(block, words, planes, planes_hi.data(), j0, luts, acc0, acc1); break;
        case 2: scan_group<2>(block, words, planes, planes_hi.data(), j0, luts, acc0, acc1); break;
        case 3: scan_group<3>(block, words, planes, planes_hi.data(), j0, luts, acc0, acc1); break;
        default: scan_group<4>(block, words, planes, planes_hi.data(), j0, luts, acc0, acc1); break;
      }
    }
    // the low 32 bits of each 64-bit sum (they fit: kernels/rabitq_scan.h), in lane order
    const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m128i v0 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(acc0, pick));
    const __m128i v1 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(acc1, pick));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(ip + b * kRabitqBlock), v0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(ip + b * kRabitqBlock + 4), v1);
  }
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

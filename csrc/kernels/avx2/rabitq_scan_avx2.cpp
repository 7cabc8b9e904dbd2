// 1-bit RaBitQ scan, AVX2: popcounts of 4-bit nibbles by vpshufb, summed per 64-bit lane by vpsadbw.
//
// A block row (word w of 8 vectors) is two registers. Per plane j the byte counts of code & plane_j (0..8)
// are combined over a group of up to 4 planes by Horner's rule in bytes (acc = 2 acc + count, high plane
// first): at most 8 (1 + 2 + 4 + 8) = 120 per byte, no overflow. vpsadbw then sums each 64-bit lane's
// bytes, i.e. one vector's word, and the group's sums are shifted by its lowest plane and added in 64 bits.
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

inline __m256i nibble_counts(__m256i lut, __m256i lo, __m256i hi, const uint64_t* plane, const uint64_t* plane_hi) {
  const __m256i p = _mm256_set1_epi64x(static_cast<long long>(*plane));
  const __m256i ph = _mm256_set1_epi64x(static_cast<long long>(*plane_hi));
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(lo, p)),
                         _mm256_shuffle_epi8(lut, _mm256_and_si256(hi, ph)));
}
}  // namespace

void rabitq_scan(const uint64_t* packed, std::size_t nblocks, std::size_t words, const uint64_t* planes,
                 std::size_t bits, int32_t* ip) {
  // the planes shifted right by 4, for the high nibbles
  std::vector<uint64_t> planes_hi(bits * words);
  for (std::size_t e = 0; e < bits * words; ++e) planes_hi[e] = planes[e] >> 4;
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  for (std::size_t b = 0; b < nblocks; ++b) {
    __m256i acc0 = zero, acc1 = zero;  // vectors 0-3, 4-7 of the block, one 64-bit sum each
    for (std::size_t w = 0; w < words; ++w) {
      const uint64_t* row = packed + (b * words + w) * kRabitqBlock;
      const __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
      const __m256i c1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 4));
      const __m256i lo0 = _mm256_and_si256(c0, nibble), hi0 = _mm256_and_si256(_mm256_srli_epi16(c0, 4), nibble);
      const __m256i lo1 = _mm256_and_si256(c1, nibble), hi1 = _mm256_and_si256(_mm256_srli_epi16(c1, 4), nibble);
      for (std::size_t j0 = 0; j0 < bits; j0 += kPlaneGroup) {
        const std::size_t j1 = j0 + kPlaneGroup < bits ? j0 + kPlaneGroup : bits;
        __m256i s0 = zero, s1 = zero;
        for (std::size_t j = j1; j-- > j0;) {
          const uint64_t* p = planes + j * words + w;
          const uint64_t* ph = planes_hi.data() + j * words + w;
          s0 = _mm256_add_epi8(_mm256_add_epi8(s0, s0), nibble_counts(lut, lo0, hi0, p, ph));
          s1 = _mm256_add_epi8(_mm256_add_epi8(s1, s1), nibble_counts(lut, lo1, hi1, p, ph));
        }
        const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(j0));
        acc0 = _mm256_add_epi64(acc0, _mm256_sll_epi64(_mm256_sad_epu8(s0, zero), shift));
        acc1 = _mm256_add_epi64(acc1, _mm256_sll_epi64(_mm256_sad_epu8(s1, zero), shift));
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

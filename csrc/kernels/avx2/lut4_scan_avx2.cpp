// AVX2 4-bit table scan (André et al., "Cache locality is not enough", VLDB 2015; faiss fast scan).
// One 32-byte register holds the tables of two subspaces; vpshufb looks up 32 codes at once. The u8
// results are summed in 16-bit lanes without unpacking: adding the register as u16 gives
// even_byte + 256 * odd_byte, and a second accumulator adds odd_byte alone (the register shifted right
// by 8); even = acc - (odd << 8) modulo 2^16 is exact while every true sum is below 65536, so the
// 16-bit sums are flushed to 32 bits every 256 pairs of subspaces (256 * 127 < 65536 per lane). Adding
// two rows' lookups in 8 bits first, as the AVX-512 kernel does, measured no faster here with two
// queries' accumulators in 16 registers.
#include <immintrin.h>

#include <algorithm>

#include "kernels/lut4_scan.h"
#include "kernels/lut4_store_x86.h"

namespace medqk {
namespace kernels {
namespace avx2 {

namespace {
constexpr std::size_t kFlushPairs = 256;

// NQ queries over the same codes (two at most: 4 accumulators per query, and AVX2 has 16 registers):
// each row of codes is loaded and split into nibbles once for all of them.
template <int NQ>
void scan_queries(const uint8_t* lut, std::size_t lut_stride, std::size_t d_even, const uint8_t* packed,
                  std::size_t nblocks, uint32_t* out, std::size_t out_stride, const int32_t* thresholds,
                  uint32_t* masks) {
  const std::size_t pairs = d_even / 2;
  const std::size_t block_bytes = 16 * d_even;
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  for (std::size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = packed + b * block_bytes;
    // 32-bit totals: vectors 0..15 (low nibbles) and 16..31 (high nibbles), even and odd vectors apart.
    __m256i tot_lo_even[NQ], tot_lo_odd[NQ], tot_hi_even[NQ], tot_hi_odd[NQ];
    for (int j = 0; j < NQ; ++j) {
      tot_lo_even[j] = tot_lo_odd[j] = tot_hi_even[j] = tot_hi_odd[j] = _mm256_setzero_si256();
    }
    for (std::size_t p0 = 0; p0 < pairs; p0 += kFlushPairs) {
      const std::size_t p1 = std::min(pairs, p0 + kFlushPairs);
      __m256i lo_a[NQ], lo_b[NQ], hi_a[NQ], hi_b[NQ];
      for (int j = 0; j < NQ; ++j) lo_a[j] = lo_b[j] = hi_a[j] = hi_b[j] = _mm256_setzero_si256();
      for (std::size_t p = p0; p < p1; ++p) {
        const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 32 * p));
        const __m256i c_lo = _mm256_and_si256(codes, nibble);
        const __m256i c_hi = _mm256_and_si256(_mm256_srli_epi16(codes, 4), nibble);
        for (int j = 0; j < NQ; ++j) {
          const __m256i table = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + j * lut_stride + 32 * p));
          const __m256i r_lo = _mm256_shuffle_epi8(table, c_lo);
          const __m256i r_hi = _mm256_shuffle_epi8(table, c_hi);
          lo_a[j] = _mm256_add_epi16(lo_a[j], r_lo);
          lo_b[j] = _mm256_add_epi16(lo_b[j], _mm256_srli_epi16(r_lo, 8));
          hi_a[j] = _mm256_add_epi16(hi_a[j], r_hi);
          hi_b[j] = _mm256_add_epi16(hi_b[j], _mm256_srli_epi16(r_hi, 8));
        }
      }
      // add the two halves (subspaces 2p and 2p+1 of the same vectors) in 32 bits
      auto fold = [](__m256i v) {
        const __m256i a = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(v));
        const __m256i b = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(v, 1));
        return _mm256_add_epi32(a, b);
      };
      for (int j = 0; j < NQ; ++j) {
        // even-indexed bytes (vectors 0, 2, ..) and odd ones, per 128-bit half (= per subspace of the pair)
        const __m256i lo_even = _mm256_sub_epi16(lo_a[j], _mm256_slli_epi16(lo_b[j], 8));
        const __m256i hi_even = _mm256_sub_epi16(hi_a[j], _mm256_slli_epi16(hi_b[j], 8));
        tot_lo_even[j] = _mm256_add_epi32(tot_lo_even[j], fold(lo_even));
        tot_lo_odd[j] = _mm256_add_epi32(tot_lo_odd[j], fold(lo_b[j]));
        tot_hi_even[j] = _mm256_add_epi32(tot_hi_even[j], fold(hi_even));
        tot_hi_odd[j] = _mm256_add_epi32(tot_hi_odd[j], fold(hi_b[j]));
      }
    }
    for (int j = 0; j < NQ; ++j) {
      masks[j * nblocks + b] = lut4_store_block(tot_lo_even[j], tot_lo_odd[j], tot_hi_even[j], tot_hi_odd[j],
                                                out + j * out_stride + b * 32, thresholds[j]);
    }
  }
}

}  // namespace

void lut4_scan(const uint8_t* lut, std::size_t lut_stride, std::size_t nq, std::size_t d_even, const uint8_t* packed,
               std::size_t nblocks, uint32_t* out, std::size_t out_stride, const int32_t* thresholds,
               uint32_t* masks) {
  std::size_t j = 0;
  for (; j + 2 <= nq; j += 2) {
    scan_queries<2>(lut + j * lut_stride, lut_stride, d_even, packed, nblocks, out + j * out_stride, out_stride,
                    thresholds + j, masks + j * nblocks);
  }
  if (j < nq) {
    scan_queries<1>(lut + j * lut_stride, lut_stride, d_even, packed, nblocks, out + j * out_stride, out_stride,
                    thresholds + j, masks + j * nblocks);
  }
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

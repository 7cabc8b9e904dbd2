// AVX2 4-bit table scan (André et al., "Cache locality is not enough", VLDB 2015; faiss fast scan).
// One 32-byte register holds the tables of two subspaces; vpshufb looks up 32 codes at once. The u8
// results are summed in 16-bit lanes without unpacking: adding the register as u16 gives
// even_byte + 256 * odd_byte, and a second accumulator adds odd_byte alone (the register shifted right
// by 8); even = acc - (odd << 8) modulo 2^16 is exact while every true sum is below 65536, so the
// 16-bit sums are flushed to 32 bits every 256 pairs of subspaces (256 * 127 < 65536 per lane). Two
// rows' lookups are added in 8 bits first (<= 254), as in the AVX-512 kernel, so one widening serves
// two rows; the pair loop is in assembly (accumulate_pairs, below says why).
#include <immintrin.h>

#include <algorithm>

#include "kernels/lut4_scan.h"

namespace medqk {
namespace kernels {
namespace avx2 {

namespace {
#include "kernels/lut4_store_x86.h"

constexpr std::size_t kFlushPairs = 256;

// The pair loop: for each of `pairs` rows of codes (32 bytes: two subspaces, 32 vectors in nibbles) and
// each query's 32-byte table row, two vpshufb lookups (vectors 0..15 and 16..31) added into the 16-bit
// accumulators (a += r as uint16, b += r >> 8). Two rows are taken per step and their lookups (<= 127
// each) added in 8 bits first, which halves the widening work. In inline assembly: GCC 12 rotated the
// accumulators through extra registers every iteration and reloaded the nibble mask from the stack (43
// instructions per row for two queries, where this loop has 17 per row); all 16 ymm registers are used
// (8 accumulators for two queries, codes of two rows in nibbles, table, two results, a temporary).
// Two queries fetch the code lines 4 KiB ahead (CODES2); a single query, the scan that streams the codes
// from memory in order, leaves that to the hardware prefetchers (LOAD2): a sequential stream is the
// pattern they follow, and the software prefetch would only add an instruction per row.
#define MEDQK_LUT4_CODES2 "prefetcht0 4096(%[c])\n\t" MEDQK_LUT4_LOAD2
#define MEDQK_LUT4_LOAD2 MEDQK_LUT4_SPLIT("", "8", "9") MEDQK_LUT4_SPLIT("32", "10", "11")
// one row alone (an odd number of rows)
#define MEDQK_LUT4_CODES1 MEDQK_LUT4_SPLIT("", "8", "9")
// the 32 bytes of codes at OFF(%[c]) split into low nibbles (ymm LO) and high nibbles (ymm HI)
#define MEDQK_LUT4_SPLIT(OFF, LO, HI)     \
  "vmovdqu " OFF "(%[c]), %%ymm" LO       \
  "\n\t"                                  \
  "vpsrlw $4, %%ymm" LO ", %%ymm" HI      \
  "\n\t"                                  \
  "vpand (%[nib]), %%ymm" LO ", %%ymm" LO \
  "\n\t"                                  \
  "vpand (%[nib]), %%ymm" HI ", %%ymm" HI "\n\t"
// the u8 lookups in ymm R added as u16 into accumulator A (even + 256 odd bytes), their odd bytes into B
#define MEDQK_LUT4_WIDEN(R, A, B)     \
  "vpaddw %%ymm" R ", %[" A "], %[" A \
  "]\n\t"                             \
  "vpsrlw $8, %%ymm" R ", %%ymm" R    \
  "\n\t"                              \
  "vpaddw %%ymm" R ", %[" B "], %[" B "]\n\t"
#define MEDQK_LUT4_QUERY2(T0, T1, LA, LB, HA, HB) \
  "vmovdqu " T0                                   \
  ", %%ymm12\n\t"                                 \
  "vpshufb %%ymm8, %%ymm12, %%ymm13\n\t"          \
  "vpshufb %%ymm9, %%ymm12, %%ymm14\n\t"          \
  "vmovdqu " T1                                   \
  ", %%ymm12\n\t"                                 \
  "vpshufb %%ymm10, %%ymm12, %%ymm15\n\t"         \
  "vpaddb %%ymm15, %%ymm13, %%ymm13\n\t"          \
  "vpshufb %%ymm11, %%ymm12, %%ymm15\n\t"         \
  "vpaddb %%ymm15, %%ymm14, %%ymm14\n\t" MEDQK_LUT4_WIDEN("13", LA, LB) MEDQK_LUT4_WIDEN("14", HA, HB)
#define MEDQK_LUT4_QUERY1(T0, LA, LB, HA, HB) \
  "vmovdqu " T0                               \
  ", %%ymm12\n\t"                             \
  "vpshufb %%ymm8, %%ymm12, %%ymm13\n\t"      \
  "vpshufb %%ymm9, %%ymm12, %%ymm14\n\t" MEDQK_LUT4_WIDEN("13", LA, LB) MEDQK_LUT4_WIDEN("14", HA, HB)
// steps of two rows: codes and tables advance 64 bytes per step, [n] counts the steps down
#define MEDQK_LUT4_LOOP(BODY) \
  "1:\n\t" BODY               \
  "add $64, %[c]\n\t"         \
  "add $64, %[t]\n\t"         \
  "dec %[n]\n\t"              \
  "jnz 1b\n\t"
#define MEDQK_LUT4_CLOBBERS "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc"

template <int NQ>
inline void accumulate_pairs(const uint8_t* codes, const uint8_t* lut, std::size_t lut_stride, std::size_t pairs,
                             __m256i* lo_a, __m256i* lo_b, __m256i* hi_a, __m256i* hi_b) {
  alignas(32) static const uint8_t kNibble[32] = {15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
                                                  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15};
  const uint8_t* nib = kNibble;
  std::size_t steps = pairs / 2;
  if constexpr (NQ == 1) {
    if (steps != 0) {
      __asm__ volatile(
          MEDQK_LUT4_LOOP(MEDQK_LUT4_LOAD2 MEDQK_LUT4_QUERY2("(%[t])", "32(%[t])", "la0", "lb0", "ha0", "hb0"))
          : [c] "+r"(codes), [t] "+r"(lut), [n] "+r"(steps), [la0] "+x"(lo_a[0]), [lb0] "+x"(lo_b[0]),
            [ha0] "+x"(hi_a[0]), [hb0] "+x"(hi_b[0])
          : [nib] "r"(nib)
          : MEDQK_LUT4_CLOBBERS);
    }
    if (pairs & 1) {
      __asm__ volatile(MEDQK_LUT4_CODES1 MEDQK_LUT4_QUERY1("(%[t])", "la0", "lb0", "ha0", "hb0")
                       : [la0] "+x"(lo_a[0]), [lb0] "+x"(lo_b[0]), [ha0] "+x"(hi_a[0]), [hb0] "+x"(hi_b[0])
                       : [c] "r"(codes), [t] "r"(lut), [nib] "r"(nib)
                       : MEDQK_LUT4_CLOBBERS);
    }
  } else {
    static_assert(NQ == 2, "one or two queries");
    if (steps != 0) {
      __asm__ volatile(
          MEDQK_LUT4_LOOP(MEDQK_LUT4_CODES2 MEDQK_LUT4_QUERY2("(%[t])", "32(%[t])", "la0", "lb0", "ha0", "hb0")
                              MEDQK_LUT4_QUERY2("(%[t],%[stride])", "32(%[t],%[stride])", "la1", "lb1", "ha1", "hb1"))
          : [c] "+r"(codes), [t] "+r"(lut), [n] "+r"(steps), [la0] "+x"(lo_a[0]), [lb0] "+x"(lo_b[0]),
            [ha0] "+x"(hi_a[0]), [hb0] "+x"(hi_b[0]), [la1] "+x"(lo_a[1]), [lb1] "+x"(lo_b[1]), [ha1] "+x"(hi_a[1]),
            [hb1] "+x"(hi_b[1])
          : [nib] "r"(nib), [stride] "r"(lut_stride)
          : MEDQK_LUT4_CLOBBERS);
    }
    if (pairs & 1) {
      __asm__ volatile(MEDQK_LUT4_CODES1 MEDQK_LUT4_QUERY1("(%[t])", "la0", "lb0", "ha0", "hb0")
                           MEDQK_LUT4_QUERY1("(%[t],%[stride])", "la1", "lb1", "ha1", "hb1")
                       : [la0] "+x"(lo_a[0]), [lb0] "+x"(lo_b[0]), [ha0] "+x"(hi_a[0]), [hb0] "+x"(hi_b[0]),
                         [la1] "+x"(lo_a[1]), [lb1] "+x"(lo_b[1]), [ha1] "+x"(hi_a[1]), [hb1] "+x"(hi_b[1])
                       : [c] "r"(codes), [t] "r"(lut), [nib] "r"(nib), [stride] "r"(lut_stride)
                       : MEDQK_LUT4_CLOBBERS);
    }
  }
}
#undef MEDQK_LUT4_CODES2
#undef MEDQK_LUT4_LOAD2
#undef MEDQK_LUT4_QUERY2
#undef MEDQK_LUT4_CODES1
#undef MEDQK_LUT4_QUERY1
#undef MEDQK_LUT4_SPLIT
#undef MEDQK_LUT4_WIDEN
#undef MEDQK_LUT4_LOOP
#undef MEDQK_LUT4_CLOBBERS

// The end of a block when its sums fit 16 bits (at most 256 pairs of subspaces: 127 * 512 < 65536): the
// even / odd halves and the two subspaces of each pair are folded, put in vector order and tested against
// the threshold in 16-bit lanes, and only a block with a candidate is widened and stored (the selection
// reads no other; kernels/lut4_scan.h). The 32-bit path below costs twice the instructions and keeps its
// totals on the stack.
inline uint32_t finish_block16(__m256i lo_a, __m256i lo_b, __m256i hi_a, __m256i hi_b, uint32_t* out,
                               int32_t threshold) {
  const __m256i lo_even = _mm256_sub_epi16(lo_a, _mm256_slli_epi16(lo_b, 8));
  const __m256i hi_even = _mm256_sub_epi16(hi_a, _mm256_slli_epi16(hi_b, 8));
  // per register, the 128-bit halves hold subspaces 2p and 2p + 1: e = vectors 0, 2, .., 14 | 16, .., 30
  const __m256i e = _mm256_add_epi16(_mm256_permute2x128_si256(lo_even, hi_even, 0x20),
                                     _mm256_permute2x128_si256(lo_even, hi_even, 0x31));
  const __m256i o =
      _mm256_add_epi16(_mm256_permute2x128_si256(lo_b, hi_b, 0x20), _mm256_permute2x128_si256(lo_b, hi_b, 0x31));
  const __m256i a = _mm256_unpacklo_epi16(e, o);  // vectors 0..7 | 16..23
  const __m256i c = _mm256_unpackhi_epi16(e, o);  // vectors 8..15 | 24..31
  uint32_t mask;
  if (threshold < 0) {
    mask = 0xffffffffu;
  } else if (threshold >= 65535) {
    mask = 0;
  } else {  // sum > threshold as unsigned 16-bit: max(sum, threshold + 1) == sum
    const __m256i t = _mm256_set1_epi16(static_cast<short>(threshold + 1));
    const __m256i ga = _mm256_cmpeq_epi16(_mm256_max_epu16(a, t), a);
    const __m256i gc = _mm256_cmpeq_epi16(_mm256_max_epu16(c, t), c);
    // the signed pack keeps 0 / -1 and, per 128-bit half, puts a's 8 before c's: bytes in vector order
    mask = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_packs_epi16(ga, gc)));
  }
  if (mask != 0) {
    __m256i* o32 = reinterpret_cast<__m256i*>(out);
    _mm256_storeu_si256(o32, _mm256_cvtepu16_epi32(_mm256_castsi256_si128(a)));
    _mm256_storeu_si256(o32 + 1, _mm256_cvtepu16_epi32(_mm256_castsi256_si128(c)));
    _mm256_storeu_si256(o32 + 2, _mm256_cvtepu16_epi32(_mm256_extracti128_si256(a, 1)));
    _mm256_storeu_si256(o32 + 3, _mm256_cvtepu16_epi32(_mm256_extracti128_si256(c, 1)));
  }
  return mask;
}

// NQ queries over the same codes (two at most: 4 accumulators per query, and AVX2 has 16 registers):
// each row of codes is loaded and split into nibbles once for all of them.
template <int NQ>
void scan_queries(const uint8_t* lut, std::size_t lut_stride, std::size_t d_even, const uint8_t* packed,
                  std::size_t nblocks, uint32_t* out, std::size_t out_stride, const int32_t* thresholds,
                  uint32_t* masks) {
  const std::size_t pairs = d_even / 2;
  const std::size_t block_bytes = 16 * d_even;
  if (pairs <= kFlushPairs) {
    for (std::size_t b = 0; b < nblocks; ++b) {
      __m256i lo_a[NQ], lo_b[NQ], hi_a[NQ], hi_b[NQ];
      for (int j = 0; j < NQ; ++j) lo_a[j] = lo_b[j] = hi_a[j] = hi_b[j] = _mm256_setzero_si256();
      accumulate_pairs<NQ>(packed + b * block_bytes, lut, lut_stride, pairs, lo_a, lo_b, hi_a, hi_b);
      for (int j = 0; j < NQ; ++j) {
        masks[j * nblocks + b] =
            finish_block16(lo_a[j], lo_b[j], hi_a[j], hi_b[j], out + j * out_stride + b * 32, thresholds[j]);
      }
    }
    return;
  }
  for (std::size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = packed + b * block_bytes;
    Lut4Totals<NQ> totals;
    for (std::size_t p0 = 0; p0 < pairs; p0 += kFlushPairs) {
      const std::size_t p1 = std::min(pairs, p0 + kFlushPairs);
      __m256i lo_a[NQ], lo_b[NQ], hi_a[NQ], hi_b[NQ];
      for (int j = 0; j < NQ; ++j) lo_a[j] = lo_b[j] = hi_a[j] = hi_b[j] = _mm256_setzero_si256();
      accumulate_pairs<NQ>(block + 32 * p0, lut + 32 * p0, lut_stride, p1 - p0, lo_a, lo_b, hi_a, hi_b);
      for (int j = 0; j < NQ; ++j) totals.add_halves(j, lo_a[j], lo_b[j], hi_a[j], hi_b[j]);
    }
    totals.store(b, nblocks, out, out_stride, thresholds, masks);
  }
}

}  // namespace

void lut4_scan(const uint8_t* lut, std::size_t lut_stride, std::size_t nq, std::size_t d_even, const uint8_t* packed,
               std::size_t nblocks, uint32_t* out, std::size_t out_stride, const int32_t* thresholds, uint32_t* masks) {
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

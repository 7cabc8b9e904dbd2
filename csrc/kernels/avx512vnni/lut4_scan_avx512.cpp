// AVX-512BW 4-bit table scan for the avx512vnni path: the AVX2 algorithm (kernels/avx2/lut4_scan_avx2.cpp)
// on 64-byte registers, four subspaces per vpshufb, two rows' lookups added in 8 bits (entries <= 127).
// Same 16-bit accumulation (even bytes = acc - odd << 8). Up to 512 subspaces a vector's total fits in 16
// bits and the block is finished there (finish_block16); beyond, the accumulators are flushed to 32 bits
// every 256 rows (each 16-bit lane adds one table entry <= 127 per row), so the sums are exact.
// GCC 12's AVX-512 headers build some intrinsics on _mm512_undefined_*(), which -Wmaybe-uninitialized
// reports falsely (GCC bug 105593); the warning is off for this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "kernels/lut4_scan.h"

namespace medqk {
namespace kernels {
namespace avx512vnni {

namespace {
#include "kernels/lut4_store_x86.h"

constexpr std::size_t kFlushIters = 256;
constexpr std::size_t kPrefetchBytes = 4096;

// u16 lanes of the four 128-bit quarters (one subspace each) summed into u32 for the 8 vectors they hold
inline __m256i fold4(__m512i v) {
  const __m512i lo = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(v));        // quarters 0, 1
  const __m512i hi = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1));  // quarters 2, 3
  const __m512i s = _mm512_add_epi32(lo, hi);
  return _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
}

// Adds rows [q0, q1) of 64 bytes (four subspaces each) of one block, looked up in NQ tables, into the 16-bit
// accumulators (lo: vectors 0..15, hi: 16..31; a = even + 256 odd vectors, b = odd vectors; per 128-bit
// quarter one subspace of the row). The codes of a row are loaded and split into nibbles once for all NQ
// queries.
template <int NQ>
inline void accumulate_quads(const uint8_t* block, const uint8_t* lut, std::size_t lut_stride, std::size_t q0,
                             std::size_t q1, __m512i* lo_a, __m512i* lo_b, __m512i* hi_a, __m512i* hi_b) {
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  std::size_t q = q0;
  for (; q + 2 <= q1; q += 2) {
    // two rows: the same 32 vectors, 8 subspaces; table entries <= 127, so the lookups of the two rows
    // are added in 8 bits (<= 254) before the 16-bit accumulation: one widening for two rows
    // the codes stream from memory once per batch of queries: fetch the lines kPrefetchBytes ahead (the
    // next blocks follow this one), or the single-query scan waits on most loads (1M x 48 B, nq = 1)
    _mm_prefetch(reinterpret_cast<const char*>(block + 64 * q + kPrefetchBytes), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(block + 64 * q + 64 + kPrefetchBytes), _MM_HINT_T0);
    const __m512i codes0 = _mm512_loadu_si512(block + 64 * q);
    const __m512i codes1 = _mm512_loadu_si512(block + 64 * q + 64);
    const __m512i c0_lo = _mm512_and_si512(codes0, nibble);
    const __m512i c0_hi = _mm512_and_si512(_mm512_srli_epi16(codes0, 4), nibble);
    const __m512i c1_lo = _mm512_and_si512(codes1, nibble);
    const __m512i c1_hi = _mm512_and_si512(_mm512_srli_epi16(codes1, 4), nibble);
#pragma GCC unroll 4
    for (int j = 0; j < NQ; ++j) {
      const __m512i t0 = _mm512_loadu_si512(lut + j * lut_stride + 64 * q);
      const __m512i t1 = _mm512_loadu_si512(lut + j * lut_stride + 64 * q + 64);
      const __m512i r_lo = _mm512_add_epi8(_mm512_shuffle_epi8(t0, c0_lo), _mm512_shuffle_epi8(t1, c1_lo));
      const __m512i r_hi = _mm512_add_epi8(_mm512_shuffle_epi8(t0, c0_hi), _mm512_shuffle_epi8(t1, c1_hi));
      lo_a[j] = _mm512_add_epi16(lo_a[j], r_lo);
      lo_b[j] = _mm512_add_epi16(lo_b[j], _mm512_srli_epi16(r_lo, 8));
      hi_a[j] = _mm512_add_epi16(hi_a[j], r_hi);
      hi_b[j] = _mm512_add_epi16(hi_b[j], _mm512_srli_epi16(r_hi, 8));
    }
  }
  for (; q < q1; ++q) {
    const __m512i codes = _mm512_loadu_si512(block + 64 * q);
    const __m512i c_lo = _mm512_and_si512(codes, nibble);
    const __m512i c_hi = _mm512_and_si512(_mm512_srli_epi16(codes, 4), nibble);
#pragma GCC unroll 4
    for (int j = 0; j < NQ; ++j) {
      const __m512i table = _mm512_loadu_si512(lut + j * lut_stride + 64 * q);
      const __m512i r_lo = _mm512_shuffle_epi8(table, c_lo);
      const __m512i r_hi = _mm512_shuffle_epi8(table, c_hi);
      lo_a[j] = _mm512_add_epi16(lo_a[j], r_lo);
      lo_b[j] = _mm512_add_epi16(lo_b[j], _mm512_srli_epi16(r_lo, 8));
      hi_a[j] = _mm512_add_epi16(hi_a[j], r_hi);
      hi_b[j] = _mm512_add_epi16(hi_b[j], _mm512_srli_epi16(r_hi, 8));
    }
  }
}

// Lane u of the result <- lane kNatural[u] of [even 0..14 | odd 1..15 | even 16..30 | odd 17..31].
alignas(64) constexpr uint16_t kNatural[32] = {0,  8,  1,  9,  2,  10, 3,  11, 4,  12, 5,  13, 6,  14, 7,  15,
                                               16, 24, 17, 25, 18, 26, 19, 27, 20, 28, 21, 29, 22, 30, 23, 31};

// Finishes a block in 16 bits when every vector's total is < 2^16 (d_even <= 512, entries <= 127): the four
// quarters (subspaces) of the even / odd accumulators are summed by a 4 x 4 transpose of 128-bit lanes, put
// in vector order by one vpermw, compared with the threshold into the mask, and widened to uint32 and stored
// only when the block has a candidate (the contract of lut4_scan.h).
inline uint32_t finish_block16(__m512i lo_a, __m512i lo_b, __m512i hi_a, __m512i hi_b, uint32_t* out,
                               int32_t threshold) {
  const __m512i lo_even = _mm512_sub_epi16(lo_a, _mm512_slli_epi16(lo_b, 8));
  const __m512i hi_even = _mm512_sub_epi16(hi_a, _mm512_slli_epi16(hi_b, 8));
  // [A0+A2, A1+A3, B0+B2, B1+B3] for A = lo_even, B = lo_b; the same for C = hi_even, D = hi_b
  const __m512i ab =
      _mm512_add_epi16(_mm512_shuffle_i64x2(lo_even, lo_b, 0x44), _mm512_shuffle_i64x2(lo_even, lo_b, 0xee));
  const __m512i cd =
      _mm512_add_epi16(_mm512_shuffle_i64x2(hi_even, hi_b, 0x44), _mm512_shuffle_i64x2(hi_even, hi_b, 0xee));
  // [sum A, sum B, sum C, sum D]: even vectors 0..14, odd 1..15, even 16..30, odd 17..31
  const __m512i sums = _mm512_add_epi16(_mm512_shuffle_i64x2(ab, cd, 0x88), _mm512_shuffle_i64x2(ab, cd, 0xdd));
  const __m512i v = _mm512_permutexvar_epi16(_mm512_load_si512(kNatural), sums);
  uint32_t mask;
  if (threshold < 0) {
    mask = 0xffffffffu;
  } else if (threshold >= 65535) {
    mask = 0;
  } else {
    mask = static_cast<uint32_t>(_mm512_cmpgt_epu16_mask(v, _mm512_set1_epi16(static_cast<short>(threshold))));
  }
  if (mask != 0) {
    _mm512_storeu_si512(out, _mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)));
    _mm512_storeu_si512(out + 16, _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)));
  }
  return mask;
}

// NQ queries (<= kLut4MaxQueries) over the same codes: each 64-byte row of codes is loaded and split into
// nibbles once and looked up in the NQ tables, so a batch of queries shares the loads and the masks.
template <int NQ>
void scan_queries(const uint8_t* lut, std::size_t lut_stride, std::size_t d_even, const uint8_t* packed,
                  std::size_t nblocks, uint32_t* out, std::size_t out_stride, const int32_t* thresholds,
                  uint32_t* masks) {
  const std::size_t pairs = d_even / 2;
  const std::size_t quads = pairs / 2;  // iterations of 64 bytes
  const std::size_t block_bytes = 16 * d_even;
  const __m256i nibble256 = _mm256_set1_epi8(0x0f);
  if (d_even <= 512) {
    for (std::size_t b = 0; b < nblocks; ++b) {
      const uint8_t* block = packed + b * block_bytes;
      __m512i lo_a[NQ], lo_b[NQ], hi_a[NQ], hi_b[NQ];
      for (int j = 0; j < NQ; ++j) lo_a[j] = lo_b[j] = hi_a[j] = hi_b[j] = _mm512_setzero_si512();
      accumulate_quads<NQ>(block, lut, lut_stride, 0, quads, lo_a, lo_b, hi_a, hi_b);
      if (pairs & 1) {  // the last pair of subspaces, 32 bytes, into quarters 0 and 1
        const std::size_t p = pairs - 1;
        const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 32 * p));
        const __m512i c_lo = _mm512_zextsi256_si512(_mm256_and_si256(codes, nibble256));
        const __m512i c_hi = _mm512_zextsi256_si512(_mm256_and_si256(_mm256_srli_epi16(codes, 4), nibble256));
        for (int j = 0; j < NQ; ++j) {
          const __m512i table = _mm512_zextsi256_si512(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + j * lut_stride + 32 * p)));
          const __m512i r_lo = _mm512_shuffle_epi8(table, c_lo);  // quarters 2, 3: zero table, zero result
          const __m512i r_hi = _mm512_shuffle_epi8(table, c_hi);
          lo_a[j] = _mm512_add_epi16(lo_a[j], r_lo);
          lo_b[j] = _mm512_add_epi16(lo_b[j], _mm512_srli_epi16(r_lo, 8));
          hi_a[j] = _mm512_add_epi16(hi_a[j], r_hi);
          hi_b[j] = _mm512_add_epi16(hi_b[j], _mm512_srli_epi16(r_hi, 8));
        }
      }
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
    for (std::size_t q0 = 0; q0 < quads; q0 += kFlushIters) {
      const std::size_t q1 = std::min(quads, q0 + kFlushIters);
      __m512i lo_a[NQ], lo_b[NQ], hi_a[NQ], hi_b[NQ];
      for (int j = 0; j < NQ; ++j) lo_a[j] = lo_b[j] = hi_a[j] = hi_b[j] = _mm512_setzero_si512();
      accumulate_quads<NQ>(block, lut, lut_stride, q0, q1, lo_a, lo_b, hi_a, hi_b);
      for (int j = 0; j < NQ; ++j) {
        totals.add(j, fold4(_mm512_sub_epi16(lo_a[j], _mm512_slli_epi16(lo_b[j], 8))), fold4(lo_b[j]),
                   fold4(_mm512_sub_epi16(hi_a[j], _mm512_slli_epi16(hi_b[j], 8))), fold4(hi_b[j]));
      }
    }
    if (pairs & 1) {  // the last pair of subspaces, 32 bytes
      const std::size_t p = pairs - 1;
      const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 32 * p));
      const __m256i c_lo = _mm256_and_si256(codes, nibble256);
      const __m256i c_hi = _mm256_and_si256(_mm256_srli_epi16(codes, 4), nibble256);
      for (int j = 0; j < NQ; ++j) {
        const __m256i table = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + j * lut_stride + 32 * p));
        const __m256i r_lo = _mm256_shuffle_epi8(table, c_lo);
        const __m256i r_hi = _mm256_shuffle_epi8(table, c_hi);
        totals.add_halves(j, r_lo, _mm256_srli_epi16(r_lo, 8), r_hi, _mm256_srli_epi16(r_hi, 8));
      }
    }
    totals.store(b, nblocks, out, out_stride, thresholds, masks);
  }
}

}  // namespace

#include "kernels/avx512vnni/lut4_scan_by_nq.h"

}  // namespace avx512vnni
}  // namespace kernels
}  // namespace medqk

// AVX-512 VBMI 4-bit table scan (namespace avx512vbmi, dispatched on the avx512vnni path where the CPU has
// and later). Same packed layout and contract as every lut4 kernel (kernels/lut4_scan.h); a different way to
// add the lookups up:
//   - one vpermb per 64-byte row of codes (four subspaces x 16 bytes, shared by the group's queries)
//     transposes it so that the four sub-codes of a vector sit in adjacent bytes (byte 4 v + s);
//   - the low / high nibbles, each OR-ed with 16 s (one vpternlogd), index the row's 64-byte table
//     (four subspaces x 16 entries) with one vpermb per 64 lookups, where vpshufb looks up within 16 bytes;
//   - two rows' lookups (entries <= 127) are added in 8 bits, and vpdpbusd against ones adds the four
//     adjacent bytes of each vector into its 32-bit sum.
// Per 128 lookups of a query: 2 vpermb + 1 vpaddb + 1 vpdpbusd, against 4 vpshufb + 2 vpaddb + 4 vpaddw +
// 2 vpsrlw in the vpshufb kernel (kernels/avx512vnni/lut4_scan_avx512.cpp), whose 16-bit even / odd
// accumulators also need a transpose to finish a block. The sums are 32-bit from the start: exact for any
// number of subspaces, no flush. Dispatch prefers this kernel where the CPU has VBMI.
// GCC 12 reports its own _mm512_undefined_*() in the vpermb intrinsic as maybe-uninitialized (GCC bug
// 105593): the warning is off for this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/lut4_scan.h"

namespace medqk {
namespace kernels {
namespace avx512vbmi {

namespace {
// Queries in groups of 2 to 4 fetch the code lines kPrefetchBytes ahead. A single query does not: its
// scan is the one that streams the codes from memory in order, the pattern the hardware prefetchers
// follow on their own, and software prefetches there compete with them for the line fill buffers.
constexpr std::size_t kPrefetchBytes = 4096;

// byte 4 v + s <- byte 16 s + v of a row (v < 16 vectors, s < 4 subspaces)
alignas(64) constexpr uint8_t kTranspose[64] = {0,  16, 32, 48, 1,  17, 33, 49, 2,  18, 34, 50, 3,  19, 35, 51,
                                                4,  20, 36, 52, 5,  21, 37, 53, 6,  22, 38, 54, 7,  23, 39, 55,
                                                8,  24, 40, 56, 9,  25, 41, 57, 10, 26, 42, 58, 11, 27, 43, 59,
                                                12, 28, 44, 60, 13, 29, 45, 61, 14, 30, 46, 62, 15, 31, 47, 63};
// 16 s for byte 4 v + s: the start of subspace s's entries in the row's table
alignas(64) constexpr uint8_t kSubspaceBase[64] = {0, 16, 32, 48, 0, 16, 32, 48, 0, 16, 32, 48, 0, 16, 32, 48,
                                                   0, 16, 32, 48, 0, 16, 32, 48, 0, 16, 32, 48, 0, 16, 32, 48,
                                                   0, 16, 32, 48, 0, 16, 32, 48, 0, 16, 32, 48, 0, 16, 32, 48,
                                                   0, 16, 32, 48, 0, 16, 32, 48, 0, 16, 32, 48, 0, 16, 32, 48};

struct RowIndex {
  __m512i lo, hi;  // table indices of vectors 0..15 (low nibbles) and 16..31 (high nibbles)
};

inline RowIndex row_index(__m512i codes, __m512i transpose, __m512i base, __m512i nibble) {
  const __m512i t = _mm512_permutexvar_epi8(transpose, codes);
  // (x & 0x0f) | 16 s in one vpternlogd: imm 0xEA = (A & B) | C
  return {_mm512_ternarylogic_epi32(t, nibble, base, 0xEA),
          _mm512_ternarylogic_epi32(_mm512_srli_epi16(t, 4), nibble, base, 0xEA)};
}

template <int NQ>
void scan_queries(const uint8_t* lut, std::size_t lut_stride, std::size_t d_even, const uint8_t* packed,
                  std::size_t nblocks, uint32_t* out, std::size_t out_stride, const int32_t* thresholds,
                  uint32_t* masks) {
  const std::size_t pairs = d_even / 2;
  const std::size_t rows = pairs / 2;  // full 64-byte rows; an odd pair leaves a 32-byte half row
  const std::size_t block_bytes = 16 * d_even;
  const __m512i transpose = _mm512_load_si512(kTranspose);
  const __m512i base = _mm512_load_si512(kSubspaceBase);
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  const __m512i ones = _mm512_set1_epi8(1);
  for (std::size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = packed + b * block_bytes;
    __m512i lo[NQ], hi[NQ];  // 32-bit sums of vectors 0..15 and 16..31
    for (int j = 0; j < NQ; ++j) lo[j] = hi[j] = _mm512_setzero_si512();
    std::size_t r = 0;
    for (; r + 2 <= rows; r += 2) {
      if (NQ > 1) {
        _mm_prefetch(reinterpret_cast<const char*>(block + 64 * r + kPrefetchBytes), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(block + 64 * r + 64 + kPrefetchBytes), _MM_HINT_T0);
      }
      const RowIndex i0 = row_index(_mm512_loadu_si512(block + 64 * r), transpose, base, nibble);
      const RowIndex i1 = row_index(_mm512_loadu_si512(block + 64 * r + 64), transpose, base, nibble);
#pragma GCC unroll 4
      for (int j = 0; j < NQ; ++j) {
        const __m512i t0 = _mm512_loadu_si512(lut + j * lut_stride + 64 * r);
        const __m512i t1 = _mm512_loadu_si512(lut + j * lut_stride + 64 * r + 64);
        // two lookups <= 127 each: their sum fits a byte
        const __m512i s_lo = _mm512_add_epi8(_mm512_permutexvar_epi8(i0.lo, t0), _mm512_permutexvar_epi8(i1.lo, t1));
        const __m512i s_hi = _mm512_add_epi8(_mm512_permutexvar_epi8(i0.hi, t0), _mm512_permutexvar_epi8(i1.hi, t1));
        lo[j] = _mm512_dpbusd_epi32(lo[j], s_lo, ones);
        hi[j] = _mm512_dpbusd_epi32(hi[j], s_hi, ones);
      }
    }
    // a last full row, then a last half row (its upper 32 bytes: codes 0 looked up in zero table entries)
    for (int half = 0; half < 2; ++half) {
      const bool have = half == 0 ? r < rows : (pairs & 1) != 0;
      if (!have) continue;
      const std::size_t off = 64 * r;
      const __m512i codes =
          half == 0 ? _mm512_loadu_si512(block + off)
                    : _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + off)));
      const RowIndex idx = row_index(codes, transpose, base, nibble);
      for (int j = 0; j < NQ; ++j) {
        const uint8_t* t = lut + j * lut_stride + off;
        const __m512i table = half == 0
                                  ? _mm512_loadu_si512(t)
                                  : _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t)));
        lo[j] = _mm512_dpbusd_epi32(lo[j], _mm512_permutexvar_epi8(idx.lo, table), ones);
        hi[j] = _mm512_dpbusd_epi32(hi[j], _mm512_permutexvar_epi8(idx.hi, table), ones);
      }
      ++r;
    }
    for (int j = 0; j < NQ; ++j) {
      const __m512i thr = _mm512_set1_epi32(thresholds[j]);
      const uint32_t mask = static_cast<uint32_t>(_mm512_cmpgt_epi32_mask(lo[j], thr)) |
                            static_cast<uint32_t>(_mm512_cmpgt_epi32_mask(hi[j], thr)) << 16;
      masks[j * nblocks + b] = mask;
      if (mask != 0) {
        uint32_t* o = out + j * out_stride + b * 32;
        _mm512_storeu_si512(o, lo[j]);
        _mm512_storeu_si512(o + 16, hi[j]);
      }
    }
  }
}

}  // namespace

#include "kernels/avx512vnni/lut4_scan_by_nq.h"

}  // namespace avx512vbmi
}  // namespace kernels
}  // namespace medqk

// 8-bit PQ scan with AVX-512 VBMI (compiled with -mavx512vbmi on this file only; dispatched only where
// the CPU reports it). A 256-entry table is four registers: vpermi2b looks 64 codes up in entries
// 0..127 and in 128..255, and the codes' top bit (vpmovb2m) picks between the two. Two subspaces'
// lookups (each <= 127) add in 8 bits, then widen into even / odd uint16 lanes; the tables of a
// subspace pair are loaded once for up to four blocks of 64 vectors.
#include <immintrin.h>

#include "kernels/pq8_scan.h"

namespace medqk {
namespace kernels {
namespace avx512vnni {

namespace {

inline __m512i lookup(__m512i c, __m512i t0, __m512i t1, __m512i t2, __m512i t3) {
  const __m512i lo = _mm512_permutex2var_epi8(t0, c, t1);
  const __m512i hi = _mm512_permutex2var_epi8(t2, c, t3);
  return _mm512_mask_blend_epi8(_mm512_movepi8_mask(c), lo, hi);
}

template <int NB>
void scan_blocks(const uint8_t* lut, std::size_t m, const uint8_t* packed, uint16_t thr, uint16_t* sums,
                 uint64_t* masks) {
  const std::size_t stride = kPq8Block * m;
  const __m512i low = _mm512_set1_epi16(0x00ff);
  __m512i even[NB], odd[NB];
  for (int i = 0; i < NB; ++i) even[i] = odd[i] = _mm512_setzero_si512();
  std::size_t s = 0;
  for (; s + 2 <= m; s += 2) {
    const uint8_t* t = lut + s * 256;
    const __m512i a0 = _mm512_loadu_si512(t), a1 = _mm512_loadu_si512(t + 64);
    const __m512i a2 = _mm512_loadu_si512(t + 128), a3 = _mm512_loadu_si512(t + 192);
    const __m512i b0 = _mm512_loadu_si512(t + 256), b1 = _mm512_loadu_si512(t + 320);
    const __m512i b2 = _mm512_loadu_si512(t + 384), b3 = _mm512_loadu_si512(t + 448);
    for (int i = 0; i < NB; ++i) {
      const uint8_t* row = packed + i * stride + s * kPq8Block;
      // the same rows of the next NB blocks: the codes stream from memory (single-query scans)
      _mm_prefetch(reinterpret_cast<const char*>(row + NB * stride), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(row + NB * stride + kPq8Block), _MM_HINT_T0);
      const __m512i r = _mm512_add_epi8(lookup(_mm512_loadu_si512(row), a0, a1, a2, a3),
                                        lookup(_mm512_loadu_si512(row + kPq8Block), b0, b1, b2, b3));
      even[i] = _mm512_add_epi16(even[i], _mm512_and_si512(r, low));
      odd[i] = _mm512_add_epi16(odd[i], _mm512_srli_epi16(r, 8));
    }
  }
  if (s < m) {
    const uint8_t* t = lut + s * 256;
    const __m512i a0 = _mm512_loadu_si512(t), a1 = _mm512_loadu_si512(t + 64);
    const __m512i a2 = _mm512_loadu_si512(t + 128), a3 = _mm512_loadu_si512(t + 192);
    for (int i = 0; i < NB; ++i) {
      const __m512i r = lookup(_mm512_loadu_si512(packed + i * stride + s * kPq8Block), a0, a1, a2, a3);
      even[i] = _mm512_add_epi16(even[i], _mm512_and_si512(r, low));
      odd[i] = _mm512_add_epi16(odd[i], _mm512_srli_epi16(r, 8));
    }
  }
  // vector 2w is even lane w, vector 2w + 1 odd lane w: interleave back into vector order
  alignas(64) static const uint16_t kInterleave[64] = {0,  32, 1,  33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
                                                       8,  40, 9,  41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47,
                                                       16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
                                                       24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
  const __m512i idx_lo = _mm512_load_si512(kInterleave), idx_hi = _mm512_load_si512(kInterleave + 32);
  const __m512i vthr = _mm512_set1_epi16(static_cast<short>(thr));
  for (int i = 0; i < NB; ++i) {
    const __m512i lo = _mm512_permutex2var_epi16(even[i], idx_lo, odd[i]);
    const __m512i hi = _mm512_permutex2var_epi16(even[i], idx_hi, odd[i]);
    _mm512_storeu_si512(sums + i * kPq8Block, lo);
    _mm512_storeu_si512(sums + i * kPq8Block + 32, hi);
    masks[i] = static_cast<uint64_t>(_mm512_cmpge_epu16_mask(lo, vthr)) |
               (static_cast<uint64_t>(_mm512_cmpge_epu16_mask(hi, vthr)) << 32);
  }
}

}  // namespace

void pq8_scan(const uint8_t* lut, std::size_t m, const uint8_t* packed, std::size_t nblocks, uint16_t thr,
              uint16_t* sums, uint64_t* masks) {
  const std::size_t stride = kPq8Block * m;
  std::size_t b = 0;
  for (; b + 4 <= nblocks; b += 4) scan_blocks<4>(lut, m, packed + b * stride, thr, sums + b * kPq8Block, masks + b);
  for (; b < nblocks; ++b) scan_blocks<1>(lut, m, packed + b * stride, thr, sums + b * kPq8Block, masks + b);
}

}  // namespace avx512vnni
}  // namespace kernels
}  // namespace medqk

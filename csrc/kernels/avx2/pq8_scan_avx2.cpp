// 8-bit PQ scans with AVX2 (kernels/pq8_scan.h).
//
// One query (pq8_scan): AVX2 has no 256-entry byte lookup (vpgatherdd measured slower on Zen 3), so the
// lookups are scalar loads; what this version saves over the portable loop is everything around them:
// eight vectors' codes of a subspace come in one 64-bit load, their eight sums stay in registers across
// the subspaces (the portable loop reloads and stores a uint16 sum per lookup), and the thresholds are
// compared 16 at a time.
//
// The group scan (pq8_scan_group): 16 queries over the same codes. AVX2's byte
// shuffle reaches 16 table entries, not 256, so instead of looking codes up in a register the code byte
// addresses memory: the group's tables are stored query-minor, and one 16-byte load (vpmovzxbw) brings
// the entries of all 16 queries for that code, added into 16 uint16 lanes. Eight vectors are summed at
// once (eight independent accumulators); one compare against the 16 thresholds per vector finds the
// (vector, query) pairs to report, which are few once the queries' top-k have filled.
#include <immintrin.h>

#include "kernels/pq8_scan.h"

namespace medqk {
namespace kernels {
namespace avx2 {

namespace {
constexpr int kVectors = 8;  // vectors summed together
static_assert(kPq8Group == 16, "one ymm of uint16 per vector");
}  // namespace

void pq8_scan(const uint8_t* lut, std::size_t m, const uint8_t* packed, std::size_t nblocks, uint16_t thr,
              uint16_t* sums, uint64_t* masks) {
  const __m256i vbelow = _mm256_set1_epi16(static_cast<short>((thr > 32767 ? 32767 : thr) - 1));
  for (std::size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = packed + b * kPq8Block * m;
    uint16_t* out = sums + b * kPq8Block;
    for (std::size_t j = 0; j < kPq8Block; j += 8) {
      uint32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
      const uint8_t* row = block + j;
      const uint8_t* t = lut;
      for (std::size_t s = 0; s < m; ++s, row += kPq8Block, t += 256) {
        uint64_t w;
        __builtin_memcpy(&w, row, 8);
        const uint32_t lo = static_cast<uint32_t>(w), hi = static_cast<uint32_t>(w >> 32);
        a0 += t[lo & 255];
        a1 += t[(lo >> 8) & 255];
        a2 += t[(lo >> 16) & 255];
        a3 += t[lo >> 24];
        a4 += t[hi & 255];
        a5 += t[(hi >> 8) & 255];
        a6 += t[(hi >> 16) & 255];
        a7 += t[hi >> 24];
      }
      out[j] = static_cast<uint16_t>(a0);
      out[j + 1] = static_cast<uint16_t>(a1);
      out[j + 2] = static_cast<uint16_t>(a2);
      out[j + 3] = static_cast<uint16_t>(a3);
      out[j + 4] = static_cast<uint16_t>(a4);
      out[j + 5] = static_cast<uint16_t>(a5);
      out[j + 6] = static_cast<uint16_t>(a6);
      out[j + 7] = static_cast<uint16_t>(a7);
    }
    // sums <= 127 * 256 < 2^15: signed compares with thr - 1; the 16-bit results packed to bytes (packs
    // interleaves the 128-bit halves, vpermq puts them back in order) give one mask bit per vector
    uint64_t mask = 0;
    for (int h = 0; h < 2; ++h) {
      const __m256i c0 = _mm256_cmpgt_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(out + 32 * h)), vbelow);
      const __m256i c1 =
          _mm256_cmpgt_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(out + 32 * h + 16)), vbelow);
      const __m256i packed8 = _mm256_permute4x64_epi64(_mm256_packs_epi16(c0, c1), 0xd8);
      mask |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(packed8))) << (32 * h);
    }
    masks[b] = mask;
  }
}

std::size_t pq8_scan_group(const uint8_t* lut_t, std::size_t m, const uint8_t* packed, std::size_t nblocks,
                           const uint16_t* thr, uint32_t* hits, uint16_t* hit_sums) {
  // sums <= 127 * 256 < 2^15: a signed compare with thr - 1 is sum >= thr (thr 0: every pair; thresholds
  // above every possible sum are lowered to 32767, which no sum reaches either)
  alignas(32) int16_t below[kPq8Group];
  for (std::size_t g = 0; g < kPq8Group; ++g) below[g] = static_cast<int16_t>((thr[g] > 32767 ? 32767 : thr[g]) - 1);
  const __m256i vbelow = _mm256_load_si256(reinterpret_cast<const __m256i*>(below));
  std::size_t cnt = 0;
  for (std::size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = packed + b * kPq8Block * m;
    for (std::size_t j = 0; j < kPq8Block; j += kVectors) {
      __m256i acc[kVectors];
      for (int u = 0; u < kVectors; ++u) acc[u] = _mm256_setzero_si256();
      const uint8_t* row = block + j;
      const uint8_t* t = lut_t;
      for (std::size_t s = 0; s < m; ++s, row += kPq8Block, t += 256 * kPq8Group) {
        for (int u = 0; u < kVectors; ++u) {
          const __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + row[u] * kPq8Group));
          acc[u] = _mm256_add_epi16(acc[u], _mm256_cvtepu8_epi16(e));
        }
      }
      for (int u = 0; u < kVectors; ++u) {
        // two mask bits per uint16 lane: keep the even ones
        unsigned mask = static_cast<unsigned>(_mm256_movemask_epi8(_mm256_cmpgt_epi16(acc[u], vbelow))) & 0x55555555u;
        if (mask == 0) continue;
        alignas(32) uint16_t sums[kPq8Group];
        _mm256_store_si256(reinterpret_cast<__m256i*>(sums), acc[u]);
        const uint32_t base = static_cast<uint32_t>((b * kPq8Block + j + u) * kPq8Group);
        for (; mask != 0; mask &= mask - 1) {
          const unsigned g = static_cast<unsigned>(__builtin_ctz(mask)) / 2;
          hits[cnt] = base + g;
          hit_sums[cnt++] = sums[g];
        }
      }
    }
  }
  return cnt;
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

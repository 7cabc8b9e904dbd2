// 8-bit PQ scans with AVX2 (kernels/pq8_scan.h).
//
// One query (pq8_scan): AVX2 has no 256-entry byte lookup, so a 256-entry table is looked up as 16
// vpshufb lookups of 16 entries with a blend by the code's high nibble (half_sums), 32 codes at a time,
// in inline assembly (GCC kept the intermediate vectors on the stack). The alternatives, scalar lookups
// (one load per code and subspace) and vpgatherdd (one gathered element per code), do more loads per code
// than the 16 in-register lookups shared by 32 codes.
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

namespace {

// Per-subspace constants of the one-query scan: kSelect[h] (h >= 1) is 16h - 1 in the signed view of a
// byte (x ^ 0x80), so that (c ^ 0x80) > kSelect[h] exactly when code c >= 16h.
struct alignas(32) Pq8Constants {
  uint8_t select[16][32];
  uint8_t nibble[32];
  uint8_t flip[32];
  Pq8Constants() {
    for (int h = 0; h < 16; ++h) {
      for (int i = 0; i < 32; ++i) select[h][i] = static_cast<uint8_t>(((16 * h - 1) & 0xff) ^ 0x80);
    }
    for (int i = 0; i < 32; ++i) {
      nibble[i] = 0x0f;
      flip[i] = 0x80;
    }
  }
};
const Pq8Constants kConstants;

// Sums of 32 vectors (one half of a block: bytes 32 * half .. of each row) over the m subspaces.
// A subspace's 256-entry table is 16 sub-tables of 16 entries: vpshufb looks the codes' low nibbles up in
// each (broadcast to both lanes), and going through h = 0 .. 15 each lookup overwrites the result where
// the code is >= 16h (vpcmpgtb + vpblendvb), so the last write is sub-table h = code >> 4. The bytes
// (<= 127) are added into uint16 lanes (a += r, b += r >> 8: even = a - 256 b, odd = b).
inline void half_sums(const uint8_t* lut, std::size_t m, const uint8_t* codes, uint16_t* out) {
  __m256i aa = _mm256_setzero_si256(), ab = _mm256_setzero_si256();
  const uint8_t* t = lut;
  std::size_t n = m;
  __asm__ volatile(
      "1:\n\t"
      "prefetcht0 4096(%[c])\n\t"
      "vmovdqu (%[c]), %%ymm0\n\t"
      "vpand (%[nib]), %%ymm0, %%ymm1\n\t"
      "vpxor (%[flip]), %%ymm0, %%ymm0\n\t"
      "vbroadcasti128 (%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm3\n\t"
      "vbroadcasti128 16(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 32(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 32(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 64(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 48(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 96(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 64(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 128(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 80(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 160(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 96(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 192(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 112(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 224(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 128(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 256(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 144(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 288(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 160(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 320(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 176(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 352(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 192(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 384(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 208(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 416(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 224(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 448(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vbroadcasti128 240(%[t]), %%ymm2\n\t"
      "vpshufb %%ymm1, %%ymm2, %%ymm4\n\t"
      "vpcmpgtb 480(%[k]), %%ymm0, %%ymm5\n\t"
      "vpblendvb %%ymm5, %%ymm4, %%ymm3, %%ymm3\n\t"
      "vpaddw %%ymm3, %[aa], %[aa]\n\t"
      "vpsrlw $8, %%ymm3, %%ymm3\n\t"
      "vpaddw %%ymm3, %[ab], %[ab]\n\t"
      "add $64, %[c]\n\t"
      "add $256, %[t]\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      : [c] "+r"(codes), [t] "+r"(t), [n] "+r"(n), [aa] "+x"(aa), [ab] "+x"(ab)
      : [k] "r"(&kConstants.select[0][0]), [nib] "r"(kConstants.nibble), [flip] "r"(kConstants.flip)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "memory", "cc");
  // lane i: even = vector 2i, odd = vector 2i + 1 (per 128-bit half: vectors 0..15 and 16..31)
  const __m256i even = _mm256_sub_epi16(aa, _mm256_slli_epi16(ab, 8));
  const __m256i lo = _mm256_unpacklo_epi16(even, ab);  // vectors 0..7 | 16..23
  const __m256i hi = _mm256_unpackhi_epi16(even, ab);  // vectors 8..15 | 24..31
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute2x128_si256(lo, hi, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
}

}  // namespace

void pq8_scan(const uint8_t* lut, std::size_t m, const uint8_t* packed, std::size_t nblocks, uint16_t thr,
              uint16_t* sums, uint64_t* masks) {
  const __m256i vbelow = _mm256_set1_epi16(static_cast<short>((thr > 32767 ? 32767 : thr) - 1));
  for (std::size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = packed + b * kPq8Block * m;
    uint16_t* out = sums + b * kPq8Block;
    half_sums(lut, m, block, out);
    half_sums(lut, m, block + 32, out + 32);
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

// The 32-bit side of the x86 vpshufb 4-bit scans (kernels/avx2/lut4_scan_avx2.cpp and
// kernels/avx512vnni/lut4_scan_avx512.cpp): the totals of one block per query, kept in 32 bits between the
// flushes of the 16-bit accumulators, and the last step that puts them back in natural order, stores them and
// compares them with the query's threshold into the block's mask (bit u: sum of vector u > threshold).
// AVX2 instructions only. Each file includes this inside its own anonymous namespace (after <immintrin.h>
// and kernels/lut4_scan.h), so each keeps its own copy built with its own flags: an inline function with
// external linkage shared between them could be merged into the AVX-512 one and run on an AVX2-only CPU.

// Block of 32 vectors, kept as even / odd vectors of the low (0..15) and high (16..31) nibbles.
inline uint32_t lut4_store_block(__m256i lo_even, __m256i lo_odd, __m256i hi_even, __m256i hi_odd, uint32_t* out,
                                 int32_t threshold) {
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

// u16 lanes of the two 128-bit halves of v (the same 8 vectors in two subspaces) summed into u32
inline __m256i lut4_fold_halves(__m256i v) {
  return _mm256_add_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(v)),
                          _mm256_cvtepu16_epi32(_mm256_extracti128_si256(v, 1)));
}

// The 32-bit totals of one block for NQ queries: vectors 0..15 (low nibbles) and 16..31 (high nibbles), even
// and odd vectors apart, as lut4_store_block takes them.
template <int NQ>
struct Lut4Totals {
  __m256i lo_even[NQ], lo_odd[NQ], hi_even[NQ], hi_odd[NQ];

  Lut4Totals() {
    for (int j = 0; j < NQ; ++j) lo_even[j] = lo_odd[j] = hi_even[j] = hi_odd[j] = _mm256_setzero_si256();
  }

  // query j's sums of one flush, already folded to u32
  void add(int j, __m256i lo_even_sum, __m256i lo_odd_sum, __m256i hi_even_sum, __m256i hi_odd_sum) {
    lo_even[j] = _mm256_add_epi32(lo_even[j], lo_even_sum);
    lo_odd[j] = _mm256_add_epi32(lo_odd[j], lo_odd_sum);
    hi_even[j] = _mm256_add_epi32(hi_even[j], hi_even_sum);
    hi_odd[j] = _mm256_add_epi32(hi_odd[j], hi_odd_sum);
  }

  // query j's 16-bit sums of one flush in 256 bits, one subspace of a pair per 128-bit half: a = even byte +
  // 256 odd byte and b = odd byte per lane, so the even vectors' sums are a - (b << 8) modulo 2^16
  void add_halves(int j, __m256i lo_a, __m256i lo_b, __m256i hi_a, __m256i hi_b) {
    add(j, lut4_fold_halves(_mm256_sub_epi16(lo_a, _mm256_slli_epi16(lo_b, 8))), lut4_fold_halves(lo_b),
        lut4_fold_halves(_mm256_sub_epi16(hi_a, _mm256_slli_epi16(hi_b, 8))), lut4_fold_halves(hi_b));
  }

  // block b's sums and masks for every query (the layout of kernels/lut4_scan.h)
  void store(std::size_t b, std::size_t nblocks, uint32_t* out, std::size_t out_stride, const int32_t* thresholds,
             uint32_t* masks) const {
    for (int j = 0; j < NQ; ++j) {
      masks[j * nblocks + b] =
          lut4_store_block(lo_even[j], lo_odd[j], hi_even[j], hi_odd[j], out + j * out_stride + b * 32, thresholds[j]);
    }
  }
};

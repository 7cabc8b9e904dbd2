// 1-bit RaBitQ scan, AVX-512 VPOPCNTDQ: a block row (word w of 8 vectors) is one register and vpopcntq
// counts each vector's word in its own 64-bit lane; the planes are combined by Horner's rule (acc = 2 acc +
// count, high plane first) in 64 bits, exact. Dispatched only where cpu_features().avx512vpopcntdq.
#include <immintrin.h>

#include "kernels/rabitq_scan.h"

namespace medqk {
namespace kernels {
namespace avx512vnni {

void rabitq_scan_vpopcntdq(const uint64_t* packed, std::size_t nblocks, std::size_t words, const uint64_t* planes,
                           std::size_t bits, int32_t* ip) {
  for (std::size_t b = 0; b < nblocks; ++b) {
    __m512i acc = _mm512_setzero_si512();
    for (std::size_t w = 0; w < words; ++w) {
      const __m512i code = _mm512_loadu_si512(packed + (b * words + w) * kRabitqBlock);
      __m512i s = _mm512_setzero_si512();
      for (std::size_t j = bits; j-- > 0;) {
        const __m512i plane = _mm512_set1_epi64(static_cast<long long>(planes[j * words + w]));
        s = _mm512_add_epi64(_mm512_add_epi64(s, s), _mm512_popcnt_epi64(_mm512_and_si512(code, plane)));
      }
      acc = _mm512_add_epi64(acc, s);
    }
    // the low 32 bits of each sum (they fit: kernels/rabitq_scan.h); the zero-masking form, as the plain one
    // reads an undefined register that GCC 12 warns about
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ip + b * kRabitqBlock), _mm512_maskz_cvtepi64_epi32(0xff, acc));
  }
}

}  // namespace avx512vnni
}  // namespace kernels
}  // namespace medqk

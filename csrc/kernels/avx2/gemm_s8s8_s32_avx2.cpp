// AVX2 INT8 GEMM, exact over the whole int8 range (-128 included).
//
// Why vpmaddwd and not vpmaddubsw: vpmaddubsw (u8 x s8 -> s16 pair sums) saturates as soon as a pair
// sum leaves int16 (255 * -128 * 2), which is the onnxruntime / FBGEMM / ggml trap. Here both operands
// are sign-extended to int16 and vpmaddwd forms int32 pair sums (|sum| <= 2 * 2^14), added with vpaddd.
// On Zen 3 that is 32 MAC/cycle, the same as the vpmaddubsw + vpmaddwd chain, without its error.
//
// Layout of packed B (owned by this file): panels of 16 columns; in a panel, for each pair of k
// (2p, 2p+1), 32 bytes: [c0k0 c0k1 c1k0 c1k1 ... c7k0 c7k1 | c8k0 c8k1 ... c15k0 c15k1]. Columns past n
// and the k past an odd K are zero. vpmovsxbw of each 16-byte half gives eight int32 lanes, each holding
// the (k0, k1) int16 pair of one column.
// A is widened per block of rows to int16 with K padded to even, so a broadcast 32-bit word is the
// matching (a[2p], a[2p+1]) pair.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm_s8s8_s32.h"

namespace medqk {
namespace kernels {
namespace avx2 {

namespace {

constexpr std::size_t kNR = 16;   // columns per panel (two ymm of int32)
constexpr int kMR = 5;            // rows per micro-tile: 10 accumulators + 2 B + 1 A + 1 product = 14 ymm (6 rows spill)
constexpr std::size_t kKC = 256;  // k-pairs per block: the B slice of one panel (8 KiB) stays in L1
constexpr std::size_t kMC = 80;   // rows per block of widened A (80 x 512 x 2 B = 80 KiB of L2 per k block)

inline std::size_t k_pairs(std::size_t k) { return (k + 1) / 2; }

// Widens rows [0, rows) of A to int16, K padded to 2 * kp (zero), row stride 2 * kp int16.
void widen_a(const int8_t* a, std::size_t rows, std::size_t k, std::size_t lda, std::size_t kp, int16_t* out) {
  for (std::size_t r = 0; r < rows; ++r) {
    const int8_t* src = a + r * lda;
    int16_t* dst = out + r * 2 * kp;
    std::size_t p = 0;
    for (; p + 16 <= k; p += 16) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + p));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + p), _mm256_cvtepi8_epi16(v));
    }
    for (; p < k; ++p) dst[p] = src[p];
    for (; p < 2 * kp; ++p) dst[p] = 0;
  }
}

// Stores (or adds) one 16-column row of accumulators into C; ncols < 16 only at the right edge.
inline void store_row(int32_t* c, __m256i lo, __m256i hi, bool accumulate, std::size_t ncols) {
  if (ncols == kNR) {
    __m256i* c0 = reinterpret_cast<__m256i*>(c);
    __m256i* c1 = reinterpret_cast<__m256i*>(c + 8);
    if (accumulate) {
      lo = _mm256_add_epi32(lo, _mm256_loadu_si256(c0));
      hi = _mm256_add_epi32(hi, _mm256_loadu_si256(c1));
    }
    _mm256_storeu_si256(c0, lo);
    _mm256_storeu_si256(c1, hi);
    return;
  }
  alignas(32) int32_t tile[kNR];
  _mm256_store_si256(reinterpret_cast<__m256i*>(tile), lo);
  _mm256_store_si256(reinterpret_cast<__m256i*>(tile + 8), hi);
  for (std::size_t j = 0; j < ncols; ++j) c[j] = accumulate ? c[j] + tile[j] : tile[j];
}

// C tile (R x 16) = or += A (R rows of widened pairs, stride a_stride words) x one B panel slice.
// Accumulators are named variables, not an array: GCC keeps arrays of vectors on the stack.
template <int R>
void micro_kernel(const int32_t* a, std::size_t a_stride, const uint8_t* b, std::size_t kc, int32_t* c,
                  std::size_t ldc, bool accumulate, std::size_t ncols) {
  static_assert(R >= 1 && R <= kMR, "tile height");
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00;
  const int32_t* a0 = a;
  const int32_t* a1 = a + a_stride;
  const int32_t* a2 = a + 2 * a_stride;
  const int32_t* a3 = a + 3 * a_stride;
  const int32_t* a4 = a + 4 * a_stride;
  for (std::size_t p = 0; p < kc; ++p) {
    const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 32 * p)));
    const __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 32 * p + 16)));
    __m256i av = _mm256_set1_epi32(a0[p]);
    c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(av, b0));
    c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(av, b1));
    if constexpr (R > 1) {
      av = _mm256_set1_epi32(a1[p]);
      c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(av, b0));
      c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(av, b1));
    }
    if constexpr (R > 2) {
      av = _mm256_set1_epi32(a2[p]);
      c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(av, b0));
      c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(av, b1));
    }
    if constexpr (R > 3) {
      av = _mm256_set1_epi32(a3[p]);
      c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(av, b0));
      c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(av, b1));
    }
    if constexpr (R > 4) {
      av = _mm256_set1_epi32(a4[p]);
      c40 = _mm256_add_epi32(c40, _mm256_madd_epi16(av, b0));
      c41 = _mm256_add_epi32(c41, _mm256_madd_epi16(av, b1));
    }
  }
  store_row(c, c00, c01, accumulate, ncols);
  if constexpr (R > 1) store_row(c + ldc, c10, c11, accumulate, ncols);
  if constexpr (R > 2) store_row(c + 2 * ldc, c20, c21, accumulate, ncols);
  if constexpr (R > 3) store_row(c + 3 * ldc, c30, c31, accumulate, ncols);
  if constexpr (R > 4) store_row(c + 4 * ldc, c40, c41, accumulate, ncols);
}

using MicroKernel = void (*)(const int32_t*, std::size_t, const uint8_t*, std::size_t, int32_t*, std::size_t,
                             bool, std::size_t);
constexpr MicroKernel kMicroKernels[kMR + 1] = {nullptr,         micro_kernel<1>, micro_kernel<2>,
                                                micro_kernel<3>, micro_kernel<4>, micro_kernel<5>};

}  // namespace

const std::size_t kGemmS8PanelCols = kNR;

std::size_t gemm_s8s8_s32_packed_bytes(std::size_t n, std::size_t k) {
  return ((n + kNR - 1) / kNR) * k_pairs(k) * 32;
}

void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed) {
  const std::size_t kp = k_pairs(k);
  const std::size_t panels = (n + kNR - 1) / kNR;
  std::memset(packed, 0, panels * kp * 32);
  for (std::size_t j = 0; j < n; ++j) {
    uint8_t* panel = packed + (j / kNR) * kp * 32;
    const std::size_t col = j % kNR;
    const std::size_t offset = (col / 8) * 16 + (col % 8) * 2;
    const int8_t* bj = b + j * ldb;
    for (std::size_t p = 0; p < k; ++p) panel[(p / 2) * 32 + offset + (p & 1)] = static_cast<uint8_t>(bj[p]);
  }
}

void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t /*n*/, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc) {
  const std::size_t kp = k_pairs(k);
  const std::size_t panel_bytes = kp * 32;
  // With one micro-row there is no reuse of a B slice across tiles, so K is not blocked.
  const std::size_t kc_block = m <= static_cast<std::size_t>(kMR) ? kp : kKC;
  const std::size_t mc_block = std::min(m, kMC);
  std::vector<int16_t> wide(mc_block * 2 * kp);
  const int32_t* wide32 = reinterpret_cast<const int32_t*>(wide.data());

  for (std::size_t i0 = 0; i0 < m; i0 += mc_block) {
    const std::size_t mc = std::min(mc_block, m - i0);
    widen_a(a + i0 * lda, mc, k, lda, kp, wide.data());
    for (std::size_t p0 = 0; p0 < kp; p0 += kc_block) {
      const std::size_t kc = std::min(kc_block, kp - p0);
      for (std::size_t j0 = n0; j0 < n1; j0 += kNR) {
        const uint8_t* bslice = packed + (j0 / kNR) * panel_bytes + p0 * 32;
        const std::size_t ncols = std::min(kNR, n1 - j0);
        for (std::size_t ir = 0; ir < mc; ir += kMR) {
          const std::size_t rows = std::min<std::size_t>(kMR, mc - ir);
          kMicroKernels[rows](wide32 + ir * kp + p0, kp, bslice, kc, c + (i0 + ir) * ldc + j0, ldc, p0 > 0,
                              ncols);
        }
      }
    }
  }
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

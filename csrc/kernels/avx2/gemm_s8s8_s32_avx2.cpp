// AVX2 INT8 GEMM, exact over the whole int8 range (-128 included).
//
// Why vpmaddwd and not vpmaddubsw: vpmaddubsw (u8 x s8 -> s16 pair sums) saturates as soon as a pair
// sum leaves int16 (255 * -128 * 2), which is the onnxruntime / FBGEMM / ggml trap. Here both operands
// are sign-extended to int16 and vpmaddwd forms int32 pair sums (|sum| <= 2 * 2^14), added with vpaddd:
// 16 products per multiply instruction, as many as the two-instruction vpmaddubsw + vpmaddwd chain's 32,
// without its error.
//
// Layout of packed B (kernels/gemm_s8_pack_k_groups.h, k pairs): panels of 24 columns; in a panel, for
// each pair of k (2p, 2p+1), 48 bytes: [c0k0 c0k1 c1k0 c1k1 ... c7k0 c7k1 | c8k0 .. c15k1 | c16k0 ..
// c23k1]. Columns past n and the k past an odd K are zero. vpmovsxbw of each 16-byte third gives eight
// int32 lanes, each holding the (k0, k1) int16 pair of one column.
// A is widened per block of rows to int16 with K padded to even, so a broadcast 32-bit word is the
// matching (a[2p], a[2p+1]) pair.
//
// The micro-kernel (3 rows x 24 columns: 9 accumulators, 3 B registers, a broadcast and temporaries,
// all 16 ymm registers) is written in inline assembly: GCC 12 compiled the same intrinsics with
// accumulators spilled to the stack inside the loop (a load and a store per accumulator and k-pair),
// where the assembly keeps all nine in registers.
//
// With many rows, each slice of a panel (kKCW k-pairs) is first widened to int16 into a 12 KiB buffer
// that stays in L1, and every row tile reads it with plain loads: the three vpmovsxbw per k-pair then
// leave the shuffle units, which the broadcasts also need, to the broadcasts. With few rows the panel is
// read once from memory, so the micro-kernel widens as it goes.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm_s8s8_s32.h"

namespace medqk {
namespace kernels {
namespace avx2 {

namespace {

constexpr std::size_t kNR = 24;            // columns per panel (three ymm of int32)
constexpr std::size_t kKGroup = 2;         // B is read in k pairs (kernels/gemm_s8_pack_k_groups.h)
constexpr int kMR = 3;                     // rows per micro-tile
constexpr std::size_t kKC = 256;           // k-pairs per block: the B slice of one panel (12 KiB) stays in L1
constexpr std::size_t kMC = 96;            // rows per block of widened A (96 x 512 x 2 B = 96 KiB of L2 per k block)
constexpr std::size_t kKCW = 128;          // k-pairs per block when B is widened first (128 x 96 B = 12 KiB of L1)
constexpr std::size_t kWidenMinRows = 12;  // widen B first when a slice serves at least 4 row tiles
constexpr std::size_t kMCW = 256;          // at most this many rows per block when B is widened first
constexpr std::size_t kWideABytes = std::size_t(1) << 20;  // ... and at most this much widened A

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

// Stores (or adds) R rows of a 24-column tile into C; ncols < 24 only at the right edge.
template <int R>
inline void store_tile(const int32_t* tile, int32_t* c, std::size_t ldc, bool accumulate, std::size_t ncols) {
  for (int r = 0; r < R; ++r) {
    const int32_t* t = tile + r * kNR;
    int32_t* row = c + r * ldc;
    if (ncols == kNR) {
      for (std::size_t v = 0; v < kNR; v += 8) {
        __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + v));
        __m256i* dst = reinterpret_cast<__m256i*>(row + v);
        if (accumulate) x = _mm256_add_epi32(x, _mm256_loadu_si256(dst));
        _mm256_storeu_si256(dst, x);
      }
    } else {
      for (std::size_t j = 0; j < ncols; ++j) row[j] = accumulate ? row[j] + t[j] : t[j];
    }
  }
}

// The body of one k-pair: three B registers (ymm0-2) from the panel, then for each row a broadcast
// A pair (ymm3) and three vpmaddwd + vpaddd into that row's accumulators (row r: ymm 7+3r .. 9+3r).
// Packed B (48 bytes per k-pair) is widened here; widened B (96 bytes per k-pair) is loaded as is.
#define MEDQK_LOAD_B               \
  "prefetcht0 3072(%[b])\n\t"      \
  "vpmovsxbw   (%[b]), %%ymm0\n\t" \
  "vpmovsxbw 16(%[b]), %%ymm1\n\t" \
  "vpmovsxbw 32(%[b]), %%ymm2\n\t" \
  "add $48, %[b]\n\t"
#define MEDQK_LOAD_WIDE_B        \
  "vmovdqa   (%[b]), %%ymm0\n\t" \
  "vmovdqa 32(%[b]), %%ymm1\n\t" \
  "vmovdqa 64(%[b]), %%ymm2\n\t" \
  "add $96, %[b]\n\t"
#define MEDQK_ROW(A, X, Y, Z)           \
  "vpbroadcastd (%[" A                  \
  "],%[i],4), %%ymm3\n\t"               \
  "vpmaddwd %%ymm0, %%ymm3, %%ymm4\n\t" \
  "vpaddd %%ymm4, %%ymm" X ", %%ymm" X  \
  "\n\t"                                \
  "vpmaddwd %%ymm1, %%ymm3, %%ymm5\n\t" \
  "vpaddd %%ymm5, %%ymm" Y ", %%ymm" Y  \
  "\n\t"                                \
  "vpmaddwd %%ymm2, %%ymm3, %%ymm6\n\t" \
  "vpaddd %%ymm6, %%ymm" Z ", %%ymm" Z "\n\t"
#define MEDQK_ZERO(X) "vpxor %%xmm" X ", %%xmm" X ", %%xmm" X "\n\t"
#define MEDQK_STORE(X, OFF) "vmovdqu %%ymm" X ", " OFF "(%[t])\n\t"
#define MEDQK_CLOBBERS                                                                                                \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", \
      "xmm14", "xmm15", "memory", "cc"

// tile (R x 24 int32) = A rows (kc widened pairs each, row stride a_stride words) x one B panel slice,
// packed (Wide = false: each k-pair prefetches the panel 3 KiB ahead, for few rows of A the panel streams
// from memory) or widened to int16 by widen_b_slice (Wide = true). kc >= 1.
template <int R, bool Wide>
void micro_kernel(const int32_t* a, std::size_t a_stride, const uint8_t* b, std::size_t kc, int32_t* tile);

// One micro_kernel<R, WIDE> specialisation: zero the accumulators, kc steps of LOAD and the R rows, store.
// The rows that R leaves out do not read their A pointer (a1, a2: then a copy of a0).
#define MEDQK_KERNEL(R, WIDE, LOAD, ZEROS, ROWS, STORES)                                                        \
  template <>                                                                                                   \
  void micro_kernel<R, WIDE>(const int32_t* a, std::size_t a_stride, const uint8_t* b, std::size_t kc,          \
                             int32_t* tile) {                                                                   \
    std::size_t i = 0;                                                                                          \
    __asm__ volatile(ZEROS "1:\n\t" LOAD ROWS                                                                   \
                           "inc %[i]\n\t"                                                                       \
                           "cmp %[i], %[kc]\n\t"                                                                \
                           "jne 1b\n\t" STORES                                                                  \
                     : [b] "+r"(b), [i] "+r"(i)                                                                 \
                     : [a0] "r"(a), [a1] "r"(R > 1 ? a + a_stride : a), [a2] "r"(R > 2 ? a + 2 * a_stride : a), \
                       [kc] "r"(kc), [t] "r"(tile)                                                              \
                     : MEDQK_CLOBBERS);                                                                         \
  }
#define MEDQK_ZEROS_1 MEDQK_ZERO("7") MEDQK_ZERO("8") MEDQK_ZERO("9")
#define MEDQK_ZEROS_2 MEDQK_ZEROS_1 MEDQK_ZERO("10") MEDQK_ZERO("11") MEDQK_ZERO("12")
#define MEDQK_ZEROS_3 MEDQK_ZEROS_2 MEDQK_ZERO("13") MEDQK_ZERO("14") MEDQK_ZERO("15")
#define MEDQK_ROWS_1 MEDQK_ROW("a0", "7", "8", "9")
#define MEDQK_ROWS_2 MEDQK_ROWS_1 MEDQK_ROW("a1", "10", "11", "12")
#define MEDQK_ROWS_3 MEDQK_ROWS_2 MEDQK_ROW("a2", "13", "14", "15")
#define MEDQK_STORES_1 MEDQK_STORE("7", "0") MEDQK_STORE("8", "32") MEDQK_STORE("9", "64")
#define MEDQK_STORES_2 MEDQK_STORES_1 MEDQK_STORE("10", "96") MEDQK_STORE("11", "128") MEDQK_STORE("12", "160")
#define MEDQK_STORES_3 MEDQK_STORES_2 MEDQK_STORE("13", "192") MEDQK_STORE("14", "224") MEDQK_STORE("15", "256")

MEDQK_KERNEL(3, false, MEDQK_LOAD_B, MEDQK_ZEROS_3, MEDQK_ROWS_3, MEDQK_STORES_3)
MEDQK_KERNEL(2, false, MEDQK_LOAD_B, MEDQK_ZEROS_2, MEDQK_ROWS_2, MEDQK_STORES_2)
MEDQK_KERNEL(1, false, MEDQK_LOAD_B, MEDQK_ZEROS_1, MEDQK_ROWS_1, MEDQK_STORES_1)
MEDQK_KERNEL(3, true, MEDQK_LOAD_WIDE_B, MEDQK_ZEROS_3, MEDQK_ROWS_3, MEDQK_STORES_3)
MEDQK_KERNEL(2, true, MEDQK_LOAD_WIDE_B, MEDQK_ZEROS_2, MEDQK_ROWS_2, MEDQK_STORES_2)
MEDQK_KERNEL(1, true, MEDQK_LOAD_WIDE_B, MEDQK_ZEROS_1, MEDQK_ROWS_1, MEDQK_STORES_1)

#undef MEDQK_KERNEL
#undef MEDQK_ZEROS_1
#undef MEDQK_ZEROS_2
#undef MEDQK_ZEROS_3
#undef MEDQK_ROWS_1
#undef MEDQK_ROWS_2
#undef MEDQK_ROWS_3
#undef MEDQK_STORES_1
#undef MEDQK_STORES_2
#undef MEDQK_STORES_3
#undef MEDQK_LOAD_B
#undef MEDQK_LOAD_WIDE_B
#undef MEDQK_ROW
#undef MEDQK_ZERO
#undef MEDQK_STORE
#undef MEDQK_CLOBBERS

template <int R, bool Wide>
void tile_kernel(const int32_t* a, std::size_t a_stride, const uint8_t* b, std::size_t kc, int32_t* c, std::size_t ldc,
                 bool accumulate, std::size_t ncols) {
  alignas(32) int32_t tile[kMR * kNR];
  micro_kernel<R, Wide>(a, a_stride, b, kc, tile);
  store_tile<R>(tile, c, ldc, accumulate, ncols);
}

using TileKernel = void (*)(const int32_t*, std::size_t, const uint8_t*, std::size_t, int32_t*, std::size_t, bool,
                            std::size_t);
constexpr TileKernel kTileKernels[2][kMR + 1] = {
    {nullptr, tile_kernel<1, false>, tile_kernel<2, false>, tile_kernel<3, false>},
    {nullptr, tile_kernel<1, true>, tile_kernel<2, true>, tile_kernel<3, true>}};

// The kc k-pairs of one packed panel slice (48 bytes each) widened to int16 (96 bytes each, 32-aligned).
void widen_b_slice(const uint8_t* b, std::size_t kc, int16_t* out) {
  for (std::size_t p = 0; p < kc; ++p, b += 48, out += 48) {
    _mm_prefetch(reinterpret_cast<const char*>(b) + 1024, _MM_HINT_T0);
    for (int third = 0; third < 3; ++third) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16 * third));
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + 16 * third), _mm256_cvtepi8_epi16(v));
    }
  }
}

}  // namespace

#include "kernels/gemm_s8_pack_k_groups.h"

namespace {

// Few rows: each panel slice is read from packed B (from memory, once, in order) and widened inside the
// micro-kernel. K is blocked only when the widened rows of A would not stay in L2 (m x kp x 4 bytes):
// blocking K would start a new 12 KiB stream in every panel, which its tiles would then re-read from L2.
void gemm_streamed_b(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                     std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc) {
  const std::size_t kp = k_pairs(k);
  const std::size_t panel_bytes = kp * 48;
  const std::size_t kc_block = m * kp * 4 <= (std::size_t(256) << 10) ? kp : kKC;
  const std::size_t mc_block = std::min(m, kMC);
  std::vector<int16_t> wide(mc_block * 2 * kp);
  const int32_t* wide32 = reinterpret_cast<const int32_t*>(wide.data());
  for (std::size_t i0 = 0; i0 < m; i0 += mc_block) {
    const std::size_t mc = std::min(mc_block, m - i0);
    widen_a(a + i0 * lda, mc, k, lda, kp, wide.data());
    for (std::size_t p0 = 0; p0 < kp; p0 += kc_block) {
      const std::size_t kc = std::min(kc_block, kp - p0);
      for (std::size_t j0 = n0; j0 < n1; j0 += kNR) {
        const uint8_t* bslice = packed + (j0 / kNR) * panel_bytes + p0 * 48;
        const std::size_t ncols = std::min(kNR, n1 - j0);
        for (std::size_t ir = 0; ir < mc; ir += kMR) {
          const std::size_t rows = std::min<std::size_t>(kMR, mc - ir);
          kTileKernels[0][rows](wide32 + ir * kp + p0, kp, bslice, kc, c + (i0 + ir) * ldc + j0, ldc, p0 > 0, ncols);
        }
      }
    }
  }
}

// Many rows: rows in blocks whose widened A stays in L2 (at most kWideABytes); for each block, the
// panels in order (packed B is read as one sequential stream), and each panel in k blocks of at most
// kKCW pairs, widened once into an L1 buffer that all the block's row tiles then read. A panel's C
// tiles stay in cache across its k blocks.
void gemm_widened_b(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                    std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc) {
  const std::size_t kp = k_pairs(k);
  const std::size_t panel_bytes = kp * 48;
  const std::size_t k_blocks = (kp + kKCW - 1) / kKCW;
  const std::size_t kc_block = (kp + k_blocks - 1) / k_blocks;
  const std::size_t mc_max = std::max(kWidenMinRows, std::min(kMCW, kWideABytes / (kp * 4)));
  const std::size_t m_blocks = (m + mc_max - 1) / mc_max;
  const std::size_t mc_block = ((m + m_blocks - 1) / m_blocks + kMR - 1) / kMR * kMR;
  std::vector<int16_t> wide(std::min(m, mc_block) * 2 * kp);
  const int32_t* wide32 = reinterpret_cast<const int32_t*>(wide.data());
  alignas(32) int16_t wide_slice[kKCW * 48];  // 12 KiB
  for (std::size_t i0 = 0; i0 < m; i0 += mc_block) {
    const std::size_t mc = std::min(mc_block, m - i0);
    widen_a(a + i0 * lda, mc, k, lda, kp, wide.data());
    for (std::size_t j0 = n0; j0 < n1; j0 += kNR) {
      const std::size_t ncols = std::min(kNR, n1 - j0);
      const uint8_t* panel = packed + (j0 / kNR) * panel_bytes;
      for (std::size_t p0 = 0; p0 < kp; p0 += kc_block) {
        const std::size_t kc = std::min(kc_block, kp - p0);
        widen_b_slice(panel + p0 * 48, kc, wide_slice);
        // With few rows of A, B streams from memory: the next slice is asked for, into L2, while the
        // tiles compute (with many rows it is in cache already and the prefetches cost nothing).
        const char* next = reinterpret_cast<const char*>(panel + (p0 + kc) * 48);
        for (std::size_t off = 0; off < kc * 48; off += 64) _mm_prefetch(next + off, _MM_HINT_T1);
        const uint8_t* bslice = reinterpret_cast<const uint8_t*>(wide_slice);
        for (std::size_t ir = 0; ir < mc; ir += kMR) {
          const std::size_t rows = std::min<std::size_t>(kMR, mc - ir);
          kTileKernels[1][rows](wide32 + ir * kp + p0, kp, bslice, kc, c + (i0 + ir) * ldc + j0, ldc, p0 > 0, ncols);
        }
      }
    }
  }
}

}  // namespace

void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t /*n*/, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc) {
  if (m >= kWidenMinRows) {
    gemm_widened_b(a, m, k, lda, packed, n0, n1, c, ldc);
  } else {
    gemm_streamed_b(a, m, k, lda, packed, n0, n1, c, ldc);
  }
}

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

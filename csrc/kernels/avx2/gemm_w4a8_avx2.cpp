// AVX2 W4A8 GEMM: 4-bit codes expanded by vpshufb through each column's 16 int8 levels, multiplied by int8
// activations, exact over the whole range (a = -128 and levels = +-127 included).
//
// Why the sign trick and not "a + 128 as u8": vpmaddubsw (u8 x s8 -> s16 pair sums) saturates once a pair
// sum leaves int16, and 255 * 127 * 2 does. Here the unsigned operand is |a| (<= 128, vpabsb of -128 is 0x80
// = 128 as u8) and the signed one is sign(a) * w (vpsignb; |w| <= 127, so the negation never wraps): each
// pair sum is at most 2 * 128 * 127 = 32512 < 2^15, exact. vpmaddwd by ones then widens the pairs to int32.
// Per 32 products of a row: vpsignb, vpmaddubsw, vpmaddwd, vpaddd; the expansion (and, shift, and, two
// vpshufb for 64 weights) is shared by every row of a tile.
//
// Layout (owned by this file): panels of 2 columns (n, n + 1). A panel is 32 bytes of levels, [L_n | L_n+1],
// the table of one vpshufb whose lanes serve one column each, then for each block of 32 k (K padded with code
// 0 to whole blocks) 32 bytes: byte j < 16 holds code(n, 32b + j) in its low nibble and code(n, 32b + 16 + j)
// in its high nibble; bytes 16 + j the same for column n + 1. A column past n has levels and codes 0.
// Padding k never reach a result: the kernel reads activations through a copy padded with zeros.
//
// Each int32 lane of an accumulator holds a partial sum of D: lanes 0-3 column n, 4-7 column n + 1. With
// the float output, at each group end the lanes are converted and multiplied by the group's scale into
// float lanes (so no horizontal sum per group), summed across the 4 lanes of a column at the end.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm_w4a8.h"

namespace medqk {
namespace kernels {
namespace avx2 {

namespace {

constexpr std::size_t kPanelCols = 2;
constexpr int kRows = 4;                     // rows per tile
constexpr std::size_t kPanelsPerBlock = 16;  // weights of 16 panels (32 columns) serve every row tile from L2

std::size_t blocks32(std::size_t k) { return (k + 31) / 32; }
std::size_t panel_bytes(std::size_t k) { return 32 + 32 * blocks32(k); }

std::size_t packed_bytes(std::size_t n, std::size_t k, std::size_t /*group_size*/) {
  return (n + kPanelCols - 1) / kPanelCols * panel_bytes(k);
}

void pack(const uint8_t* codes, std::size_t n, std::size_t k, std::size_t ldc, const int8_t* levels,
          std::size_t /*group_size*/, uint8_t* packed) {
  std::memset(packed, 0, packed_bytes(n, k, 0));
  for (std::size_t j = 0; j < n; ++j) {
    uint8_t* panel = packed + (j / kPanelCols) * panel_bytes(k);
    const std::size_t half = 16 * (j % kPanelCols);
    std::memcpy(panel + half, levels + j * 16, 16);
    for (std::size_t p = 0; p < k; ++p) {
      const std::size_t in_block = p % 32;
      panel[32 + 32 * (p / 32) + half + in_block % 16] |=
          static_cast<uint8_t>(codes[j * ldc + p] << (in_block & 16 ? 4 : 0));
    }
  }
}

// Activations of the rows of one call, K padded with zeros to whole blocks of 32: a and |a| (as u8).
struct Activations {
  std::vector<int8_t> a;
  std::vector<uint8_t> abs;
  std::size_t stride;
  Activations(const W4A8Args& x, std::size_t m0, std::size_t m1) : stride(32 * blocks32(x.k)) {
    a.assign((m1 - m0) * stride, 0);
    abs.assign((m1 - m0) * stride, 0);
    for (std::size_t i = m0; i < m1; ++i) {
      int8_t* dst = a.data() + (i - m0) * stride;
      std::memcpy(dst, x.a + i * x.lda, x.k);
      uint8_t* dst_abs = abs.data() + (i - m0) * stride;
      for (std::size_t p = 0; p < stride; p += 32) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dst + p));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst_abs + p), _mm256_abs_epi8(v));
      }
    }
  }
};

inline __m256i bcast16(const void* p) {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(static_cast<const __m128i*>(p)));
}

// Sums of lanes 0-3 and 4-7 of v.
inline void half_sums(__m256i v, int32_t* s0, int32_t* s1) {
  const __m128i pairs = _mm_hadd_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i quads = _mm_hadd_epi32(pairs, pairs);
  *s0 = _mm_cvtsi128_si32(quads);
  *s1 = _mm_extract_epi32(quads, 1);
}

// Rows [0, R) of a tile (activation rows ta, |a| rows tabs, stride `stride`) times P consecutive panels (pb
// bytes apart) from column j: the int32 D of every group (x.d) or the float output (x.out), columns past n
// skipped, result rows i0 + r. The P panels share each activation load, and their R x P accumulators are
// independent chains (a GEMV needs P > 1 to keep the pipes busy).
template <int R, int P, bool kInt32, bool kZeros>
void tile(const W4A8Args& x, const int8_t* ta, const uint8_t* tabs, std::size_t stride, const uint8_t* panels,
          std::size_t pb, std::size_t i0, std::size_t j) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const std::size_t blocks = blocks32(x.k), group_blocks = x.group_size / 32;
  const std::size_t cols = std::min<std::size_t>(kPanelCols * P, x.n - j);
  __m256 facc[R][P];
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) facc[r][p] = _mm256_setzero_ps();
  }
  for (std::size_t g = 0, b = 0; g < x.groups; ++g) {
    __m256i acc[R][P];
    for (int r = 0; r < R; ++r) {
      for (int p = 0; p < P; ++p) acc[r][p] = _mm256_setzero_si256();
    }
    for (const std::size_t b1 = std::min(blocks, b + group_blocks); b < b1; ++b) {
      for (int half = 0; half < 2; ++half) {  // k 0-15 of the block (low nibbles), then k 16-31 (high)
        __m256i w[P];
        for (int p = 0; p < P; ++p) {
          const uint8_t* panel = panels + p * pb;
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + 32 + 32 * b));
          const __m256i idx = _mm256_and_si256(half == 0 ? v : _mm256_srli_epi16(v, 4), low4);
          w[p] = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel)), idx);
        }
        for (int r = 0; r < R; ++r) {
          const __m256i ar = bcast16(ta + r * stride + 32 * b + 16 * half);
          const __m256i ur = bcast16(tabs + r * stride + 32 * b + 16 * half);
          for (int p = 0; p < P; ++p) {
            const __m256i prod = _mm256_maddubs_epi16(ur, _mm256_sign_epi8(w[p], ar));
            acc[r][p] = _mm256_add_epi32(acc[r][p], _mm256_madd_epi16(prod, ones));
          }
        }
      }
    }
    if (kInt32) {
      for (int r = 0; r < R; ++r) {
        for (int p = 0; p < P; ++p) {
          int32_t d[2];
          half_sums(acc[r][p], &d[0], &d[1]);
          for (std::size_t c = 2 * p; c < std::min<std::size_t>(cols, 2 * p + 2); ++c) {
            x.d[((i0 + r) * x.n + j + c) * x.groups + g] = d[c - 2 * p];
          }
        }
      }
      continue;
    }
    for (int p = 0; p < P; ++p) {
      const std::size_t c0 = j + 2 * p, c1 = c0 + 1 < x.n ? c0 + 1 : c0;  // c1 = c0: a padding column's lanes
      const __m256 scale = _mm256_setr_m128(_mm_set1_ps(x.scales[c0 * x.groups + g]),
                                            _mm_set1_ps(x.scales[c1 * x.groups + g]));
      for (int r = 0; r < R; ++r) {
        __m256i dr = acc[r][p];
        if (kZeros) {
          const int32_t as = x.asum[(i0 + r) * x.groups + g];
          const int32_t z0 = x.zeros[c0 * x.groups + g] * as, z1 = x.zeros[c1 * x.groups + g] * as;
          dr = _mm256_sub_epi32(dr, _mm256_setr_epi32(z0, 0, 0, 0, z1, 0, 0, 0));
        }
        facc[r][p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dr), scale, facc[r][p]);
      }
    }
  }
  if (kInt32) return;
  for (int r = 0; r < R; ++r) {
    float* row = x.out + (i0 + r) * x.n + j;
    const float rs = x.row_scale[i0 + r];
    for (int p = 0; p < P; ++p) {
      const __m128 pairs = _mm_hadd_ps(_mm256_castps256_ps128(facc[r][p]), _mm256_extractf128_ps(facc[r][p], 1));
      float sums[4];
      _mm_storeu_ps(sums, _mm_hadd_ps(pairs, pairs));
      for (std::size_t c = 2 * p; c < std::min<std::size_t>(cols, 2 * p + 2); ++c) {
        row[c] = rs * sums[c - 2 * p] + (x.bias != nullptr ? x.bias[j + c] : 0.0f);
      }
    }
  }
}

using TileFn = void (*)(const W4A8Args&, const int8_t*, const uint8_t*, std::size_t, const uint8_t*,
                        std::size_t, std::size_t, std::size_t);
constexpr int kGemvPanels = 4;  // panels per tile of one row

// The tiles of one output mode: [0] one row by kGemvPanels panels, [r] r rows by one panel.
template <bool kInt32, bool kZeros>
struct Tiles {
  static constexpr TileFn fns[kRows + 1] = {tile<1, kGemvPanels, kInt32, kZeros>, tile<1, 1, kInt32, kZeros>,
                                            tile<2, 1, kInt32, kZeros>, tile<3, 1, kInt32, kZeros>,
                                            tile<4, 1, kInt32, kZeros>};
};

// Blocks of kPanelsPerBlock panels, each read from memory once and then from cache by every row tile.
void gemm(const W4A8Args& x, std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1) {
  const Activations act(x, m0, m1);
  const std::size_t pb = panel_bytes(x.k);
  const TileFn* tiles = x.d != nullptr ? Tiles<true, false>::fns
                        : x.zeros != nullptr ? Tiles<false, true>::fns : Tiles<false, false>::fns;
  for (std::size_t j0 = n0; j0 < n1; j0 += kPanelCols * kPanelsPerBlock) {
    const std::size_t j1 = std::min(n1, j0 + kPanelCols * kPanelsPerBlock);
    for (std::size_t i = m0; i < m1; i += kRows) {
      const std::size_t rows = std::min<std::size_t>(kRows, m1 - i);
      const int8_t* ta = act.a.data() + (i - m0) * act.stride;
      const uint8_t* tabs = act.abs.data() + (i - m0) * act.stride;
      std::size_t j = j0;
      if (rows == 1) {
        for (; j + kPanelCols * kGemvPanels <= j1; j += kPanelCols * kGemvPanels) {
          tiles[0](x, ta, tabs, act.stride, x.packed + (j / kPanelCols) * pb, pb, i, j);
        }
      }
      for (; j < j1; j += kPanelCols) {
        tiles[rows](x, ta, tabs, act.stride, x.packed + (j / kPanelCols) * pb, pb, i, j);
      }
    }
  }
}

}  // namespace

const GemmW4Kernel kGemmW4A8 = {kPanelCols, packed_bytes, pack, gemm};

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

// AVX2 W4A8 GEMM: 4-bit codes expanded by vpshufb through each column's 16 int8 levels, multiplied by int8
// activations, exact over the whole range (a = -128 and levels = +-127 included). Two paths share one layout.
//
// Layout (owned by this file): panels of 16 columns, each 8 column pairs (n, n + 1). A panel is 8 x 32 bytes
// of levels, pair q's [L_n | L_n+1] (the table of one vpshufb whose lanes serve one column each), then for
// each block of 32 k (K padded with code 0 to whole blocks) 8 x 32 bytes: in pair q's 32, byte j < 16 holds
// code(n, 32b + j) in its low nibble and code(n, 32b + 16 + j) in its high nibble, bytes 16 + j the same for
// column n + 1. Columns past n have levels and codes 0. Padding k never reach a result: both paths read the
// activations through a copy padded with zeros.
//
// Few rows (GEMV): the sign trick on bytes. vpmaddubsw (u8 x s8 -> s16 pair sums) saturates once a pair sum
// leaves int16, and (a + 128 as u8) * 127 * 2 does; here the unsigned operand is |a| (<= 128: vpabsb of -128
// is 0x80 = 128 as u8) and the signed one sign(a) * w (vpsignb; |w| <= 127, so the negation never wraps):
// each pair sum is at most 2 * 128 * 127 = 32512 < 2^15, exact; vpmaddwd by ones widens the pairs to int32.
// An accumulator's lanes 0-3 are partial sums of column n, 4-7 of column n + 1; at each group end the 4
// accumulators of 4 pairs are summed per column in int32 (exact) and, with the float output, converted and
// scaled once per 8 columns.
//
// Many rows: per 32 products of a row the byte path issues vpsignb, vpmaddubsw and vpmaddwd, where the int8
// GEMM issues two vpmaddwd; an expansion shared by the rows may cost more. So each slice of a panel is
// decoded once to int16 in the int8 GEMM's widened layout (per k pair, 16 columns x (k, k + 1) as int16: two
// vpshufb outputs are transposed by 16- and 32-bit unpacks and vpermq, then vpmovsxbw) into an L1 buffer that
// every row tile reads; the micro-kernel is then the int8 GEMM's: a broadcast (a_k, a_k+1) int16 pair,
// vpmaddwd (|pair sum| <= 2 * 128 * 127), vpaddd.
// Accumulator lanes are columns (in the order kColumnOrder), so a group's fold into the float result is one
// vcvtdq2ps and one FMA per 8 columns and row, done inside the micro-kernel with the float sums in registers.
//
// Affine panels: a panel whose 16 columns all have levels[c] = c + offset with one offset (uniform int4:
// symmetric -8, asymmetric 0) needs no table: D = sum(code * a) + offset * sum(a). Its codes are packed in a
// second arrangement (the tables stay, and say which arrangement a panel has): per block of 32 k, 4 octets
// of k x 2 halves of 8 columns, 32 bytes each (offset 256 b + 64 o + 32 h); lane l (4 bytes) is column
// 8 h + l, its byte j holds code(k = 32 b + 8 o + j) in the low nibble and code(k + 4) in the high nibble.
// vpmaddubsw multiplies the codes (0-15, as u8) by a broadcast 4 bytes of a (pair sums |.| <= 2 * 15 * 128 =
// 3840), a block's 8 products per lane are summed in int16 (<= 30720, exact), and one vpmaddwd per block
// widens them: accumulator lanes are the columns in natural order, so a group's fold is one conversion and
// one FMA per 8 columns and row, with no reduction across lanes. Every row count takes this path.
//
// What the paths issue per 32 products of a row (instructions, not timings): the affine path one vpmaddubsw
// and one vpaddw, plus the nibble split (1.5, shared by the row tile) and 1/8 vpmaddwd and vpaddd; the byte path
// the nibble split (1.5), vpshufb, vpsignb, vpmaddubsw, vpmaddwd and vpaddd (6.5): a product of an 8-bit level
// and an 8-bit activation leaves no int16 headroom (pair sums up to 32512), so each vpmaddubsw needs its own
// widening, where 4-bit codes (pair sums up to 3840) sum 8 in int16. The int16 path issues 2 vpmaddwd and 2
// vpaddd per 32 products of a row (the decode shared by the rows). So at few rows a table panel issues about
// 1.4-1.7x the instructions of an affine one, which is what it costs when the products bound the time. No exact
// form for arbitrary levels in [-127, 127] found is cheaper: two 4-bit digit tables (L = 16 h + l + const) double
// the lookups and multiplies; levels offset to unsigned (L - min as u8: no vpsignb, 5.5) are exact only when a
// column's levels span at most 127, which fitted codebooks (about [-127, 127]) do not. VNNI's vpdpbusd and NEON's
// sdot widen inside the multiply, for both kinds of panel.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm_w4a8.h"

namespace medqk {
namespace kernels {
namespace avx2 {

namespace {

constexpr std::size_t kPanelCols = 16;
constexpr std::size_t kPairs = kPanelCols / 2;  // column pairs per panel
constexpr int kRows = 3;                        // rows per tile of the int16 path
constexpr std::size_t kGemvMaxRows = 1;         // the byte path runs up to this many rows
constexpr std::size_t kSliceK = 256;            // k per decoded slice (8 KiB of int16), whole groups at least

std::size_t blocks32(std::size_t k) { return (k + 31) / 32; }
std::size_t panel_bytes(std::size_t k) { return 32 * kPairs * (1 + blocks32(k)); }

std::size_t packed_bytes(std::size_t n, std::size_t k, std::size_t /*group_size*/) {
  return (n + kPanelCols - 1) / kPanelCols * panel_bytes(k);
}

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Whether a panel (its 8 tables of column pairs) is affine: every column's levels are c + offset, one offset
// for all 16. Byte differences agree mod 256 only; offset <= 112 keeps each c + offset in [-127, 127], where
// agreement mod 256 is equality. Columns past n have zero levels, so a panel with padding is never affine.
bool affine_panel(const uint8_t* tables, int* offset) {
  const __m256i iota = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8,
                                        9, 10, 11, 12, 13, 14, 15);
  const int8_t off = static_cast<int8_t>(tables[0]);
  if (off > 112) return false;
  const __m256i want = _mm256_set1_epi8(off);
  for (std::size_t q = 0; q < kPairs; ++q) {
    const __m256i diff = _mm256_sub_epi8(load32(tables + 32 * q), iota);
    if (_mm256_movemask_epi8(_mm256_cmpeq_epi8(diff, want)) != -1) return false;
  }
  *offset = off;
  return true;
}

// The codes of the 16 columns from j0 in the affine arrangement (see the top of the file).
void pack_affine_codes(const uint8_t* codes, std::size_t j0, std::size_t k, std::size_t ldc, uint8_t* out) {
  std::memset(out, 0, 32 * kPairs * blocks32(k));
  for (std::size_t c = 0; c < kPanelCols; ++c) {
    uint8_t* lane = out + 32 * (c / 8) + 4 * (c % 8);
    for (std::size_t p = 0; p < k; ++p) {
      const std::size_t r = p % 32, j = r % 8;
      lane[256 * (p / 32) + 64 * (r / 8) + j % 4] |= static_cast<uint8_t>(codes[(j0 + c) * ldc + p] << (j / 4 * 4));
    }
  }
}

void pack(const uint8_t* codes, std::size_t n, std::size_t k, std::size_t ldc, const int8_t* levels,
          std::size_t /*group_size*/, uint8_t* packed) {
  std::memset(packed, 0, packed_bytes(n, k, 0));
  for (std::size_t j = 0; j < n; ++j) {
    uint8_t* panel = packed + (j / kPanelCols) * panel_bytes(k);
    const std::size_t pair = j % kPanelCols / 2, half = 16 * (j % 2);
    std::memcpy(panel + 32 * pair + half, levels + j * 16, 16);
    uint8_t* code_blocks = panel + 32 * kPairs + 32 * pair + half;
    for (std::size_t p = 0; p < k; ++p) {
      code_blocks[32 * kPairs * (p / 32) + p % 16] |= static_cast<uint8_t>(codes[j * ldc + p] << (p % 32 & 16 ? 4 : 0));
    }
  }
  for (std::size_t j0 = 0; j0 < n; j0 += kPanelCols) {
    uint8_t* panel = packed + (j0 / kPanelCols) * panel_bytes(k);
    int offset;
    if (affine_panel(panel, &offset)) pack_affine_codes(codes, j0, k, ldc, panel + 32 * kPairs);
  }
}

// Activations of the rows of one call, K padded with zeros to whole blocks of 32, a and |a| (as u8), each
// half block of 16 k stored twice (64 bytes per block: [k 0-15 | k 0-15][k 16-31 | k 16-31]) so that the
// kernel reads the operand of both columns' lanes with a plain load (a broadcast would take a shuffle port).
struct Activations {
  std::vector<int8_t> a;
  std::vector<uint8_t> abs;
  std::size_t stride;
  Activations(const W4A8Args& x, std::size_t m0, std::size_t m1) : stride(64 * blocks32(x.k)) {
    a.assign((m1 - m0) * stride, 0);
    abs.assign((m1 - m0) * stride, 0);
    for (std::size_t i = m0; i < m1; ++i) {
      int8_t* dst = a.data() + (i - m0) * stride;
      for (std::size_t p = 0; p < x.k; p += 16) {
        const std::size_t len = std::min<std::size_t>(16, x.k - p);
        std::memcpy(dst + 2 * p, x.a + i * x.lda + p, len);
        std::memcpy(dst + 2 * p + 16, x.a + i * x.lda + p, len);
      }
      uint8_t* dst_abs = abs.data() + (i - m0) * stride;
      for (std::size_t p = 0; p < stride; p += 32) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dst + p));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst_abs + p), _mm256_abs_epi8(v));
      }
    }
  }
};

// Sums of each column's 4 lanes over the 4 accumulators of 4 column pairs (pair p's lanes 0-3 column 2p,
// 4-7 column 2p + 1): lanes [c0 c2 c4 c6 | c1 c3 c5 c7], exact (each |sum| <= group_size * 128 * 127).
inline __m256i column_sums(const __m256i acc[4]) {
  const __m256i u = _mm256_add_epi32(_mm256_unpacklo_epi32(acc[0], acc[1]), _mm256_unpackhi_epi32(acc[0], acc[1]));
  const __m256i v = _mm256_add_epi32(_mm256_unpacklo_epi32(acc[2], acc[3]), _mm256_unpackhi_epi32(acc[2], acc[3]));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(u, v), _mm256_unpackhi_epi64(u, v));
}

// out[i][l] = scales[col_index[l] + g + i] for the groups g + i < G (8 columns' scales of 8 groups,
// transposed: lanes are the tile's columns).
inline void group_scales(const W4A8Args& x, const int32_t col_index[8], std::size_t g, float out[8][8]) {
  if (g + 8 > x.groups) {
    for (std::size_t i = 0; g + i < x.groups; ++i) {
      for (int l = 0; l < 8; ++l) out[i][l] = x.scales[col_index[l] + g + i];
    }
    return;
  }
  __m256 r[8], t[8];
  for (int l = 0; l < 8; ++l) r[l] = _mm256_loadu_ps(x.scales + col_index[l] + g);
  for (int q = 0; q < 8; q += 2) {
    t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
    t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
  }
  for (int h = 0; h < 8; h += 4) {  // r[h..h+3]: lanes h..h+3 of groups (0, 4), (1, 5), (2, 6), (3, 7)
    r[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
    r[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);
    r[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    r[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_store_ps(out[i], _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_store_ps(out[i + 4], _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

// The byte path: one row (activations ta, |a| tabs) times 4 consecutive column pairs of one panel (tables at
// `tables`, 32 bytes apart; codes from `codes`) from column j: the int32 D of every group (x.d) or the
// float output (x.out), columns past n skipped, result row i. The 4 pairs share each activation load and
// their accumulators are independent chains. At each group end the 4 accumulators are summed per column
// (column_sums: 9 single-uop instructions for 8 columns), and with the float output converted once and
// multiplied by the 8 columns' scales of the group in the same lane order (group_scales: a gather
// instruction per group costs more).
template <bool kInt32, bool kZeros>
void gemv_tile(const W4A8Args& x, const int8_t* ta, const uint8_t* tabs, const uint8_t* tables, const uint8_t* codes,
               std::size_t i, std::size_t j) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const std::size_t blocks = blocks32(x.k), group_blocks = x.group_size / 32;
  const std::size_t cols = std::min<std::size_t>(8, x.n - j);
  const int lane_col[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  alignas(32) int32_t col_index[8];  // each lane's column (clamped to n - 1: padding lanes read a real scale)
  for (int l = 0; l < 8; ++l) {
    col_index[l] = static_cast<int32_t>(std::min<std::size_t>(j + lane_col[l], x.n - 1) * x.groups);
  }
  alignas(32) float group_scale[8][8];
  __m256i table[4];
  for (int p = 0; p < 4; ++p) table[p] = load32(tables + 32 * p);
  __m256 facc = _mm256_setzero_ps();
  for (std::size_t g = 0, b = 0; g < x.groups; ++g) {
    __m256i acc[4];
    for (int p = 0; p < 4; ++p) acc[p] = _mm256_setzero_si256();
    for (const std::size_t b1 = std::min(blocks, b + group_blocks); b < b1; ++b) {
      // a GEMV streams the weights once: ask for the panel's codes 16 blocks (4 KiB) ahead, all 8 pairs
      const char* ahead = reinterpret_cast<const char*>(codes + 32 * kPairs * (b + 16));
      for (int line = 0; line < 4; ++line) _mm_prefetch(ahead + 64 * line, _MM_HINT_T0);
      __m256i v[4];
      for (int p = 0; p < 4; ++p) v[p] = load32(codes + 32 * kPairs * b + 32 * p);
      for (int half = 0; half < 2; ++half) {  // k 0-15 of the block (low nibbles), then k 16-31 (high)
        const __m256i ar = load32(ta + 64 * b + 32 * half);
        const __m256i ur = load32(tabs + 64 * b + 32 * half);
        for (int p = 0; p < 4; ++p) {
          const __m256i idx = _mm256_and_si256(half == 0 ? v[p] : _mm256_srli_epi16(v[p], 4), low4);
          const __m256i w = _mm256_shuffle_epi8(table[p], idx);
          const __m256i prod = _mm256_maddubs_epi16(ur, _mm256_sign_epi8(w, ar));
          acc[p] = _mm256_add_epi32(acc[p], _mm256_madd_epi16(prod, ones));
        }
      }
    }
    __m256i d = column_sums(acc);
    if (kInt32) {
      alignas(32) int32_t t[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(t), d);
      for (int l = 0; l < 8; ++l) {
        const std::size_t c = lane_col[l];
        if (c < cols) x.d[(i * x.n + j + c) * x.groups + g] = t[l];
      }
      continue;
    }
    if (g % 8 == 0) {     // the 8 columns' scales of groups g to g + 7, transposed to one vector per group
      if (g % 16 == 0) {  // each column's scales are a stream of their own: the next line, 16 groups ahead
        for (int l = 0; l < 8; ++l) {
          _mm_prefetch(reinterpret_cast<const char*>(x.scales + col_index[l] + g + 16), _MM_HINT_T0);
        }
      }
      group_scales(x, col_index, g, group_scale);
    }
    if (kZeros) {
      alignas(32) int32_t z[8];
      for (int l = 0; l < 8; ++l) z[l] = x.zeros[col_index[l] + g];
      const __m256i zv = _mm256_load_si256(reinterpret_cast<const __m256i*>(z));
      d = _mm256_sub_epi32(d, _mm256_mullo_epi32(zv, _mm256_set1_epi32(x.asum[i * x.groups + g])));
    }
    facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_load_ps(group_scale[g % 8]), facc);
  }
  if (kInt32) return;
  alignas(32) float sums[8];
  _mm256_store_ps(sums, _mm256_mul_ps(facc, _mm256_set1_ps(x.row_scale[i])));
  float* row = x.out + i * x.n + j;
  for (int l = 0; l < 8; ++l) {
    const std::size_t c = lane_col[l];
    if (c < cols) row[c] = sums[l] + (x.bias != nullptr ? x.bias[j + c] : 0.0f);
  }
}

// The byte path (few rows) over columns [n0, n1) (whole panels from n0), row by row, 4 column pairs at a
// time (pairs past n are padding: zero codes and levels, their columns skipped).
template <bool kInt32, bool kZeros>
void gemm_bytes(const W4A8Args& x, std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1) {
  const Activations act(x, m0, m1);
  const std::size_t pb = panel_bytes(x.k);
  for (std::size_t j0 = n0; j0 < n1; j0 += kPanelCols) {
    const uint8_t* tables = x.packed + j0 / kPanelCols * pb;
    const uint8_t* codes = tables + 32 * kPairs;
    int offset;
    if (affine_panel(tables, &offset)) continue;  // gemm_affine's
    for (std::size_t i = m0; i < m1; ++i) {
      const int8_t* ta = act.a.data() + (i - m0) * act.stride;
      const uint8_t* tabs = act.abs.data() + (i - m0) * act.stride;
      for (std::size_t q = 0; q < kPairs && j0 + 2 * q < n1; q += 4) {
        gemv_tile<kInt32, kZeros>(x, ta, tabs, tables + 32 * q, codes + 32 * q, i, j0 + 2 * q);
      }
    }
  }
}

// The int16 path. Column order of the decoded slice and of every accumulator: lane l of the 8-column half s
// holds column 8 s + kColumnOrder[l] of the panel (the transpose below interleaves even and odd columns).
constexpr int kColumnOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

// Decodes blocks [b0, b1) of a panel to int16: for each k pair p, 64 bytes = 16 columns x (w[k], w[k + 1]).
void decode_slice(const uint8_t* panel, std::size_t b0, std::size_t b1, int16_t* out) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (std::size_t b = b0; b < b1; ++b) {
    const uint8_t* codes = panel + 32 * kPairs * (1 + b);
    // few rows stream the weights from memory: the next slice's codes are asked for while this one computes
    for (int line = 0; line < 4; ++line) {
      const uint8_t* next = codes + 32 * kPairs * (kSliceK / 32) + 64 * line;
      _mm_prefetch(reinterpret_cast<const char*>(next), _MM_HINT_T1);
    }
    for (int half = 0; half < 2; ++half) {  // k 0-15 of the block (low nibbles), then 16-31 (high)
      for (int set = 0; set < 2; ++set) {   // columns 0-7, then 8-15
        __m256i e[4];                       // e[q]: lane 0 column 2q (16 k), lane 1 column 2q + 1
        for (int q = 0; q < 4; ++q) {
          const __m256i v = load32(codes + 32 * (4 * set + q));
          const __m256i idx = _mm256_and_si256(half == 0 ? v : _mm256_srli_epi16(v, 4), low4);
          e[q] = _mm256_shuffle_epi8(load32(panel + 32 * (4 * set + q)), idx);
        }
        // per lane, 16-bit units are k pairs: transpose 4 columns x 8 pairs to 8 pairs x 4 columns
        const __m256i u0 = _mm256_unpacklo_epi16(e[0], e[1]), u1 = _mm256_unpackhi_epi16(e[0], e[1]);
        const __m256i u2 = _mm256_unpacklo_epi16(e[2], e[3]), u3 = _mm256_unpackhi_epi16(e[2], e[3]);
        const __m256i v[4] = {_mm256_unpacklo_epi32(u0, u2), _mm256_unpackhi_epi32(u0, u2),
                              _mm256_unpacklo_epi32(u1, u3), _mm256_unpackhi_epi32(u1, u3)};
        for (int t = 0; t < 4; ++t) {  // v[t]: pairs 2t, 2t + 1 (even columns in lane 0, odd in lane 1)
          const __m256i pp = _mm256_permute4x64_epi64(v[t], 0xD8);  // lane 0: pair 2t, lane 1: pair 2t + 1
          int16_t* dst = out + ((b - b0) * 16 + 8 * half + 2 * t) * 32 + 16 * set;
          _mm256_store_si256(reinterpret_cast<__m256i*>(dst), _mm256_cvtepi8_epi16(_mm256_castsi256_si128(pp)));
          _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 32),
                             _mm256_cvtepi8_epi16(_mm256_extracti128_si256(pp, 1)));
        }
      }
    }
  }
}

// A (rows of one call) widened to int16, K padded with zeros to whole blocks: one int32 word per k pair.
std::vector<int32_t> widen_rows(const W4A8Args& x, std::size_t m0, std::size_t m1, std::size_t kp) {
  std::vector<int32_t> wide((m1 - m0) * kp, 0);
  for (std::size_t i = m0; i < m1; ++i) {
    int16_t* dst = reinterpret_cast<int16_t*>(wide.data() + (i - m0) * kp);
    for (std::size_t p = 0; p < x.k; ++p) dst[p] = x.a[i * x.lda + p];
  }
  return wide;
}

// R rows x 16 columns over k pairs [p0, p1) of the decoded slice (pairs counted from the slice start): int32
// sums, lanes in kColumnOrder.
template <int R>
inline void micro(const int32_t* a, std::size_t kp, const int16_t* slice, std::size_t p0, std::size_t p1,
                  __m256i acc[][2]) {
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (std::size_t p = p0; p < p1; ++p) {
    const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(slice + 32 * p));
    const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(slice + 32 * p + 16));
    for (int r = 0; r < R; ++r) {
      const __m256i ar = _mm256_set1_epi32(a[r * kp + p]);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(ar, b0));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(ar, b1));
    }
  }
}

// R rows (1 to 3) x 16 columns over `groups` groups of `gp` k pairs each of the decoded slice (from k pair
// p0 of the slice), each group's int32 sums folded into the rows' float sums as soon as the group ends, all
// in registers: row r's two int32 accumulators are ymm(4 + 2r), ymm(5 + 2r) and its float sums ymm(10 + 2r),
// ymm(11 + 2r) (read from and written back to `sums`, rows 16 floats apart, lanes in kColumnOrder), the
// slice's pair ymm0-1, a broadcast ymm2 and a product ymm3. The fold is a vcvtdq2ps and an FMA with the
// group's scales (16 floats per group from `scale`, memory operands) per accumulator: no call, store or
// reload per group.
template <int R>
void micro_fold(const int32_t* a, std::size_t kp, const int16_t* slice, std::size_t p0, std::size_t groups,
                std::size_t gp, const float* scale, float* sums);

#define MEDQK_W4_ROW(A, X, Y)           \
  "vpbroadcastd (%[" A                  \
  "],%[i],4), %%ymm2\n\t"               \
  "vpmaddwd %%ymm0, %%ymm2, %%ymm3\n\t" \
  "vpaddd %%ymm3, %%ymm" X ", %%ymm" X  \
  "\n\t"                                \
  "vpmaddwd %%ymm1, %%ymm2, %%ymm2\n\t" \
  "vpaddd %%ymm2, %%ymm" Y ", %%ymm" Y "\n\t"
#define MEDQK_W4_ZERO(X, Y) "vpxor %%xmm" X ", %%xmm" X ", %%xmm" X "\n\tvpxor %%xmm" Y ", %%xmm" Y ", %%xmm" Y "\n\t"
#define MEDQK_W4_FOLD(X, Y, F, G)           \
  "vcvtdq2ps %%ymm" X ", %%ymm" X           \
  "\n\t"                                    \
  "vfmadd231ps (%[s]), %%ymm" X ", %%ymm" F \
  "\n\t"                                    \
  "vcvtdq2ps %%ymm" Y ", %%ymm" Y           \
  "\n\t"                                    \
  "vfmadd231ps 32(%[s]), %%ymm" Y ", %%ymm" G "\n\t"
#define MEDQK_W4_LOAD(F, G, OFF0, OFF1) \
  "vmovups " OFF0 "(%[sum]), %%ymm" F "\n\tvmovups " OFF1 "(%[sum]), %%ymm" G "\n\t"
#define MEDQK_W4_STORE(F, G, OFF0, OFF1) \
  "vmovups %%ymm" F ", " OFF0 "(%[sum])\n\tvmovups %%ymm" G ", " OFF1 "(%[sum])\n\t"
#define MEDQK_W4_MICRO_FOLD(R, LOADS, ZEROS, ROWS, FOLDS, STORES)                                                \
  template <>                                                                                                    \
  void micro_fold<R>(const int32_t* a, std::size_t kp, const int16_t* slice, std::size_t p0, std::size_t groups, \
                     std::size_t gp, const float* scale, float* sums) {                                          \
    const int32_t* a0 = a + p0;                                                                                  \
    const int32_t* a1 = R > 1 ? a0 + kp : a0;                                                                    \
    const int32_t* a2 = R > 2 ? a1 + kp : a0;                                                                    \
    const int16_t* b = slice + 32 * p0;                                                                          \
    std::size_t i = 0, count = 0;                                                                                \
    __asm__ volatile(LOADS "2:\n\t" ZEROS                                                                        \
                           "mov %[gp], %[c]\n\t"                                                                 \
                           "1:\n\t"                                                                              \
                           "vmovdqa   (%[b]), %%ymm0\n\t"                                                        \
                           "vmovdqa 32(%[b]), %%ymm1\n\t"                                                        \
                           "add $64, %[b]\n\t" ROWS                                                              \
                           "inc %[i]\n\t"                                                                        \
                           "dec %[c]\n\t"                                                                        \
                           "jne 1b\n\t" FOLDS                                                                    \
                           "add $64, %[s]\n\t"                                                                   \
                           "dec %[g]\n\t"                                                                        \
                           "jne 2b\n\t" STORES                                                                   \
                     : [b] "+r"(b), [i] "+r"(i), [c] "+r"(count), [g] "+r"(groups), [s] "+r"(scale)              \
                     : [a0] "r"(a0), [a1] "r"(a1), [a2] "r"(a2), [gp] "r"(gp), [sum] "r"(sums)                   \
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",  \
                       "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");                             \
  }

MEDQK_W4_MICRO_FOLD(1, MEDQK_W4_LOAD("10", "11", "0", "32"), MEDQK_W4_ZERO("4", "5"), MEDQK_W4_ROW("a0", "4", "5"),
                    MEDQK_W4_FOLD("4", "5", "10", "11"), MEDQK_W4_STORE("10", "11", "0", "32"))
MEDQK_W4_MICRO_FOLD(2, MEDQK_W4_LOAD("10", "11", "0", "32") MEDQK_W4_LOAD("12", "13", "64", "96"),
                    MEDQK_W4_ZERO("4", "5") MEDQK_W4_ZERO("6", "7"),
                    MEDQK_W4_ROW("a0", "4", "5") MEDQK_W4_ROW("a1", "6", "7"),
                    MEDQK_W4_FOLD("4", "5", "10", "11") MEDQK_W4_FOLD("6", "7", "12", "13"),
                    MEDQK_W4_STORE("10", "11", "0", "32") MEDQK_W4_STORE("12", "13", "64", "96"))
MEDQK_W4_MICRO_FOLD(3,
                    MEDQK_W4_LOAD("10", "11", "0", "32") MEDQK_W4_LOAD("12", "13", "64", "96")
                        MEDQK_W4_LOAD("14", "15", "128", "160"),
                    MEDQK_W4_ZERO("4", "5") MEDQK_W4_ZERO("6", "7") MEDQK_W4_ZERO("8", "9"),
                    MEDQK_W4_ROW("a0", "4", "5") MEDQK_W4_ROW("a1", "6", "7") MEDQK_W4_ROW("a2", "8", "9"),
                    MEDQK_W4_FOLD("4", "5", "10", "11") MEDQK_W4_FOLD("6", "7", "12", "13")
                        MEDQK_W4_FOLD("8", "9", "14", "15"),
                    MEDQK_W4_STORE("10", "11", "0", "32") MEDQK_W4_STORE("12", "13", "64", "96")
                        MEDQK_W4_STORE("14", "15", "128", "160"))

#undef MEDQK_W4_MICRO_FOLD
#undef MEDQK_W4_ROW
#undef MEDQK_W4_ZERO
#undef MEDQK_W4_FOLD
#undef MEDQK_W4_LOAD
#undef MEDQK_W4_STORE

// Per panel state of the int16 path: each group's scales (and zero points) in the accumulators' column order,
// and the float sums of every row.
struct PanelFold {
  std::vector<float> scale;   // groups x 16
  std::vector<int32_t> zero;  // groups x 16, when zeros
  std::vector<float> sums;    // rows x 16
};

// The panel's scales (and zero points) of every group, lane c of group g at 16 g + c holding column
// j0 + 8 (c / 8) + order[c % 8] (0 past n).
void panel_fold_tables(const W4A8Args& x, std::size_t j0, const int order[8], PanelFold& fold) {
  // the next panel's scales (16 columns x G floats, contiguous) are asked for while this panel computes: with
  // few rows the gather below otherwise waits on memory once per line (both paths: the GEMV of a matrix that
  // is not in cache spent more time here than in its products)
  if (j0 + kPanelCols < x.n) {
    const char* next = reinterpret_cast<const char*>(x.scales + (j0 + kPanelCols) * x.groups);
    const std::size_t bytes = std::min(kPanelCols, x.n - j0 - kPanelCols) * x.groups * sizeof(float);
    for (std::size_t off = 0; off < bytes; off += 64) _mm_prefetch(next + off, _MM_HINT_T1);
  }
  if (j0 + kPanelCols <= x.n) {  // the scales 8 groups x 8 columns at a time, transposed in registers
    for (std::size_t h = 0; h < 2; ++h) {
      alignas(32) int32_t col_index[8];
      for (int l = 0; l < 8; ++l) col_index[l] = static_cast<int32_t>((j0 + 8 * h + order[l]) * x.groups);
      alignas(32) float block[8][8];
      for (std::size_t g = 0; g < x.groups; g += 8) {
        group_scales(x, col_index, g, block);
        for (std::size_t i = 0; i < 8 && g + i < x.groups; ++i) {
          _mm256_storeu_ps(fold.scale.data() + 16 * (g + i) + 8 * h, _mm256_load_ps(block[i]));
        }
      }
    }
    if (x.zeros == nullptr) return;
    for (std::size_t c = 0; c < 16; ++c) {
      const int8_t* z = x.zeros + (j0 + 8 * (c / 8) + order[c % 8]) * x.groups;
      for (std::size_t g = 0; g < x.groups; ++g) fold.zero[16 * g + c] = z[g];
    }
    return;
  }
  for (std::size_t c = 0; c < 16; ++c) {
    const std::size_t col = j0 + 8 * (c / 8) + order[c % 8];
    for (std::size_t g = 0; g < x.groups; ++g) {
      fold.scale[16 * g + c] = col < x.n ? x.scales[col * x.groups + g] : 0.0f;
      if (x.zeros != nullptr) fold.zero[16 * g + c] = col < x.n ? x.zeros[col * x.groups + g] : 0;
    }
  }
}

template <int R>
void rows_slice(const W4A8Args& x, const int32_t* a, std::size_t kp, const int16_t* slice, std::size_t slice_p0,
                std::size_t slice_p1, std::size_t i0, std::size_t j0, PanelFold& fold, std::size_t fold_row) {
  const std::size_t gp = x.group_size / 2;  // k pairs per group
  // the float output without zero points folds in the asm kernels (whole groups, then the last partial one);
  // zero points and the int32 output take the intrinsics kernel, one call and fold per group
  if (x.out != nullptr && x.zeros == nullptr) {
    const std::size_t whole = (slice_p1 - slice_p0) / gp, g0 = slice_p0 / gp;
    float* sums = fold.sums.data() + fold_row * 16;
    if (whole > 0) micro_fold<R>(a + slice_p0, kp, slice, 0, whole, gp, fold.scale.data() + 16 * g0, sums);
    const std::size_t tail = slice_p1 - slice_p0 - whole * gp;
    if (tail > 0) {
      const float* tail_scale = fold.scale.data() + 16 * (g0 + whole);
      micro_fold<R>(a + slice_p0, kp, slice, whole * gp, 1, tail, tail_scale, sums);
    }
    return;
  }
  for (std::size_t p = slice_p0; p < slice_p1; p += gp) {
    const std::size_t g = p / gp, p1 = std::min(slice_p1, p + gp);
    __m256i acc[R][2];
    micro<R>(a + slice_p0, kp, slice, p - slice_p0, p1 - slice_p0, acc);
    if (x.d != nullptr) {
      alignas(32) int32_t t[R][16];
      for (int r = 0; r < R; ++r) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(t[r]), acc[r][0]);
        _mm256_store_si256(reinterpret_cast<__m256i*>(t[r] + 8), acc[r][1]);
        for (std::size_t c = 0; c < 16; ++c) {
          const std::size_t col = j0 + 8 * (c / 8) + kColumnOrder[c % 8];
          if (col < x.n) x.d[((i0 + r) * x.n + col) * x.groups + g] = t[r][c];
        }
      }
      continue;
    }
    for (int s = 0; s < 2; ++s) {
      const __m256 scale = _mm256_loadu_ps(fold.scale.data() + 16 * g + 8 * s);
      for (int r = 0; r < R; ++r) {
        __m256i d = acc[r][s];
        if (x.zeros != nullptr) {
          const __m256i z = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(fold.zero.data() + 16 * g + 8 * s));
          d = _mm256_sub_epi32(d, _mm256_mullo_epi32(z, _mm256_set1_epi32(x.asum[(i0 + r) * x.groups + g])));
        }
        float* sum = fold.sums.data() + (fold_row + r) * 16 + 8 * s;
        _mm256_storeu_ps(sum, _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), scale, _mm256_loadu_ps(sum)));
      }
    }
  }
}

using RowsSlice = void (*)(const W4A8Args&, const int32_t*, std::size_t, const int16_t*, std::size_t, std::size_t,
                           std::size_t, std::size_t, PanelFold&, std::size_t);
constexpr RowsSlice kRowsSlice[kRows + 1] = {nullptr, rows_slice<1>, rows_slice<2>, rows_slice<3>};

void gemm_int16(const W4A8Args& x, std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1) {
  const std::size_t blocks = blocks32(x.k), kp = 16 * blocks, gp = x.group_size / 2;
  const std::vector<int32_t> wide = widen_rows(x, m0, m1, kp);
  const std::size_t slice_pairs = std::max(gp, kSliceK / 2 / gp * gp);  // whole groups
  std::vector<int16_t, std::allocator<int16_t>> slice_store(slice_pairs * 32 + 16);
  int16_t* slice = reinterpret_cast<int16_t*>((reinterpret_cast<std::uintptr_t>(slice_store.data()) + 31) & ~31ull);
  PanelFold fold;
  fold.scale.resize(x.groups * 16);
  if (x.zeros != nullptr) fold.zero.resize(x.groups * 16);
  fold.sums.resize((m1 - m0) * 16);
  const std::size_t pb = panel_bytes(x.k);
  for (std::size_t j0 = n0; j0 < n1; j0 += kPanelCols) {
    const uint8_t* panel = x.packed + j0 / kPanelCols * pb;
    int offset;
    if (affine_panel(panel, &offset)) continue;  // gemm_affine's
    if (x.out != nullptr) {
      panel_fold_tables(x, j0, kColumnOrder, fold);
      std::fill(fold.sums.begin(), fold.sums.end(), 0.0f);
    }
    for (std::size_t p0 = 0; p0 < kp; p0 += slice_pairs) {
      const std::size_t p1 = std::min(kp, p0 + slice_pairs);
      decode_slice(panel, p0 / 16, p1 / 16, slice);
      for (std::size_t i = m0; i < m1; i += kRows) {
        const std::size_t rows = std::min<std::size_t>(kRows, m1 - i);
        kRowsSlice[rows](x, wide.data() + (i - m0) * kp, kp, slice, p0, p1, i, j0, fold, i - m0);
      }
    }
    if (x.out == nullptr) continue;
    if (j0 + kPanelCols <= x.n) {  // a whole panel: each row's 16 sums back to column order, 2 vector stores
      const __m256i natural = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // inverse of kColumnOrder
      for (std::size_t i = m0; i < m1; ++i) {
        const __m256 rs = _mm256_set1_ps(x.row_scale[i]);
        for (std::size_t s = 0; s < 2; ++s) {
          const __m256 sum = _mm256_loadu_ps(fold.sums.data() + (i - m0) * 16 + 8 * s);
          __m256 v = _mm256_mul_ps(rs, _mm256_permutevar8x32_ps(sum, natural));
          if (x.bias != nullptr) v = _mm256_add_ps(v, _mm256_loadu_ps(x.bias + j0 + 8 * s));
          _mm256_storeu_ps(x.out + i * x.n + j0 + 8 * s, v);
        }
      }
      continue;
    }
    for (std::size_t i = m0; i < m1; ++i) {
      const float rs = x.row_scale[i];
      for (std::size_t c = 0; c < 16; ++c) {
        const std::size_t col = j0 + 8 * (c / 8) + kColumnOrder[c % 8];
        if (col >= x.n) continue;
        const float v = rs * fold.sums[(i - m0) * 16 + c];
        x.out[i * x.n + col] = x.bias != nullptr ? v + x.bias[col] : v;
      }
    }
  }
}

// The affine path (see the top of the file).
constexpr int kNaturalOrder[8] = {0, 1, 2, 3, 4, 5, 6, 7};
constexpr int kAffineRows = 2;  // rows per tile: they share each code load and nibble split

// Rows [m0, m1) of a, K padded with zeros to whole blocks of 32, and each group's sum.
struct PaddedRows {
  std::vector<int8_t> a;
  std::vector<int32_t> sums;  // (rows, groups)
  std::size_t stride;
  PaddedRows(const W4A8Args& x, std::size_t m0, std::size_t m1) : stride(32 * blocks32(x.k)) {
    a.assign((m1 - m0) * stride, 0);
    sums.assign((m1 - m0) * x.groups, 0);
    for (std::size_t i = m0; i < m1; ++i) {
      std::memcpy(a.data() + (i - m0) * stride, x.a + i * x.lda, x.k);
      for (std::size_t p = 0; p < x.k; ++p) sums[(i - m0) * x.groups + p / x.group_size] += x.a[i * x.lda + p];
    }
  }
};

inline __m256i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// R rows (from row r0 of `rows`, row i of the result) x the 16 columns of the affine panel at j0 (codes
// `codes`, levels c + offset): D of every group, or the float output folded group by group.
template <int R, bool kInt32, bool kZeros>
void affine_tile(const W4A8Args& x, const PaddedRows& rows, std::size_t r0, std::size_t i, std::size_t j0,
                 const uint8_t* codes, int offset, const PanelFold& fold) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const std::size_t blocks = blocks32(x.k), group_blocks = x.group_size / 32;
  const int8_t* a[R];
  for (int r = 0; r < R; ++r) a[r] = rows.a.data() + (r0 + r) * rows.stride;
  __m256 facc[R][2];
  for (int r = 0; r < R; ++r) facc[r][0] = facc[r][1] = _mm256_setzero_ps();
  for (std::size_t g = 0, b = 0; g < x.groups; ++g) {
    __m256i acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (const std::size_t b1 = std::min(blocks, b + group_blocks); b < b1; ++b) {
      // the weights stream once per row tile: ask for the codes 16 blocks (4 KiB) ahead
      const char* ahead = reinterpret_cast<const char*>(codes + 256 * (b + 16));
      for (int line = 0; line < 4; ++line) _mm_prefetch(ahead + 64 * line, _MM_HINT_T0);
      __m256i acc16[R][2];
      for (int r = 0; r < R; ++r) acc16[r][0] = acc16[r][1] = _mm256_setzero_si256();
      for (int o = 0; o < 4; ++o) {
        __m256i lo[2], hi[2];
        for (int h = 0; h < 2; ++h) {
          const __m256i v = load32(codes + 256 * b + 64 * o + 32 * h);
          lo[h] = _mm256_and_si256(v, low4);
          hi[h] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        }
        for (int r = 0; r < R; ++r) {
          const __m256i alo = broadcast4(a[r] + 32 * b + 8 * o), ahi = broadcast4(a[r] + 32 * b + 8 * o + 4);
          for (int h = 0; h < 2; ++h) {
            const __m256i sum = _mm256_add_epi16(_mm256_maddubs_epi16(lo[h], alo), _mm256_maddubs_epi16(hi[h], ahi));
            acc16[r][h] = _mm256_add_epi16(acc16[r][h], sum);
          }
        }
      }
      for (int r = 0; r < R; ++r) {
        for (int h = 0; h < 2; ++h) acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(acc16[r][h], ones));
      }
    }
    for (int r = 0; r < R; ++r) {
      const int32_t asum = rows.sums[(r0 + r) * x.groups + g];
      const __m256i base = _mm256_set1_epi32(offset * asum);  // |offset * asum| <= 127 * 128 * group_size
      for (int h = 0; h < 2; ++h) {
        __m256i d = _mm256_add_epi32(acc[r][h], base);
        if (kInt32) {
          alignas(32) int32_t t[8];
          _mm256_store_si256(reinterpret_cast<__m256i*>(t), d);
          for (int l = 0; l < 8; ++l) x.d[((i + r) * x.n + j0 + 8 * h + l) * x.groups + g] = t[l];
          continue;
        }
        if (kZeros) {
          const __m256i z = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(fold.zero.data() + 16 * g + 8 * h));
          d = _mm256_sub_epi32(d, _mm256_mullo_epi32(z, _mm256_set1_epi32(asum)));
        }
        const __m256 scale = _mm256_loadu_ps(fold.scale.data() + 16 * g + 8 * h);
        facc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), scale, facc[r][h]);
      }
    }
  }
  if (kInt32) return;
  for (int r = 0; r < R; ++r) {
    const __m256 rs = _mm256_set1_ps(x.row_scale[i + r]);
    for (int h = 0; h < 2; ++h) {
      __m256 v = _mm256_mul_ps(facc[r][h], rs);
      if (x.bias != nullptr) v = _mm256_add_ps(v, _mm256_loadu_ps(x.bias + j0 + 8 * h));
      _mm256_storeu_ps(x.out + (i + r) * x.n + j0 + 8 * h, v);
    }
  }
}

template <bool kInt32, bool kZeros>
void gemm_affine(const W4A8Args& x, std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1) {
  const PaddedRows rows(x, m0, m1);
  PanelFold fold;
  fold.scale.resize(x.groups * 16);
  if (kZeros) fold.zero.resize(x.groups * 16);
  const std::size_t pb = panel_bytes(x.k);
  for (std::size_t j0 = n0; j0 < n1; j0 += kPanelCols) {
    const uint8_t* panel = x.packed + j0 / kPanelCols * pb;
    int offset;
    if (!affine_panel(panel, &offset)) continue;
    if (!kInt32) panel_fold_tables(x, j0, kNaturalOrder, fold);
    const uint8_t* codes = panel + 32 * kPairs;
    std::size_t i = m0;
    for (; i + kAffineRows <= m1; i += kAffineRows) {
      affine_tile<kAffineRows, kInt32, kZeros>(x, rows, i - m0, i, j0, codes, offset, fold);
    }
    for (; i < m1; ++i) affine_tile<1, kInt32, kZeros>(x, rows, i - m0, i, j0, codes, offset, fold);
  }
}

void gemm(const W4A8Args& x, std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1) {
  bool any_affine = false, any_tables = false;
  const std::size_t pb = panel_bytes(x.k);
  for (std::size_t j0 = n0; j0 < n1; j0 += kPanelCols) {
    int offset;
    (affine_panel(x.packed + j0 / kPanelCols * pb, &offset) ? any_affine : any_tables) = true;
  }
  if (any_affine) {
    if (x.d != nullptr) {
      gemm_affine<true, false>(x, m0, m1, n0, n1);
    } else if (x.zeros != nullptr) {
      gemm_affine<false, true>(x, m0, m1, n0, n1);
    } else {
      gemm_affine<false, false>(x, m0, m1, n0, n1);
    }
  }
  if (!any_tables) return;
  if (m1 - m0 <= kGemvMaxRows) {
    if (x.d != nullptr) return gemm_bytes<true, false>(x, m0, m1, n0, n1);
    if (x.zeros != nullptr) return gemm_bytes<false, true>(x, m0, m1, n0, n1);
    gemm_bytes<false, false>(x, m0, m1, n0, n1);
  } else {
    gemm_int16(x, m0, m1, n0, n1);
  }
}

}  // namespace

const GemmW4Kernel kGemmW4A8 = {kPanelCols, packed_bytes, pack, gemm};

}  // namespace avx2
}  // namespace kernels
}  // namespace medqk

// AVX-512 VNNI W4A8 GEMM: 4-bit codes expanded by vpshufb (one column's 16 levels per 128-bit lane), then
// vpdpbusd, which adds four u8 x s8 products into an int32 lane with no intermediate saturation.
//
// vpdpbusd wants an unsigned operand and there is no 512-bit vpsignb, so the activations enter as a + 128
// (a ^ 0x80, in [0, 255]) and 128 * sum(w) is taken back per group: sum (a + 128) w - 128 sum w = sum a w,
// exact in int32 (wrapping would cancel too, and |sums| < 2^31 for group_size <= kMaxW4GroupSize anyway).
// The level sums of each group are computed at pack time (they depend on the weights only).
//
// Layout (owned by this file): panels of 4 columns. A panel is 64 bytes of levels (lane c: column c's 16
// levels), then for each block of 32 k (K padded with code 0) 64 bytes: in lane c, byte j holds code(c,
// 32b + j) in its low nibble and code(c, 32b + 16 + j) in its high nibble; then for each group, 4 int32: the
// sum of the levels over the group's whole blocks (padding codes included: padded activations are 0, so
// their (0 + 128) w is taken back by the same sum).
//
// Kept plain: each group's partial lanes are summed through memory. Not run on the machines this was
// written on (no AVX-512 there): the cross-ISA tests run it wherever the CPU has it.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm_w4a8.h"

namespace medqk {
namespace kernels {
namespace avx512vnni {

namespace {

constexpr std::size_t kPanelCols = 4;

std::size_t blocks32(std::size_t k) { return (k + 31) / 32; }
std::size_t groups_of(std::size_t k, std::size_t group_size) { return (k + group_size - 1) / group_size; }
std::size_t panel_bytes(std::size_t k, std::size_t group_size) {
  return 64 + 64 * blocks32(k) + 16 * groups_of(k, group_size);
}

std::size_t packed_bytes(std::size_t n, std::size_t k, std::size_t group_size) {
  return (n + kPanelCols - 1) / kPanelCols * panel_bytes(k, group_size);
}

void pack(const uint8_t* codes, std::size_t n, std::size_t k, std::size_t ldc, const int8_t* levels,
          std::size_t group_size, uint8_t* packed) {
  std::memset(packed, 0, packed_bytes(n, k, group_size));
  const std::size_t blocks = blocks32(k), group_blocks = group_size / 32;
  for (std::size_t j = 0; j < n; ++j) {
    uint8_t* panel = packed + (j / kPanelCols) * panel_bytes(k, group_size);
    const std::size_t lane = 16 * (j % kPanelCols);
    const int8_t* lv = levels + j * 16;
    std::memcpy(panel + lane, lv, 16);
    uint8_t* blocks_of_codes = panel + 64;
    for (std::size_t p = 0; p < k; ++p) {
      const std::size_t q = p % 32;
      blocks_of_codes[64 * (p / 32) + lane + q % 16] |= static_cast<uint8_t>(codes[j * ldc + p] << (q < 16 ? 0 : 4));
    }
    int32_t* sums = reinterpret_cast<int32_t*>(panel + 64 + 64 * blocks);  // 64-byte multiple: aligned as packed
    for (std::size_t p = 0; p < 32 * blocks; ++p) {
      const int code = p < k ? codes[j * ldc + p] : 0;
      int32_t s;
      std::memcpy(&s, sums + 4 * (p / 32 / group_blocks) + j % kPanelCols, 4);
      s += lv[code];
      std::memcpy(sums + 4 * (p / 32 / group_blocks) + j % kPanelCols, &s, 4);
    }
  }
}

// One row of activations times one panel: D of every group, or the float output, columns j .. j + 3 (< n).
void row_panel(const W4A8Args& x, const uint8_t* u, const uint8_t* panel, std::size_t i, std::size_t j) {
  const __m512i table = _mm512_loadu_si512(panel);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const uint8_t* codes = panel + 64;
  const std::size_t blocks = blocks32(x.k), group_blocks = x.group_size / 32;
  const uint8_t* sums = panel + 64 + 64 * blocks;
  const std::size_t cols = std::min(kPanelCols, x.n - j);
  float fsum[kPanelCols] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (std::size_t g = 0, b = 0; g < x.groups; ++g) {
    __m512i acc = _mm512_setzero_si512();
    for (const std::size_t b1 = std::min(blocks, b + group_blocks); b < b1; ++b) {
      const __m512i v = _mm512_loadu_si512(codes + 64 * b);
      const __m512i w0 = _mm512_shuffle_epi8(table, _mm512_and_si512(v, low4));
      const __m512i w1 = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(v, 4), low4));
      acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(u + 128 * b), w0);
      acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(u + 128 * b + 64), w1);
    }
    alignas(64) int32_t lanes[16];
    _mm512_store_si512(lanes, acc);
    for (std::size_t c = 0; c < cols; ++c) {
      int32_t wsum;
      std::memcpy(&wsum, sums + 16 * g + 4 * c, 4);
      int32_t d = lanes[4 * c] + lanes[4 * c + 1] + lanes[4 * c + 2] + lanes[4 * c + 3] - 128 * wsum;
      const std::size_t col = j + c;
      if (x.d != nullptr) {
        x.d[(i * x.n + col) * x.groups + g] = d;
        continue;
      }
      if (x.zeros != nullptr) d -= static_cast<int32_t>(x.zeros[col * x.groups + g]) * x.asum[i * x.groups + g];
      fsum[c] += x.scales[col * x.groups + g] * static_cast<float>(d);
    }
  }
  if (x.out == nullptr) return;
  for (std::size_t c = 0; c < cols; ++c) {
    const float v = x.row_scale[i] * fsum[c];
    x.out[i * x.n + j + c] = x.bias != nullptr ? v + x.bias[j + c] : v;
  }
}

// The activations of rows [m0, m1) as u = a + 128, each half block of 16 k repeated in the four lanes (the
// operand of one vpdpbusd against four columns): 128 bytes per block of 32 k; padding k are a = 0.
void gemm(const W4A8Args& x, std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1) {
  const std::size_t stride = 128 * blocks32(x.k);
  std::vector<uint8_t> u((m1 - m0) * stride, 128);
  for (std::size_t i = m0; i < m1; ++i) {
    for (std::size_t p = 0; p < x.k; ++p) {
      for (std::size_t lane = 0; lane < 4; ++lane) {
        u[(i - m0) * stride + 128 * (p / 32) + 64 * (p % 32 / 16) + 16 * lane + p % 16] =
            static_cast<uint8_t>(x.a[i * x.lda + p] ^ 0x80);
      }
    }
  }
  const std::size_t pb = panel_bytes(x.k, x.group_size);
  for (std::size_t j = n0; j < n1; j += kPanelCols) {
    for (std::size_t i = m0; i < m1; ++i) {
      row_panel(x, u.data() + (i - m0) * stride, x.packed + (j / kPanelCols) * pb, i, j);
    }
  }
}

}  // namespace

const GemmW4Kernel kGemmW4A8 = {kPanelCols, packed_bytes, pack, gemm};

}  // namespace avx512vnni
}  // namespace kernels
}  // namespace medqk

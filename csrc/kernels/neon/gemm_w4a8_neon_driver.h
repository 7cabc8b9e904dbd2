// The W4A8 GEMM of the two NEON kernels (gemm_w4a8_neon.cpp: smull + smlal2 + sadalp,
// gemm_w4a8_neon_dotprod.cpp: sdot), written once: the packed layout and its packer, the code expansion,
// the row tiles, the group folds and the entry kGemmW4A8 (kernels/gemm_w4a8.h).
//
// Each file includes this inside its own ISA namespace (medqk::kernels::neon, ::neon_dotprod), after
// defining in its anonymous namespace the struct W4Dot:
//   int32x4_t W4Dot::add(int32x4_t acc, int8x16_t w, int8x16_t a)   adds the 16 products w[i] * a[i] (w
//       looked-up levels in [-127, 127], a activations in [-128, 127]) into the 4 int32 lanes of acc, exactly
//   W4Dot::kRows                                                     the rows of a GEMM tile (1 to 4)
// So each file's copy is built with its own flags (+dotprod only in the dotprod file): no inline function
// with external linkage is shared between them. The including file includes <arm_neon.h>, <algorithm>,
// <cstring>, <vector> and kernels/gemm_w4a8.h first.
//
// Layout (one per file that includes this): panels of 4 columns. A panel is 4 x 16 bytes of levels
// (column c's 16 int8 levels, the table of one tbl), then for each block of 32 k (K padded with code 0 to
// whole blocks) 4 x 16 bytes: in column c's 16, byte j holds code(c, 32b + j) in its low nibble and
// code(c, 32b + 16 + j) in its high nibble. Columns past n have levels and codes 0. Padding k never reach
// a result: the activations are read through a copy padded with zeros.
//
// Each block's codes are expanded by tbl (vqtbl1q_s8: a code < 16 picks one of the column's levels) once
// per row tile and multiplied into every row of the tile: one row for a GEMV (M = 1: the weights are read
// once, four independent column accumulators), W4Dot::kRows rows for a GEMM (the expansion shared by the
// rows). An accumulator's four lanes are partial sums of one column over one group; a group's fold pairs
// them (addp, exact: every partial sum is a sum of a subset of the group's products, |.| <= group_size *
// 128 * 127 < 2^31) into one int32x4 of the 4 columns. The float output adds scales[n, g] * float(D -
// zeros * asum) per group in increasing g, then * row_scale + bias: the scalar oracle's operations in its
// order, so its floats equal the oracle's bit for bit.

namespace {

constexpr std::size_t kPanelCols = 4;
// rows per GEMM tile, the file's choice: a row holds 4 accumulators, the tile 8 expanded columns and 4
// tables besides, and the inner steps differ in the temporaries they need (see the including file)
constexpr int kRows = W4Dot::kRows;
static_assert(kRows >= 1, "a tile has rows");

std::size_t blocks32(std::size_t k) { return (k + 31) / 32; }
// the 4 tables, then 64 bytes of codes per block of 32 k
std::size_t panel_bytes(std::size_t k) { return 16 * kPanelCols * (1 + blocks32(k)); }
std::size_t packed_bytes(std::size_t n, std::size_t k, std::size_t /*group_size*/) {
  return panel_bytes(k) * ((n + kPanelCols - 1) / kPanelCols);
}

void pack(const uint8_t* codes, std::size_t n, std::size_t k, std::size_t ldc, const int8_t* levels,
          std::size_t group_size, uint8_t* packed) {
  std::memset(packed, 0, packed_bytes(n, k, group_size));  // columns past n: levels and codes 0
  for (std::size_t j = 0; j < n; ++j) {
    uint8_t* column = packed + (j / kPanelCols) * panel_bytes(k) + 16 * (j % kPanelCols);
    std::memcpy(column, levels + j * 16, 16);
    const uint8_t* cj = codes + j * ldc;
    auto code = [&](std::size_t p) { return p < k ? cj[p] : 0; };  // padding k: code 0
    for (std::size_t b = 0; b < blocks32(k); ++b) {
      uint8_t* block = column + 16 * kPanelCols * (1 + b);
      for (std::size_t q = 0; q < 16; ++q) {
        block[q] = static_cast<uint8_t>(code(32 * b + q) | code(32 * b + 16 + q) << 4);
      }
    }
  }
}

// Rows [i0, i0 + R) (activation rows `act`, stride `stride`, zero padded to whole blocks) times the panel
// of columns [j, j + 4): D of every group (x.d) or the float output (x.out), columns past n skipped.
template <int R>
void tile(const W4A8Args& x, const int8_t* act, std::size_t stride, const uint8_t* panel, std::size_t i0,
          std::size_t j) {
  const uint8x16_t low4 = vdupq_n_u8(0x0F);
  int8x16_t table[kPanelCols];
  for (std::size_t c = 0; c < kPanelCols; ++c) {
    table[c] = vld1q_s8(reinterpret_cast<const int8_t*>(panel) + 16 * c);
  }
  const uint8_t* codes = panel + 16 * kPanelCols;
  const std::size_t blocks = blocks32(x.k), group_blocks = x.group_size / 32;
  const std::size_t cols = std::min(kPanelCols, x.n - j);
  float32x4_t facc[R];
  for (int r = 0; r < R; ++r) facc[r] = vdupq_n_f32(0.0f);
  for (std::size_t g = 0, b = 0; g < x.groups; ++g) {
    int32x4_t acc[R][kPanelCols];
    for (int r = 0; r < R; ++r) {
      for (std::size_t c = 0; c < kPanelCols; ++c) acc[r][c] = vdupq_n_s32(0);
    }
    for (const std::size_t b1 = std::min(blocks, b + group_blocks); b < b1; ++b) {
      for (int half = 0; half < 2; ++half) {  // k 0-15 of the block (low nibbles), then k 16-31 (high)
        int8x16_t w[kPanelCols];
        for (std::size_t c = 0; c < kPanelCols; ++c) {
          const uint8x16_t v = vld1q_u8(codes + 16 * kPanelCols * b + 16 * c);
          w[c] = vqtbl1q_s8(table[c], half == 0 ? vandq_u8(v, low4) : vshrq_n_u8(v, 4));
        }
        for (int r = 0; r < R; ++r) {
          const int8x16_t a = vld1q_s8(act + r * stride + 32 * b + 16 * half);
          for (std::size_t c = 0; c < kPanelCols; ++c) acc[r][c] = W4Dot::add(acc[r][c], w[c], a);
        }
      }
    }
    int32x4_t d[R];  // lane c: column j + c
    for (int r = 0; r < R; ++r) {
      d[r] = vpaddq_s32(vpaddq_s32(acc[r][0], acc[r][1]), vpaddq_s32(acc[r][2], acc[r][3]));
    }
    if (x.d != nullptr) {
      for (int r = 0; r < R; ++r) {
        int32_t lanes[kPanelCols];
        vst1q_s32(lanes, d[r]);
        for (std::size_t c = 0; c < cols; ++c) x.d[((i0 + r) * x.n + j + c) * x.groups + g] = lanes[c];
      }
      continue;
    }
    float scale[kPanelCols] = {0.0f, 0.0f, 0.0f, 0.0f};  // padding columns: 0
    int32_t zero[kPanelCols] = {0, 0, 0, 0};
    for (std::size_t c = 0; c < cols; ++c) {
      scale[c] = x.scales[(j + c) * x.groups + g];
      if (x.zeros != nullptr) zero[c] = x.zeros[(j + c) * x.groups + g];
    }
    const float32x4_t sv = vld1q_f32(scale);
    const int32x4_t zv = vld1q_s32(zero);
    for (int r = 0; r < R; ++r) {
      int32x4_t dr = d[r];
      if (x.zeros != nullptr) dr = vsubq_s32(dr, vmulq_n_s32(zv, x.asum[(i0 + r) * x.groups + g]));
      facc[r] = vaddq_f32(facc[r], vmulq_f32(sv, vcvtq_f32_s32(dr)));  // no fma: the oracle rounds twice
    }
  }
  if (x.out == nullptr) return;
  for (int r = 0; r < R; ++r) {
    float sums[kPanelCols];
    vst1q_f32(sums, facc[r]);
    const float rs = x.row_scale[i0 + r];
    for (std::size_t c = 0; c < cols; ++c) {
      const float v = rs * sums[c];
      x.out[(i0 + r) * x.n + j + c] = x.bias != nullptr ? v + x.bias[j + c] : v;
    }
  }
}

// tile<rows> for 1 <= rows <= R (only the tiles up to kRows are built)
template <int R>
void tile_of(std::size_t rows, const W4A8Args& x, const int8_t* act, std::size_t stride, const uint8_t* panel,
             std::size_t i0, std::size_t j) {
  if constexpr (R > 1) {
    if (rows < R) return tile_of<R - 1>(rows, x, act, stride, panel, i0, j);
  }
  tile<R>(x, act, stride, panel, i0, j);
}

// The rows [m0, m1) copied with K padded with zeros to whole blocks of 32; each panel of [n0, n1) then
// meets every row tile while its codes are in cache.
void gemm(const W4A8Args& x, std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1) {
  const std::size_t stride = 32 * blocks32(x.k);
  std::vector<int8_t> act((m1 - m0) * stride, 0);
  for (std::size_t i = m0; i < m1; ++i) std::memcpy(act.data() + (i - m0) * stride, x.a + i * x.lda, x.k);
  const std::size_t pb = panel_bytes(x.k);
  for (std::size_t j = n0; j < n1; j += kPanelCols) {
    const uint8_t* panel = x.packed + j / kPanelCols * pb;
    for (std::size_t i = m0; i < m1; i += kRows) {
      const std::size_t rows = std::min<std::size_t>(kRows, m1 - i);
      tile_of<kRows>(rows, x, act.data() + (i - m0) * stride, stride, panel, i, j);
    }
  }
}

}  // namespace

const GemmW4Kernel kGemmW4A8 = {kPanelCols, packed_bytes, pack, gemm};

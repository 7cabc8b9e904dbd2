// AMX-INT8 GEMM (Sapphire Rapids and later): tdpbssd multiplies signed by signed bytes into int32 tiles,
// so no +128 offset or column-sum correction is needed, and every sum is exact (int32 accumulation of
// int8 x int8 products, K <= 131071 as for every medqk kernel).
//
// Tiles: A 16 rows x 64 bytes (16 rows, 64 k), B 16 rows x 64 bytes (16 k quads x 16 columns x 4 bytes),
// C 16 x 16 int32. A block of 32 x 32 outputs uses 4 C tiles, 2 A tiles and 2 B tiles (all 8 registers).
// Layout of packed B, panels of 32 columns: for each chunk of 64 k (K padded with zeros to a multiple of
// 64), two 1 KiB tiles (columns 0..15, 16..31 of the panel); tile row r holds, for each of its 16 columns
// c, the 4 bytes b[c][64 chunk + 4 r .. + 3]. Columns past n are zero.
// After the tiles, each panel holds its 32 column sums (int32) for the few-row path.
// A is copied per block of 32 rows into a zero-padded buffer (rows past m and k past K are 0), so every
// tile load is whole and in bounds; C tiles go through a 32 x 32 buffer and only the valid part is stored.
// Blocks of at most kVnniRows rows (a GEMV, a batch of a few queries) waste most of a 16-row tile: they
// run vpdpbusd on the same layout instead (a tile row is 16 columns x one k quad, what vpdpbusd takes),
// with a + 128 as unsigned bytes and 128 * column sum subtracted, exact as in the avx512vnni kernel.
// GCC 12 reports its own AVX-512 headers under -Wmaybe-uninitialized (GCC bug 105593), as in
// kernels/avx512vnni/lut4_scan_avx512.cpp: off for this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm_s8s8_s32.h"

namespace medqk {
namespace kernels {
namespace amx {

const std::size_t kGemmS8PanelCols = 32;

namespace {
constexpr std::size_t kKChunk = 64;
constexpr std::size_t kTileBytes = 1024;
constexpr std::size_t kRows = 32;
constexpr std::size_t kVnniRows = 8;
constexpr std::size_t kColsumBytes = 32 * 4;
constexpr std::size_t kFewRowsPrefetch = 2 * 2 * kTileBytes;  // two k chunks ahead

inline std::size_t k_chunks(std::size_t k) { return (k + kKChunk - 1) / kKChunk; }

struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

void load_config() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {  // tmm0-3: C (16 x 16 int32), tmm4-5: A, tmm6-7: B, all 16 rows x 64 bytes
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}
}  // namespace

std::size_t gemm_s8s8_s32_packed_bytes(std::size_t n, std::size_t k) {
  const std::size_t panels = (n + kGemmS8PanelCols - 1) / kGemmS8PanelCols;
  return panels * (k_chunks(k) * 2 * kTileBytes + kColsumBytes);
}

void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed) {
  const std::size_t kc = k_chunks(k);
  const std::size_t panel_bytes = kc * 2 * kTileBytes + kColsumBytes;
  std::memset(packed, 0, gemm_s8s8_s32_packed_bytes(n, k));
  for (std::size_t j = 0; j < n; ++j) {
    const std::size_t panel = j / kGemmS8PanelCols, col = j % kGemmS8PanelCols;
    uint8_t* p = packed + panel * panel_bytes + (col / 16) * kTileBytes + (col % 16) * 4;
    const int8_t* row = b + j * ldb;
    int32_t sum = 0;
    for (std::size_t kk = 0; kk < k; ++kk) {
      const std::size_t chunk = kk / kKChunk, r = (kk % kKChunk) / 4;
      p[chunk * 2 * kTileBytes + r * 64 + (kk % 4)] = static_cast<uint8_t>(row[kk]);
      sum += row[kk];
    }
    std::memcpy(packed + panel * panel_bytes + kc * 2 * kTileBytes + col * 4, &sum, 4);
  }
}

namespace {
// C rows [0, MR) (MR <= kVnniRows, a compile-time count so the accumulators stay in registers) of the
// panels in [n0, n1), by vpdpbusd over the tile layout.
template <std::size_t MR>
void few_rows(const int8_t* abuf, std::size_t kp, std::size_t kc, const uint8_t* packed, std::size_t panel_bytes,
              std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc) {
  constexpr std::size_t mr = MR;
  const __m512i flip = _mm512_set1_epi32(static_cast<int>(0x80808080u));  // a + 128 as unsigned bytes
  for (std::size_t j0 = n0; j0 < n1; j0 += kGemmS8PanelCols) {
    const uint8_t* panel = packed + (j0 / kGemmS8PanelCols) * panel_bytes;
    __m512i acc0[MR], acc1[MR];
    for (std::size_t r = 0; r < MR; ++r) acc0[r] = acc1[r] = _mm512_setzero_si512();
    for (std::size_t q = 0; q < kc; ++q) {
      const uint8_t* t0 = panel + q * 2 * kTileBytes;
      for (std::size_t rr = 0; rr < 16; ++rr) {
        // B streams from L3 or memory here (a few rows reuse it little): read ahead (prefetches never fault)
        _mm_prefetch(reinterpret_cast<const char*>(t0 + rr * 64 + kFewRowsPrefetch), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(t0 + kTileBytes + rr * 64 + kFewRowsPrefetch), _MM_HINT_T0);
        const __m512i b0 = _mm512_loadu_si512(t0 + rr * 64);
        const __m512i b1 = _mm512_loadu_si512(t0 + kTileBytes + rr * 64);
        for (std::size_t r = 0; r < mr; ++r) {
          int32_t quad;
          std::memcpy(&quad, abuf + r * kp + q * kKChunk + rr * 4, 4);
          const __m512i av = _mm512_xor_si512(_mm512_set1_epi32(quad), flip);
          acc0[r] = _mm512_dpbusd_epi32(acc0[r], av, b0);
          acc1[r] = _mm512_dpbusd_epi32(acc1[r], av, b1);
        }
      }
    }
    const __m512i corr0 = _mm512_slli_epi32(_mm512_loadu_si512(panel + kc * 2 * kTileBytes), 7);  // 128 * sum
    const __m512i corr1 = _mm512_slli_epi32(_mm512_loadu_si512(panel + kc * 2 * kTileBytes + 64), 7);
    const std::size_t nc = std::min(kGemmS8PanelCols, n1 - j0);
    const __mmask16 m0 = static_cast<__mmask16>(nc >= 16 ? 0xffffu : (1u << nc) - 1);
    const __mmask16 m1 = static_cast<__mmask16>(nc <= 16 ? 0u : nc >= 32 ? 0xffffu : (1u << (nc - 16)) - 1);
    for (std::size_t r = 0; r < mr; ++r) {
      _mm512_mask_storeu_epi32(c + r * ldc + j0, m0, _mm512_sub_epi32(acc0[r], corr0));
      _mm512_mask_storeu_epi32(c + r * ldc + j0 + 16, m1, _mm512_sub_epi32(acc1[r], corr1));
    }
  }
}

void few_rows(const int8_t* abuf, std::size_t mr, std::size_t kp, std::size_t kc, const uint8_t* packed,
              std::size_t panel_bytes, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc) {
  switch (mr) {
    case 1: return few_rows<1>(abuf, kp, kc, packed, panel_bytes, n0, n1, c, ldc);
    case 2: return few_rows<2>(abuf, kp, kc, packed, panel_bytes, n0, n1, c, ldc);
    case 3: return few_rows<3>(abuf, kp, kc, packed, panel_bytes, n0, n1, c, ldc);
    case 4: return few_rows<4>(abuf, kp, kc, packed, panel_bytes, n0, n1, c, ldc);
    case 5: return few_rows<5>(abuf, kp, kc, packed, panel_bytes, n0, n1, c, ldc);
    case 6: return few_rows<6>(abuf, kp, kc, packed, panel_bytes, n0, n1, c, ldc);
    case 7: return few_rows<7>(abuf, kp, kc, packed, panel_bytes, n0, n1, c, ldc);
    default: return few_rows<8>(abuf, kp, kc, packed, panel_bytes, n0, n1, c, ldc);
  }
}

// One block of C: tiles 0, 1 (rows 0..15, columns 0..15 and 16..31 of the panel) and, with kTwoATiles,
// tiles 2, 3 (rows 16..31) = the A rows at a0 (and a1) x the panel's two B tiles, over kc chunks of 64 k;
// stored at out (row stride ld bytes).
template <bool kTwoATiles>
inline void tile_block(const int8_t* a0, const int8_t* a1, std::size_t kp, const uint8_t* panel, std::size_t kc,
                       int32_t* out, std::size_t ld) {
  _tile_zero(0);
  _tile_zero(1);
  if constexpr (kTwoATiles) {
    _tile_zero(2);
    _tile_zero(3);
  }
  for (std::size_t q = 0; q < kc; ++q) {
    _tile_loadd(4, a0 + q * kKChunk, kp);
    _tile_loadd(6, panel + q * 2 * kTileBytes, 64);
    _tile_loadd(7, panel + q * 2 * kTileBytes + kTileBytes, 64);
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    if constexpr (kTwoATiles) {
      _tile_loadd(5, a1 + q * kKChunk, kp);
      _tile_dpbssd(2, 5, 6);
      _tile_dpbssd(3, 5, 7);
    }
  }
  if constexpr (kTwoATiles) {
    _tile_stored(2, out + 16 * (ld / 4), ld);
    _tile_stored(3, out + 16 * (ld / 4) + 16, ld);
  }
  _tile_stored(0, out, ld);
  _tile_stored(1, out + 16, ld);
}

}  // namespace

void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed, std::size_t n,
                   std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc) {
  (void)n;
  if (m == 0 || n0 >= n1) return;
  const std::size_t kc = k_chunks(k), kp = kc * kKChunk;
  const std::size_t panel_bytes = kc * 2 * kTileBytes + kColsumBytes;
  std::vector<int8_t> abuf(kRows * kp);
  alignas(64) int32_t cbuf[kRows * 32];
  load_config();
  for (std::size_t i0 = 0; i0 < m; i0 += kRows) {
    const std::size_t mr = std::min(kRows, m - i0);
    const std::size_t rows = mr > 16 ? kRows : 16;  // rows of abuf the tiles read
    std::memset(abuf.data(), 0, rows * kp);
    for (std::size_t r = 0; r < mr; ++r) std::memcpy(abuf.data() + r * kp, a + (i0 + r) * lda, k);
    const int8_t* a0 = abuf.data();
    const int8_t* a1 = abuf.data() + 16 * kp;
    if (mr <= kVnniRows) {
      few_rows(abuf.data(), mr, kp, kc, packed, panel_bytes, n0, n1, c + i0 * ldc, ldc);
      continue;
    }
    for (std::size_t j0 = n0; j0 < n1; j0 += kGemmS8PanelCols) {
      const uint8_t* panel = packed + (j0 / kGemmS8PanelCols) * panel_bytes;
      const std::size_t nc = std::min(kGemmS8PanelCols, n1 - j0);
      // whole 32 x 32 blocks are stored straight into C; edges go through cbuf
      const bool whole = mr == kRows && nc == kGemmS8PanelCols;
      int32_t* out = whole ? c + i0 * ldc + j0 : cbuf;
      const std::size_t ld = (whole ? ldc : 32) * 4;
      if (mr > 16) {
        tile_block<true>(a0, a1, kp, panel, kc, out, ld);
      } else {  // at most 16 rows: one A tile
        tile_block<false>(a0, a1, kp, panel, kc, out, ld);
      }
      if (!whole) {
        for (std::size_t r = 0; r < mr; ++r) std::memcpy(c + (i0 + r) * ldc + j0, cbuf + r * 32, nc * 4);
      }
    }
  }
  _tile_release();
}

}  // namespace amx
}  // namespace kernels
}  // namespace medqk

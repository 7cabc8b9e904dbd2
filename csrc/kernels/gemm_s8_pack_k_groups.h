// The packed-B layout of the GEMM kernels that read B in groups of kKGroup consecutive k (avx2 and neon:
// pairs, neon_dotprod: quads), and its three entry points (kGemmS8PanelCols, gemm_s8s8_s32_packed_bytes,
// gemm_s8s8_s32_pack; kernels/gemm_s8s8_s32.h). Panels of kNR columns; in a panel, for each group of k
// (kKGroup g .. kKGroup g + kKGroup - 1; K padded with zeros to a multiple of kKGroup), kNR * kKGroup
// bytes: 16-byte chunks of 16 / kKGroup columns, each column's kKGroup bytes together, e.g. for pairs
// [c0k0 c0k1 c1k0 c1k1 ... c7k0 c7k1 | c8k0 ..]. Columns past n are zero.
//
// Written once, compiled per ISA: each GEMM file includes this inside its own ISA namespace (not its
// anonymous one), after defining kNR and kKGroup (std::size_t constants) and including <cstring>, so the
// definitions below become that namespace's entry points. Plain C++, nothing ISA-specific.

const std::size_t kGemmS8PanelCols = kNR;

std::size_t gemm_s8s8_s32_packed_bytes(std::size_t n, std::size_t k) {
  return ((n + kNR - 1) / kNR) * ((k + kKGroup - 1) / kKGroup) * (kNR * kKGroup);
}

void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed) {
  static_assert(16 % kKGroup == 0 && kNR % (16 / kKGroup) == 0, "whole 16-byte chunks of columns");
  constexpr std::size_t kGroupBytes = kNR * kKGroup, kChunkCols = 16 / kKGroup;
  const std::size_t panel_bytes = gemm_s8s8_s32_packed_bytes(kNR, k);
  std::memset(packed, 0, gemm_s8s8_s32_packed_bytes(n, k));
  for (std::size_t j = 0; j < n; ++j) {
    uint8_t* panel = packed + (j / kNR) * panel_bytes;
    const std::size_t col = j % kNR;
    const std::size_t offset = (col / kChunkCols) * 16 + (col % kChunkCols) * kKGroup;  // chunk, place in it
    const int8_t* bj = b + j * ldb;
    for (std::size_t p = 0; p < k; ++p) {
      panel[(p / kKGroup) * kGroupBytes + offset + p % kKGroup] = static_cast<uint8_t>(bj[p]);
    }
  }
}

// AVX-512 VNNI INT8 GEMM, exact over the whole int8 range (-128 included).
//
// vpdpbusd multiplies unsigned bytes by signed bytes and adds each group of four products into an
// int32 lane WITHOUT intermediate saturation (unlike vpmaddubsw; vpdpbusds, the saturating form, is never
// used). A is made unsigned by a + 128 (xor 0x80), so
//     sum_k a[k] b[k] = sum_k (a[k] + 128) b[k] - 128 * colsum(b),
// with colsum computed at pack time. For large K the first sum can leave int32, but vpdpbusd and vpaddd
// wrap modulo 2^32 and the true result fits in int32 (K <= kMaxGemmK), so the final value is exact; the
// column sums are formed in uint32 for the same reason (no signed-overflow UB in scalar code).
//
// Layout of packed B (owned by this file): panels of 32 columns; a panel holds, for each quad of k
// (4q .. 4q+3), 128 bytes = two zmm: [c0k0..c0k3 c1k0..c1k3 ... c15k0..c15k3 | c16.. .. c31], then the
// 32 corrections 128 * colsum as int32. Padding (columns past n, k past K) is zero.
//
// Blocking (GotoBLAS): rows in blocks of up to 96 whose A is prepared once per call; per panel, k in blocks of
// up to 256 quads (the 32 KiB B slice stays in L1 while every row tile of the block passes over it); a tile of
// up to 12 rows x 32 columns keeps 24 zmm accumulators. Prepared A is "chunked": per tile, for each run of 16
// k-quads, the tile's rows one after the other, 64 bytes each. A tile then reads A as one contiguous stream
// (prefetched two chunks ahead) and every broadcast address is one pointer plus a constant; with row-major A
// the 12 row offsets took 11 general registers, which left none for unrolling or blocking.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm_s8s8_s32.h"

namespace medqk {
namespace kernels {
namespace avx512vnni {

namespace {

constexpr std::size_t kNR = 32;     // columns per panel (two zmm of int32)
constexpr int kMR = 12;             // rows per tile: 24 accumulators + 2 B + 1 A of 32 zmm
constexpr std::size_t kChunk = 16;  // k-quads per chunk of prepared A (64 bytes of a row)
constexpr std::size_t kKC = 256;    // k-quads per block (a multiple of kChunk): a panel's B slice (32 KiB) is
                                    // reused by every row tile from cache; a smaller slice costs more round
                                    // trips of C through memory
constexpr std::size_t kMC = 96;     // rows per block of prepared A
// B is read this far ahead (software prefetch, 32 quads). It matters where B streams from L3 (small M, and the
// first row tile of each slice): the next slice of a panel is contiguous with the current one. 4 KiB is
// a page: the fetches run ahead of the loads by the time a few k-quad steps take, and stay in one page.
constexpr std::size_t kPrefetchBytes = 4096;

inline std::size_t k_quads(std::size_t k) { return (k + 3) / 4; }
inline std::size_t k_chunks(std::size_t kq) { return (kq + kChunk - 1) / kChunk; }
inline std::size_t panel_bytes(std::size_t kq) { return kq * kNR * 4 + kNR * 4; }
// First row of tile t when mc rows are cut into `tiles` tiles of balanced height (64 = 11+11+11+11+10+10).
inline std::size_t tile_row(std::size_t mc, std::size_t tiles, std::size_t t) { return mc * t / tiles; }

// Prepares A rows [0, mc) as unsigned bytes (a + 128), chunked per tile: tile [ir, ir + R) starts at
// out + ir * kch * 64; in it, chunk c (k = 64c .. 64c + 63) of row ir + r is at c * R * 64 + r * 64. Bytes past
// K are 0x80 (they meet the zero padding of B); chunk bytes past 4 * kq are never read.
void prepare_a(const int8_t* a, std::size_t mc, std::size_t k, std::size_t lda, std::size_t kch, std::size_t tiles,
               uint8_t* out) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (std::size_t t = 0; t < tiles; ++t) {
    const std::size_t ir = tile_row(mc, tiles, t), rows = tile_row(mc, tiles, t + 1) - ir;
    uint8_t* tile = out + ir * kch * 64;
    for (std::size_t r = 0; r < rows; ++r) {
      const int8_t* src = a + (ir + r) * lda;
      for (std::size_t ch = 0; ch < kch; ++ch) {
        const std::size_t p = 64 * ch;
        // masked load at the end of the row: masked-off bytes are neither read nor able to fault
        const __m512i v = p + 64 <= k ? _mm512_loadu_si512(src + p)
                          : p < k     ? _mm512_maskz_loadu_epi8((__mmask64(1) << (k - p)) - 1, src + p)
                                      : _mm512_setzero_si512();
        _mm512_storeu_si512(tile + (ch * rows + r) * 64, _mm512_xor_si512(v, flip));
      }
    }
  }
}

// Where a tile's results go: int32 C, or (ep != nullptr) float C through the F32Epilogue at the last k block.
struct Sink {
  int32_t* c;  // row 0 of the tile (int32 partials live here between k blocks)
  std::size_t ldc;
  const F32Epilogue* ep;   // nullptr: int32 output
  const float* row_scale;  // of the tile's row 0
  std::size_t col0;        // absolute column of the tile's column 0
  bool first, last;        // first / last k block
  std::size_t ncols;
};

// Not inlined: inlining this branchy store into the micro-kernel made GCC move the accumulators through the
// stack in the hot loop (a store and a load per accumulator and k-quad). A call per row and tile costs
// little next to the k loop.
__attribute__((noinline)) void store_row(const Sink& s, int r, __m512i lo, __m512i hi, const int32_t* corr) {
  int32_t* c = s.c + r * s.ldc;
  // masks of the valid columns in each half (all ones for a full tile): masked loads and stores, no copies
  const __mmask16 m0 = s.ncols >= 16 ? __mmask16(0xffff) : __mmask16((1u << s.ncols) - 1);
  const __mmask16 m1 = s.ncols >= 32  ? __mmask16(0xffff)
                       : s.ncols > 16 ? __mmask16((1u << (s.ncols - 16)) - 1)
                                      : __mmask16(0);
  if (s.first) {  // subtract 128 * colsum once, with the first k block
    lo = _mm512_sub_epi32(lo, _mm512_loadu_si512(corr));
    hi = _mm512_sub_epi32(hi, _mm512_loadu_si512(corr + 16));
  } else {  // add the partial sums of the earlier k blocks (wrapping: see the top of the file)
    lo = _mm512_add_epi32(lo, _mm512_maskz_loadu_epi32(m0, c));
    hi = _mm512_add_epi32(hi, _mm512_maskz_loadu_epi32(m1, c + 16));
  }
  if (s.ep != nullptr && s.last) {
    // (maskz forms: the plain conversion trips a false GCC 12 -Wmaybe-uninitialized in its header)
    const __m512 rs = _mm512_set1_ps(s.row_scale[r]);
    const float* cs = s.ep->col_scale + s.col0;
    __m512 f0 = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xffff, lo), _mm512_mul_ps(rs, _mm512_maskz_loadu_ps(m0, cs)));
    __m512 f1 =
        _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xffff, hi), _mm512_mul_ps(rs, _mm512_maskz_loadu_ps(m1, cs + 16)));
    if (s.ep->bias != nullptr) {
      const float* bias = s.ep->bias + s.col0;
      f0 = _mm512_add_ps(f0, _mm512_maskz_loadu_ps(m0, bias));
      f1 = _mm512_add_ps(f1, _mm512_maskz_loadu_ps(m1, bias + 16));
    }
    lo = _mm512_castps_si512(f0);
    hi = _mm512_castps_si512(f1);
  }
  _mm512_mask_storeu_epi32(c, m0, lo);
  _mm512_mask_storeu_epi32(c + 16, m1, hi);
}

// One k quad of R rows into one set of accumulators; a = the quad in row 0 of the chunk (rows 64 bytes apart).
template <int R>
__attribute__((always_inline)) inline void quad_step(const uint8_t* a, const uint8_t* bq, __m512i (&acc)[R][2]) {
  __m512i b0 = _mm512_loadu_si512(bq);
  __m512i b1 = _mm512_loadu_si512(bq + 64);
  // One load each into registers: left alone, GCC folds the loads into every vpdpbusd as memory operands,
  // which loads B again for every row where this loads it once per k-quad.
  __asm__("" : "+v"(b0), "+v"(b1));
  // (past the end of the buffer this is harmless: prefetches never fault)
  _mm_prefetch(reinterpret_cast<const char*>(bq + kPrefetchBytes), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(bq + kPrefetchBytes + 64), _MM_HINT_T0);
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    int32_t word;
    std::memcpy(&word, a + 64 * r, 4);
    const __m512i av = _mm512_set1_epi32(word);
    acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, b0);
    acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, b1);
  }
}

// C tile (R x 32) over one k block of kc quads: a = the tile's prepared A at the block's first chunk,
// b = the panel's slice. The block starts on a chunk boundary; only the last block of K may end inside one.
// vpdpbusd has a latency of ~6 cycles and two issue per cycle, so about 12 independent accumulators keep it
// busy: tiles of 1..4 rows (GEMV and small batches) cycle through U sets of accumulators over consecutive
// quads and add them at the end (integer sums: the order does not change them).
template <int R>
void micro_kernel(const uint8_t* a, const uint8_t* b, std::size_t kc, const int32_t* colsum, const Sink& sink) {
  constexpr int U = R == 1 ? 4 : R <= 4 ? 2 : 1;
  constexpr std::size_t kChunkBytes = R * 64;
  __m512i acc[U][R][2];
#pragma GCC unroll 4
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) acc[u][r][0] = acc[u][r][1] = _mm512_setzero_si512();
  std::size_t q = 0;
  for (; q + kChunk <= kc; q += kChunk) {
    const uint8_t* ac = a + (q / kChunk) * kChunkBytes;
    // the chunk after next: R lines, one contiguous stream
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(ac + 2 * kChunkBytes + 64 * r), _MM_HINT_T0);
    }
    for (std::size_t j = 0; j < kChunk; j += U) {
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) quad_step<R>(ac + 4 * (j + u), b + 128 * (q + j + u), acc[u]);
    }
  }
  const uint8_t* ac = a + (q / kChunk) * kChunkBytes;
  for (std::size_t j = 0; q + j < kc; ++j) quad_step<R>(ac + 4 * j, b + 128 * (q + j), acc[0]);
  if constexpr (U > 1) {
#pragma GCC unroll 4
    for (int u = 1; u < U; ++u)
#pragma GCC unroll 12
      for (int r = 0; r < R; ++r) {
        acc[0][r][0] = _mm512_add_epi32(acc[0][r][0], acc[u][r][0]);
        acc[0][r][1] = _mm512_add_epi32(acc[0][r][1], acc[u][r][1]);
      }
  }
  if (sink.ep == nullptr && sink.ncols == kNR) {
    // the common case, inline: full-width int32 tile (first block: minus 128 * colsum, later: plus C)
    if (sink.first) {
      const __m512i corr0 = _mm512_loadu_si512(colsum), corr1 = _mm512_loadu_si512(colsum + 16);
#pragma GCC unroll 12
      for (int r = 0; r < R; ++r) {
        int32_t* c = sink.c + r * sink.ldc;
        _mm512_storeu_si512(c, _mm512_sub_epi32(acc[0][r][0], corr0));
        _mm512_storeu_si512(c + 16, _mm512_sub_epi32(acc[0][r][1], corr1));
      }
    } else {
#pragma GCC unroll 12
      for (int r = 0; r < R; ++r) {
        int32_t* c = sink.c + r * sink.ldc;
        _mm512_storeu_si512(c, _mm512_add_epi32(acc[0][r][0], _mm512_loadu_si512(c)));
        _mm512_storeu_si512(c + 16, _mm512_add_epi32(acc[0][r][1], _mm512_loadu_si512(c + 16)));
      }
    }
    return;
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) store_row(sink, r, acc[0][r][0], acc[0][r][1], colsum);
}

using MicroKernel = void (*)(const uint8_t*, const uint8_t*, std::size_t, const int32_t*, const Sink&);
constexpr MicroKernel kMicroKernels[kMR + 1] = {nullptr,         micro_kernel<1>, micro_kernel<2>,  micro_kernel<3>,
                                                micro_kernel<4>, micro_kernel<5>, micro_kernel<6>,  micro_kernel<7>,
                                                micro_kernel<8>, micro_kernel<9>, micro_kernel<10>, micro_kernel<11>,
                                                micro_kernel<12>};

}  // namespace

const std::size_t kGemmS8PanelCols = kNR;

std::size_t gemm_s8s8_s32_packed_bytes(std::size_t n, std::size_t k) {
  return ((n + kNR - 1) / kNR) * panel_bytes(k_quads(k));
}

void gemm_s8s8_s32_pack(const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed) {
  const std::size_t kq = k_quads(k);
  const std::size_t pb = panel_bytes(kq);
  std::memset(packed, 0, gemm_s8s8_s32_packed_bytes(n, k));
  for (std::size_t j = 0; j < n; ++j) {
    uint8_t* panel = packed + (j / kNR) * pb;
    const std::size_t col = j % kNR;
    const std::size_t offset = (col / 16) * 64 + (col % 16) * 4;
    const int8_t* bj = b + j * ldb;
    // 128 * colsum fits int32 for K <= kMaxGemmK (2^14 * 131071 < 2^31); uint32 arithmetic keeps a larger K
    // well defined (wrapping, like every other sum here) instead of signed-overflow UB
    uint32_t sum = 0;
    for (std::size_t p = 0; p < k; ++p) {
      panel[(p / 4) * 128 + offset + (p & 3)] = static_cast<uint8_t>(bj[p]);
      sum += static_cast<uint32_t>(static_cast<int32_t>(bj[p]));
    }
    const uint32_t corr = 128u * sum;
    std::memcpy(panel + kq * 128 + col * 4, &corr, 4);
  }
}

namespace {

void run(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed, std::size_t n0,
         std::size_t n1, int32_t* c, std::size_t ldc, const F32Epilogue* ep) {
  const std::size_t kq = k_quads(k);
  const std::size_t kch = k_chunks(kq);
  const std::size_t pb = panel_bytes(kq);
  // One row tile: no reuse of a B slice across tiles, so K is not blocked. Otherwise k blocks of (nearly) equal
  // whole chunks: kq = 288 as 144 + 144, not 256 + 32 (a short block pays the C round trip for little work).
  const std::size_t kblocks = m <= static_cast<std::size_t>(kMR) ? 1 : (kq + kKC - 1) / kKC;
  const std::size_t mc_block = std::min(m, kMC);
  std::vector<uint8_t> prepared(mc_block * kch * 64);
  for (std::size_t i0 = 0; i0 < m; i0 += mc_block) {
    const std::size_t mc = std::min(mc_block, m - i0);
    const std::size_t tiles = (mc + kMR - 1) / kMR;
    prepare_a(a + i0 * lda, mc, k, lda, kch, tiles, prepared.data());
    // Panels outer, k blocks inner: B is then read as one sequential stream (a panel's k blocks are contiguous,
    // and so are the panels), which the prefetchers follow; k blocks outer jumped 128 KiB at every slice.
    for (std::size_t j0 = n0; j0 < n1; j0 += kNR) {
      const uint8_t* panel = packed + (j0 / kNR) * pb;
      const int32_t* colsum = reinterpret_cast<const int32_t*>(panel + kq * 128);
      const std::size_t ncols = std::min(kNR, n1 - j0);
      for (std::size_t kb = 0; kb < kblocks; ++kb) {
        const std::size_t c0 = kch * kb / kblocks, c1 = kch * (kb + 1) / kblocks;
        const std::size_t q0 = c0 * kChunk, q1 = std::min(kq, c1 * kChunk);
        for (std::size_t t = 0; t < tiles; ++t) {
          const std::size_t ir = tile_row(mc, tiles, t), rows = tile_row(mc, tiles, t + 1) - ir;
          const Sink sink{c + (i0 + ir) * ldc + j0,
                          ldc,
                          ep,
                          ep != nullptr ? ep->row_scale + i0 + ir : nullptr,
                          j0,
                          q0 == 0,
                          q1 == kq,
                          ncols};
          kMicroKernels[rows](prepared.data() + ir * kch * 64 + c0 * rows * 64, panel + 128 * q0, q1 - q0, colsum,
                              sink);
        }
      }
    }
  }
}

}  // namespace

void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t /*n*/, std::size_t n0, std::size_t n1, int32_t* c, std::size_t ldc) {
  run(a, m, k, lda, packed, n0, n1, c, ldc, nullptr);
}

void gemm_s8s8_f32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t /*n*/, std::size_t n0, std::size_t n1, float* out, std::size_t ldo,
                   const F32Epilogue& ep) {
  // int32 partials and the final floats share `out` (both 4 bytes; only written through memcpy/intrinsics)
  run(a, m, k, lda, packed, n0, n1, reinterpret_cast<int32_t*>(out), ldo, &ep);
}

}  // namespace avx512vnni
}  // namespace kernels
}  // namespace medqk

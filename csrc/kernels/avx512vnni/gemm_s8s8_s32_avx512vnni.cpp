// AVX-512 VNNI INT8 GEMM, exact over the whole int8 range (-128 included).
//
// vpdpbusd multiplies unsigned bytes by signed bytes and adds each group of four products into an
// int32 lane WITHOUT intermediate saturation (unlike vpmaddubsw; vpdpbusds, the saturating form, is never
// used). A is made unsigned by a + 128 (xor 0x80), so
//     sum_k a[k] b[k] = sum_k (a[k] + 128) b[k] - 128 * colsum(b),
// with colsum computed at pack time. For large K the first sum can leave int32, but vpdpbusd and vpaddd
// wrap modulo 2^32 and the true result fits in int32 (K <= kMaxGemmK), so the final value is exact; the
// scalar edge code adds in uint32 for the same reason (no signed-overflow UB).
//
// Layout of packed B (owned by this file): panels of 32 columns; a panel holds, for each quad of k
// (4q .. 4q+3), 128 bytes = two zmm: [c0k0..c0k3 c1k0..c1k3 ... c15k0..c15k3 | c16.. .. c31], then the
// 32 corrections 128 * colsum as int32. Padding (columns past n, k past K) is zero.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm_s8s8_s32.h"

namespace medqk {
namespace kernels {
namespace avx512vnni {

namespace {

constexpr std::size_t kNR = 32;    // columns per panel (two zmm of int32)
constexpr int kMR = 12;            // rows per tile: 24 accumulators + 2 B + 1 A of 32 zmm
constexpr std::size_t kKC = 192;   // k-quads per block: a panel's B slice (24 KiB) stays in L1
constexpr std::size_t kMC = 96;    // rows per block of prepared A

inline std::size_t k_quads(std::size_t k) { return (k + 3) / 4; }
inline std::size_t panel_bytes(std::size_t kq) { return kq * kNR * 4 + kNR * 4; }

// A rows [0, rows) as unsigned bytes (a + 128), K padded to 4 * kq; the pad multiplies zero B bytes.
void prepare_a(const int8_t* a, std::size_t rows, std::size_t k, std::size_t lda, std::size_t kq, uint8_t* out) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (std::size_t r = 0; r < rows; ++r) {
    const int8_t* src = a + r * lda;
    uint8_t* dst = out + r * 4 * kq;
    std::size_t p = 0;
    for (; p + 64 <= k; p += 64) {
      const __m512i v = _mm512_loadu_si512(src + p);
      _mm512_storeu_si512(dst + p, _mm512_xor_si512(v, flip));
    }
    for (; p < k; ++p) dst[p] = static_cast<uint8_t>(src[p]) ^ 0x80;
    for (; p < 4 * kq; ++p) dst[p] = 0x80;
  }
}

// Where a tile's results go: int32 C, or (ep != nullptr) float C through the F32Epilogue at the last k block.
struct Sink {
  int32_t* c;                // row 0 of the tile (int32 partials live here between k blocks)
  std::size_t ldc;
  const F32Epilogue* ep;     // nullptr: int32 output
  const float* row_scale;    // of the tile's row 0
  std::size_t col0;          // absolute column of the tile's column 0
  bool first, last;          // first / last k block
  std::size_t ncols;
};

// Not inlined: inlining this branchy store into the micro-kernel made GCC move the accumulators through the
// stack in the hot loop (650 -> 280 GOP/s). A call per row and tile costs nothing next to the k loop.
__attribute__((noinline)) void store_row(const Sink& s, int r, __m512i lo, __m512i hi, const int32_t* corr) {
  int32_t* c = s.c + r * s.ldc;
  if (s.first) {  // subtract 128 * colsum once, with the first k block
    lo = _mm512_sub_epi32(lo, _mm512_loadu_si512(corr));
    hi = _mm512_sub_epi32(hi, _mm512_loadu_si512(corr + 16));
  }
  const bool full = s.ncols == kNR;
  alignas(64) int32_t tile[kNR];
  if (!s.first) {  // add the partial sums of the earlier k blocks (wrapping: see the top of the file)
    if (full) {
      lo = _mm512_add_epi32(lo, _mm512_loadu_si512(c));
      hi = _mm512_add_epi32(hi, _mm512_loadu_si512(c + 16));
    } else {
      std::memcpy(tile, c, s.ncols * 4);
      lo = _mm512_add_epi32(lo, _mm512_load_si512(tile));
      hi = _mm512_add_epi32(hi, _mm512_load_si512(tile + 16));
    }
  }
  if (s.ep != nullptr && s.last) {
    // (maskz forms: the plain conversion trips a false GCC 12 -Wmaybe-uninitialized in its header)
    const __m512 rs = _mm512_set1_ps(s.row_scale[r]);
    const float* cs = s.ep->col_scale + s.col0;
    const float* bias = s.ep->bias != nullptr ? s.ep->bias + s.col0 : nullptr;
    alignas(64) float fs[kNR], fb[kNR] = {};
    std::memcpy(fs, cs, s.ncols * 4);
    if (bias != nullptr) std::memcpy(fb, bias, s.ncols * 4);
    __m512 f0 = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xffff, lo), _mm512_mul_ps(rs, _mm512_load_ps(fs)));
    __m512 f1 = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xffff, hi), _mm512_mul_ps(rs, _mm512_load_ps(fs + 16)));
    if (bias != nullptr) {
      f0 = _mm512_add_ps(f0, _mm512_load_ps(fb));
      f1 = _mm512_add_ps(f1, _mm512_load_ps(fb + 16));
    }
    lo = _mm512_castps_si512(f0);
    hi = _mm512_castps_si512(f1);
  }
  if (full) {
    _mm512_storeu_si512(c, lo);
    _mm512_storeu_si512(c + 16, hi);
  } else {
    _mm512_store_si512(tile, lo);
    _mm512_store_si512(tile + 16, hi);
    std::memcpy(c, tile, s.ncols * 4);
  }
}

// C tile (R x 32) over one k block: a = prepared A rows (stride a_stride bytes), b = the panel's slice.
template <int R>
void micro_kernel(const uint8_t* a, std::size_t a_stride, const uint8_t* b, std::size_t kc, const int32_t* colsum,
                  const Sink& sink) {
  __m512i acc[R][2];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (std::size_t q = 0; q < kc; ++q) {
    const __m512i b0 = _mm512_loadu_si512(b + 128 * q);
    const __m512i b1 = _mm512_loadu_si512(b + 128 * q + 64);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      int32_t word;
      std::memcpy(&word, a + r * a_stride + 4 * q, 4);
      const __m512i av = _mm512_set1_epi32(word);
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, b1);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) store_row(sink, r, acc[r][0], acc[r][1], colsum);
}

using MicroKernel = void (*)(const uint8_t*, std::size_t, const uint8_t*, std::size_t, const int32_t*, const Sink&);
constexpr MicroKernel kMicroKernels[kMR + 1] = {
    nullptr,         micro_kernel<1>, micro_kernel<2>, micro_kernel<3>,  micro_kernel<4>,  micro_kernel<5>,
    micro_kernel<6>, micro_kernel<7>, micro_kernel<8>, micro_kernel<9>, micro_kernel<10>, micro_kernel<11>,
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
    int32_t sum = 0;  // |128 * sum| <= 2^14 * kMaxGemmK < 2^31
    for (std::size_t p = 0; p < k; ++p) {
      panel[(p / 4) * 128 + offset + (p & 3)] = static_cast<uint8_t>(bj[p]);
      sum += bj[p];
    }
    const int32_t corr = 128 * sum;
    std::memcpy(panel + kq * 128 + col * 4, &corr, 4);
  }
}

namespace {

void run(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed, std::size_t n0,
         std::size_t n1, int32_t* c, std::size_t ldc, const F32Epilogue* ep) {
  const std::size_t kq = k_quads(k);
  const std::size_t pb = panel_bytes(kq);
  // one row tile: no reuse of a B slice across tiles, so K is not blocked
  const std::size_t kc_block = m <= static_cast<std::size_t>(kMR) ? kq : kKC;
  const std::size_t mc_block = std::min(m, kMC);
  std::vector<uint8_t> prepared(mc_block * 4 * kq);
  for (std::size_t i0 = 0; i0 < m; i0 += mc_block) {
    const std::size_t mc = std::min(mc_block, m - i0);
    prepare_a(a + i0 * lda, mc, k, lda, kq, prepared.data());
    for (std::size_t q0 = 0; q0 < kq; q0 += kc_block) {
      const std::size_t kc = std::min(kc_block, kq - q0);
      for (std::size_t j0 = n0; j0 < n1; j0 += kNR) {
        const uint8_t* panel = packed + (j0 / kNR) * pb;
        const int32_t* colsum = reinterpret_cast<const int32_t*>(panel + kq * 128);
        const std::size_t ncols = std::min(kNR, n1 - j0);
        for (std::size_t ir = 0; ir < mc; ir += kMR) {
          const std::size_t rows = std::min<std::size_t>(kMR, mc - ir);
          const Sink sink{c + (i0 + ir) * ldc + j0, ldc, ep, ep != nullptr ? ep->row_scale + i0 + ir : nullptr,
                          j0, q0 == 0, q0 + kc == kq, ncols};
          kMicroKernels[rows](prepared.data() + ir * 4 * kq + 4 * q0, 4 * kq, panel + 128 * q0, kc, colsum, sink);
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

// Internal interface of the 4-bit lookup-table scan ("fast scan" with one table per subspace).
//
// Codes: each vector has d sub-codes in 0..15 (a 4-bit scalar code per dimension, or a codebook
// index). Layout, shared by every ISA (csrc/runtime/lut4_search.cpp packs it): blocks of 32 vectors;
// a block holds, for each pair of subspaces (2p, 2p+1), 32 bytes:
//     byte i      (i < 16): code[v=i][2p]     | code[v=i+16][2p]     << 4
//     byte 16 + i (i < 16): code[v=i][2p + 1] | code[v=i+16][2p + 1] << 4
// d is padded to even and n to a multiple of 32 with code 0 (the tables of padded subspaces are 0).
// Block b starts at b * 16 * d_even bytes.
//
// Tables: per query, d_even x 16 uint8 entries, table[s][c] for subspace s and code c, each at most
// kLut4MaxEntry = 127 (lut4_quantize_tables makes them so; the bindings refuse larger ones): the x86
// kernels add the lookups of two rows of subspaces in 8 bits (<= 254) before widening, so one widening
// serves two rows (a sixth of the scan's instructions); the 7-bit tables cost no recall at k=10 for cb4
// or PQ fast scan in the project's evaluation (pca4 re-scores 4k candidates instead of 2k for that).
// scan(lut, lut_stride, nq, d_even, packed, nblocks, out, out_stride): for each query j < nq
// (1 <= nq <= kLut4MaxQueries), with tables at lut + j * lut_stride,
// masks[j * nblocks + b] has bit u set where the sum of vector 32 b + u > thresholds[j] (signed compare),
// and out[j * out_stride + v] = sum_s table_j[s][code[v][s]] as uint32 for the vectors of every block whose
// mask is not 0 (a kernel may leave the other blocks' sums unwritten: the selection reads only the sums of
// blocks with a candidate, like faiss's in-register threshold test). A batch of queries shares each load of the codes
// (the scan is bound by lookups and their accumulation, not by memory, once the codes are in cache). Exact for any
// d_even: a 16-bit lane takes at most 256 entries <= 127 (x86 vpshufb: 256 rows per flush; NEON: 2 x 128 pairs) or, on
// the 16-bit-only path, the whole sum (d_even <= 512: 127 * 512 < 65536) before widening to 32 bits; the VBMI kernel
// sums in 32 bits. The bound on d (medqk.h: kLut4MaxSubspaces) comes from float32 after the scan.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/operation.h"

namespace medqk {
namespace kernels {

constexpr std::size_t kLut4MaxQueries = 4;
constexpr unsigned kLut4MaxEntry = 127;

// The signature every ISA's scan has, written once: each namespace below declares its kernels with it.
using Lut4Scan = void(const uint8_t* lut, std::size_t lut_stride, std::size_t nq, std::size_t d_even,
                      const uint8_t* packed, std::size_t nblocks, uint32_t* out, std::size_t out_stride,
                      const int32_t* thresholds, uint32_t* masks);
MEDQK_KERNEL_OPERATION(Lut4ScanOp, Lut4Scan)  // the operation's tag (kernels/operation.h)

namespace scalar {
Lut4Scan lut4_scan;
}  // namespace scalar
namespace avx2 {
Lut4Scan lut4_scan;
}  // namespace avx2
namespace avx512vnni {
Lut4Scan lut4_scan;  // vpshufb on 512 bits (kernels/avx512vnni/lut4_scan_avx512.cpp)
}  // namespace avx512vnni
namespace avx512vbmi {
// vpermb + vpdpbusd (kernels/avx512vnni/lut4_scan_avx512vbmi.cpp): only where the CPU has AVX-512 VBMI; the
// dispatch runs it on the avx512vnni path, under the name below
Lut4Scan lut4_scan;
}  // namespace avx512vbmi
namespace avx512vnni {
inline constexpr Lut4ScanFn lut4_scan_vbmi = avx512vbmi::lut4_scan;
}  // namespace avx512vnni
namespace neon {
Lut4Scan lut4_scan;
}  // namespace neon

}  // namespace kernels
}  // namespace medqk

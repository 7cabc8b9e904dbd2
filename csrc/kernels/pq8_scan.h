// Internal interface of the 8-bit PQ scan.
//
// Layout (pq8_pack, the same for every ISA): vectors in blocks of kPq8Block = 64; block b is m rows of
// 64 bytes, row s holding the subspace-s codes of vectors 64b .. 64b + 63 (padding vectors: code 0).
// A 64-byte row is one AVX-512 register or four NEON registers, so a lookup handles 64 vectors at once.
//
// The table is one query's m x 256 uint8 entries, each <= kPq8LutMax (pq8_quantize_tables), so two
// lookups add in 8 bits and m <= 256 sums stay below 2^15 in uint16.
// The scan writes sums[64 * b + j] = sum_s lut[s][code_s of vector 64b + j] (exact, uint16) for
// nblocks blocks, and masks[b] bit j set when that sum >= thr: the front end touches only those.
#pragma once

#include <cstddef>
#include <cstdint>

namespace medqk {
namespace kernels {

constexpr std::size_t kPq8Block = 64;
constexpr unsigned kPq8LutMax = 127;

// The signatures every ISA's kernels have, written once: each namespace below declares its kernels with them.
using Pq8Scan = void(const uint8_t* lut, std::size_t m, const uint8_t* packed, std::size_t nblocks, uint16_t thr,
                     uint16_t* sums, uint64_t* masks);
using Pq8ScanFn = Pq8Scan*;

// The group scan: kPq8Group queries over the same codes, for CPUs whose byte shuffles reach only 16
// table entries (AVX2). lut_t holds the group's tables query-minor: lut_t[(s * 256 + c) * kPq8Group + g]
// = query g's entry for code c of subspace s (<= kPq8LutMax; an unused query has zeros and threshold
// 65535), so one code byte selects the entries of all the group's queries in one 16-byte load.
// For the nblocks blocks it writes every (vector v, query g) whose sum reaches thr[g] to hits (v *
// kPq8Group + g, v counted from the first block) and that sum to hit_sums, in order of v then g, and
// returns how many (at most nblocks * 64 * kPq8Group).
constexpr std::size_t kPq8Group = 16;
using Pq8ScanGroup = std::size_t(const uint8_t* lut_t, std::size_t m, const uint8_t* packed, std::size_t nblocks,
                                 const uint16_t* thr, uint32_t* hits, uint16_t* hit_sums);
using Pq8ScanGroupFn = Pq8ScanGroup*;

// The operation, for runtime::kernel<Op>: the scan of one query, and its group form where that beats scanning
// query by query (else nullptr: pq8_search_topk then scans one query at a time).
struct Pq8Kernel {
  Pq8ScanFn scan;
  Pq8ScanGroupFn group;
};
struct Pq8ScanOp {
  using Fn = Pq8Kernel;
};

namespace scalar {
Pq8Scan pq8_scan;
Pq8ScanGroup pq8_scan_group;
}  // namespace scalar
namespace avx2 {
Pq8Scan pq8_scan;
Pq8ScanGroup pq8_scan_group;
}  // namespace avx2
namespace avx512vnni {
Pq8Scan pq8_scan;  // AVX-512 VBMI (vpermi2b): run only where cpu_features().avx512vbmi
}  // namespace avx512vnni
namespace neon {
Pq8Scan pq8_scan;
}  // namespace neon

}  // namespace kernels
}  // namespace medqk

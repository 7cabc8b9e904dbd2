// medqk public C++ API: plain functions on raw pointers and sizes. No intrinsics, no templates.
//
// Every function here is safe to call from any thread. Kernels are chosen once per process by
// the dispatch table (csrc/runtime/dispatch.cpp), overridable with MEDQK_ISA or medqk::set_isa.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace medqk {

// ----------------------------------------------------------------------------------------------
// CPU features and dispatch
// ----------------------------------------------------------------------------------------------
enum class Isa : int { scalar = 0, avx2 = 1, neon = 2, neon_dotprod = 3, avx512vnni = 4, amx = 5 };
constexpr int kNumIsas = 6;

struct CpuFeatures {
  // x86-64
  bool sse2 = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vnni = false, avx_vnni = false;
  bool avx512vbmi = false;       // vpermi2b: the 8-bit PQ scan's 128-entry byte lookups (not an ISA of its own)
  bool avx512vpopcntdq = false;  // vpopcntq: the RaBitQ scan's 64-bit popcounts (not an ISA of its own)
  bool amx_int8 = false;         // AMX-TILE + AMX-INT8, tile state enabled by the OS and granted to this process
  // aarch64
  bool asimd = false, asimddp = false, i8mm = false;
};

const CpuFeatures& cpu_features();  // detected once (cpuid + xgetbv / getauxval)
const char* isa_name(Isa isa);
bool isa_from_name(const std::string& name, Isa* out);
bool isa_built(Isa isa);            // compiled into this binary
bool isa_supported(Isa isa);        // built AND the CPU has it
std::vector<Isa> built_isas();      // built into this binary, in preference order, best first
std::vector<Isa> supported_isas();  // built and present on this CPU, in preference order, best first
Isa best_isa();
Isa active_isa();  // the ISA kernels dispatch to now
// Selects the ISA for every later call. Returns false (and changes nothing) if unsupported.
bool set_isa(Isa isa);
// Reads MEDQK_ISA once at start-up; an unknown or unsupported value is reported here
// (empty string when the variable was absent or valid).
const std::string& isa_env_error();

// Kernel variants. Each operation declares its kernels as a chain, best first (csrc/runtime/dispatch.cpp);
// a CPU path runs the first variant whose ISA it includes (amx runs avx512vnni and avx2 kernels,
// neon_dotprod runs neon ones) and whose extra CPU features (`needs`, e.g. avx512vbmi) are present.
// Operations: gemm_s8s8_s32, gemm_w4a8, lut4_scan, pq8_scan, f16_scores, s8_score_candidates, pq_assign,
// quantize_rows_s8, attention_f32, gelu_f32, rabitq_scan. Every variant computes the same integer results (and the same
// float bits where the operation documents an order); forcing one lets tests and benchmarks reach each kernel the CPU
// can run.
struct KernelVariantInfo {
  std::string name;   // e.g. "avx512vbmi", "avx2", "scalar"
  Isa isa;            // the ISA path it belongs to
  std::string needs;  // CPU features it needs beyond that path ("" or "avx512vbmi")
  bool runnable;      // built, and this CPU has what it needs
};
std::vector<std::string> kernel_operations();
std::vector<KernelVariantInfo> kernel_variants(const std::string& op);  // built ones, best first; {} if unknown
// The variant that runs `op` under CPU path `isa` now (the forced one if any); "" for an unknown op.
std::string kernel_variant(const std::string& op, Isa isa);
enum class ForceResult { ok, unknown_operation, unknown_variant, not_runnable, not_forceable };
// Pins `variant` for every later call of `op`, whatever the active ISA (process-wide, like set_isa);
// "" returns `op` to its chain. The GEMM is not forceable: its packed layout belongs to its ISA
// (choose it with set_isa / the isa argument of pack_s8).
ForceResult force_kernel_variant(const std::string& op, const std::string& variant);

// Threads: 0 means "all hardware threads".
int hardware_threads();

// ----------------------------------------------------------------------------------------------
// INT8 GEMM: C[m, n] = sum_k A[m, k] * B[n, k]   (A @ B^T), int8 x int8 -> int32, exact.
//
// Exactness: |a*b| <= 128*128 = 2^14, so a sum of K products fits in int32 for K <= kMaxGemmK
// (131071). Every kernel widens to at least 16 bits before multiplying and to 32 bits before
// adding more than two products, so there is no saturation anywhere (unlike u8 x s8 vpmaddubsw).
// ----------------------------------------------------------------------------------------------
constexpr std::size_t kMaxGemmK = 131071;

// B packed once for the ISA active at packing time; the layout belongs to that ISA's kernel.
struct PackedS8Info {
  Isa isa;
  std::size_t n, k;
  std::size_t bytes;  // size of the packed buffer
};

std::size_t pack_s8_bytes(Isa isa, std::size_t n, std::size_t k);
// Packs B (n x k, row stride ldb elements) for `isa` into `packed` (pack_s8_bytes bytes, any alignment).
void pack_s8(Isa isa, const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed);

// C (m x n, row stride ldc) = A (m x k, row stride lda) @ unpack(packed)^T with the kernel of `isa`.
// threads: 0 = all hardware threads.
void gemm_s8s8_s32_packed(Isa isa, const int8_t* a, std::size_t m, std::size_t k, std::size_t lda,
                          const uint8_t* packed, std::size_t n, int32_t* c, std::size_t ldc, int threads);

// Float output: out[i, j] = float(A_i . B_j) * (row_scale[i] * col_scale[j]) + (bias ? bias[j] : 0), out row
// stride n. Kernels that can fuse this into their last store do (no int32 pass over memory).
void gemm_s8s8_f32_packed(Isa isa, const int8_t* a, std::size_t m, std::size_t k, std::size_t lda,
                          const uint8_t* packed, std::size_t n, const float* row_scale, const float* col_scale,
                          const float* bias, float* out, int threads);

// Convenience: packs B on the fly with the active ISA, then multiplies.
void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const int8_t* b, std::size_t n,
                   std::size_t ldb, int32_t* c, std::size_t ldc, int threads);

// ----------------------------------------------------------------------------------------------
// W4A8 weight GEMM (csrc/runtime/gemm_w4a8.cpp, kernels/gemm_w4a8.h): 4-bit weight codes expanded through a
// 16-entry int8 lookup per output row, times int8 activations, exact int32 per group.
// Weights W (n x k): codes uint8 (n x k, each < 16), levels int8 (n x 16, each in [-127, 127]), groups of
// group_size (a multiple of 32, at most kMaxW4GroupSize) along k, G = ceil(k / group_size), the last group
// possibly partial. For a (m x k) int8 in [-128, 127]:
//   D[m, n, g] = sum over k in group g of a[m, k] * levels[n, codes[n, k]]            (exact, int32)
//   out[m, n]  = row_scale[m] * sum_g scales[n, g] * float(D[m, n, g] - zeros[n, g] * asum[m, g]) + bias[n]
// with asum[m, g] the sum of a[m, :] over group g; zeros (n x G int8 in [0, 15]) and bias (n) may be null.
// The float sum over g (and over the partial sums of each D a SIMD kernel keeps) runs in the kernel's order.
// The packed layout belongs to the kernel variant that runs gemm_w4a8 for `isa` at packing time (the
// chain's choice, or the variant force_kernel_variant pinned): pack and multiply under the same choice.
// threads: 0 = all hardware threads. k <= kMaxGemmK.
// ----------------------------------------------------------------------------------------------
constexpr std::size_t kMaxW4GroupSize = 65536;  // |D - zeros * asum| <= 65536 * (128 * 127 + 15 * 128) < 2^31

std::size_t pack_w4_bytes(Isa isa, std::size_t n, std::size_t k, std::size_t group_size);
// codes row stride ldc bytes; packed: pack_w4_bytes bytes, any alignment.
void pack_w4(Isa isa, const uint8_t* codes, std::size_t n, std::size_t k, std::size_t ldc, const int8_t* levels,
             std::size_t group_size, uint8_t* packed);
// d: m x n x G int32 (the integer result of every group, for tests and callers with their own epilogue).
void gemm_w4a8_s32(Isa isa, const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t n, std::size_t group_size, int32_t* d, int threads);
// out: m x n float32, the fused epilogue above (no int32 pass over memory).
void gemm_w4a8_f32(Isa isa, const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t n, std::size_t group_size, const float* row_scale, const float* scales,
                   const int8_t* zeros, const float* bias, float* out, int threads);

// ----------------------------------------------------------------------------------------------
// Float helpers around the integer GEMM (portable code, compiled at the baseline ISA).
// ----------------------------------------------------------------------------------------------
// Per-row symmetric quantization: scale[i] = max|x[i,:]| / 127 (1 for an all-zero row, and for a row
// whose max|x| < 2^-119, which quantizes to zeros: its scale would be subnormal),
// q = clamp(round_half_even(x * (127 / max|x|)), -127, 127). Returns false on a non-finite value.
bool quantize_rows_s8(const float* x, std::size_t m, std::size_t k, std::size_t ldx, int8_t* q, float* scales);
// out[i, j] = acc[i, j] * row_scale[i] * col_scale[j] + (bias ? bias[j] : 0)
void dequantize_s32_f32(const int32_t* acc, std::size_t m, std::size_t n, const float* row_scale,
                        const float* col_scale, const float* bias, float* out);

// ----------------------------------------------------------------------------------------------
// Exact int8 search with fused top-k (csrc/runtime/search_s8.cpp).
// score(i, j) = alpha[i] * float(A_i . B_j) + (bias ? bias[j] : 0), computed in float32 without FMA.
// Writes the topk best per query, best first; equal scores -> lower id first; when topk > n the tail
// is score -inf, id -1. `packed` is B (n x k) packed for `isa` (pack_s8). threads: 0 = all.
// ----------------------------------------------------------------------------------------------
void s8_search_topk(Isa isa, const int8_t* a, std::size_t nq, std::size_t k, const uint8_t* packed, std::size_t n,
                    const float* alpha, const float* bias, std::size_t topk, float* scores, int64_t* ids, int threads);
// Allow-bitmaps: every *_search_topk (and ivf_lut4_search) has an overload with a last argument `allow`,
// ceil(n / 8) bytes, bit r & 7 of byte r >> 3 set when vector r may be returned (nullptr: all may; for
// ivf_lut4_search r is the vector's id, list_ids[list_starts[l] + index], with n = list_starts[nlist]: an id
// outside 0..n-1 is not allowed; tested only for the vectors that would enter the top-k, so a filter costs
// no pass over the index). A vector whose bit is clear is never
// offered to the top-k, so the topk best allowed vectors are written (padded with -inf / -1 only when fewer
// exist): the filtered and delete-aware searches of medqk.index.
void s8_search_topk(Isa isa, const int8_t* a, std::size_t nq, std::size_t k, const uint8_t* packed, std::size_t n,
                    const float* alpha, const float* bias, std::size_t topk, float* scores, int64_t* ids, int threads,
                    const uint8_t* allow);
// The name s8_search_topk had before 0.2 (kernel names are <operand>_<verb>[_topk]); kept for one release.
[[deprecated("renamed medqk::s8_search_topk")]]
inline void search_s8_topk(Isa isa, const int8_t* a, std::size_t nq, std::size_t k, const uint8_t* packed,
                           std::size_t n, const float* alpha, const float* bias, std::size_t topk, float* scores,
                           int64_t* ids, int threads) {
  s8_search_topk(isa, a, nq, k, packed, n, alpha, bias, topk, scores, ids, threads);
}
// out[q, c] = sum_j qs[q, j] * codes[cand[q, c], j] in float32 (16 partial sums, lane l adding the
// j = l mod 16 in order, then s[l] += s[l + 8], s[l] += s[l + 4], (s0 + s2) + (s1 + s3)); an id outside
// [0, n) gives -inf. Re-scores candidates with a float query; threads <= 0: all cores. Every ISA's kernel
// adds in this order (kernels/s8_score.h): the results are the same bits whatever the ISA.
void s8_score_candidates(Isa isa, const float* qs, std::size_t nq, std::size_t d, const int8_t* codes, std::size_t n,
                         const int64_t* cand, std::size_t kc, float* out, int threads = 0);
// The re-scoring step of `<base>+rerank:int8` in one call: v = s8_score_candidates(...)[q, c], then
// v + qbias[q] (when qbias), then 2 v - sqnorms[id] (when sqnorms: the l2 metric), all in float32; the
// best topk of each row by (score desc, id asc) into scores / ids (nq, topk). Invalid ids score -inf;
// rows with fewer than topk candidates end with -inf / -1.
void s8_rerank_topk(Isa isa, const float* qs, std::size_t nq, std::size_t d, const int8_t* codes, std::size_t n,
                    const int64_t* cand, std::size_t kc, const float* qbias, const float* sqnorms, std::size_t topk,
                    float* scores, int64_t* ids, int threads = 0);

// fp16 flat search (csrc/runtime/search_f16.cpp): x holds n IEEE half vectors (uint16 bits);
// score(i, j) = alpha * (q_i . float(x_j)) + (bias ? bias[j] : 0), top-k fused, ties -> lower id.
void f16_search_topk(Isa isa, const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n,
                     float alpha, const float* bias, std::size_t topk, float* scores, int64_t* ids, int threads);
void f16_search_topk(Isa isa, const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n,
                     float alpha, const float* bias, std::size_t topk, float* scores, int64_t* ids, int threads,
                     const uint8_t* allow);
// The name f16_search_topk had before 0.2; kept for one release.
[[deprecated("renamed medqk::f16_search_topk")]]
inline void search_f16_topk(Isa isa, const float* q, std::size_t nq, std::size_t d, const uint16_t* x, std::size_t n,
                            float alpha, const float* bias, std::size_t topk, float* scores, int64_t* ids,
                            int threads) {
  f16_search_topk(isa, q, nq, d, x, n, alpha, bias, topk, scores, ids, threads);
}

// ----------------------------------------------------------------------------------------------
// 4-bit table-scan search (csrc/runtime/lut4_search.cpp, kernels/lut4_scan.h): d sub-codes in 0..15
// per vector, one 16-entry uint8 table per subspace and query. Ranking is by the exact uint32 sum of
// table entries, larger first, ties -> lower id; the score written is alpha[q] * sum + beta[q]; when
// topk > n the tail is score -inf, id -1. Requires 1 <= d <= kLut4MaxSubspaces.
//
// Why that bound: a sum is at most 127 * d_even (table entries <= 127). The kernels themselves take any
// d (16-bit lanes are flushed to 32 bits every 256 rows on x86, 128 pairs on NEON; the VBMI kernel sums
// in 32 bits), and the top-k keeps the sums as int32. What bounds d is float32: the flat search returns
// alpha * float(sum) + beta and the Numba twin ranks by float32(sum), both exact (and so bit-identical in
// their ties) only for sums below 2^24; the IVF keys add a list key of up to 2^23 to the sum
// (ivf_lut4_search), so sums must stay below 2^23 there. 65,536 subspaces keep every sum at most
// 127 * 65,536 = 8,323,072 < 2^23, for both searches: 16x e5-mistral's 4,096 dimensions.
// ----------------------------------------------------------------------------------------------
constexpr std::size_t kLut4MaxSubspaces = 65536;
static_assert(127 * kLut4MaxSubspaces < (std::size_t(1) << 23), "4-bit table sums must stay below 2^23");
std::size_t lut4_packed_bytes(std::size_t n, std::size_t d);
void lut4_pack(const uint8_t* codes, std::size_t n, std::size_t d, uint8_t* packed);
// Vectors v0 .. v0 + n - 1 of codes packed by lut4_pack (d sub-codes each) decoded to int8 vectors of
// d_out dimensions through e table entries: out[i * d_out + dim[j]] += table[j * 16 + code[v0 + i][sub[j]]]
// for j < e (int32 sums, then clamped to -127..127). A per-dimension codec has one entry per subspace;
// additive or vector codes have several entries per dimension or per sub-code. Portable C++; the batched
// search of the 4-bit codecs decodes blocks of vectors with it and runs the int8 GEMM on them.
void lut4_decode_s8(const uint8_t* packed, std::size_t d, std::size_t v0, std::size_t n, std::size_t e,
                    const int32_t* sub, const int32_t* dim, const int16_t* table, std::size_t d_out, int8_t* out);
// luts: nq x d_even x 16 (d_even = d rounded up to even; a padded subspace's table must be zero),
// every entry <= 127 (the kernels add two lookups in 8 bits; lut4_quantize_tables gives such tables).
// sorted = false: the same topk hits (padding last) in no particular order, for callers that re-score them.
void lut4_search_topk(Isa isa, const uint8_t* luts, std::size_t nq, std::size_t d, const uint8_t* packed, std::size_t n,
                      const float* alpha, const float* beta, std::size_t topk, float* scores, int64_t* ids, int threads,
                      bool sorted = true);
void lut4_search_topk(Isa isa, const uint8_t* luts, std::size_t nq, std::size_t d, const uint8_t* packed, std::size_t n,
                      const float* alpha, const float* beta, std::size_t topk, float* scores, int64_t* ids, int threads,
                      bool sorted, const uint8_t* allow);
// 8-bit PQ search (csrc/runtime/pq8_search.cpp). Codes (n x m bytes, one centroid id per subspace) are
// packed by pq8_pack into blocks of 64 vectors: block b is m rows of 64 bytes, row s holding the
// subspace-s codes of vectors 64b .. 64b + 63 (padding: code 0); pq8_packed_bytes(n, m) bytes.
// pq8_search_topk ranks by the exact ADC score: the float32 sum of the query's table entries
// tables[q][s][code_s] (nq x m x 256, e.g. from pq_tables), added in subspace order from 0.0f; larger
// first, ties -> lower id; that score is written; topk > n pads with -inf / -1. Requires 1 <= m <= 256.
// Internally an 8-bit copy of the tables sums 64 vectors at a time (pq8_scan) and only vectors that
// could still enter the top-k are scored in float: the result is the same as scoring all of them.
std::size_t pq8_packed_bytes(std::size_t n, std::size_t m);
void pq8_pack(const uint8_t* codes, std::size_t n, std::size_t m, uint8_t* packed);
void pq8_search_topk(Isa isa, const float* tables, std::size_t nq, std::size_t m, const uint8_t* packed, std::size_t n,
                     std::size_t topk, float* scores, int64_t* ids, int threads);
void pq8_search_topk(Isa isa, const float* tables, std::size_t nq, std::size_t m, const uint8_t* packed, std::size_t n,
                     std::size_t topk, float* scores, int64_t* ids, int threads, const uint8_t* allow);
// The scan kernel alone (for tests and benchmarks): lut is m x 256 uint8 entries, each <= 127; for nblocks
// packed blocks, sums[64 b + j] = sum_s lut[s][code_s of vector 64 b + j] (exact, uint16) and bit j of
// masks[b] set when that sum >= thr.
void pq8_scan(Isa isa, const uint8_t* lut, std::size_t m, const uint8_t* packed, std::size_t nblocks, uint16_t thr,
              uint16_t* sums, uint64_t* masks);
// The group scan (for tests and benchmarks): 16 queries' tables stored query-minor, lut_t[(s * 256 + c) *
// 16 + g] <= 127; writes every (vector v, query g) of the nblocks blocks with sum_s lut_t[s][code_s][g] >=
// thr[g] to hits (v * 16 + g) and hit_sums, in order of v then g; returns the count (<= nblocks * 1024).
// ISAs without a group kernel of their own (the search then scans query by query) run the reference.
std::size_t pq8_scan_group(Isa isa, const uint8_t* lut_t, std::size_t m, const uint8_t* packed, std::size_t nblocks,
                           const uint16_t* thr, uint32_t* hits, uint16_t* hit_sums);
// 1-bit RaBitQ search (csrc/runtime/rabitq_search.cpp; the codec: python/medqk/quantizers/rabitq.py). A code
// is ceil(dim / 8) bytes, dimension i in bit i % 8 of byte i / 8 (numpy packbits, bitorder "little"); bits
// past dim are ignored. rabitq_pack stores n codes as rabitq_packed_words(n, dim) uint64 words in blocks of
// 8 vectors (kernels/rabitq_scan.h), and pop[v] = the number of set bits of code v.
// A query is `bits` (1..8) bit planes of ceil(dim / 8) bytes in the same bit order (plane j: bit j of every
// query code u_i); the integer part ip = sum_j 2^j popcount(code & plane_j) = sum_i b_i u_i is exact.
std::size_t rabitq_words(std::size_t dim);  // ceil(dim / 64)
std::size_t rabitq_packed_words(std::size_t n, std::size_t dim);
void rabitq_pack(const uint8_t* codes, std::size_t n, std::size_t dim, uint64_t* packed, int32_t* pop);
// ip (nq x n) of the queries' planes (nq x bits x ceil(dim / 8) bytes) against every packed vector.
void rabitq_scan_ints(Isa isa, const uint64_t* packed, std::size_t n, std::size_t dim, const uint8_t* planes,
                      std::size_t nq, std::size_t bits, int32_t* ip, int threads);
// The queries of a search: planes as above and the float32 per-query constants a, c1, c2, c3 (nq each).
struct RabitqQueries {
  const uint8_t* planes;
  std::size_t nq, bits;
  const float *a, *c1, *c2, *c3;
};
// Top-k by the float32 score (add[v] + a) + mult[v] ((c1 ip + c2 pop[v]) + c3), evaluated in that order
// without FMA (the Numba twin's order: the same bits); larger first, ties -> lower id; topk > the allowed
// rows pads with -inf / -1. `allow`: nullptr or a bitmap over the n rows (bit v & 7 of byte v >> 3).
void rabitq_search_topk(Isa isa, const uint64_t* packed, const int32_t* pop, const float* mult, const float* add,
                        std::size_t n, std::size_t dim, const RabitqQueries& queries, std::size_t topk, float* scores,
                        int64_t* ids, int threads, const uint8_t* allow = nullptr);
// Product-quantization lookup tables (csrc/runtime/pq_tables.cpp): x is nq x (m * dsub), centroids
// m x k x dsub; out[q, s, c] = sum_d x[q, s * dsub + d] * centroids[s, c, d] (metric ip), or 2 * that
// - |centroids[s, c]|^2 (l2: the sum over s is then 2 q.x_hat - |x_hat|^2 up to |q|^2). Sums run over d
// in order, without FMA (the Numba twin gives the same floats).
void pq_tables(const float* x, std::size_t nq, std::size_t m, std::size_t dsub, const float* centroids, std::size_t k,
               bool l2, float* out, int threads);
// Float tables (nq x s x 16) -> uint8 tables (nq x s_even x 16) with one step per query:
// luts = clamp(round_half_even((t - min_c t[j]) / alpha), 0, 127), alpha = max_j (max_c - min_c) / 127,
// beta = sum_j min_c t[j] (float32, in subspace order), so sum of t ~ alpha * sum of luts + beta.
void lut4_quantize_tables(const float* tables, std::size_t nq, std::size_t s, uint8_t* luts, float* alpha, float* beta);
// Exact float sums of the tables over the candidates' sub-codes (id -1 -> -inf), in subspace order.
void lut4_score_candidates(const float* tables, std::size_t nq, std::size_t s, const uint8_t* packed,
                           const int64_t* cand, std::size_t kc, float* scores);

// IVF search over 4-bit codes (csrc/runtime/ivf_search.cpp). The codes of inverted list l are the
// lut4_pack layout of its vectors, at blocks list_blocks[l] .. list_blocks[l + 1] of `packed` (each list
// starts on a block); its ids are list_ids[list_starts[l] .. list_starts[l + 1]). Per query q: probes[q, p]
// (nprobe distinct lists, -1 = none) are scanned with the uint8 tables luts[q, p] (nq x nlut x d_even x 16;
// nlut = 1 shares one table set over all lists, nlut = nprobe gives each probe its own); the topk best by
// the integer key sum + probe_keys[q, p] are kept (larger first; among equal keys the lower storage
// position list_starts[l] + index) and written best first, equal keys by lower id: the key (an integer,
// exact in float32) into keys, the id into ids; -inf / -1 when fewer were found. Requires
// d <= kLut4MaxSubspaces (sums below 2^23), table entries <= 127 (ivf_quantize_tables) and
// 0 <= probe_keys <= 2^23: keys then lie in [0, 2^24), exact as float32.
// threads: 0 = all.
void ivf_lut4_search(Isa isa, const uint8_t* luts, std::size_t nq, std::size_t d, std::size_t nlut,
                     const int64_t* probes, const int32_t* probe_keys, std::size_t nprobe, const uint8_t* packed,
                     const int64_t* list_blocks, const int64_t* list_starts, const int64_t* list_ids, std::size_t nlist,
                     std::size_t topk, float* keys, int64_t* ids, int threads);
void ivf_lut4_search(Isa isa, const uint8_t* luts, std::size_t nq, std::size_t d, std::size_t nlut,
                     const int64_t* probes, const int32_t* probe_keys, std::size_t nprobe, const uint8_t* packed,
                     const int64_t* list_blocks, const int64_t* list_starts, const int64_t* list_ids, std::size_t nlist,
                     std::size_t topk, float* keys, int64_t* ids, int threads, const uint8_t* allow);

// The uint8 tables of ivf_lut4_search: float tables (nq x nlut x s x 16) -> luts (nq x nlut x s_even x 16)
// with one step per query over all its nlut table sets: lo = min_c t[l, j], step = max_{l,j} (max_c - lo)
// / 127 (1 if 0), luts = clamp(round_half_even((t - lo) * float(1 / step)), 0, 127), padding subspace 0;
// offsets[q, l] = sum_j lo[l, j] in double, in subspace order. Then sum_j t ~ step * sum_j luts + offset.
void ivf_quantize_tables(const float* tables, std::size_t nq, std::size_t nlut, std::size_t s, uint8_t* luts,
                         float* step, double* offsets);
// Float top-k per row: the k best of each row of scores (nq x n, larger better; ties -> lower index), best
// first: scores into best, indices into ids (both nq x k). 1 <= k <= n. IVF picks its lists with it, and the
// float flat searches their top-k of each block (csrc/runtime/ivf_search.cpp).
void select_topk_f32(const float* scores, std::size_t nq, std::size_t n, std::size_t k, float* best, int64_t* ids,
                     int threads);
// The same over the allowed columns only: column j may be returned when bit allow_first + j of `allow` is set
// (bit b & 7 of byte b >> 3; the bitmap of a whole index, whose column block starts at row allow_first), tested
// only for the columns that would enter the top-k. Fewer than k allowed: the rest is score -inf, id -1.
void select_topk_f32(const float* scores, std::size_t nq, std::size_t n, std::size_t k, float* best, int64_t* ids,
                     int threads, const uint8_t* allow, std::size_t allow_first);
// The name select_topk_f32 had before 0.2 (it is a general float top-k); kept for one release.
[[deprecated("renamed medqk::select_topk_f32")]]
inline void ivf_select_lists(const float* list_scores, std::size_t nq, std::size_t nlist, std::size_t nprobe,
                             float* best, int64_t* lists, int threads) {
  select_topk_f32(list_scores, nq, nlist, nprobe, best, lists, threads);
}

// ----------------------------------------------------------------------------------------------
// PQ / k-means assignment (csrc/runtime/pq_assign.cpp, kernels/pq_assign.h). x: n rows of m * dsub
// floats (subspace j = columns j * dsub .. j * dsub + dsub - 1); centroids: m x k x dsub floats, k <= 256.
// codes[i * m + j] = argmin_c ||c||^2 - 2 <x_ij, c> over the k centroids of subspace j (uint8; among
// equal scores the lowest index wins), dist[i * m + j] = max(that minimum + ||x_ij||^2, 0), float32.
// Float sums differ between ISAs by rounding only (FMA vs separate products), so a code can differ
// between ISAs only where two scores are within rounding. A NaN or Inf input gives a non-finite dist.
// threads: 0 = all.
// ----------------------------------------------------------------------------------------------
void pq_assign(Isa isa, const float* x, std::size_t n, std::size_t m, std::size_t k, std::size_t dsub,
               const float* centroids, uint8_t* codes, float* dist, int threads);

// Score-aware codes (csrc/runtime/pq_anisotropic.cpp): starting from codes (n x m, e.g. pq_assign's), each
// vector's codes move by coordinate descent to lower eta * (r . u)^2 + |r - (r . u) u|^2 (r = x_hat - x,
// u = x / |x|; a zero vector: plain squared error), `passes` sweeps over the subspaces, in float64. The
// loss never rises; among equal gains the lowest centroid index wins (moving or not). In place.
void pq_anisotropic(const float* x, std::size_t n, std::size_t m, std::size_t k, std::size_t dsub,
                    const float* centroids, double eta, int passes, uint8_t* codes, int threads);
// The k-means centroid update: sums[(j * k + c) * dsub + p] = sum over rows i with codes[i * m + j] == c of
// x[i, j * dsub + p], added in float64 in increasing i (as numpy.bincount with weights), and counts[j * k + c]
// the number of those rows. codes must be < k.
void pq_centroid_sums(const float* x, std::size_t n, std::size_t m, std::size_t k, std::size_t dsub,
                      const uint8_t* codes, double* sums, int64_t* counts, int threads);

// ----------------------------------------------------------------------------------------------
// Fused self-attention of a transformer encoder (csrc/runtime/attention.cpp, kernels/attention.h).
// q, k, v: (batch * length) rows of heads * dh floats (row strides ldq, ldk, ldv), sequence b in rows
// b * length to b * length + lengths[b] - 1 (0 <= lengths[b] <= length), head h in columns h * dh to
// h * dh + dh - 1. For each sequence, head and row i < lengths[b]:
//   out[i] = sum_j softmax_j(scale * <q[i], k[j]>) v[j]   over the keys j < lengths[b] only,
// rows past lengths[b] are set to 0 (out: row stride ldo). Float sums in the orders kernels/attention.h
// documents per ISA (results differ between ISAs by rounding only). threads: 0 = all.
// ----------------------------------------------------------------------------------------------
void attention_f32(Isa isa, const float* q, std::size_t ldq, const float* k, std::size_t ldk, const float* v,
                   std::size_t ldv, std::size_t batch, std::size_t length, std::size_t heads, std::size_t dh,
                   const int64_t* lengths, float scale, float* out, std::size_t ldo, int threads);
// GELU in the erf form (csrc/runtime/gelu.cpp, kernels/gelu.h): out[i] = x[i] Phi(x[i]) for n floats (out may be
// x), erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7); ISAs differ by rounding only. threads: 0 = all.
void gelu_f32(Isa isa, const float* x, std::size_t n, float* out, int threads);

}  // namespace medqk

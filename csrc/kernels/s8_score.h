// Internal interface of the candidate re-scoring kernel (the `+rerank:int8` step and the int8 flat
// index's own re-scoring): out[c] = q . codes[cand[c]] in float32 for one float query q (d) and int8 rows
// codes (n x d); an id outside [0, n) gives -inf.
//
// Every ISA adds in one order: 16 partial sums, lane l adding q[j] * row[j] for j = l (mod 16) in
// increasing j, multiply and add apart (no FMA; the build has -ffp-contract=off), then s[l] += s[l + 8],
// s[l] += s[l + 4], (s0 + s2) + (s1 + s3). The results are therefore equal bit for bit across ISAs and with
// the Numba twin (python/medqk/kernels/_numba_search.py: s8_score_candidates), and a SIMD path only
// keeps the 16 lanes in vector registers (AVX2: two of 8, NEON: four of 4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

#include "kernels/operation.h"

namespace medqk {
namespace kernels {

// The signature every ISA's kernel has, written once: each namespace below declares its kernel with it.
using S8ScoreCandidates = void(const float* q, std::size_t d, const int8_t* codes, std::size_t n, const int64_t* cand,
                               std::size_t kc, float* out);
MEDQK_KERNEL_OPERATION(S8ScoreOp, S8ScoreCandidates)  // the operation's tag (kernels/operation.h)

// The rows sit at random places, so each row read is a cache miss the hardware prefetchers cannot predict:
// each kernel fetches the row of the candidate kS8ScoreAhead on while it scores this one, which overlaps
// those misses with the arithmetic. static: every ISA file keeps its own copy, built with its own flags.
constexpr std::size_t kS8ScoreAhead = 8;
static inline void s8_score_prefetch(const int8_t* codes, std::size_t n, std::size_t d, const int64_t* cand,
                                     std::size_t c, std::size_t kc) {
  if (c + kS8ScoreAhead >= kc) return;
  const int64_t w = cand[c + kS8ScoreAhead];
  if (w < 0 || static_cast<std::size_t>(w) >= n) return;
  const int8_t* ahead = codes + static_cast<std::size_t>(w) * d;
  for (std::size_t off = 0; off < d; off += 64) __builtin_prefetch(ahead + off);
}

// The tail (j .. d - 1, fewer than 16 products: lanes 0 .. d - j - 1) and the fixed tree of the 16 lanes.
static inline float s8_score_finish(float* s, const float* q, const int8_t* row, std::size_t j, std::size_t d) {
  for (int l = 0; j + l < d; ++l) s[l] += q[j + l] * static_cast<float>(row[j + l]);
  for (int l = 0; l < 8; ++l) s[l] += s[l + 8];
  for (int l = 0; l < 4; ++l) s[l] += s[l + 4];
  return (s[0] + s[2]) + (s[1] + s[3]);
}

static inline bool s8_score_valid(int64_t v, std::size_t n) { return v >= 0 && static_cast<std::size_t>(v) < n; }

// The candidate loop of the kernels that score one candidate at a time (scalar, NEON): out[c] =
// score_row(row of cand[c]) for c < kc, or -inf for an id outside [0, n); the row of the candidate
// kS8ScoreAhead on is fetched first. A template of each ISA file's own lambda: every copy is built with
// that file's flags.
template <class ScoreRow>
static inline void s8_score_each(const int8_t* codes, std::size_t n, std::size_t d, const int64_t* cand, std::size_t kc,
                                 float* out, ScoreRow score_row) {
  for (std::size_t c = 0; c < kc; ++c) {
    s8_score_prefetch(codes, n, d, cand, c, kc);
    out[c] = s8_score_valid(cand[c], n) ? score_row(codes + static_cast<std::size_t>(cand[c]) * d)
                                        : -std::numeric_limits<float>::infinity();
  }
}

namespace scalar {
S8ScoreCandidates s8_score_candidates;
}  // namespace scalar
namespace avx2 {
S8ScoreCandidates s8_score_candidates;
}  // namespace avx2
namespace neon {
S8ScoreCandidates s8_score_candidates;
}  // namespace neon

}  // namespace kernels
}  // namespace medqk

// 1-bit RaBitQ search front end (the codec: python/medqk/quantizers/rabitq.py; its Numba twin:
// python/medqk/kernels/_numba_rabitq.py).
//
// Per query and chunk of vectors the scan kernel (kernels/rabitq_scan.h) writes the exact integers
// ip = sum_j 2^j popcount(code & plane_j); the float32 score is then
//     t = (c1 ip + c2 pop) + c3,    score = (add + a) + mult t
// evaluated in exactly that order (the library is built with -ffp-contract=off: no FMA contraction), which
// is the order of the Numba twin, so both give the same float bits. Every allowed vector is scored and
// offered to a bounded heap: larger score first, ties -> lower id (runtime/topk.h).
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/rabitq_scan.h"
#include "medqk/medqk.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"
#include "runtime/topk.h"

namespace medqk {

namespace {

constexpr std::size_t kB = kernels::kRabitqBlock;
// 512 vectors per scan call: 512 x 48 bytes of codes at d = 384 stay in L1 while a group's queries scan them
constexpr std::size_t kChunkBlocks = 64;
constexpr std::size_t kQueryGroup = 8;  // queries that scan one chunk in turn

// Bytes (ceil(dim / 8), dimension i in bit i % 8 of byte i / 8) -> W words (dimension i in bit i % 64 of word
// i / 64), the bits past dim cleared; assembled by shifts, so the result does not depend on the byte order.
void bytes_to_words(const uint8_t* bytes, std::size_t dim, uint64_t* words) {
  const std::size_t nbytes = (dim + 7) / 8, nwords = rabitq_words(dim);
  for (std::size_t w = 0; w < nwords; ++w) {
    uint64_t v = 0;
    for (std::size_t i = 0; i < 8 && 8 * w + i < nbytes; ++i) v |= static_cast<uint64_t>(bytes[8 * w + i]) << (8 * i);
    const std::size_t valid = std::min<std::size_t>(64, dim - 64 * w);
    words[w] = valid == 64 ? v : v & ((uint64_t(1) << valid) - 1);
  }
}

// One query's planes (bits x ceil(dim / 8) bytes) as bits x W words.
void query_words(const uint8_t* planes, std::size_t bits, std::size_t dim, uint64_t* out) {
  const std::size_t nbytes = (dim + 7) / 8, nwords = rabitq_words(dim);
  for (std::size_t j = 0; j < bits; ++j) bytes_to_words(planes + j * nbytes, dim, out + j * nwords);
}

}  // namespace

std::size_t rabitq_words(std::size_t dim) { return (dim + 63) / 64; }

std::size_t rabitq_packed_words(std::size_t n, std::size_t dim) { return (n + kB - 1) / kB * kB * rabitq_words(dim); }

void rabitq_pack(const uint8_t* codes, std::size_t n, std::size_t dim, uint64_t* packed, int32_t* pop) {
  const std::size_t nwords = rabitq_words(dim), nbytes = (dim + 7) / 8;
  std::memset(packed, 0, rabitq_packed_words(n, dim) * sizeof(uint64_t));
  std::vector<uint64_t> words(nwords);
  for (std::size_t v = 0; v < n; ++v) {
    bytes_to_words(codes + v * nbytes, dim, words.data());
    int32_t count = 0;
    for (std::size_t w = 0; w < nwords; ++w) {
      packed[((v / kB) * nwords + w) * kB + v % kB] = words[w];
      count += __builtin_popcountll(words[w]);
    }
    pop[v] = count;
  }
}

void rabitq_scan_ints(Isa isa, const uint64_t* packed, std::size_t n, std::size_t dim, const uint8_t* planes,
                      std::size_t nq, std::size_t bits, int32_t* ip, int threads) {
  const kernels::RabitqScanFn scan = runtime::kernel<kernels::RabitqScanOp>(isa);
  const std::size_t nwords = rabitq_words(dim), nblocks = (n + kB - 1) / kB, nbytes = (dim + 7) / 8;
  if (threads <= 0) threads = hardware_threads();
  if (nq * n * nwords * bits < (std::size_t(1) << 18)) threads = 1;
  runtime::parallel_for(static_cast<int>(nq), threads, [&](int task) {
    const std::size_t q = static_cast<std::size_t>(task);
    std::vector<uint64_t> qw(bits * nwords);
    std::vector<int32_t> all(nblocks * kB);
    query_words(planes + q * bits * nbytes, bits, dim, qw.data());
    scan(packed, nblocks, nwords, qw.data(), bits, all.data());
    std::copy(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), ip + q * n);
  });
}

void rabitq_search_topk(Isa isa, const uint64_t* packed, const int32_t* pop, const float* mult, const float* add,
                        std::size_t n, std::size_t dim, const RabitqQueries& queries, std::size_t topk, float* scores,
                        int64_t* ids, int threads, const uint8_t* allow) {
  const kernels::RabitqScanFn scan = runtime::kernel<kernels::RabitqScanOp>(isa);
  const std::size_t nq = queries.nq, bits = queries.bits, nbytes = (dim + 7) / 8;
  const std::size_t nwords = rabitq_words(dim), nblocks = (n + kB - 1) / kB;
  const std::size_t chunks = (nblocks + kChunkBlocks - 1) / kChunkBlocks;
  if (threads <= 0) threads = hardware_threads();
  if (nq * n * nwords * bits < (std::size_t(1) << 18)) threads = 1;
  // threads split the queries or, with fewer queries than threads, the vectors too (each part keeps its own
  // top-k, merged at the end), as the other search front ends do
  const std::size_t groups = std::min<std::size_t>(static_cast<std::size_t>(threads), nq);
  const std::size_t parts = std::max<std::size_t>(1, std::min(static_cast<std::size_t>(threads) / groups, chunks));
  std::vector<std::vector<runtime::Hit>> partial(parts > 1 ? nq * parts : 0);
  runtime::parallel_for(static_cast<int>(groups * parts), threads, [&](int task) {
    const std::size_t g = static_cast<std::size_t>(task) / parts, part = static_cast<std::size_t>(task) % parts;
    const std::size_t c0 = chunks * part / parts, c1 = chunks * (part + 1) / parts;
    std::vector<uint64_t> qw(kQueryGroup * bits * nwords);
    std::vector<runtime::TopK> heaps(kQueryGroup);
    std::vector<int32_t> ip(kChunkBlocks * kB);
    std::vector<float> sc(kChunkBlocks * kB);
    for (std::size_t q0 = nq * g / groups, q_end = nq * (g + 1) / groups; q0 < q_end; q0 += kQueryGroup) {
      const std::size_t q1 = std::min(q_end, q0 + kQueryGroup);
      for (std::size_t q = q0; q < q1; ++q) {
        query_words(queries.planes + q * bits * nbytes, bits, dim, qw.data() + (q - q0) * bits * nwords);
        heaps[q - q0].reset(topk);
      }
      for (std::size_t c = c0; c < c1; ++c) {
        const std::size_t b0 = c * kChunkBlocks, nb = std::min(kChunkBlocks, nblocks - b0);
        const std::size_t v0 = b0 * kB, cnt = std::min(nb * kB, n - v0);
        for (std::size_t q = q0; q < q1; ++q) {
          scan(packed + b0 * nwords * kB, nb, nwords, qw.data() + (q - q0) * bits * nwords, bits, ip.data());
          const float a = queries.a[q], k1 = queries.c1[q], k2 = queries.c2[q], k3 = queries.c3[q];
          const int32_t* pp = pop + v0;
          const float *mp = mult + v0, *ap = add + v0;
          for (std::size_t i = 0; i < cnt; ++i) {
            const float t = k1 * static_cast<float>(ip[i]) + k2 * static_cast<float>(pp[i]) + k3;
            sc[i] = ap[i] + a + mp[i] * t;
          }
          runtime::offer(heaps[q - q0], sc.data(), cnt, static_cast<int64_t>(v0), allow);
        }
      }
      // the group's results: written, or kept for the merge of the parts
      for (std::size_t q = q0; q < q1 && parts > 1; ++q) partial[q * parts + part] = std::move(heaps[q - q0].hits());
      for (std::size_t q = q0; q < q1 && parts == 1; ++q) {
        runtime::write_sorted(heaps[q - q0].hits(), topk, scores + q * topk, ids + q * topk);
      }
    }
  });
  if (parts > 1) runtime::merge_parts(partial, nq, parts, topk, scores, ids);
}

}  // namespace medqk

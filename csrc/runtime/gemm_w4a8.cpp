// W4A8 GEMM front end: the kernel row of the dispatch table, the activation group sums the zero points need,
// and the split over threads.
#include "kernels/gemm_w4a8.h"

#include <algorithm>
#include <vector>

#include "medqk/medqk.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"

namespace medqk {

std::size_t pack_w4_bytes(Isa isa, std::size_t n, std::size_t k, std::size_t group_size) {
  return runtime::kernel<kernels::GemmW4A8Op>(isa)->packed_bytes(n, k, group_size);
}

void pack_w4(Isa isa, const uint8_t* codes, std::size_t n, std::size_t k, std::size_t ldc, const int8_t* levels,
             std::size_t group_size, uint8_t* packed) {
  runtime::kernel<kernels::GemmW4A8Op>(isa)->pack(codes, n, k, ldc, levels, group_size, packed);
}

namespace {

// A thread below this many multiply-adds costs more to wake than it saves.
constexpr std::size_t kMinW4MacsPerThread = std::size_t(1) << 20;

// Runs the kernel over the whole result on up to `threads` threads: bands of whole panels when there are at
// least two per thread (each thread streams its own weights once, as a GEMV must), bands of rows otherwise.
void run(const kernels::GemmW4Kernel& kernel, const kernels::W4A8Args& args, int threads) {
  const std::size_t panels = (args.n + kernel.panel_cols - 1) / kernel.panel_cols;
  const std::size_t work = std::max<std::size_t>(1, args.m * args.n * args.k / kMinW4MacsPerThread);
  const int t = static_cast<int>(std::min<std::size_t>(threads > 0 ? threads : hardware_threads(), work));
  if (t <= 1) return kernel.gemm(args, 0, args.m, 0, args.n);
  const bool by_panels = panels >= 2 * static_cast<std::size_t>(t);
  const std::size_t units = by_panels ? panels : args.m;
  const int tasks = static_cast<int>(std::min<std::size_t>(t, units));
  runtime::parallel_for(tasks, t, [&](int i) {
    const std::size_t u0 = units * i / tasks, u1 = units * (i + 1) / tasks;
    if (u0 == u1) return;
    if (by_panels) {
      kernel.gemm(args, 0, args.m, u0 * kernel.panel_cols, std::min(args.n, u1 * kernel.panel_cols));
    } else {
      kernel.gemm(args, u0, u1, 0, args.n);
    }
  });
}

kernels::W4A8Args operands(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                           std::size_t n, std::size_t group_size) {
  kernels::W4A8Args args{};
  args.a = a;
  args.m = m;
  args.k = k;
  args.lda = lda;
  args.packed = packed;
  args.n = n;
  args.group_size = group_size;
  args.groups = (k + group_size - 1) / group_size;
  return args;
}

}  // namespace

void gemm_w4a8_s32(Isa isa, const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t n, std::size_t group_size, int32_t* d, int threads) {
  kernels::W4A8Args args = operands(a, m, k, lda, packed, n, group_size);
  args.d = d;
  run(*runtime::kernel<kernels::GemmW4A8Op>(isa), args, threads);
}

void gemm_w4a8_f32(Isa isa, const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const uint8_t* packed,
                   std::size_t n, std::size_t group_size, const float* row_scale, const float* scales,
                   const int8_t* zeros, const float* bias, float* out, int threads) {
  kernels::W4A8Args args = operands(a, m, k, lda, packed, n, group_size);
  std::vector<int32_t> asum;
  if (zeros != nullptr) {  // m x G sums, a small fraction of the m x n x k products
    asum.assign(m * args.groups, 0);
    for (std::size_t i = 0; i < m; ++i) {
      for (std::size_t p = 0; p < k; ++p) asum[i * args.groups + p / group_size] += a[i * lda + p];
    }
  }
  args.out = out;
  args.row_scale = row_scale;
  args.scales = scales;
  args.zeros = zeros;
  args.asum = zeros != nullptr ? asum.data() : nullptr;
  args.bias = bias;
  run(*runtime::kernel<kernels::GemmW4A8Op>(isa), args, threads);
}

}  // namespace medqk

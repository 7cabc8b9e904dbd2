// INT8 GEMM front end: chooses the kernel row of the dispatch table and splits the work over threads.
#include "kernels/gemm_s8s8_s32.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "medqk/medqk.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"

namespace medqk {

namespace {
// Below this many multiply-adds a second thread costs more than it saves (wake-up ~ 5-20 us).
constexpr std::size_t kMinMacsPerThread = std::size_t(1) << 20;
}  // namespace

std::size_t pack_s8_bytes(Isa isa, std::size_t n, std::size_t k) {
  return runtime::kernel<kernels::GemmS8Op>(isa).packed_bytes(n, k);
}

void pack_s8(Isa isa, const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed) {
  runtime::kernel<kernels::GemmS8Op>(isa).pack(b, n, k, ldb, packed);
}

namespace {

// Splits C (m x n) over threads: whole panels of columns when there are enough (each thread streams
// its own part of B once), rows otherwise. task(m0, m1, n0, n1) computes C[m0:m1, n0:n1].
template <typename Task>
void split(const kernels::GemmS8Kernel& kernel, std::size_t m, std::size_t n, std::size_t k, int threads,
           const Task& task) {
  if (threads <= 0) threads = hardware_threads();
  const std::size_t macs = m * n * k;
  threads = static_cast<int>(std::min<std::size_t>(threads, std::max<std::size_t>(1, macs / kMinMacsPerThread)));
  const std::size_t panels = (n + kernel.panel_cols - 1) / kernel.panel_cols;
  if (threads <= 1) {
    task(0, m, 0, n);
  } else if (panels >= 2 * static_cast<std::size_t>(threads)) {
    const int tasks = threads;
    runtime::parallel_for(tasks, threads, [&](int t) {
      const std::size_t p0 = panels * t / tasks, p1 = panels * (t + 1) / tasks;
      const std::size_t n0 = p0 * kernel.panel_cols, n1 = std::min(n, p1 * kernel.panel_cols);
      if (n0 < n1) task(0, m, n0, n1);
    });
  } else {
    const int tasks = static_cast<int>(std::min<std::size_t>(threads, m));
    runtime::parallel_for(tasks, threads, [&](int t) {
      const std::size_t m0 = m * t / tasks, m1 = m * (t + 1) / tasks;
      if (m0 < m1) task(m0, m1, 0, n);
    });
  }
}

}  // namespace

void gemm_s8s8_s32_packed(Isa isa, const int8_t* a, std::size_t m, std::size_t k, std::size_t lda,
                          const uint8_t* packed, std::size_t n, int32_t* c, std::size_t ldc, int threads) {
  const kernels::GemmS8Kernel& kernel = runtime::kernel<kernels::GemmS8Op>(isa);
  split(kernel, m, n, k, threads, [&](std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1) {
    kernel.gemm(a + m0 * lda, m1 - m0, k, lda, packed, n, n0, n1, c + m0 * ldc, ldc);
  });
}

void gemm_s8s8_f32_packed(Isa isa, const int8_t* a, std::size_t m, std::size_t k, std::size_t lda,
                          const uint8_t* packed, std::size_t n, const float* row_scale, const float* col_scale,
                          const float* bias, float* out, int threads) {
  const kernels::GemmS8Kernel& kernel = runtime::kernel<kernels::GemmS8Op>(isa);
  split(kernel, m, n, k, threads, [&](std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1) {
    if (kernel.gemm_f32 != nullptr) {
      const kernels::F32Epilogue ep{row_scale + m0, col_scale, bias};
      kernel.gemm_f32(a + m0 * lda, m1 - m0, k, lda, packed, n, n0, n1, out + m0 * n, n, ep);
      return;
    }
    // int32 into the float buffer, then converted in place, block by block (same operations as fused)
    int32_t* c = reinterpret_cast<int32_t*>(out);
    kernel.gemm(a + m0 * lda, m1 - m0, k, lda, packed, n, n0, n1, c + m0 * n, n);
    for (std::size_t i = m0; i < m1; ++i) {
      const float rs = row_scale[i];
      float* row = out + i * n;
      for (std::size_t j = n0; j < n1; ++j) {
        int32_t v;
        std::memcpy(&v, row + j, 4);
        const float f = static_cast<float>(v) * (rs * col_scale[j]);
        row[j] = bias != nullptr ? f + bias[j] : f;
      }
    }
  });
}

void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const int8_t* b, std::size_t n,
                   std::size_t ldb, int32_t* c, std::size_t ldc, int threads) {
  const Isa isa = active_isa();
  std::vector<uint8_t> packed(pack_s8_bytes(isa, n, k));
  pack_s8(isa, b, n, k, ldb, packed.data());
  gemm_s8s8_s32_packed(isa, a, m, k, lda, packed.data(), n, c, ldc, threads);
}

}  // namespace medqk

// INT8 GEMM front end: chooses the kernel row of the dispatch table and splits the work over threads.
#include <algorithm>
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
  return runtime::gemm_s8_kernel(isa)->packed_bytes(n, k);
}

void pack_s8(Isa isa, const int8_t* b, std::size_t n, std::size_t k, std::size_t ldb, uint8_t* packed) {
  runtime::gemm_s8_kernel(isa)->pack(b, n, k, ldb, packed);
}

void gemm_s8s8_s32_packed(Isa isa, const int8_t* a, std::size_t m, std::size_t k, std::size_t lda,
                          const uint8_t* packed, std::size_t n, int32_t* c, std::size_t ldc, int threads) {
  const kernels::GemmS8Kernel& kernel = *runtime::gemm_s8_kernel(isa);
  if (threads <= 0) threads = hardware_threads();
  const std::size_t macs = m * n * k;
  threads = static_cast<int>(std::min<std::size_t>(threads, std::max<std::size_t>(1, macs / kMinMacsPerThread)));
  const std::size_t panels = (n + kernel.panel_cols - 1) / kernel.panel_cols;
  if (threads <= 1) {
    kernel.gemm(a, m, k, lda, packed, n, 0, n, c, ldc);
    return;
  }
  if (panels >= 2 * static_cast<std::size_t>(threads)) {
    // Split the columns (whole panels): each thread streams its own part of B once.
    const int tasks = threads;
    runtime::parallel_for(tasks, threads, [&](int t) {
      const std::size_t p0 = panels * t / tasks, p1 = panels * (t + 1) / tasks;
      const std::size_t n0 = p0 * kernel.panel_cols, n1 = std::min(n, p1 * kernel.panel_cols);
      if (n0 < n1) kernel.gemm(a, m, k, lda, packed, n, n0, n1, c, ldc);
    });
  } else {
    // Few columns: split the rows.
    const int tasks = static_cast<int>(std::min<std::size_t>(threads, m));
    runtime::parallel_for(tasks, threads, [&](int t) {
      const std::size_t m0 = m * t / tasks, m1 = m * (t + 1) / tasks;
      if (m0 < m1) kernel.gemm(a + m0 * lda, m1 - m0, k, lda, packed, n, 0, n, c + m0 * ldc, ldc);
    });
  }
}

void gemm_s8s8_s32(const int8_t* a, std::size_t m, std::size_t k, std::size_t lda, const int8_t* b,
                   std::size_t n, std::size_t ldb, int32_t* c, std::size_t ldc, int threads) {
  const Isa isa = active_isa();
  std::vector<uint8_t> packed(pack_s8_bytes(isa, n, k));
  pack_s8(isa, b, n, k, ldb, packed.data());
  gemm_s8s8_s32_packed(isa, a, m, k, lda, packed.data(), n, c, ldc, threads);
}

}  // namespace medqk

// GELU front end: the values in chunks of 64 Ki spread over the thread pool.
#include "kernels/gelu.h"

#include <algorithm>

#include "medqk/medqk.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"

namespace medqk {

void gelu_f32(Isa isa, const float* x, std::size_t n, float* out, int threads) {
  const kernels::GeluFn gelu = runtime::kernel<kernels::GeluOp>(isa);
  constexpr std::size_t kChunk = std::size_t(1) << 16;
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  if (threads <= 0) threads = hardware_threads();
  runtime::parallel_for(static_cast<int>(chunks), chunks > 1 ? threads : 1, [&](int c) {
    const std::size_t i0 = static_cast<std::size_t>(c) * kChunk;
    gelu(x + i0, std::min(kChunk, n - i0), out + i0);
  });
}

}  // namespace medqk

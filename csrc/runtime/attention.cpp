// Fused self-attention front end: one task per (sequence, head), each with its own scratch (the head's keys
// transposed and 4 rows of scores, len * (dh + 4) floats), spread over the thread pool. Rows past a
// sequence's length are set to zero.
#include "kernels/attention.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "medqk/medqk.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"

namespace medqk {

void attention_f32(Isa isa, const float* q, std::size_t ldq, const float* k, std::size_t ldk, const float* v,
                   std::size_t ldv, std::size_t batch, std::size_t length, std::size_t heads, std::size_t dh,
                   const int64_t* lengths, float scale, float* out, std::size_t ldo, int threads) {
  const kernels::AttentionHeadFn head = runtime::kernel<kernels::AttentionOp>(isa);
  std::size_t work = 0;
  for (std::size_t b = 0; b < batch; ++b) work += static_cast<std::size_t>(lengths[b] * lengths[b]) * dh * heads;
  if (threads <= 0) threads = hardware_threads();
  if (work < (std::size_t(1) << 18)) threads = 1;  // a wake-up costs more than the work
  runtime::parallel_for(static_cast<int>(batch * heads), threads, [&](int t) {
    const std::size_t b = static_cast<std::size_t>(t) / heads, h = static_cast<std::size_t>(t) % heads;
    const std::size_t len = static_cast<std::size_t>(lengths[b]), row0 = b * length, col0 = h * dh;
    for (std::size_t i = len; i < length; ++i) std::memset(out + (row0 + i) * ldo + col0, 0, dh * sizeof(float));
    if (len == 0) return;
    std::vector<float> scratch(kernels::attention_scratch_floats(len, dh));
    head(q + row0 * ldq + col0, ldq, k + row0 * ldk + col0, ldk, v + row0 * ldv + col0, ldv, len, dh, scale,
         out + row0 * ldo + col0, ldo, scratch.data());
  });
}

}  // namespace medqk

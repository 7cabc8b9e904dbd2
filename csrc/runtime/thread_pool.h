// A small persistent thread pool: the workers are started on first use and then reused, so a
// 100-microsecond GEMV does not pay for thread creation on every call.
#pragma once

#include <functional>

namespace medqk {
namespace runtime {

// Runs task(t) for every t in [0, tasks) on at most `threads` threads, the caller being one of them,
// and returns when all are done. Calls from several threads at once are safe: a caller that finds the
// pool busy runs its tasks itself. threads <= 1 runs everything on the caller.
void parallel_for(int tasks, int threads, const std::function<void(int)>& task);

}  // namespace runtime
}  // namespace medqk

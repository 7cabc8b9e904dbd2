#include "runtime/thread_pool.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "medqk/medqk.h"

namespace medqk {
namespace runtime {
namespace {

class Pool {
 public:
  explicit Pool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { worker(); });
  }
  // Never destroyed: joining threads from a static destructor at interpreter exit can deadlock.
  int workers() const { return static_cast<int>(threads_.size()); }

  // Returns false if the pool is busy (another caller, or a nested call); the caller then runs serially.
  bool run(int tasks, int helpers, const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      task_ = &task;
      tasks_ = tasks;
      next_.store(0);
      active_helpers_ = helpers;
      running_ = helpers;
      ++generation_;
    }
    cv_work_.notify_all();
    drain();
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, [this] { return running_ == 0; });
    task_ = nullptr;
    return true;
  }

 private:
  void drain() {
    for (int t = next_.fetch_add(1); t < tasks_; t = next_.fetch_add(1)) (*task_)(t);
  }
  void worker() {
    unsigned long long seen = 0;
    int index;
    {
      std::lock_guard<std::mutex> lock(mu_);
      index = next_index_++;
    }
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_work_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (index >= active_helpers_) continue;
      }
      drain();
      std::lock_guard<std::mutex> lock(mu_);
      if (--running_ == 0) cv_done_.notify_all();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex run_mu_, mu_;
  std::condition_variable cv_work_, cv_done_;
  const std::function<void(int)>* task_ = nullptr;
  int tasks_ = 0, active_helpers_ = 0, running_ = 0, next_index_ = 0;
  std::atomic<int> next_{0};
  unsigned long long generation_ = 0;
};

Pool* pool() {
  // Recreated in a forked child, whose copy of the pool has no threads behind it.
  static std::mutex mu;
  static Pool* instance = nullptr;
  static pid_t owner = 0;
  std::lock_guard<std::mutex> lock(mu);
  if (instance == nullptr || owner != getpid()) {
    instance = new Pool(hardware_threads() - 1);
    owner = getpid();
  }
  return instance;
}

}  // namespace

void parallel_for(int tasks, int threads, const std::function<void(int)>& task) {
  if (tasks <= 0) return;
  int helpers = std::min(threads, tasks) - 1;
  if (helpers > 0) {
    Pool* p = pool();
    helpers = std::min(helpers, p->workers());
    if (helpers > 0 && p->run(tasks, helpers, task)) return;
  }
  for (int t = 0; t < tasks; ++t) task(t);
}

}  // namespace runtime
}  // namespace medqk

#include "ha/ticker.h"

#include <chrono>
#include <utility>

#include "ha/redis_client.h"

namespace clusterctl::ha {

void Ticker::Start(std::function<int64_t()> step) {
  std::lock_guard<std::mutex> life(lifecycle_mu_);
  if (thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> l(run_mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this, step = std::move(step)] {
    BlockSigpipe();
    for (;;) {
      const int64_t wait = step();
      std::unique_lock<std::mutex> l(run_mu_);
      if (run_cv_.wait_for(l, std::chrono::milliseconds(wait), [this] { return stopping_; })) {
        return;
      }
    }
  });
}

void Ticker::Stop() {
  std::lock_guard<std::mutex> life(lifecycle_mu_);
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> l(run_mu_);
    stopping_ = true;
  }
  run_cv_.notify_all();
  thread_.join();
}

}  // namespace clusterctl::ha

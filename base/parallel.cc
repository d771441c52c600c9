#include "base/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace clusterctl {

void ParallelFor(size_t n, int parallel, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < n; i = next++) fn(i);
  };
  const size_t workers = std::min<size_t>(n, static_cast<size_t>(std::max(1, parallel)));
  std::vector<std::thread> threads;
  threads.reserve(workers);
  for (size_t t = 1; t < workers; ++t) {
    try {
      threads.emplace_back(worker);
    } catch (...) {
      break;  // Fewer threads (the process is at its limit); the caller works too.
    }
  }
  worker();
  for (std::thread& t : threads) t.join();
}

}  // namespace clusterctl

// Ticker: runs a step on its own thread, again and again, waiting between
// steps as long as the step says, until Stop(). The thread blocks SIGPIPE
// (its steps talk to Redis). Used by LeaderElector and ShardCoordinator.
//
// Thread-safety: Start() and Stop() may be called from any thread; Stop()
// returns once the step in progress, if any, has returned.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace clusterctl::ha {

class Ticker {
 public:
  Ticker() = default;
  ~Ticker() { Stop(); }
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

  // Runs `step` until Stop(); it returns the milliseconds to wait before
  // the next one. Start() on a running ticker does nothing.
  void Start(std::function<int64_t()> step);
  // Idempotent.
  void Stop();

 private:
  std::mutex lifecycle_mu_;  // Serialises Start() and Stop(); guards thread_.
  std::thread thread_;
  std::mutex run_mu_;  // Guards stopping_.
  std::condition_variable run_cv_;
  bool stopping_ = false;
};

}  // namespace clusterctl::ha

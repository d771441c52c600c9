// AsyncProber: probes in the background, so a slow probe delays only itself.
//
// clusterd's probe loop submits the probes that are due and goes on; a fixed
// pool of workers runs them and hands each result to a callback. A probe of
// an instance and role that is still queued or running is not submitted
// again: a 25 s exec probe with a 1 s period runs back to back, never piles
// up, and never holds back another service's probe (with enough workers).
//
//   AsyncProber probes(&prober, 16, [&](const ProbeResult& r) { ... });
//   probes.Submit(desired, {service, machine, ProbeRole::kLiveness});
//
// The desired state a request points into is kept alive (shared_ptr) until
// its probe is done, so a new revision can replace it meanwhile.
//
// Thread-safety: Submit/InFlight from any thread. The callback runs on a
// worker thread, one call at a time per worker (several workers may call it
// at once): it must be thread-safe. Stop() (also the destructor) starts no
// new probe and waits for the running ones (each bounded by its timeout).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "desired-state/model.h"
#include "reconcilers/probes.h"

namespace clusterctl::reconcilers {

class AsyncProber {
 public:
  using Callback = std::function<void(const ProbeResult&)>;

  // `prober` must outlive this object. `workers` < 1 means 1.
  AsyncProber(Prober* prober, int workers, Callback on_result);
  ~AsyncProber();
  AsyncProber(const AsyncProber&) = delete;
  AsyncProber& operator=(const AsyncProber&) = delete;

  // Queues the probe unless the same (service, machine, role) is queued or
  // running, or the prober is stopping. Returns whether it was queued.
  bool Submit(std::shared_ptr<const desired_state::DesiredState> keep, const ProbeRequest& req);

  // Probes queued or running.
  size_t InFlight() const;

  void Stop();

 private:
  struct Job {
    std::shared_ptr<const desired_state::DesiredState> keep;
    ProbeRequest req;
    std::string key;
  };
  static std::string KeyOf(const ProbeRequest& req);
  void Work();

  Prober* const prober_;
  const Callback on_result_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::set<std::string> in_flight_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace clusterctl::reconcilers

#include "reconcilers/async_prober.h"

#include <algorithm>

namespace clusterctl::reconcilers {

AsyncProber::AsyncProber(Prober* prober, int workers, Callback on_result)
    : prober_(prober), on_result_(std::move(on_result)) {
  for (int i = 0; i < std::max(1, workers); ++i) workers_.emplace_back([this] { Work(); });
}

AsyncProber::~AsyncProber() { Stop(); }

std::string AsyncProber::KeyOf(const ProbeRequest& req) {
  return (req.service ? req.service->name : "") + "@" + (req.machine ? req.machine->name : "") +
         "/" + ProbeRoleName(req.role);
}

bool AsyncProber::Submit(std::shared_ptr<const desired_state::DesiredState> keep,
                         const ProbeRequest& req) {
  if (req.service == nullptr || req.machine == nullptr) return false;
  std::string key = KeyOf(req);
  std::lock_guard<std::mutex> l(mu_);
  if (stopping_ || !in_flight_.insert(key).second) return false;
  queue_.push_back(Job{std::move(keep), req, std::move(key)});
  cv_.notify_one();
  return true;
}

size_t AsyncProber::InFlight() const {
  std::lock_guard<std::mutex> l(mu_);
  return in_flight_.size();
}

void AsyncProber::Work() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    l.unlock();
    // RunProbes never throws and fills every field, whatever the prober does.
    ProbeResult r = RunProbes(*prober_, {job.req}, 1).at(0);
    if (on_result_) {
      try {
        on_result_(r);
      } catch (...) {
      }
    }
    job.keep.reset();
    l.lock();
    in_flight_.erase(job.key);
  }
}

void AsyncProber::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

}  // namespace clusterctl::reconcilers

#include "reconcilers/live_view.h"

#include <algorithm>
#include <optional>

namespace clusterctl::reconcilers {
namespace {

using desired_state::Machine;
using desired_state::Service;

// "svc@machine" -> {svc, machine}
std::pair<std::string, std::string> SplitKey(const std::string& key) {
  size_t at = key.rfind('@');
  return {key.substr(0, at), at == std::string::npos ? "" : key.substr(at + 1)};
}

}  // namespace

std::string DescribeState(ObservedState state, const std::string& detail) {
  return std::string(ObservedStateName(state)) + (detail.empty() ? "" : " (" + detail + ")");
}

LiveView::LiveView(const desired_state::DesiredState* desired,
                   const desired_state::DesiredState* previous, Prober* prober, Options options)
    : desired_(desired), previous_(previous), prober_(prober), options_(std::move(options)) {
  if (!options_.wait_for) {
    options_.wait_for = [](std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                           std::chrono::milliseconds timeout) { cv.wait_for(lock, timeout); };
  }
}

void LiveView::Seed(const ClusterObservation& observed) {
  std::lock_guard<std::mutex> g(mu_);
  unreachable_ = observed.unreachable;
  for (const auto& i : observed.instances) {
    SetState(i.Key(), i.state, i.detail, /*new_life=*/true);
  }
  auto take = [&](const std::string& key, bool ok, const std::string* detail) {
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.state != ObservedState::kRunning) return;
    it->second.has_result = true;
    it->second.ready = ok;
    if (detail != nullptr) it->second.probe_detail = *detail;
  };
  for (const auto& [key, ok] : observed.ready) take(key, ok, nullptr);
  // The verdict in `ready` wins over the raw probe result: it may apply
  // readiness.failureThreshold (clusterd), so one failed probe of a ready
  // instance does not make it not ready.
  for (const auto& p : observed.readiness) {
    auto v = observed.ready.find(p.Key());
    take(p.Key(), v != observed.ready.end() ? v->second : p.ok, &p.detail);
  }
  cv_.notify_all();
}

void LiveView::SetState(const std::string& key, ObservedState state, const std::string& detail,
                        bool new_life) {
  Entry& e = entries_[key];
  const bool was_running = e.known && e.state == ObservedState::kRunning && !new_life;
  e.known = state != ObservedState::kUnknown;
  e.state = state;
  e.detail = detail;
  if (state != ObservedState::kRunning || !was_running) {
    // A new life (or none): what was known of readiness is stale.
    e.has_result = e.ready = false;
    e.probe_detail.clear();
    ++e.generation;
    e.running_since_ms = e.next_probe_ms = NowMs();
  }
  cv_.notify_all();
}

void LiveView::RecordStarted(const std::string& key, const std::string& detail) {
  std::lock_guard<std::mutex> g(mu_);
  // A restart is a new life even though it was running before.
  SetState(key, ObservedState::kRunning, detail, /*new_life=*/true);
}

void LiveView::RecordStopped(const std::string& key, const std::string& detail) {
  std::lock_guard<std::mutex> g(mu_);
  SetState(key, ObservedState::kStopped, detail);
}

void LiveView::RecordFailed(const std::string& key, const std::string& detail) {
  std::lock_guard<std::mutex> g(mu_);
  SetState(key, ObservedState::kFailed, detail);
}

void LiveView::Update(const std::string& key, ObservedState state, const std::string& detail) {
  std::lock_guard<std::mutex> g(mu_);
  SetState(key, state, detail);
}

void LiveView::UpdateReadiness(const ProbeResult& result) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = entries_.find(result.Key());
  if (it == entries_.end() || !it->second.known || it->second.state != ObservedState::kRunning) {
    return;  // A result about a life the view does not know is no evidence.
  }
  Entry& e = it->second;
  e.has_result = true;
  e.ready = result.ok;
  e.probe_detail = result.detail;
  ++e.probes;
  cv_.notify_all();
}

bool LiveView::HasProbe(const std::string& key) const {
  const std::string svc = SplitKey(key).first;
  const Service* s = desired_ != nullptr ? desired_->FindService(svc) : nullptr;
  if (s == nullptr && previous_ != nullptr) s = previous_->FindService(svc);
  return s != nullptr && s->readiness.has_value();
}

std::string LiveView::UnknownDetail(const std::string& key) const {
  auto it = entries_.find(key);
  if (it != entries_.end() && !it->second.detail.empty()) return it->second.detail;
  const std::string machine = SplitKey(key).second;
  auto u = unreachable_.find(machine);
  if (u != unreachable_.end()) return "machine " + machine + " unreachable: " + u->second;
  return "not observed";
}

bool LiveView::HoldsLocked(const std::string& key, const Entry* e, bool ready,
                           std::string* detail) const {
  std::string d;
  bool holds = false;
  if (e == nullptr || !e->known) {
    d = UnknownDetail(key);
  } else if (e->state != ObservedState::kRunning) {
    d = DescribeState(e->state, e->detail);
  } else if (!ready || !HasProbe(key)) {
    d = DescribeState(e->state, e->detail);
    holds = true;
  } else if (e->has_result) {
    d = e->probe_detail;
    holds = e->ready;
  } else {
    d = "running, readiness not probed yet";
  }
  if (detail != nullptr) *detail = std::move(d);
  return holds;
}

bool LiveView::Holds(const std::string& key, bool ready, std::string* detail) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = entries_.find(key);
  return HoldsLocked(key, it == entries_.end() ? nullptr : &it->second, ready, detail);
}

int64_t LiveView::ProbeIntervalMs(const Entry& e, int64_t now) const {
  return std::clamp<int64_t>((now - e.running_since_ms) / 4, options_.min_probe_interval.count(),
                             options_.max_probe_interval.count());
}

void LiveView::ProbeLocked(const std::string& key, std::unique_lock<std::mutex>& lock) {
  Entry& e = entries_[key];  // std::map: the reference survives other inserts.
  e.probing = true;
  const uint64_t generation = e.generation;
  auto [svc, machine] = SplitKey(key);
  const Service* s = desired_ != nullptr ? desired_->FindService(svc) : nullptr;
  if (s == nullptr && previous_ != nullptr) s = previous_->FindService(svc);
  const Machine* m = desired_ != nullptr ? desired_->FindMachine(machine) : nullptr;
  if (m == nullptr && previous_ != nullptr) m = previous_->FindMachine(machine);

  lock.unlock();
  ProbeResult r;
  if (prober_ == nullptr) {
    r.detail = "no prober is configured";
  } else if (s == nullptr || m == nullptr) {
    r.detail = key + " is not in the desired state";
  } else {
    r = prober_->Run(*s, *m, ProbeRole::kReadiness);
  }
  lock.lock();

  e.probing = false;
  if (e.generation == generation) {  // Else the instance changed meanwhile: a stale result.
    e.has_result = true;
    e.ready = r.ok;
    e.probe_detail = r.detail;
    ++e.probes;
    const int64_t now = NowMs();
    e.next_probe_ms = now + ProbeIntervalMs(e, now);
  }
  cv_.notify_all();
}

WaitResult LiveView::WaitFor(const std::string& key, bool ready, int64_t deadline_ms,
                             std::string* detail, bool interruptible, int* probes) {
  std::unique_lock<std::mutex> lock(mu_);
  std::optional<uint64_t> probes_before;
  WaitResult result = WaitResult::kTimedOut;
  std::string d;
  while (true) {
    auto it = entries_.find(key);
    Entry* e = it == entries_.end() ? nullptr : &it->second;
    if (e != nullptr && !probes_before) probes_before = e->probes;
    if (HoldsLocked(key, e, ready, &d)) {
      result = WaitResult::kHolds;
      break;
    }
    if (e == nullptr || !e->known) {
      result = WaitResult::kUnknown;
      break;
    }
    if (interruptible && cancelled_) {
      result = WaitResult::kCancelled;
      break;
    }
    const int64_t now = NowMs();
    if (now >= deadline_ms) {
      result = WaitResult::kTimedOut;
      break;
    }
    const bool can_probe =
        ready && e->state == ObservedState::kRunning && HasProbe(key) && !e->probing;
    if (can_probe && now >= e->next_probe_ms) {
      ProbeLocked(key, lock);
      continue;
    }
    const int64_t wake = can_probe ? std::min(deadline_ms, e->next_probe_ms) : deadline_ms;
    options_.wait_for(cv_, lock, std::chrono::milliseconds(std::max<int64_t>(1, wake - now)));
  }
  if (detail != nullptr) *detail = std::move(d);
  if (probes != nullptr) {
    auto it = entries_.find(key);
    const uint64_t after = it == entries_.end() ? 0 : it->second.probes;
    *probes = static_cast<int>(after - probes_before.value_or(after));
  }
  return result;
}

void LiveView::Cancel() {
  std::lock_guard<std::mutex> g(mu_);
  cancelled_ = true;
  cv_.notify_all();
}

}  // namespace clusterctl::reconcilers

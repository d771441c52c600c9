#include "controller/daemon_policy.h"

#include <algorithm>

namespace clusterctl::controller {

DesiredPtr InForceAfterRefusal(const DesiredPtr& in_force, const DesiredPtr& planned,
                               const DesiredPtr& previous) {
  return in_force == planned ? previous : in_force;
}

std::string InstanceOfKey(const std::string& key) { return key.substr(0, key.find('/')); }

void LoopHealth::Start(const std::string& loop, int64_t now_ms, int64_t bound_ms) {
  auto [it, added] = loops_.try_emplace(loop);
  if (added) it->second.last_ms = now_ms;
  it->second.bound_ms = bound_ms;
}

void LoopHealth::SetBound(const std::string& loop, int64_t bound_ms) {
  auto it = loops_.find(loop);
  if (it != loops_.end()) it->second.bound_ms = bound_ms;
}

void LoopHealth::Beat(const std::string& loop, int64_t now_ms) {
  auto it = loops_.find(loop);
  if (it != loops_.end()) it->second.last_ms = std::max(it->second.last_ms, now_ms);
}

int64_t WallStep::Observe(int64_t wall_ms, int64_t steady_ms) {
  const int64_t offset = wall_ms - steady_ms;
  if (!seen_) {
    seen_ = true;
    offset_ = offset;
    return 0;
  }
  const int64_t step = offset - offset_;
  if (step > -kToleranceMs && step < kToleranceMs) return 0;
  offset_ = offset;
  return step;
}

void LoopHealth::Stop(const std::string& loop) { loops_.erase(loop); }

std::string LoopHealth::Stalled(int64_t now_ms) const {
  std::string out;
  for (const auto& [name, l] : loops_) {
    const int64_t idle = now_ms - l.last_ms;
    if (idle <= l.bound_ms) continue;
    if (!out.empty()) out += "; ";
    out += name + " loop stalled for " + std::to_string(idle / 1000) + "s (bound " +
           std::to_string(l.bound_ms / 1000) + "s)";
  }
  return out;
}

int64_t SourceLoopBoundMs(int poll_seconds, int fetch_timeout_seconds) {
  // A pass is a fetch (bounded by its deadline) and a load; then a sleep of
  // at most SourceRetryDelayMs.
  const int64_t sleep_s = std::max(poll_seconds, kMaxSourceRetrySeconds);
  return (sleep_s + fetch_timeout_seconds) * 1000 + 30000;
}

int64_t SourceRetryDelayMs(int failures, int poll_seconds) {
  const int64_t poll_ms = static_cast<int64_t>(poll_seconds) * 1000;
  if (failures <= 0) return poll_ms;
  const int64_t cap_ms = std::max<int64_t>(poll_ms, kMaxSourceRetrySeconds * 1000LL);
  return std::min<int64_t>(cap_ms, int64_t{1000} << std::min(failures - 1, 20));
}

int64_t ReconcileLoopBoundMs(const desired_state::DesiredState* desired,
                             int command_timeout_seconds) {
  // The loop beats at the end of a pass and at every step's start and end:
  // between two beats lie at most an observation (one command per machine,
  // in parallel), one step (a command, then its readiness wait or its stop
  // timeout) and an interval of sleep.
  int64_t interval_s = 30, step_s = command_timeout_seconds;
  if (desired != nullptr) {
    interval_s = desired->cluster.reconcile.interval_seconds;
    for (const auto& s : desired->services) {
      if (s.readiness) step_s = std::max<int64_t>(step_s, s.readiness->start_timeout_seconds);
      step_s = std::max<int64_t>(step_s, s.stop_timeout_seconds);
    }
  }
  return (interval_s + 2LL * command_timeout_seconds + step_s) * 1000 + 30000;
}

}  // namespace clusterctl::controller

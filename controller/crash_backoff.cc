#include "controller/crash_backoff.h"

#include <algorithm>

#include "controller/daemon_policy.h"

namespace clusterctl::controller {

std::optional<CrashLoopBackoff::Counted> CrashLoopBackoff::OnStart(const reconcilers::Step& step,
                                                                   reconcilers::StepResult result,
                                                                   int backoff_seconds,
                                                                   int max_backoff_seconds,
                                                                   int64_t now_ms) {
  const std::string key = step.Key();
  std::optional<Counted> counted;
  const bool crashed_again =
      result == reconcilers::StepResult::kOk && step.cause == reconcilers::Cause::kFailed;
  if (result == reconcilers::StepResult::kFailed || crashed_again) {
    reconcilers::Backoff& b = backoff_[key];
    ++b.failures;
    int64_t delay = static_cast<int64_t>(backoff_seconds) * 1000 << std::min(b.failures - 1, 20);
    delay = std::min<int64_t>(delay, static_cast<int64_t>(max_backoff_seconds) * 1000);
    b.not_before_ms = now_ms + delay;
    counted = Counted{b.failures, delay, b.failures >= kAlertAfterFailures};
  }
  if (result == reconcilers::StepResult::kOk) healthy_since_ms_[key] = now_ms;
  return counted;
}

void CrashLoopBackoff::OnStop(const std::string& key) {
  backoff_.erase(key);
  healthy_since_ms_.erase(key);
}

std::vector<std::string> CrashLoopBackoff::ResetHealthy(int64_t now_ms,
                                                        const std::set<std::string>& running) {
  std::vector<std::string> reset;
  for (auto it = healthy_since_ms_.begin(); it != healthy_since_ms_.end();) {
    if (now_ms - it->second >= kHealthyResetMs && running.count(it->first)) {
      backoff_.erase(it->first);
      reset.push_back(it->first);
      it = healthy_since_ms_.erase(it);
    } else {
      ++it;
    }
  }
  return reset;
}

int64_t CrashLoopBackoff::NextRetryInMs(int64_t now_ms, const std::set<std::string>& running,
                                        int64_t cap_ms) const {
  int64_t ms = cap_ms;
  for (const auto& [key, b] : backoff_) {
    if (b.not_before_ms > now_ms && !running.count(key))
      ms = std::min(ms, b.not_before_ms - now_ms);
  }
  return ms;
}

void CrashLoopBackoff::Shift(int64_t ms) {
  for (auto& [_, b] : backoff_) b.not_before_ms += ms;
  for (auto& [_, since] : healthy_since_ms_) since += ms;
}

void CrashLoopBackoff::EraseGone(const std::set<std::string>& live) {
  EraseGoneInstances(&backoff_, live);
  EraseGoneInstances(&healthy_since_ms_, live);
}

std::string CrashLoopBackoff::AlertMessage(const std::string& key, const Counted& c) {
  return key + " keeps failing (" + std::to_string(c.failures) + " times); next retry in " +
         std::to_string(c.delay_ms / 1000) + "s";
}

}  // namespace clusterctl::controller

// CrashLoopBackoff: the daemon's crash-loop rule, as a pure value.
//
//   - A start or restart step of an instance counts against it when it fails,
//     or when it succeeds but repairs an instance that had crashed (its plan
//     cause is Cause::kFailed: it will likely crash again).
//   - After n counted failures the instance gets no new start before
//     now + backoffSeconds * 2^(n-1), capped at maxBackoffSeconds.
//   - From kAlertAfterFailures counted failures on, the caller raises the
//     crash-loop alert "crashloop/<svc@machine>" with AlertMessage().
//   - A successful start begins a healthy period; an instance that has run
//     for kHealthyResetMs since then has its count forgotten (and the caller
//     clears its alert). A crash within the period counts on.
//   - A stop forgets the instance, as does leaving the desired state
//     (EraseGone).
//
// Pure: time is an argument, nothing is read or written elsewhere. Not
// thread-safe: the daemon guards it with its mutex.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "reconcilers/executor.h"
#include "reconcilers/plan.h"

namespace clusterctl::controller {

class CrashLoopBackoff {
 public:
  static constexpr int64_t kHealthyResetMs = 10 * 60 * 1000;
  static constexpr int kAlertAfterFailures = 3;

  // A counted failure: the count so far and the delay it set.
  struct Counted {
    int failures = 0;
    int64_t delay_ms = 0;
    bool alert = false;  // failures >= kAlertAfterFailures.
  };

  // The outcome of `step` (a start or restart) at `now_ms`, with the
  // service's restart.backoffSeconds and maxBackoffSeconds. Returns the
  // count when the step counted as a failure.
  std::optional<Counted> OnStart(const reconcilers::Step& step, reconcilers::StepResult result,
                                 int backoff_seconds, int max_backoff_seconds, int64_t now_ms);
  // A stop step ran: the instance starts afresh.
  void OnStop(const std::string& key);
  // Forgets the instances whose healthy period reached kHealthyResetMs and
  // that run now (`running`); returns their keys, sorted.
  std::vector<std::string> ResetHealthy(int64_t now_ms, const std::set<std::string>& running);
  // How long until the first instance that is down (not in `running`) may be
  // retried, at most `cap_ms`; `cap_ms` when none waits.
  int64_t NextRetryInMs(int64_t now_ms, const std::set<std::string>& running, int64_t cap_ms) const;
  // The wall clock stepped by `ms` (WallStep): every deadline and healthy
  // period moves with it.
  void Shift(int64_t ms);
  // Erases instances not in `live` (see EraseGoneInstances).
  void EraseGone(const std::set<std::string>& live);

  static std::string AlertId(const std::string& key) { return "crashloop/" + key; }
  static std::string AlertMessage(const std::string& key, const Counted& c);

  // The state, for the plan input and for persistence across restarts.
  const std::map<std::string, reconcilers::Backoff>& entries() const { return backoff_; }
  const std::map<std::string, int64_t>& healthy_since_ms() const { return healthy_since_ms_; }
  void Restore(std::map<std::string, reconcilers::Backoff> backoff,
               std::map<std::string, int64_t> healthy_since_ms) {
    backoff_ = std::move(backoff);
    healthy_since_ms_ = std::move(healthy_since_ms);
  }

 private:
  std::map<std::string, reconcilers::Backoff> backoff_;
  std::map<std::string, int64_t> healthy_since_ms_;
};

}  // namespace clusterctl::controller

// Readiness with a failure threshold: readiness.failureThreshold
// ("Consecutive failures before the instance is not ready", default 3).
//
// One probe that fails does not make a ready instance not ready: it takes
// `threshold` failures in a row. A passing probe makes the instance ready at
// once and ends the streak. An instance that has never passed (just started,
// or never seen) is not ready, whatever its failures:
//
//   threshold 3:  pass fail fail pass fail fail fail
//   ready:        yes  yes  yes  yes  yes  yes  NO
//
// ReadinessStreaks keeps one streak per instance key ("svc@machine") and is
// pure bookkeeping: no clock, no I/O. Probe results that say nothing of the
// service (inconclusive: not run) are not given to it.
//
// Thread-safety: none; the owner locks.
#pragma once

#include <map>
#include <string>

namespace clusterctl::reconcilers {

class FailureStreak {
 public:
  // `threshold` < 1 counts as 1.
  explicit FailureStreak(int threshold = 3) : threshold_(threshold < 1 ? 1 : threshold) {}

  // Takes one probe result. Returns whether the verdict (ready()) changed.
  bool Add(bool ok);
  // The threshold may change with a new revision; the streak is kept.
  void SetThreshold(int threshold) { threshold_ = threshold < 1 ? 1 : threshold; }

  bool ready() const { return ready_; }
  // Consecutive failures since the last pass.
  int failures() const { return failures_; }
  int threshold() const { return threshold_; }

 private:
  int threshold_;
  bool ready_ = false;
  int failures_ = 0;
};

class ReadinessStreaks {
 public:
  // Takes a result for `key` under `threshold`; returns the verdict and sets
  // `*changed` (may be null) when it changed (a new key counts as not ready
  // before).
  bool Add(const std::string& key, bool ok, int threshold, bool* changed = nullptr);
  // The verdict for `key`: false when it has no streak.
  bool Ready(const std::string& key) const;
  // Consecutive failures of `key` (0 when unknown).
  int Failures(const std::string& key) const;
  // Forgets `key`: a new life (restarted, stopped) starts not ready.
  void Reset(const std::string& key) { streaks_.erase(key); }
  // Makes `key` ready with no failures (a start whose readiness wait passed).
  void MarkReady(const std::string& key, int threshold);

  // For pruning instances that left (EraseGoneInstances).
  std::map<std::string, FailureStreak>& map() { return streaks_; }
  size_t size() const { return streaks_.size(); }

 private:
  std::map<std::string, FailureStreak> streaks_;
};

}  // namespace clusterctl::reconcilers

// Pure rules of the daemon's loops, kept apart from its threads and I/O so
// they can be tested in microseconds. (Issue 11 moves the rest of the
// daemon's policy here: crash-loop backoff, alerts, probe scheduling.)
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "desired-state/model.h"

namespace clusterctl::controller {

using DesiredPtr = std::shared_ptr<const desired_state::DesiredState>;

inline const std::string& KeyOfEntry(const std::string& key) { return key; }
template <typename V>
const std::string& KeyOfEntry(const std::pair<const std::string, V>& entry) {
  return entry.first;
}

// What is in force after the plan for `planned` was refused (a mass stop):
// the revision before it, but only if `planned` is still the one in force;
// a newer revision that arrived while the pass planned stays in force (it
// is planned next).
DesiredPtr InForceAfterRefusal(const DesiredPtr& in_force, const DesiredPtr& planned,
                               const DesiredPtr& previous);

// The instance a per-instance bookkeeping key belongs to: "svc@m" for
// "svc@m" and for "svc@m/readiness".
std::string InstanceOfKey(const std::string& key);

// Erases the entries of per-instance bookkeeping (ready, probe schedules,
// failure counts, backoff) whose instance is not in `live`, so the daemon's
// memory follows the instances that exist, not every one that ever did.
// Returns how many entries went.
template <typename Container>
size_t EraseGoneInstances(Container* c, const std::set<std::string>& live) {
  size_t n = 0;
  for (auto it = c->begin(); it != c->end();) {
    const std::string& key = KeyOfEntry(*it);
    if (live.count(InstanceOfKey(key))) {
      ++it;
    } else {
      it = c->erase(it);
      ++n;
    }
  }
  return n;
}

// The liveness of the daemon's loops, for /healthz. Each loop is started
// with a bound, the longest it may go without completing a pass (or, for the
// reconcile loop, a step); Beat() marks progress. Times are on the steady
// clock (a wall clock stepped back an hour would hide a stall that long, one
// stepped forward would report one). Not thread-safe: the daemon guards it
// with its own mutex.
class LoopHealth {
 public:
  // Registers (or re-bounds) `loop`; its clock starts at `now_ms` if new.
  void Start(const std::string& loop, int64_t now_ms, int64_t bound_ms);
  void SetBound(const std::string& loop, int64_t bound_ms);
  void Beat(const std::string& loop, int64_t now_ms);
  // Stops judging `loop` (it returned on shutdown).
  void Stop(const std::string& loop);
  // Empty when every loop made progress within its bound; otherwise one line
  // per stalled loop: "reconcile loop stalled for 40s (bound 35s)".
  std::string Stalled(int64_t now_ms) const;

 private:
  struct Loop {
    int64_t last_ms = 0;
    int64_t bound_ms = 0;
  };
  std::map<std::string, Loop> loops_;
};

// Steps of the wall clock (an NTP step, a VM restored from a snapshot): how
// far it jumped since the last step seen, judged against the steady clock.
// The daemon moves the deadlines it keeps on the wall clock (the crash-loop
// backoff, which outlives the process) by the step, so that they still
// measure the durations they were set for. Not thread-safe.
class WallStep {
 public:
  // Differences below this are the gap between the two readings, or slewing.
  static constexpr int64_t kToleranceMs = 1000;
  // The step since the last one seen: 0 on the first call and within the
  // tolerance (a slow drift adds up until it passes it).
  int64_t Observe(int64_t wall_ms, int64_t steady_ms);

 private:
  bool seen_ = false;
  int64_t offset_ = 0;  // wall - steady at the last step seen.
};

// Bounds of the loops (milliseconds), from the configuration and the
// desired state in force: a poll interval plus a fetch deadline for the
// source loop; a reconcile interval plus the longest single step (readiness
// wait included) for the reconcile loop, which beats on every step.
int64_t SourceLoopBoundMs(int poll_seconds, int fetch_timeout_seconds);

// The source loop's wait before its next fetch: the poll interval while
// fetches succeed; after `failures` failed ones in a row, 1 s doubling per
// failure up to the larger of the poll interval and kMaxSourceRetrySeconds.
constexpr int kMaxSourceRetrySeconds = 60;
int64_t SourceRetryDelayMs(int failures, int poll_seconds);

// How long the reconcile loop waits at start-up for the first fetch, so it
// does not act on a cached revision the branch head replaces; a remote that
// does not answer sooner does not hold it longer.
constexpr int64_t kFirstFetchGraceMs = 10000;
int64_t ReconcileLoopBoundMs(const desired_state::DesiredState* desired,
                             int command_timeout_seconds);
constexpr int64_t kProbeLoopBoundMs = 30000;  // It ticks every 500 ms and never blocks.

}  // namespace clusterctl::controller

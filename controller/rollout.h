// Canary rollouts: a spec change of a Service with `rollout.canary` goes to
// its instances in waves, and is rolled back when too many of them fail.
//
//   wave 1 (the canary)  rollout.canary: machines, count or percent
//   wave 2..n            rollout.waves (counts or percentages, cumulative),
//                        then every instance (a last 100% is implied)
//
// A wave is done when each of its instances runs the new spec, is ready,
// and stays so for canary.analysisSeconds; only then may the next wave's
// instances change. Instances a wave does not allow yet are held
// (reconcilers::PlanInput::hold, like leases and sync windows), so the plan
// itself stays the ordinary rolling restart (rollout.maxUnavailable at a
// time, each waiting for readiness).
//
// Failures count per instance, once each: a restart to the new spec that
// failed (not ready within startTimeoutSeconds), an updated instance that
// crashed or is in a crash loop, a liveness failure, and one whose
// readiness failed during the analysis. More than rollout.maxFailedInstances
// (default 0) fails the rollout: the daemon then rolls the revision back
// (an auto-rollback commit, the revision quarantined; controller/daemon.cc).
//
// Rollback revisions (a rollback commit, or the last good revision put back)
// are not rolled out in waves: the changed instances go back at once.
//
// RolloutBook is pure (time is an argument) and persisted with the daemon's
// memory (daemon_memory.h), so a restarted clusterd continues a rollout at
// its wave. Not thread-safe: the daemon guards it with its mutex.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "desired-state/model.h"
#include "reconcilers/plan.h"

namespace clusterctl::controller {

enum class RolloutPhase { kProgressing, kPaused, kSucceeded, kFailed };
const char* RolloutPhaseName(RolloutPhase p);  // "progressing" "paused" "succeeded" "failed"

// The cumulative size of each wave for a service on `n` instances: the
// canary first, then rollout.waves, ending at n; strictly increasing, each
// at least 1 (percentages round up).
std::vector<int> WaveSizes(const desired_state::Service& s, int n);

// The order in which instances (machines) take the change: the canary's
// machines as listed, then the rest by name.
std::vector<std::string> RolloutOrder(const desired_state::Service& s,
                                      const std::vector<std::string>& machines);

struct Rollout {
  std::string service;
  std::string revision;            // Full SHA of the commit rolled out.
  std::string from_revision;       // The last good revision (full SHA; may be empty).
  std::vector<std::string> order;  // Machines, in the order they change.
  std::vector<int> waves;          // Cumulative sizes (WaveSizes).
  int wave = 0;                    // Index into `waves`.
  int analysis_seconds = 60;
  int max_failed = 0;
  RolloutPhase phase = RolloutPhase::kProgressing;
  int64_t started_ms = 0;
  int64_t analysis_start_ms = 0;              // 0: the wave is not all ready yet.
  int64_t ended_ms = 0;                       // Succeeded or failed.
  std::map<std::string, std::string> failed;  // Machine -> why it counts.
  std::string why;                            // Why it failed, or who paused it.
  std::string rollback_commit;                // Failed: the auto-rollback commit once written.
  bool rollback_done = false;                 // Failed: the rollback was written (or tried).
  int ready = 0;                              // Instances of the current wave updated and ready.

  int Allowed() const { return waves.empty() ? 0 : waves[static_cast<size_t>(wave)]; }
  // "rollout of web to 3f2c1e9: wave 2 of 3, 2/3 ready, analysis 40 s left"
  std::string Describe(int64_t now_ms) const;
  // The JSON of GET /api/v1/rollouts and of the service's `rollout` in status.
  nlohmann::json ToJson(int64_t now_ms) const;
};

// Something the book decided, for the audit log and the alerts.
struct RolloutEvent {
  std::string service;
  // rollout_started | rollout_analysis (a wave is ready: its analysis
  // starts) | rollout_wave | rollout_succeeded | rollout_failed
  std::string action;
  std::string detail;
};

class RolloutBook {
 public:
  // One pass: starts a rollout for each canary service whose instances'
  // spec changed in `desired` (a new revision), and moves the rollouts of
  // `desired`'s revision on by `diffs` (Diff of the plan input): counts the
  // failures, fails a rollout past its budget, ends an analysis that lasted
  // analysisSeconds by opening the next wave. `from_revision`: the last
  // good revision (recorded in a new rollout). `exempt`: a rollback
  // revision, which starts no rollout. The rollouts of services no longer
  // in `desired` are dropped (a failed one once its rollback is written).
  std::vector<RolloutEvent> Update(const desired_state::DesiredState& desired,
                                   const std::vector<reconcilers::InstanceDiff>& diffs,
                                   const std::string& from_revision, bool exempt, int64_t now_ms);

  // Counts a failure of an instance of a rollout in progress of `revision`
  // (a restart that failed, a liveness failure, a crash loop). Ignored for
  // other revisions and instances not yet in a wave.
  void RecordFailure(const std::string& revision, const std::string& service,
                     const std::string& machine, const std::string& why);

  // Adds holds for the instances of `desired`'s rollouts that may not
  // change yet (and, for a failed rollout, every instance with a step until
  // the rollback is in force); keeps the holds already there.
  void AddHolds(const desired_state::DesiredState& desired,
                const std::vector<reconcilers::InstanceDiff>& diffs,
                std::map<std::string, std::string>* hold) const;

  // clusterctl rollout pause|resume|abort: kNotFound without a rollout of
  // `service` in progress (or paused), kInvalid for a pause of a paused one
  // and the like. Abort fails the rollout ("aborted by ..."), which rolls
  // it back like a spent budget.
  Result<Rollout> Pause(const std::string& service, const std::string& actor);
  Result<Rollout> Resume(const std::string& service, const std::string& actor);
  Result<Rollout> Abort(const std::string& service, const std::string& actor, int64_t now_ms);

  // The failed rollout whose rollback is still to be written, or null.
  const Rollout* PendingRollback() const;
  // Notes the rollback of `service`'s failed rollout as done, with its commit
  // (empty when none could be written).
  void RollbackDone(const std::string& service, const std::string& commit);
  // Whether `commit` is a rollback this book wrote, or the last good
  // revision of a failed rollout (put back when no commit could be written).
  bool IsAutoRollback(const std::string& commit) const;
  // The earliest time an analysis in progress ends (0: none), so the
  // reconcile loop wakes then.
  int64_t NextDeadlineMs() const;

  const std::map<std::string, Rollout>& rollouts() const { return rollouts_; }
  nlohmann::json ToJson() const;
  // Malformed: empty (and *ok false).
  void Restore(const nlohmann::json& j, bool* ok = nullptr);

 private:
  Rollout* Active(const std::string& service);
  std::map<std::string, Rollout> rollouts_;  // By service: the latest rollout of each.
};

}  // namespace clusterctl::controller

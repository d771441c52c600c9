// Diff and plan: from desired and observed state to ordered steps.
//
// Pure: value types in, value types out; no I/O, no clock (time is an input).
// The reconcile pipeline is
//
//   Pair(desired, previous, observed)  ->  Diff (per instance: what differs, why)
//                                      ->  Plan (a DAG of steps)
//
// Rules (SPEC.md section 2; reconcilers/README.md explains them at length):
//   - An instance on a machine that could not be observed is "unknown": it
//     never gets a step, and whatever depends on it is blocked.
//   - Stops come first, in reverse dependency order (dependents stop before
//     what they depend on). Then starts and restarts, in dependency order.
//   - A start of S waits for every step on S's dependencies; at run time it
//     also requires each desired instance of a dependency to be ready
//     (condition: ready) or running (condition: started).
//   - A spec change is a rolling restart: rollout.maxUnavailable instances at
//     a time, each batch waiting for the previous one to be ready.
//   - An instance in crash-loop backoff gets no step until its retry time.
//   - A plan that would stop more than half of the running instances is
//     refused unless the Cluster allows it (allowMassStop) or is stopped.
//
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "desired-state/model.h"
#include "reconcilers/observed.h"

namespace clusterctl::reconcilers {

enum class Action { kNone, kStart, kStop, kRestart };
const char* ActionName(Action a);  // "none", "start", "stop", "restart"

// Per-instance retry state kept by the executor across reconciles.
struct Backoff {
  int failures = 0;
  int64_t not_before_ms = 0;  // No new step before this time.
};

// Everything the planner looks at. Pointers must outlive the call.
struct PlanInput {
  const desired_state::DesiredState* desired = nullptr;
  // The last applied revision, to stop instances whose service or machine
  // was removed from git (pruning). May be null.
  const desired_state::DesiredState* previous = nullptr;
  // Latest observation of every reachable machine's instances.
  std::vector<ObservedInstance> observed;
  // Machines that could not be observed, with the reason.
  std::map<std::string, std::string> unreachable;
  // Readiness by instance key ("svc@machine"): true = ready. An instance
  // without an entry is ready when it runs and its service has no readiness
  // probe, not ready otherwise.
  std::map<std::string, bool> ready;
  // Crash-loop backoff by instance key.
  std::map<std::string, Backoff> backoff;
  int64_t now_ms = 0;
  // Restrict steps to these (empty: all). Dependencies still gate them.
  std::string only_service, only_machine;
  // Instances to restart although their spec did not change (clusterctl
  // restart; liveness failures).
  std::set<std::string> force_restart;
  // Instances to leave alone whatever their drift, with why ("drift lease
  // by alice@laptop until 10:30Z: fixing the disk"): they get no step and
  // are listed in Plan::blocked; dependents that need them wait.
  std::map<std::string, std::string> hold;
};

// Why an instance needs a step, or why it needs none: the typed form of
// InstanceDiff::reason, for policy (crash-loop backoff counts kFailed starts)
// that must not depend on the wording of a message.
enum class Cause {
  kNotObserved,       // Its machine was not observed (unreachable, or no answer).
  kFailed,            // Should run; observed failed (it crashed).
  kStopped,           // Should run; observed stopped.
  kSpecChanged,       // Runs with another spec hash.
  kRestartRequested,  // clusterctl restart, a liveness failure.
  kInSync,            // Runs as desired (ready or not).
  kPruned,            // Runs; removed from the desired state.
  kShouldStop,        // Runs; the cluster, the service or the profile says stopped.
  kInSyncStopped,     // Stopped as desired.
};
const char* CauseName(Cause c);  // "not-observed", "failed", "stopped", ...

// One instance, desired against observed.
struct InstanceDiff {
  std::string service, machine;
  desired_state::RunState desired = desired_state::RunState::kStopped;
  bool pruned = false;  // Not in the desired state any more.
  ObservedState observed = ObservedState::kUnknown;
  bool ready = false;
  std::string desired_hash, observed_hash;
  Action action = Action::kNone;
  Cause cause = Cause::kNotObserved;
  std::string reason;  // Why the action, or why none ("in sync", "backoff until ...").
  const desired_state::Service* service_def = nullptr;  // From desired, or previous if pruned.

  std::string Key() const { return service + "@" + machine; }
};

// A run-time condition of a step: `key` must be ready (or running).
struct Requirement {
  std::string key;    // Instance key of a dependency.
  bool ready = true;  // false: running is enough (condition: started).
};

struct Step {
  int id = 0;
  Action action = Action::kNone;
  std::string service, machine;
  std::string spec_hash;              // For start/restart.
  Cause cause = Cause::kNotObserved;  // Of the instance's diff.
  std::string reason;
  std::vector<int> after;  // Steps that must have succeeded first.
  // Steps that must have ended first, whatever their result: starts come
  // after every stop, but a failed stop blocks only its own dependents.
  std::vector<int> after_any;
  std::vector<Requirement> requires_;  // Checked when the step becomes runnable.
  int level = 0;                       // Longest chain of `after` before it.
  bool wait_ready = false;             // Start/restart: wait for readiness.
  int start_timeout_seconds = 60;
  int stop_timeout_seconds = 15;

  std::string Key() const { return service + "@" + machine; }
};

struct Plan {
  std::vector<InstanceDiff> diffs;  // Every instance, sorted by key.
  std::vector<Step> steps;          // Topologically ordered; ids are indexes.
  // Instances that need a step but cannot get one now, with why
  // ("machine m1 unreachable: ...", "backoff until ...").
  std::map<std::string, std::string> blocked;
  // Set when the plan is refused as a whole (mass stop).
  std::string refused;
  int max_parallel = 8;

  bool InSync() const { return steps.empty() && blocked.empty() && refused.empty(); }
  size_t Count(Action a) const;
};

// Pairs and diffs every instance.
std::vector<InstanceDiff> Diff(const PlanInput& input);

// Diff, then order the steps.
Plan MakePlan(const PlanInput& input);

// Human-readable plan: one line per step, grouped by level, with why.
std::string FormatPlan(const Plan& plan);

}  // namespace clusterctl::reconcilers

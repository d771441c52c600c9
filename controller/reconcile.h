// One reconcile pass over real machines, shared by `clusterctl apply/diff/
// status` and clusterd's reconcile loop:
//
//   observe every machine (+ readiness probes)  -> record in the state store
//   diff + plan (pure, reconcilers/plan.h)      -> execute (RealExecutor or
//   DryRunExecutor) with every step audited: an intent record (synced) before
//   it runs, a result record after.
//
// A pass observes the cluster once, up front. While executing, requirements
// and readiness are answered by a LiveView seeded from that observation and
// fed by the step results (reconcilers/live_view.h).
//
// Thread-safety: RunPass may run on any thread, one pass at a time per
// ReconcileDeps; Cancel() from any thread stops the pass between steps.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "audit/audit_log.h"
#include "desired-state/model.h"
#include "reconcilers/executor.h"
#include "reconcilers/live_view.h"
#include "reconcilers/observer.h"
#include "reconcilers/plan.h"
#include "store/revisions.h"
#include "store/state_store.h"

namespace clusterctl::controller {

// The right of a clusterd replica to act (leader election, ha/): asked
// just before each step is sent. Without one (a single controller,
// clusterctl) every step may be sent.
class ActGate {
 public:
  virtual ~ActGate() = default;
  // True when this replica may act now; *token: its fencing token then.
  virtual bool MayAct(uint64_t* token) const = 0;
  // True when this replica may act on `machine` now; *token: the fencing
  // token of that right. Default: MayAct() (one lease for every machine);
  // clusterd shards hold one lease per machine.
  virtual bool MayActOn(const std::string& machine, uint64_t* token) const {
    (void)machine;
    return MayAct(token);
  }
  // Why a step on `machine` was not sent, for its `fenced` record.
  virtual std::string FencedWhy(const std::string& machine) const {
    (void)machine;
    return "fenced: replica " + replica() +
           " no longer holds the leader lease; the step was not sent";
  }
  // This replica's id, written to the audit records of its actions.
  virtual std::string replica() const = 0;
  // Hands a record this replica wrote to the others (the leader's journal,
  // controller/journal.h). A step whose intent cannot be journaled is not
  // sent.
  virtual Status Journal(const audit::AuditRecord& record) = 0;
};

// Appends an event or other record this process writes outside a step:
// with a gate that says this replica leads, the record carries `leader` and
// `fencing_token` and is journaled to the other replicas (best effort).
Result<audit::AuditRecord> AppendRecord(audit::AuditLog* log, ActGate* gate,
                                        audit::AuditRecord record);

struct ReconcileDeps {
  store::StateStore* state = nullptr;  // May be null: observations are not recorded.
  audit::AuditLog* audit = nullptr;    // Required for anything but dry runs.
  reconcilers::ServiceDriver* driver = nullptr;
  reconcilers::Prober* prober = nullptr;
  const Clock* clock = nullptr;  // Observation stamps, the plan's now. Default: RealClock().
  std::string actor;             // "clusterd@host" or "user@host".
  ActGate* gate = nullptr;       // Null: every step may be sent.
};

struct PassOptions {
  audit::Trigger trigger = audit::Trigger::kRevision;  // Audit trigger of the steps.
  const Clock* clock = nullptr;  // The plan's now (WallMs). Default: RealClock().
  std::string actor;             // Audit actor. Default: ReconcileDeps::actor.
  // Per instance key, overrides of the trigger and actor (a manual restart
  // inside a drift pass is audited as manual, by the user who asked).
  std::map<std::string, audit::Trigger> step_trigger;
  std::map<std::string, std::string> step_actor;
  bool dry_run = false;
  std::string only_service, only_machine;
  std::set<std::string> force_restart;
  std::map<std::string, reconcilers::Backoff> backoff;
  // Instances left alone, with why (drift leases: controller/leases.h).
  std::map<std::string, std::string> hold;
  // clusterctl apply --override-window: act where only windows with
  // manualOverride block (controller/windows.h).
  bool override_windows = false;
  reconcilers::StepListener* progress = nullptr;  // Sees every step too.
  int observe_parallel = 32;
};

struct PassResult {
  reconcilers::ClusterObservation observation;
  reconcilers::Plan plan;
  reconcilers::ExecutionReport report;
  bool executed = false;  // False when the plan was refused or empty.
};

// Observes the cluster (only `only_machines` when given) and records the
// observation (when deps.state is set).
reconcilers::ClusterObservation ObserveAndRecord(
    const ReconcileDeps& deps, const desired_state::DesiredState& desired,
    const desired_state::DesiredState* previous, int parallel = 32,
    const std::set<std::string>* only_machines = nullptr);

// Holds every instance of a service in reconcile mode observe (detect-only:
// its drift is shown and alerted, never corrected), keeping earlier holds.
void AddObserveModeHolds(const desired_state::DesiredState& desired,
                         std::map<std::string, std::string>* hold);

// Builds the plan input from an observation (with AddObserveModeHolds).
reconcilers::PlanInput MakePlanInput(const desired_state::DesiredState& desired,
                                     const desired_state::DesiredState* previous,
                                     const reconcilers::ClusterObservation& observation,
                                     const PassOptions& options);

class Reconciler {
 public:
  explicit Reconciler(ReconcileDeps deps) : deps_(std::move(deps)) {}

  // Observe, plan and execute once.
  PassResult RunPass(const desired_state::DesiredState& desired,
                     const desired_state::DesiredState* previous, const PassOptions& options);

  // Executes an already computed plan. `observed` is the observation the
  // plan was made from: it seeds the pass's LiveView, which answers every
  // requirement and readiness wait (no further observation of the cluster).
  reconcilers::ExecutionReport Execute(const desired_state::DesiredState& desired,
                                       const desired_state::DesiredState* previous,
                                       const reconcilers::Plan& plan,
                                       const reconcilers::ClusterObservation& observed,
                                       const PassOptions& options);

  // Lets the acting steps finish; starts no new one.
  void Cancel();

  // Feeds an external event (the drift watch: "redis@m1 exited") to the live
  // view of the pass in progress, if any, so waiting steps see it at once.
  void UpdateLive(const std::string& key, reconcilers::ObservedState state,
                  const std::string& detail);
  // A readiness probe result from elsewhere (clusterd's probe loop) for the
  // pass in flight, if any; its waiters need not probe again.
  void UpdateReadiness(const reconcilers::ProbeResult& result);

 private:
  ReconcileDeps deps_;
  std::mutex mu_;
  reconcilers::PlanExecutor* running_ = nullptr;  // Guarded by mu_.
  reconcilers::LiveView* live_ = nullptr;         // Guarded by mu_.
  std::atomic<bool> cancelled_{false};
};

// The audit trail of a pass: an intent before each step, a result after.
// With a gate (clusterd replicas), a step is sent only while the gate says
// this replica may act, checked before its intent is written and again just
// before it is sent; a step that may not be sent is not run and is audited
// with result `fenced`. The intent and result of a step that was sent carry
// the leader's replica id and fencing token, and both are journaled to the
// other replicas; a step whose intent cannot be journaled is not sent
// (fenced).
// Thread-safe: the executor calls it from several threads at once.
class AuditStepListener : public reconcilers::StepListener {
 public:
  AuditStepListener(audit::AuditLog* audit, std::string actor, audit::Trigger trigger,
                    std::string revision, reconcilers::StepListener* next,
                    std::map<std::string, audit::Trigger> step_trigger = {},
                    std::map<std::string, std::string> step_actor = {}, ActGate* gate = nullptr);
  Status OnStepStart(const reconcilers::Step& step) override;
  void OnStepEnd(const reconcilers::Step& step, const reconcilers::StepOutcome& outcome) override;

 private:
  audit::AuditLog* audit_;
  std::string actor_;
  audit::Trigger trigger_;
  std::string revision_;
  reconcilers::StepListener* next_;
  std::map<std::string, audit::Trigger> step_trigger_;
  std::map<std::string, std::string> step_actor_;
  ActGate* gate_;
  std::mutex mu_;                       // Guards the maps below (not held while appending).
  std::map<int, uint64_t> intent_seq_;  // Step id -> intent record.
  std::map<int, uint64_t> token_;       // Step id -> the fencing token it was sent under.
  std::map<int, std::string> fenced_;   // Step id -> why it was not sent.

  // Asks the gate; records why not for OnStepEnd. OK without a gate.
  Status CheckGate(const reconcilers::Step& step, uint64_t* token);

  // The trigger/actor of one step, with the per-instance overrides.
  audit::Trigger TriggerOf(const reconcilers::Step& s) const;
  const std::string& ActorOf(const reconcilers::Step& s) const;
};

}  // namespace clusterctl::controller

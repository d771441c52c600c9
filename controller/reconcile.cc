#include "controller/reconcile.h"

#include <spdlog/spdlog.h>

#include "controller/windows.h"

namespace clusterctl::controller {

namespace {

audit::Outcome OutcomeOf(reconcilers::StepResult r) {
  switch (r) {
    case reconcilers::StepResult::kOk:
      return audit::Outcome::kOk;
    case reconcilers::StepResult::kFailed:
      return audit::Outcome::kFailed;
    case reconcilers::StepResult::kSkipped:
      return audit::Outcome::kSkipped;
    case reconcilers::StepResult::kInterrupted:
      return audit::Outcome::kInterrupted;
  }
  return audit::Outcome::kFailed;
}

}  // namespace

using desired_state::DesiredState;
using reconcilers::ClusterObservation;

ClusterObservation ObserveAndRecord(const ReconcileDeps& deps, const DesiredState& desired,
                                    const DesiredState* previous, int parallel,
                                    const std::set<std::string>* only_machines) {
  reconcilers::ObserveOptions opts;
  opts.max_parallel = parallel;
  opts.only_machines = only_machines;
  opts.clock = deps.clock;
  ClusterObservation obs =
      reconcilers::ObserveCluster(desired, previous, *deps.driver, deps.prober, opts);
  if (deps.state != nullptr) {
    std::map<std::string, reconcilers::MachineObservation> by_machine;
    for (const auto& f : obs.facts) by_machine[f.machine].facts = f;
    for (const auto& i : obs.instances) by_machine[i.machine].instances.push_back(i);
    for (const auto& [m, mo] : by_machine) {
      Status s = deps.state->RecordObservation(mo);
      if (!s.ok()) spdlog::warn("recording the observation of {}: {}", m, s.ToString());
    }
    for (const auto& p : obs.readiness) {
      Status s = deps.state->RecordProbe(p);
      if (!s.ok()) spdlog::warn("recording a probe of {}: {}", p.Key(), s.ToString());
    }
  }
  return obs;
}

void AddObserveModeHolds(const DesiredState& desired, std::map<std::string, std::string>* hold) {
  for (const auto& i : desired.instances) {
    const auto* s = desired.FindService(i.service);
    if (s != nullptr && s->reconcile_mode == desired_state::ReconcileMode::kObserve) {
      hold->emplace(i.Key(), "reconcile mode observe: drift is reported, never corrected");
    }
  }
}

reconcilers::PlanInput MakePlanInput(const DesiredState& desired, const DesiredState* previous,
                                     const ClusterObservation& obs, const PassOptions& options) {
  reconcilers::PlanInput in =
      reconcilers::PlanInputOf(desired, previous, obs, ClockOr(options.clock).WallMs());
  in.backoff = options.backoff;
  in.only_service = options.only_service;
  in.only_machine = options.only_machine;
  in.force_restart = options.force_restart;
  in.hold = options.hold;
  AddObserveModeHolds(desired, &in.hold);
  AddWindowHolds(in, in.now_ms / 1000, options.override_windows, &in.hold);
  return in;
}

PassResult Reconciler::RunPass(const DesiredState& desired, const DesiredState* previous,
                               const PassOptions& options) {
  PassResult r;
  r.observation = ObserveAndRecord(deps_, desired, previous, options.observe_parallel);
  PassOptions with_clock = options;
  if (with_clock.clock == nullptr) with_clock.clock = deps_.clock;
  r.plan = reconcilers::MakePlan(MakePlanInput(desired, previous, r.observation, with_clock));
  if (!r.plan.refused.empty() || r.plan.steps.empty() || cancelled_) return r;
  r.report = Execute(desired, previous, r.plan, r.observation, options);
  r.executed = true;
  return r;
}

reconcilers::ExecutionReport Reconciler::Execute(const DesiredState& desired,
                                                 const DesiredState* previous,
                                                 const reconcilers::Plan& plan,
                                                 const ClusterObservation& observed,
                                                 const PassOptions& options) {
  std::unique_ptr<reconcilers::PlanExecutor> exec;
  reconcilers::LiveView live(&desired, previous, deps_.prober);
  live.Seed(observed);
  if (options.dry_run) {
    exec = std::make_unique<reconcilers::DryRunExecutor>();
  } else {
    exec = std::make_unique<reconcilers::RealExecutor>(&desired, previous, deps_.driver, &live);
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    running_ = exec.get();
    live_ = &live;
    if (cancelled_) exec->Cancel();
  }
  reconcilers::ExecutionReport report;
  if (options.dry_run || deps_.audit == nullptr) {
    report = exec->Execute(plan, options.progress);
  } else {
    AuditStepListener audit(deps_.audit, options.actor.empty() ? deps_.actor : options.actor,
                            options.trigger, desired.revision.Short(), options.progress,
                            options.step_trigger, options.step_actor, deps_.gate);
    report = exec->Execute(plan, &audit);
  }
  std::lock_guard<std::mutex> g(mu_);
  running_ = nullptr;
  live_ = nullptr;
  return report;
}

void Reconciler::Cancel() {
  cancelled_ = true;
  std::lock_guard<std::mutex> g(mu_);
  if (running_ != nullptr) running_->Cancel();
}

void Reconciler::UpdateLive(const std::string& key, reconcilers::ObservedState state,
                            const std::string& detail) {
  std::lock_guard<std::mutex> g(mu_);
  if (live_ != nullptr) live_->Update(key, state, detail);
}

void Reconciler::UpdateReadiness(const reconcilers::ProbeResult& result) {
  std::lock_guard<std::mutex> g(mu_);
  if (live_ != nullptr) live_->UpdateReadiness(result);
}

Result<audit::AuditRecord> AppendRecord(audit::AuditLog* log, ActGate* gate,
                                        audit::AuditRecord record) {
  uint64_t token = 0;
  const bool leading = gate != nullptr && gate->MayAct(&token);
  if (leading) {
    record.leader = gate->replica();
    record.fencing_token = token;
  }
  auto written = log->Append(std::move(record));
  if (written.ok() && leading) {
    Status journaled = gate->Journal(*written);  // An event is no action: best effort.
    if (!journaled.ok()) spdlog::warn("journaling {}: {}", written->action, journaled.ToString());
  }
  return written;
}

AuditStepListener::AuditStepListener(audit::AuditLog* audit, std::string actor,
                                     audit::Trigger trigger, std::string revision,
                                     reconcilers::StepListener* next,
                                     std::map<std::string, audit::Trigger> step_trigger,
                                     std::map<std::string, std::string> step_actor, ActGate* gate)
    : audit_(audit),
      actor_(std::move(actor)),
      trigger_(trigger),
      revision_(std::move(revision)),
      next_(next),
      step_trigger_(std::move(step_trigger)),
      step_actor_(std::move(step_actor)),
      gate_(gate) {}

Status AuditStepListener::CheckGate(const reconcilers::Step& step, uint64_t* token) {
  if (gate_ == nullptr || gate_->MayActOn(step.machine, token)) return Status::Ok();
  const std::string why = gate_->FencedWhy(step.machine);
  std::lock_guard<std::mutex> g(mu_);
  fenced_[step.id] = why;
  return Status::Conflict(why);
}

audit::Trigger AuditStepListener::TriggerOf(const reconcilers::Step& s) const {
  auto it = step_trigger_.find(s.Key());
  return it != step_trigger_.end() ? it->second : trigger_;
}

const std::string& AuditStepListener::ActorOf(const reconcilers::Step& s) const {
  auto it = step_actor_.find(s.Key());
  return it != step_actor_.end() ? it->second : actor_;
}

Status AuditStepListener::OnStepStart(const reconcilers::Step& step) {
  uint64_t token = 0;
  CLUSTERCTL_RETURN_IF_ERROR(CheckGate(step, &token));
  audit::AuditRecord r;
  if (gate_ != nullptr) {
    r.leader = gate_->replica();
    r.fencing_token = token;
  }
  r.actor = ActorOf(step);
  r.trigger = audit::Name(TriggerOf(step));
  r.revision = revision_;
  r.action = reconcilers::ActionName(step.action);
  r.machine = step.machine;
  r.service = step.service;
  r.phase = audit::Name(audit::Phase::kIntent);
  r.detail = step.reason;
  auto written = audit_->Append(r);
  if (!written.ok()) return written.status().Annotate("writing the audit intent");
  {
    std::lock_guard<std::mutex> g(mu_);
    intent_seq_[step.id] = written->seq;
    token_[step.id] = token;
  }
  if (gate_ != nullptr) {
    Status journaled = gate_->Journal(*written);
    if (!journaled.ok()) {
      const std::string why = "fenced: the intent could not be journaled to the other replicas (" +
                              journaled.message() + "); the step was not sent";
      std::lock_guard<std::mutex> g(mu_);
      fenced_[step.id] = why;
      return Status::Conflict(why);
    }
  }
  // Again just before the step is sent: writing the intent took a moment.
  CLUSTERCTL_RETURN_IF_ERROR(CheckGate(step, &token));
  if (next_ != nullptr) return next_->OnStepStart(step);
  return Status::Ok();
}

void AuditStepListener::OnStepEnd(const reconcilers::Step& step,
                                  const reconcilers::StepOutcome& outcome) {
  uint64_t intent_seq = 0, token = 0;
  std::string fenced;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = intent_seq_.find(step.id);
    if (it != intent_seq_.end()) intent_seq = it->second;
    auto t = token_.find(step.id);
    if (t != token_.end()) token = t->second;
    auto f = fenced_.find(step.id);
    if (f != fenced_.end()) fenced = f->second;
  }
  // Steps skipped before they started have no intent; record them too, so
  // the log says why nothing happened.
  audit::AuditRecord r;
  r.actor = ActorOf(step);
  r.trigger = audit::Name(TriggerOf(step));
  r.revision = revision_;
  r.action = reconcilers::ActionName(step.action);
  r.machine = step.machine;
  r.service = step.service;
  r.phase = audit::Name(audit::Phase::kResult);
  r.result = audit::Name(fenced.empty() ? OutcomeOf(outcome.result) : audit::Outcome::kFenced);
  r.duration_ms = outcome.duration_ms();
  r.detail = fenced.empty() ? outcome.detail : fenced;
  r.intent_seq = intent_seq;
  if (gate_ != nullptr) {
    r.leader = gate_->replica();
    r.fencing_token = fenced.empty() ? token : 0;  // A step not sent is no action.
  }
  auto written = audit_->Append(r);
  if (!written.ok()) {
    spdlog::error("writing the audit result of {}: {}", step.Key(), written.status().ToString());
  } else if (gate_ != nullptr && fenced.empty()) {
    // Best effort: a follower that misses it closes the intent itself.
    Status journaled = gate_->Journal(*written);
    if (!journaled.ok())
      spdlog::warn("journaling the result of {}: {}", step.Key(), journaled.ToString());
  }
  if (next_ != nullptr) next_->OnStepEnd(step, outcome);
}

}  // namespace clusterctl::controller

// Executors run a Plan (plan.h). Separate from planning, as in ninja's
// Plan / Builder / CommandRunner split:
//
//   RealExecutor    runs steps through a ServiceDriver, answers requirements
//                   and readiness from a LiveView (live_view.h), bounded
//                   concurrency (plan.max_parallel)
//   DryRunExecutor  records the steps it would run and touches nothing
//                   (clusterctl apply --dry-run)
//
// Step semantics:
//   - A step runs once every step in its `after` list succeeded. If one of
//     them failed or was skipped, the step is skipped: "dependency X failed".
//   - Before acting, its Requirements (dependency instances that must be
//     ready, or running) are looked up in the LiveView; the step waits for
//     them (event driven, no polling) up to its start timeout in all, then
//     skips: "blocked: X not ready after Ns". A requirement on an unknown
//     instance (its machine could not be observed) skips at once:
//     "blocked: X unknown (machine m1 unreachable: ...)".
//   - Every step is announced to the StepListener before it runs (the audit
//     intent; if recording it fails, the step does not run) and after it ends.
//   - Every action's result goes into the LiveView (started -> running,
//     stopped, failed), so later requirements are answered from it.
//   - A start or restart waits for readiness up to startTimeoutSeconds. A
//     service without a readiness probe is ready once running.
//   - Cancel() (SIGTERM) starts no new step and cuts every wait short: steps
//     not started, or still waiting for their requirements, end
//     "interrupted" untouched; a driver command already sent to a machine
//     completes, and if its step then waits for readiness, that wait ends at
//     once and the step ends "interrupted" ("started pid 42; readiness wait
//     cut short: ..."), never "ok".
//   - A step whose driver or prober throws ends "failed" ("internal error
//     running the step: ..."); the process goes on.
//
// Thread-safety: Execute() may be called from one thread at a time; Cancel()
// from any thread. Listener callbacks come from the scheduling thread and the
// worker threads, never under the executor's lock, and may run concurrently
// for different steps: a listener must be thread-safe. For one step,
// OnStepStart comes before OnStepEnd, and a step's OnStepEnd returns before
// any step ordered after it (after, after_any) is announced.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "desired-state/model.h"
#include "reconcilers/driver.h"
#include "reconcilers/live_view.h"
#include "reconcilers/plan.h"
#include "reconcilers/probes.h"

namespace clusterctl::reconcilers {

enum class StepResult { kOk, kFailed, kSkipped, kInterrupted };
const char* StepResultName(StepResult r);  // "ok", "failed", "skipped", "interrupted"

struct StepOutcome {
  int step_id = 0;
  StepResult result = StepResult::kOk;
  std::string detail;  // "ready after 3 probes", "skipped: dependency redis@m1 failed", ...
  int64_t started_ms = 0, ended_ms = 0;
  int64_t duration_ms() const { return ended_ms - started_ms; }
};

struct ExecutionReport {
  std::vector<StepOutcome> outcomes;  // By step id.
  bool ok() const;                    // Every step ok.
  size_t Count(StepResult r) const;
};

// Hooks for the audit log and progress display. Called from several threads,
// possibly at once for different steps (see the thread-safety note above);
// a slow callback delays only its own step's progress.
class StepListener {
 public:
  virtual ~StepListener() = default;
  // Before the step acts. A failed Status (the audit intent could not be
  // written) fails the step without touching the machine.
  virtual Status OnStepStart(const Step& step) = 0;
  virtual void OnStepEnd(const Step& step, const StepOutcome& outcome) = 0;
};

class PlanExecutor {
 public:
  virtual ~PlanExecutor() = default;
  virtual ExecutionReport Execute(const Plan& plan, StepListener* listener) = 0;
  // Start no new step; cut waits short (the driver commands in flight
  // complete).
  virtual void Cancel() = 0;
};

class RealExecutor : public PlanExecutor {
 public:
  // Definitions come from `desired` (or `previous` for pruned instances).
  // `live` answers requirements and readiness, takes every step's result, and
  // is the executor's clock (LiveView::NowMs). None is owned; all must
  // outlive the executor.
  RealExecutor(const desired_state::DesiredState* desired,
               const desired_state::DesiredState* previous, ServiceDriver* driver, LiveView* live);
  ExecutionReport Execute(const Plan& plan, StepListener* listener) override;
  // Also wakes the steps waiting for requirements or readiness (they end
  // interrupted).
  void Cancel() override;

 private:
  StepOutcome RunStep(const Step& step);
  // RunStep, with any exception turned into a failed outcome.
  StepOutcome RunStepGuarded(const Step& step);
  // Waits for every requirement of `step`; false (with `out` filled) if one
  // does not hold in time.
  bool AwaitRequirements(const Step& step, StepOutcome* out);
  // Records the action's outcome in the live view.
  void Record(const Step& step, const Result<std::string>& acted);

  const desired_state::DesiredState* desired_;
  const desired_state::DesiredState* previous_;
  ServiceDriver* driver_;
  LiveView* live_;
  std::atomic<bool> cancelled_{false};
};

class DryRunExecutor : public PlanExecutor {
 public:
  ExecutionReport Execute(const Plan& plan, StepListener* listener) override;
  void Cancel() override {}
  // "start svc@machine" per step it was given, in order.
  const std::vector<std::string>& recorded() const { return recorded_; }

 private:
  std::vector<std::string> recorded_;
};

}  // namespace clusterctl::reconcilers

// Executors run a Plan (plan.h). Separate from planning, as in ninja's
// Plan / Builder / CommandRunner split:
//
//   RealExecutor    runs steps through a ServiceDriver, waits for readiness
//                   through a Prober, bounded concurrency (plan.max_parallel)
//   DryRunExecutor  records the steps it would run and touches nothing
//                   (clusterctl apply --dry-run)
//
// Step semantics:
//   - A step runs once every step in its `after` list succeeded. If one of
//     them failed or was skipped, the step is skipped: "dependency X failed".
//   - Before acting, each Requirement (a dependency instance that must be
//     ready, or running) is checked; the executor waits for it up to the
//     step's start timeout, then skips: "blocked: X not ready after Ns".
//   - Every step is announced to the StepListener before it runs (the audit
//     intent; if recording it fails, the step does not run) and after it ends.
//   - A start or restart waits for readiness up to startTimeoutSeconds. A
//     service without a readiness probe is ready once observed running.
//   - Cancel() (SIGTERM) lets running steps finish and starts no new one;
//     those never started end "interrupted".
//
// Thread-safety: Execute() may be called from one thread at a time; Cancel()
// from any thread. Listener callbacks come from worker threads, serialised.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "desired-state/model.h"
#include "desired-state/status.h"
#include "reconcilers/driver.h"
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

// Hooks for the audit log and progress display. Called serially.
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
  // Finish the steps in flight, start no new one.
  virtual void Cancel() = 0;
};

// Answers "is this instance ready / running now?" for requirements and
// readiness waits, by observing or probing.
class LiveStatus {
 public:
  virtual ~LiveStatus() = default;
  // Whether `key`'s instance is ready (ready=true) or running (false), with a
  // short detail of the last check ("HTTP 503, expected 200").
  virtual bool Check(const std::string& key, bool ready, std::string* detail) = 0;
};

// Asks the driver and prober directly (one probe or observation per call).
class DriverLiveStatus : public LiveStatus {
 public:
  DriverLiveStatus(const desired_state::DesiredState* desired, ServiceDriver* driver,
                   Prober* prober);
  bool Check(const std::string& key, bool ready, std::string* detail) override;

 private:
  const desired_state::DesiredState* desired_;
  ServiceDriver* driver_;
  Prober* prober_;
};

class RealExecutor : public PlanExecutor {
 public:
  struct Options {
    std::function<int64_t()> now_ms;  // Default: steady clock in ms.
    // Sleeps up to `d` or until Cancel(). Default: condition-variable wait.
    std::function<void(std::chrono::milliseconds)> sleep;
    std::chrono::milliseconds poll_interval{200};  // Readiness/requirement polls. Default: 200 ms.
  };

  // Definitions come from `desired` (or `previous` for pruned instances).
  RealExecutor(const desired_state::DesiredState* desired,
               const desired_state::DesiredState* previous, ServiceDriver* driver, LiveStatus* live,
               Options options);
  ExecutionReport Execute(const Plan& plan, StepListener* listener) override;
  void Cancel() override;

 private:
  StepOutcome RunStep(const Step& step);
  bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds limit);

  const desired_state::DesiredState* desired_;
  const desired_state::DesiredState* previous_;
  ServiceDriver* driver_;
  LiveStatus* live_;
  Options options_;
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

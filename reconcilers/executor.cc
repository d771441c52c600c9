#include "reconcilers/executor.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace clusterctl::reconcilers {
namespace {

using desired_state::DesiredState;
using desired_state::Machine;
using desired_state::Service;

}  // namespace

const char* StepResultName(StepResult r) {
  switch (r) {
    case StepResult::kOk:
      return "ok";
    case StepResult::kFailed:
      return "failed";
    case StepResult::kSkipped:
      return "skipped";
    case StepResult::kInterrupted:
      return "interrupted";
  }
  return "failed";
}

bool ExecutionReport::ok() const {
  return std::all_of(outcomes.begin(), outcomes.end(),
                     [](const StepOutcome& o) { return o.result == StepResult::kOk; });
}

size_t ExecutionReport::Count(StepResult r) const {
  return static_cast<size_t>(std::count_if(outcomes.begin(), outcomes.end(),
                                           [r](const StepOutcome& o) { return o.result == r; }));
}

RealExecutor::RealExecutor(const DesiredState* desired, const DesiredState* previous,
                           ServiceDriver* driver, LiveView* live)
    : desired_(desired), previous_(previous), driver_(driver), live_(live) {}

void RealExecutor::Cancel() {
  cancelled_ = true;
  live_->Cancel();
}

bool RealExecutor::AwaitRequirements(const Step& step, StepOutcome* out) {
  const int64_t t0 = live_->NowMs();
  const int64_t deadline = t0 + int64_t{step.start_timeout_seconds} * 1000;
  for (const Requirement& req : step.requires_) {
    std::string detail;
    const char* want = req.ready ? " not ready" : " not running";
    switch (live_->WaitFor(req.key, req.ready, deadline, &detail)) {
      case WaitResult::kHolds:
        continue;
      case WaitResult::kUnknown:
        out->result = StepResult::kSkipped;
        out->detail = "blocked: " + req.key + " unknown (" + detail + ")";
        return false;
      case WaitResult::kCancelled:
        out->result = StepResult::kInterrupted;
        out->detail = "not started: the controller is shutting down (waiting for " + req.key +
                      ": " + detail + ")";
        return false;
      case WaitResult::kTimedOut:
        out->result = StepResult::kSkipped;
        out->detail = "blocked: " + req.key + want + " after " +
                      std::to_string((live_->NowMs() - t0) / 1000) + "s" +
                      (detail.empty() ? "" : " (" + detail + ")");
        return false;
    }
  }
  return true;
}

void RealExecutor::Record(const Step& step, const Result<std::string>& acted) {
  if (!acted.ok()) {
    live_->RecordFailed(step.Key(), acted.status().message());
    return;
  }
  switch (step.action) {
    case Action::kStart:
    case Action::kRestart:
      live_->RecordStarted(step.Key(), *acted);
      break;
    case Action::kStop:
      live_->RecordStopped(step.Key(), *acted);
      break;
    case Action::kNone:
      break;
  }
}

StepOutcome RealExecutor::RunStep(const Step& step) {
  StepOutcome out;
  out.step_id = step.id;
  const Service* s = desired_->FindService(step.service);
  if (s == nullptr && previous_ != nullptr) s = previous_->FindService(step.service);
  const Machine* m = desired_->FindMachine(step.machine);
  if (m == nullptr && previous_ != nullptr) m = previous_->FindMachine(step.machine);
  if (s == nullptr || m == nullptr) {
    out.result = StepResult::kFailed;
    out.detail = "no definition of " + step.Key();
    return out;
  }
  if (!AwaitRequirements(step, &out)) return out;

  Result<std::string> acted = Status::Internal("no action");
  switch (step.action) {
    case Action::kStart:
      acted = driver_->Start(*m, *s, step.spec_hash);
      break;
    case Action::kStop:
      acted = driver_->Stop(*m, *s);
      break;
    case Action::kRestart:
      acted = driver_->Restart(*m, *s, step.spec_hash);
      break;
    case Action::kNone:
      acted = std::string("nothing to do");
      break;
  }
  Record(step, acted);
  if (!acted.ok()) {
    out.result = StepResult::kFailed;
    out.detail = acted.status().message();
    return out;
  }
  out.detail = *acted;
  if (!step.wait_ready) return out;

  // Readiness: up to startTimeoutSeconds. Cancel() (SIGTERM) cuts the wait
  // short: the machine acted, so the step ends interrupted, not ok, and the
  // next start of the controller re-observes it.
  std::string detail;
  int probes = 0;
  const bool has_probe = s->readiness.has_value();
  const int64_t deadline = live_->NowMs() + int64_t{step.start_timeout_seconds} * 1000;
  const WaitResult ready = live_->WaitFor(step.Key(), /*ready=*/true, deadline, &detail,
                                          /*interruptible=*/true, &probes);
  if (ready == WaitResult::kUnknown) {
    out.result = StepResult::kFailed;
    out.detail += "; readiness unknown (" + detail + ")";
    return out;
  }
  if (ready == WaitResult::kCancelled) {
    out.result = StepResult::kInterrupted;
    out.detail += "; readiness wait cut short: the controller is shutting down" +
                  (detail.empty() ? std::string() : " (last check: " + detail + ")");
    return out;
  }
  if (ready != WaitResult::kHolds) {
    out.result = StepResult::kFailed;
    out.detail += "; not ready after " + std::to_string(step.start_timeout_seconds) + "s" +
                  (detail.empty() ? "" : " (last check: " + detail + ")");
    return out;
  }
  out.detail += has_probe ? "; ready after " + std::to_string(probes) + " probe(s)" : "; running";
  return out;
}

StepOutcome RealExecutor::RunStepGuarded(const Step& step) {
  // A worker thread must never end the process: whatever a driver or prober
  // throws (a vector's at() on an empty answer, bad_alloc) fails this step
  // only, and says so.
  try {
    return RunStep(step);
  } catch (const std::exception& e) {
    StepOutcome out;
    out.result = StepResult::kFailed;
    out.detail = std::string("internal error running the step: ") + e.what();
    return out;
  } catch (...) {
    StepOutcome out;
    out.result = StepResult::kFailed;
    out.detail = "internal error running the step: unknown exception";
    return out;
  }
}

ExecutionReport RealExecutor::Execute(const Plan& plan, StepListener* listener) {
  ExecutionReport report;
  const size_t n = plan.steps.size();
  report.outcomes.resize(n);
  // kStarting: the scheduler is announcing it to the listener (unlocked).
  // kEnding: its outcome is known and the listener is being told (unlocked);
  // dependents wait for kDone, so a dependency's result is recorded before
  // a dependent's intent.
  enum class State { kPending, kStarting, kRunning, kEnding, kDone };
  std::vector<State> state(n, State::kPending);
  std::mutex mu;
  std::condition_variable cv;
  size_t running = 0, done = 0;
  const size_t max_parallel = static_cast<size_t>(std::max(1, plan.max_parallel));
  std::deque<const Step*> ready;  // Announced steps waiting for a worker.
  bool stop_workers = false;
  std::vector<std::thread> workers;

  // Listener callbacks (audit appends with an fsync) run without `mu`, so a
  // slow disk delays only the step being recorded, never the scheduling or
  // the completion of the others.
  auto end_step = [&](std::unique_lock<std::mutex>& l, const Step& st, const StepOutcome& out) {
    report.outcomes[st.id] = out;
    state[st.id] = State::kEnding;
    l.unlock();
    if (listener) listener->OnStepEnd(st, out);
    l.lock();
    state[st.id] = State::kDone;
    ++done;
    cv.notify_all();
  };

  // A fixed pool of workers runs the steps the scheduler (this thread) makes
  // ready; at most max_parallel run at once.
  for (size_t w = 0; w < std::min(max_parallel, n); ++w) {
    workers.emplace_back([&] {
      std::unique_lock<std::mutex> l(mu);
      while (true) {
        cv.wait(l, [&] { return stop_workers || !ready.empty(); });
        if (ready.empty()) return;
        const Step* step = ready.front();
        ready.pop_front();
        l.unlock();
        const int64_t t0 = live_->NowMs();
        StepOutcome o = RunStepGuarded(*step);
        o.step_id = step->id;
        o.started_ms = t0;
        o.ended_ms = live_->NowMs();
        l.lock();
        end_step(l, *step, o);
        --running;
        cv.notify_all();
      }
    });
  }

  std::unique_lock<std::mutex> lock(mu);
  while (done < n) {
    bool progressed = false;
    for (const Step& st : plan.steps) {
      if (state[st.id] != State::kPending) continue;
      // Blocked by a failed or skipped predecessor?
      const Step* failed_dep = nullptr;
      bool waiting = false;
      for (int a : st.after_any) {
        if (state[a] != State::kDone) waiting = true;
      }
      for (int a : st.after) {
        if (state[a] != State::kDone) {
          waiting = true;
        } else if (report.outcomes[a].result != StepResult::kOk && failed_dep == nullptr) {
          failed_dep = &plan.steps[a];
        }
      }
      StepOutcome out;
      out.step_id = st.id;
      out.started_ms = out.ended_ms = live_->NowMs();
      if (cancelled_) {
        out.result = StepResult::kInterrupted;
        out.detail = "not started: the controller is shutting down";
        end_step(lock, st, out);
        progressed = true;
        continue;
      }
      if (failed_dep != nullptr) {
        out.result = StepResult::kSkipped;
        out.detail = "skipped: dependency " + failed_dep->Key() + " " +
                     StepResultName(report.outcomes[failed_dep->id].result);
        end_step(lock, st, out);
        progressed = true;
        continue;
      }
      if (waiting) continue;
      if (running >= max_parallel) break;
      ++running;  // Its worker slot, from the intent on.
      progressed = true;
      if (listener) {
        state[st.id] = State::kStarting;
        lock.unlock();
        Status s = listener->OnStepStart(st);
        lock.lock();
        if (!s.ok()) {
          --running;
          out.result = StepResult::kFailed;
          out.detail = "not run: " + s.message();
          end_step(lock, st, out);
          continue;
        }
      }
      state[st.id] = State::kRunning;
      ready.push_back(&st);
      cv.notify_all();
    }
    if (done >= n) break;
    if (!progressed) cv.wait(lock);
  }
  stop_workers = true;
  cv.notify_all();
  lock.unlock();
  for (auto& w : workers) w.join();
  return report;
}

ExecutionReport DryRunExecutor::Execute(const Plan& plan, StepListener* listener) {
  ExecutionReport report;
  for (const Step& st : plan.steps) {
    recorded_.push_back(std::string(ActionName(st.action)) + " " + st.Key());
    StepOutcome out;
    out.step_id = st.id;
    out.result = StepResult::kOk;
    out.detail = "dry run: not executed";
    if (listener) listener->OnStepEnd(st, out);
    report.outcomes.push_back(out);
  }
  return report;
}

}  // namespace clusterctl::reconcilers

#include "reconcilers/executor.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace clusterctl::reconcilers {
namespace {

using desired_state::DesiredState;
using desired_state::Machine;
using desired_state::Service;

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// "svc@machine" -> {svc, machine}
std::pair<std::string, std::string> SplitKey(const std::string& key) {
  size_t at = key.rfind('@');
  return {key.substr(0, at), at == std::string::npos ? "" : key.substr(at + 1)};
}

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

DriverLiveStatus::DriverLiveStatus(const DesiredState* desired, ServiceDriver* driver,
                                   Prober* prober)
    : desired_(desired), driver_(driver), prober_(prober) {}

bool DriverLiveStatus::Check(const std::string& key, bool ready, std::string* detail) {
  auto [svc, machine] = SplitKey(key);
  const Service* s = desired_->FindService(svc);
  const Machine* m = desired_->FindMachine(machine);
  if (s == nullptr || m == nullptr) {
    *detail = "not in the desired state";
    return false;
  }
  if (ready && s->readiness) {
    ProbeResult r = prober_->Run(*s, *m, ProbeRole::kReadiness);
    *detail = r.detail;
    return r.ok;
  }
  auto obs = driver_->Observe(*m, {s});
  if (!obs.ok()) {
    *detail = obs.status().message();
    return false;
  }
  const ObservedInstance& i = obs->instances.at(0);
  *detail =
      std::string(ObservedStateName(i.state)) + (i.detail.empty() ? "" : " (" + i.detail + ")");
  return i.state == ObservedState::kRunning;
}

RealExecutor::RealExecutor(const DesiredState* desired, const DesiredState* previous,
                           ServiceDriver* driver, LiveStatus* live, Options options)
    : desired_(desired),
      previous_(previous),
      driver_(driver),
      live_(live),
      options_(std::move(options)) {
  if (!options_.now_ms) options_.now_ms = SteadyMs;
}

void RealExecutor::Cancel() { cancelled_ = true; }

bool RealExecutor::WaitUntil(const std::function<bool()>& condition,
                             std::chrono::milliseconds limit) {
  const int64_t deadline = options_.now_ms() + limit.count();
  while (true) {
    if (condition()) return true;
    if (options_.now_ms() >= deadline) return false;
    auto wait = std::min<int64_t>(options_.poll_interval.count(), deadline - options_.now_ms());
    if (wait <= 0) return condition();
    if (options_.sleep) {
      options_.sleep(std::chrono::milliseconds(wait));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(wait));
    }
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
  const auto start_timeout = std::chrono::seconds(step.start_timeout_seconds);

  // Requirements: dependency instances ready (or running).
  for (const Requirement& req : step.requires_) {
    std::string detail;
    int64_t t0 = options_.now_ms();
    if (!WaitUntil([&] { return live_->Check(req.key, req.ready, &detail); }, start_timeout)) {
      out.result = StepResult::kSkipped;
      out.detail = "blocked: " + req.key + (req.ready ? " not ready" : " not running") + " after " +
                   std::to_string((options_.now_ms() - t0) / 1000) + "s" +
                   (detail.empty() ? "" : " (" + detail + ")");
      return out;
    }
  }

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
  if (!acted.ok()) {
    out.result = StepResult::kFailed;
    out.detail = acted.status().message();
    return out;
  }
  out.detail = *acted;
  if (!step.wait_ready) return out;

  // Readiness: up to startTimeoutSeconds.
  std::string detail;
  int checks = 0;
  const bool has_probe = s->readiness.has_value();
  bool ready = WaitUntil(
      [&] {
        ++checks;
        return live_->Check(step.Key(), has_probe, &detail);
      },
      start_timeout);
  if (!ready) {
    out.result = StepResult::kFailed;
    out.detail += "; not ready after " + std::to_string(step.start_timeout_seconds) + "s" +
                  (detail.empty() ? "" : " (last check: " + detail + ")");
    return out;
  }
  out.detail += has_probe ? "; ready after " + std::to_string(checks) + " probe(s)" : "; running";
  return out;
}

ExecutionReport RealExecutor::Execute(const Plan& plan, StepListener* listener) {
  ExecutionReport report;
  const size_t n = plan.steps.size();
  report.outcomes.resize(n);
  enum class State { kPending, kRunning, kDone };
  std::vector<State> state(n, State::kPending);
  std::mutex mu;
  std::condition_variable cv;
  size_t running = 0, done = 0;
  const size_t max_parallel = static_cast<size_t>(std::max(1, plan.max_parallel));
  std::deque<const Step*> ready;  // Announced steps waiting for a worker.
  bool stop_workers = false;
  std::vector<std::thread> workers;

  auto finish = [&](const Step& st, StepOutcome out) {
    // Called with `mu` held.
    report.outcomes[st.id] = out;
    state[st.id] = State::kDone;
    ++done;
    if (listener) listener->OnStepEnd(st, out);
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
        const int64_t t0 = options_.now_ms();
        StepOutcome o = RunStep(*step);
        o.step_id = step->id;
        o.started_ms = t0;
        o.ended_ms = options_.now_ms();
        l.lock();
        --running;
        finish(*step, o);
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
      out.started_ms = out.ended_ms = options_.now_ms();
      if (cancelled_) {
        out.result = StepResult::kInterrupted;
        out.detail = "not started: the controller is shutting down";
        finish(st, out);
        progressed = true;
        continue;
      }
      if (failed_dep != nullptr) {
        out.result = StepResult::kSkipped;
        out.detail = "skipped: dependency " + failed_dep->Key() + " " +
                     StepResultName(report.outcomes[failed_dep->id].result);
        finish(st, out);
        progressed = true;
        continue;
      }
      if (waiting) continue;
      if (running >= max_parallel) break;
      if (listener) {
        Status s = listener->OnStepStart(st);
        if (!s.ok()) {
          out.result = StepResult::kFailed;
          out.detail = "not run: " + s.message();
          finish(st, out);
          progressed = true;
          continue;
        }
      }
      state[st.id] = State::kRunning;
      ++running;
      progressed = true;
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

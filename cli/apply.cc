// clusterctl diff / apply / restart: observe, plan, and (apply, restart)
// execute with live progress; every step audited.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "api/status_view.h"
#include "base/clock.h"
#include "cli/commands.h"
#include "cli/remote.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "controller/revision_pass.h"

namespace clusterctl::cli {
namespace {

using nlohmann::json;
using reconcilers::Plan;
using reconcilers::Step;
using reconcilers::StepOutcome;
using reconcilers::StepResult;

json PlanJson(const Plan& plan) {
  json steps = json::array();
  for (const Step& s : plan.steps) {
    json requires_ = json::array();
    for (const auto& r : s.requires_) {
      requires_.push_back({{"instance", r.key}, {"condition", r.ready ? "ready" : "started"}});
    }
    json after = json::array();
    for (int a : s.after) after.push_back(a + 1);
    steps.push_back({{"step", s.id + 1},
                     {"action", reconcilers::ActionName(s.action)},
                     {"service", s.service},
                     {"machine", s.machine},
                     {"level", s.level},
                     {"reason", s.reason},
                     {"after", after},
                     {"requires", requires_}});
  }
  json blocked = json::object();
  for (const auto& [k, why] : plan.blocked) blocked[k] = why;
  return {{"in_sync", plan.InSync()},
          {"refused", plan.refused},
          {"steps", steps},
          {"blocked", blocked},
          {"max_parallel", plan.max_parallel}};
}

// Live progress: a line per step as it starts and ends, with elapsed time;
// on a terminal also a spinner line with the steps in flight. With --json,
// one JSON object per event.
class Progress : public reconcilers::StepListener {
 public:
  Progress(size_t total, bool as_json)
      : total_(total), json_(as_json), tty_(isatty(1) && !as_json) {
    start_ = SteadyNow();
    if (tty_) spinner_ = std::thread([this] { Spin(); });
  }
  ~Progress() override { Stop(); }

  void Stop() {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    cv_.notify_all();
    if (spinner_.joinable()) spinner_.join();
    if (tty_) std::printf("\r\033[K");
    std::fflush(stdout);
  }

  Status OnStepStart(const Step& s) override {
    std::lock_guard<std::mutex> g(mu_);
    in_flight_.insert(s.Key());
    if (json_) {
      std::printf("%s\n", json{{"event", "start"},
                               {"step", s.id + 1},
                               {"action", reconcilers::ActionName(s.action)},
                               {"instance", s.Key()},
                               {"elapsed_ms", ElapsedMs()}}
                              .dump()
                              .c_str());
      std::fflush(stdout);
    } else {
      Line("[%6.1fs] %-7s %s  (%s)", ElapsedMs() / 1000.0, reconcilers::ActionName(s.action),
           s.Key().c_str(), s.reason.c_str());
    }
    return Status::Ok();
  }

  void OnStepEnd(const Step& s, const StepOutcome& o) override {
    std::lock_guard<std::mutex> g(mu_);
    in_flight_.erase(s.Key());
    ++done_;
    if (json_) {
      std::printf("%s\n", json{{"event", "end"},
                               {"step", s.id + 1},
                               {"action", reconcilers::ActionName(s.action)},
                               {"instance", s.Key()},
                               {"result", reconcilers::StepResultName(o.result)},
                               {"duration_ms", o.duration_ms()},
                               {"detail", o.detail},
                               {"elapsed_ms", ElapsedMs()}}
                              .dump()
                              .c_str());
      std::fflush(stdout);
    } else {
      const char* mark = o.result == StepResult::kOk ? "ok" : reconcilers::StepResultName(o.result);
      Line("[%6.1fs] %-7s %s  %s in %.1fs: %s", ElapsedMs() / 1000.0, mark, s.Key().c_str(),
           reconcilers::ActionName(s.action), o.duration_ms() / 1000.0, o.detail.c_str());
    }
  }

  int64_t ElapsedMs() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyNow() - start_).count();
  }

 private:
  template <typename... Args>
  void Line(const char* fmt, Args... args) {
    if (tty_) std::printf("\r\033[K");
    std::printf(fmt, args...);
    std::printf("\n");
    std::fflush(stdout);
  }

  void Spin() {
    static const char* kFrames[] = {"|", "/", "-", "\\"};
    int frame = 0;
    std::unique_lock<std::mutex> l(mu_);
    while (!stopped_) {
      std::string running;
      for (const auto& k : in_flight_) running += (running.empty() ? "" : ", ") + k;
      if (running.size() > 60) running = running.substr(0, 57) + "...";
      std::printf("\r\033[K%s %zu/%zu done %5.1fs  %s", kFrames[frame++ % 4], done_, total_,
                  ElapsedMs() / 1000.0, running.c_str());
      std::fflush(stdout);
      cv_.wait_for(l, std::chrono::milliseconds(120));
    }
  }

  size_t total_, done_ = 0;
  bool json_, tty_;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point start_;
  std::set<std::string> in_flight_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread spinner_;
};

struct PlanOptions {
  std::string rev;
  bool dry_run = false;
  std::string service, machine;
  std::set<std::string> force_restart;
  // Unset: revision or drift, decided from the last applied revision.
  std::optional<audit::Trigger> trigger;
  // --override-window --reason: act where only manualOverride windows block.
  bool override_window = false;
  std::string reason;
};

// diff: exit 0 in sync, 2 changes pending, 1 error.
int RunDiff(Globals* g, const PlanOptions& opts) {
  Session session(g);
  if (Status s = session.Open(opts.rev, /*read_only_ok=*/true); !s.ok()) return ReportError(*g, s);
  auto obs = controller::ObserveAndRecord(session.deps(), session.desired(), session.previous());
  controller::PassOptions po;
  po.only_service = opts.service;
  po.only_machine = opts.machine;
  po.hold = session.LeaseHolds();
  Plan plan = reconcilers::MakePlan(
      controller::MakePlanInput(session.desired(), session.previous(), obs, po));
  if (g->json) {
    json out = PlanJson(plan);
    out["revision"] = session.desired().revision.commit;
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << "revision " << session.desired().revision.Short() << " of cluster \""
              << session.desired().cluster.name << "\"\n"
              << reconcilers::FormatPlan(plan);
    if (!plan.InSync()) {
      std::cout << plan.steps.size() << " step(s): " << plan.Count(reconcilers::Action::kStart)
                << " start, " << plan.Count(reconcilers::Action::kStop) << " stop, "
                << plan.Count(reconcilers::Action::kRestart) << " restart; " << plan.blocked.size()
                << " blocked\n";
    }
  }
  if (!plan.refused.empty()) return kExitError;
  return plan.InSync() ? kExitOk : kExitChangesPending;
}

// apply / restart: exit 0 converged, 1 failed or partial.
// With a running clusterd, apply asks it to sync and waits for it to settle.
int RunRemoteApply(Globals* g, const PlanOptions& opts) {
  if (opts.dry_run || !opts.rev.empty() || !opts.service.empty() || !opts.machine.empty()) {
    return ReportError(
        *g, Status::Invalid("a clusterd owns " + g->data_dir +
                            ": it applies the branch head itself; --rev, --dry-run, --service "
                            "and --machine need the data directory (use clusterctl diff to "
                            "see the plan, or suspend the daemon)"));
  }
  json body = json::object();
  if (opts.override_window) body = {{"overrideWindow", true}, {"reason", opts.reason}};
  auto r = CallServer(*g, "POST", "/api/v1/sync", body);
  if (!r.ok()) return ReportError(*g, r.status());
  Status s;
  auto desired = LoadDesired(*g, "", &s);
  if (!desired) return ReportError(*g, s);
  // Wait (bounded) until the daemon reports the head revision, healthy.
  const auto deadline = SteadyNow() + std::chrono::seconds(120);
  json st;
  while (SteadyNow() < deadline) {
    auto got = CallServer(*g, "GET", "/api/v1/status");
    if (got.ok()) {
      st = *got;
      if (st.value("revision", "") == desired->revision.commit &&
          st.value("overall_status", "") == "healthy") {
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // Bounded above.
  }
  const bool ok = st.value("revision", "") == desired->revision.commit &&
                  st.value("overall_status", "") == "healthy";
  if (g->json) {
    std::cout << json{{"event", "summary"},
                      {"revision", desired->revision.commit},
                      {"result", ok ? "ok" : "failed"},
                      {"via", ServerUrl(*g)},
                      {"status", st}}
                     .dump()
              << "\n";
  } else {
    std::cout << "clusterd at " << ServerUrl(*g) << " "
              << (ok ? "converged to " : "has not converged to ") << desired->revision.Short()
              << " (" << st.value("overall_status", "unknown") << ")\n";
    for (const auto& reason : st.value("reasons", json::array())) {
      std::cout << "  - " << reason.get<std::string>() << "\n";
    }
  }
  return ok ? kExitOk : kExitError;
}

int RunApply(Globals* g, const PlanOptions& opts) {
  if (opts.override_window && opts.reason.empty()) {
    return ReportError(*g,
                       Status::Invalid("--override-window needs --reason TEXT (it is audited)"));
  }
  if (UseServer(*g) && opts.force_restart.empty()) return RunRemoteApply(g, opts);
  // SIGINT/SIGTERM: the commands in flight complete, readiness waits are cut
  // short (those steps end interrupted), no new step starts. Set up
  // before the session starts threads, so they inherit the blocked mask.
  std::mutex cancel_mu;
  controller::Reconciler* running = nullptr;
  bool cancelled = false;
  SignalThread signals([&](int) {
    std::lock_guard<std::mutex> l(cancel_mu);
    cancelled = true;
    if (running != nullptr) running->Cancel();
  });
  Session session(g);
  if (Status s = session.Open(opts.rev); !s.ok()) return ReportError(*g, s);
  const auto& desired = session.desired();
  const std::string actor = CurrentActor();

  // Steps a crashed run left without a result are recorded first.
  auto interrupted = session.audit().RecordInterrupted(actor);
  if (interrupted.ok() && !interrupted->empty() && !g->json) {
    std::cout << "recovered: " << interrupted->size()
              << " step(s) of an earlier run were interrupted; re-observing\n";
  }

  const bool new_revision =
      !session.last_applied() || session.last_applied()->commit != desired.revision.commit;
  controller::PassOptions po;
  po.trigger = opts.trigger   ? *opts.trigger
               : new_revision ? audit::Trigger::kRevision
                              : audit::Trigger::kDrift;
  po.dry_run = opts.dry_run;
  po.only_service = opts.service;
  po.only_machine = opts.machine;
  po.force_restart = opts.force_restart;
  po.hold = session.LeaseHolds();
  po.override_windows = opts.override_window;
  if (opts.override_window && !opts.dry_run) {
    audit::AuditRecord r;
    r.actor = actor;
    r.trigger = audit::Name(audit::Trigger::kManual);
    r.revision = desired.revision.Short();
    r.action = "window_override";
    r.phase = audit::Name(audit::Phase::kEvent);
    r.result = audit::Name(audit::Outcome::kOk);
    r.detail = "sync windows with manualOverride overridden: " + opts.reason;
    auto w = controller::AppendRecord(&session.audit(), nullptr, std::move(r));
    if (!w.ok()) return ReportError(*g, w.status());
  }

  controller::Reconciler reconciler(session.deps());
  auto obs = controller::ObserveAndRecord(session.deps(), desired, session.previous());
  Plan plan =
      reconcilers::MakePlan(controller::MakePlanInput(desired, session.previous(), obs, po));
  if (!g->json) {
    std::cout << "revision " << desired.revision.Short() << ": " << plan.steps.size() << " step(s)"
              << (opts.dry_run ? " (dry run: nothing is executed)" : "") << "\n";
    for (const auto& [m, why] : obs.unreachable) {
      std::cout << "machine " << m << " unreachable, skipped: " << why << "\n";
    }
  }
  if (!plan.refused.empty()) {
    return ReportError(*g, Status::Invalid("plan refused: " + plan.refused));
  }
  if (opts.dry_run && !g->json) std::cout << reconcilers::FormatPlan(plan);

  Progress progress(plan.steps.size(), g->json);
  po.progress = &progress;
  {
    std::lock_guard<std::mutex> l(cancel_mu);
    running = &reconciler;
    if (cancelled) reconciler.Cancel();
  }
  reconcilers::ExecutionReport report;
  if (!plan.steps.empty()) report = reconciler.Execute(desired, session.previous(), plan, obs, po);
  {
    std::lock_guard<std::mutex> l(cancel_mu);
    running = nullptr;
  }
  progress.Stop();
  if (!opts.dry_run) {
    Status managed = session.RecordManaged(obs, plan, report);
    if (!managed.ok()) std::cerr << "error: " << managed.ToString() << "\n";
  }

  const controller::RevisionResult pass = controller::ClassifyPass(plan, report);
  const bool converged = pass == controller::RevisionResult::kOk;
  const std::string result = opts.dry_run ? "dry-run" : controller::RevisionResultName(pass);
  Status recorded;
  if (!opts.dry_run && opts.force_restart.empty()) {
    controller::RevisionPassRecord rec;
    rec.revision = desired.revision;
    rec.result = pass;
    rec.actor = actor;
    rec.trigger = po.trigger;
    rec.summary = controller::PassSummary(plan, report);
    rec.now_ms = WallClockMs();
    rec.audit_event = new_revision;
    recorded = controller::RecordRevisionPass(&session.revisions(), &session.audit(), rec);
    if (!recorded.ok()) std::cerr << "error: " << recorded.ToString() << "\n";
  }
  if (g->json) {
    std::cout << json{{"event", "summary"},
                      {"revision", desired.revision.commit},
                      {"result", result},
                      {"steps", plan.steps.size()},
                      {"ok", report.Count(StepResult::kOk)},
                      {"failed", report.Count(StepResult::kFailed)},
                      {"skipped", report.Count(StepResult::kSkipped)},
                      {"interrupted", report.Count(StepResult::kInterrupted)},
                      {"blocked", plan.blocked},
                      {"elapsed_ms", progress.ElapsedMs()}}
                     .dump()
              << "\n";
  } else {
    std::printf("%s in %.1fs: %zu ok, %zu failed, %zu skipped, %zu interrupted, %zu blocked\n",
                converged ? (plan.steps.empty() ? "in sync" : "converged") : "NOT converged",
                progress.ElapsedMs() / 1000.0, report.Count(StepResult::kOk),
                report.Count(StepResult::kFailed), report.Count(StepResult::kSkipped),
                report.Count(StepResult::kInterrupted), plan.blocked.size());
    for (const auto& [k, why] : plan.blocked)
      std::printf("  blocked %s: %s\n", k.c_str(), why.c_str());
  }
  return converged && recorded.ok() ? kExitOk : kExitError;
}

void AddFilters(CLI::App* sub, PlanOptions* o) {
  sub->add_option("--service", o->service, "Only steps of this service")->type_name("S");
  sub->add_option("--machine", o->machine, "Only steps on this machine")->type_name("M");
}

}  // namespace

int ApplyRevision(Globals* g, const std::string& rev, audit::Trigger trigger) {
  PlanOptions o;
  o.rev = rev;
  o.trigger = trigger;
  return RunApply(g, o);
}

CommandFn SetupDiff(CLI::App* sub, Globals* g) {
  auto o = std::make_shared<PlanOptions>();
  sub->add_option("--rev", o->rev, "Revision to compare with. Default: head of --branch")
      ->type_name("REV");
  AddFilters(sub, o.get());
  sub->footer(
      "Observes every machine, then prints the ordered plan that would reach the\n"
      "revision: one line per step with why. Touches nothing. Exit 0 in sync,\n"
      "2 changes pending, 1 error.");
  return [g, o] { return RunDiff(g, *o); };
}

CommandFn SetupApply(CLI::App* sub, Globals* g) {
  auto o = std::make_shared<PlanOptions>();
  sub->add_option("--rev", o->rev, "Revision to apply. Default: head of --branch")
      ->type_name("REV");
  sub->add_flag("--dry-run", o->dry_run, "Print the plan and record nothing on the machines");
  sub->add_flag("--override-window", o->override_window,
                "Act now where only sync windows with manualOverride: true hold changes");
  sub->add_option("--reason", o->reason, "Why the windows are overridden (required; audited)");
  AddFilters(sub, o.get());
  sub->footer(
      "Observes, plans and executes: stops in reverse dependency order, then starts in\n"
      "dependency order, each start waiting for readiness. Every step is written to\n"
      "the audit log before (intent) and after (result) it runs. Ctrl-C finishes the\n"
      "steps in flight and starts no new one. Exit 0 converged, 1 failed or partial.");
  return [g, o] { return RunApply(g, *o); };
}

CommandFn SetupRestart(CLI::App* sub, Globals* g) {
  auto service = std::make_shared<std::string>();
  auto machine = std::make_shared<std::string>();
  sub->add_option("SERVICE", *service, "Service to restart")->required();
  sub->add_option("--machine", *machine, "Only this machine's instance")->type_name("M");
  sub->footer(
      "Rolling restart (rollout.maxUnavailable at a time, each waiting for readiness)\n"
      "without a desired-state change; audited with trigger manual and you as actor.");
  return [g, service, machine] {
    if (UseServer(*g)) {
      json body = {{"service", *service}};
      if (!machine->empty()) body["machine"] = *machine;
      auto r = CallServer(*g, "POST", "/api/v1/restart", body);
      if (!r.ok()) return ReportError(*g, r.status());
      std::cout << "clusterd at " << ServerUrl(*g) << " restarts " << *service
                << (machine->empty() ? "" : "@" + *machine) << " (rolling; see clusterctl audit)\n";
      return kExitOk;
    }
    PlanOptions o;
    o.service = *service;
    o.machine = *machine;
    o.trigger = audit::Trigger::kManual;
    Status s;
    auto desired = LoadDesired(*g, "", &s);
    if (!desired) return ReportError(*g, s);
    if (desired->FindService(*service) == nullptr) {
      return ReportError(*g, Status::NotFound("no service \"" + *service + "\" in revision " +
                                              desired->revision.Short()));
    }
    for (const auto& i : desired->instances) {
      if (i.service == *service && (machine->empty() || i.machine == *machine) &&
          i.desired == desired_state::RunState::kRunning) {
        o.force_restart.insert(i.Key());
      }
    }
    if (o.force_restart.empty()) {
      return ReportError(*g, Status::NotFound("no running instance of \"" + *service + "\"" +
                                              (machine->empty() ? "" : " on " + *machine)));
    }
    return RunApply(g, o);
  };
}

CommandFn SetupSuspend(CLI::App* sub, Globals* g) {
  sub->footer(
      "Pauses automatic reconciliation of the running clusterd (it keeps observing\n"
      "and reporting). Undo with clusterctl resume.");
  return [g] {
    auto r = CallServer(*g, "POST", "/api/v1/suspend");
    if (!r.ok()) return ReportError(*g, r.status());
    std::cout << "reconciliation suspended on " << ServerUrl(*g) << "\n";
    return kExitOk;
  };
}

CommandFn SetupResume(CLI::App* sub, Globals* g) {
  sub->footer("Resumes automatic reconciliation of the running clusterd.");
  return [g] {
    auto r = CallServer(*g, "POST", "/api/v1/resume");
    if (!r.ok()) return ReportError(*g, r.status());
    std::cout << "reconciliation resumed on " << ServerUrl(*g) << "\n";
    return kExitOk;
  };
}

}  // namespace clusterctl::cli

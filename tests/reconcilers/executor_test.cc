// The executor's step function, behind its interfaces: a recording driver
// and a fake prober under a real LiveView, with a fake clock (waiting
// advances it) or, where timing is the point, the real clock with bounded
// waits. The real drivers are tested on real machines in driver_test.cc and
// end to end in tests/cli/.
#include "reconcilers/executor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "desired-state/loader.h"
#include "tests/harness/process.h"

namespace clusterctl::reconcilers {
namespace {

using desired_state::DesiredState;
using std::chrono::milliseconds;
using std::chrono::seconds;

int64_t SteadyMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Machines(int n) {
  std::string yaml;
  for (int i = 0; i < n; ++i) {
    yaml += "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m" +
            std::to_string(i) + "}\nspec: {address: 10.0.1." + std::to_string(i + 1) + "}\n";
  }
  return yaml;
}

DesiredState LoadWith(const std::string& machines, const std::string& services, int max_parallel) {
  std::vector<desired_state::SourceFile> files = {
      {"c.yaml",
       "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: t}\nspec:\n"
       "  reconcile: {maxParallel: " +
           std::to_string(max_parallel) + "}\n"},
      {"m.yaml", machines},
      {"s.yaml", services}};
  auto r = desired_state::LoadFiles(files, {});
  EXPECT_TRUE(r.ok()) << r.errors.ToString();
  return *r.state;
}

DesiredState Load(const std::string& services, int max_parallel = 8) {
  return LoadWith(
      "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: a}\nspec: {address: "
      "10.0.0.1}\n---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: b}\nspec: "
      "{address: 10.0.0.2}\n",
      services, max_parallel);
}

const char* kChain = R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: db}
spec: {machines: [a], process: {command: [/bin/db]}, readiness: {tcp: {port: 1}, startTimeoutSeconds: 5}}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: app}
spec: {machines: [a, b], process: {command: [/bin/app]}, dependsOn: [{service: db}]}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: lb}
spec: {machines: [b], process: {command: [/bin/lb]}, dependsOn: [{service: app}]}
)";

// Records every action (and when it began, on the real clock); counts
// observations, which the executor must never need.
class RecordingDriver : public ServiceDriver {
 public:
  Result<MachineObservation> Observe(const desired_state::Machine&,
                                     const std::vector<const desired_state::Service*>&) override {
    ++observes;
    return Status::Internal("not used");
  }
  Result<std::string> Start(const desired_state::Machine& m, const desired_state::Service& s,
                            const std::string&) override {
    return Act("start", s.name + "@" + m.name);
  }
  Result<std::string> Stop(const desired_state::Machine& m,
                           const desired_state::Service& s) override {
    return Act("stop", s.name + "@" + m.name);
  }
  Result<std::string> Restart(const desired_state::Machine& m, const desired_state::Service& s,
                              const std::string&) override {
    return Act("restart", s.name + "@" + m.name);
  }

  std::vector<std::string> calls() {
    std::lock_guard<std::mutex> g(mu_);
    return calls_;
  }
  // When `key`'s last action began (steady ms); 0 if it never acted.
  int64_t acted_at(const std::string& key) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = acted_at_.find(key);
    return it == acted_at_.end() ? 0 : it->second;
  }
  std::set<std::string> fail;    // Keys whose action fails.
  std::function<void()> on_act;  // Runs inside every action, unlocked.
  // Runs inside every action with the instance key, unlocked.
  std::function<void(const std::string&)> on_act_key;
  std::atomic<int> observes{0};

 private:
  Result<std::string> Act(const std::string& verb, const std::string& key) {
    {
      std::lock_guard<std::mutex> g(mu_);
      calls_.push_back(verb + " " + key);
      acted_at_[key] = SteadyMs();
    }
    if (on_act) on_act();
    if (on_act_key) on_act_key(key);
    if (fail.count(key)) return Status::Internal(verb + " " + key + ": exit 127: not found");
    return std::string("started pid 1");
  }
  std::mutex mu_;
  std::vector<std::string> calls_;
  std::map<std::string, int64_t> acted_at_;
};

// Readiness by a rule; instances in `never_ready` never pass, everything else
// passes unless `ready` (when set) says otherwise. Counts probes per key.
class FakeProber : public Prober {
 public:
  ProbeResult Run(const desired_state::Service& s, const desired_state::Machine& m,
                  ProbeRole role) override {
    ProbeResult r;
    r.service = s.name;
    r.machine = m.name;
    r.role = role;
    r.kind = "tcp";
    const std::string key = r.Key();
    r.ok = !never_ready.count(key) && (!ready || ready(key));
    r.detail = r.ok ? "HTTP 200" : "HTTP 503, expected 200";
    std::lock_guard<std::mutex> g(mu_);
    ++probes_[key];
    if (r.ok && !first_ok_.count(key)) first_ok_[key] = SteadyMs();
    return r;
  }
  int probes(const std::string& key) {
    std::lock_guard<std::mutex> g(mu_);
    return probes_[key];
  }
  int total() {
    std::lock_guard<std::mutex> g(mu_);
    int n = 0;
    for (const auto& [k, c] : probes_) n += c;
    return n;
  }
  int64_t first_ok(const std::string& key) {
    std::lock_guard<std::mutex> g(mu_);
    return first_ok_.count(key) ? first_ok_[key] : 0;
  }
  std::set<std::string> never_ready;
  std::function<bool(const std::string&)> ready;  // Set before the run.

 private:
  std::mutex mu_;
  std::map<std::string, int> probes_;
  std::map<std::string, int64_t> first_ok_;
};

// A fake clock for the live view: waiting advances it by the time waited.
// Only for runs where at most one step waits at a time.
class FakeClock {
 public:
  LiveView::Options Options() {
    LiveView::Options o;
    o.clock = &clock_;
    o.wait_for = [this](std::condition_variable&, std::unique_lock<std::mutex>&, milliseconds d) {
      clock_.Advance(d.count());
    };
    return o;
  }

 private:
  clusterctl::FakeClock clock_;
};

// Thread-safe, as the executor requires of a listener: steps of different
// instances end on their worker threads while the next ones are announced.
// Read `events` after Execute() returned.
class RecordingListener : public StepListener {
 public:
  Status OnStepStart(const Step& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    events.push_back("intent " + std::string(ActionName(s.action)) + " " + s.Key());
    if (refuse.count(s.Key())) return Status::Exhausted("audit log: no space left on device");
    return Status::Ok();
  }
  void OnStepEnd(const Step& s, const StepOutcome& o) override {
    std::lock_guard<std::mutex> lock(mu_);
    events.push_back(std::string("result ") + StepResultName(o.result) + " " + s.Key() + ": " +
                     o.detail);
  }
  std::vector<std::string> events;
  std::set<std::string> refuse;

 private:
  std::mutex mu_;
};

// Every instance of `d` stopped, except those in `running` (in sync, and
// ready when their key is in `ready`).
ClusterObservation Observed(const DesiredState& d, const std::set<std::string>& running = {},
                            const std::set<std::string>& ready = {}) {
  ClusterObservation obs;
  for (const auto& i : d.instances) {
    ObservedInstance o;
    o.service = i.service;
    o.machine = i.machine;
    o.state = ObservedState::kStopped;
    if (running.count(o.Key())) {
      o.state = ObservedState::kRunning;
      o.spec_hash = i.spec_hash;
      obs.ready[o.Key()] = ready.count(o.Key()) > 0;
    }
    obs.instances.push_back(o);
  }
  return obs;
}

Plan PlanFor(const DesiredState& d, const ClusterObservation& obs,
             const std::string& only_service = "") {
  PlanInput in;
  in.desired = &d;
  in.observed = obs.instances;
  in.unreachable = obs.unreachable;
  in.ready = obs.ready;
  in.only_service = only_service;
  return MakePlan(in);
}

Plan ColdPlan(const DesiredState& d) { return PlanFor(d, Observed(d)); }

// An executor over a live view seeded from `obs`.
struct Rig {
  Rig(const DesiredState& d, const ClusterObservation& obs, LiveView::Options options)
      : live(&d, nullptr, &prober, std::move(options)), exec(&d, nullptr, &driver, &live) {
    live.Seed(obs);
  }
  RecordingDriver driver;
  FakeProber prober;
  LiveView live;
  RealExecutor exec;
};

TEST(ExecutorTest, RunsStepsInDependencyOrderAndAuditsEachOne) {
  DesiredState d = Load(kChain, /*max_parallel=*/1);
  FakeClock clock;
  Rig rig(d, Observed(d), clock.Options());
  RecordingListener listener;
  ExecutionReport r = rig.exec.Execute(ColdPlan(d), &listener);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(rig.driver.calls(),
            (std::vector<std::string>{"start db@a", "start app@a", "start app@b", "start lb@b"}));
  EXPECT_EQ(listener.events,
            (std::vector<std::string>{
                "intent start db@a", "result ok db@a: started pid 1; ready after 1 probe(s)",
                "intent start app@a", "result ok app@a: started pid 1; running",
                "intent start app@b", "result ok app@b: started pid 1; running",
                "intent start lb@b", "result ok lb@b: started pid 1; running"}));
  EXPECT_EQ(rig.driver.observes, 0);
}

TEST(ExecutorTest, AFailedStepSkipsItsDependents) {
  DesiredState d = Load(kChain);
  FakeClock clock;
  Rig rig(d, Observed(d), clock.Options());
  rig.driver.fail = {"app@b"};
  RecordingListener listener;
  ExecutionReport r = rig.exec.Execute(ColdPlan(d), &listener);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.Count(StepResult::kOk), 2u);
  EXPECT_EQ(r.Count(StepResult::kFailed), 1u);
  EXPECT_EQ(r.Count(StepResult::kSkipped), 1u);
  EXPECT_EQ(r.outcomes[3].detail, "skipped: dependency app@b failed");
  EXPECT_EQ(r.outcomes[2].detail, "start app@b: exit 127: not found");
  for (const auto& c : rig.driver.calls()) EXPECT_NE(c, "start lb@b");
  // The failure is in the live view.
  std::string detail;
  EXPECT_FALSE(rig.live.Holds("app@b", false, &detail));
  EXPECT_EQ(detail, "failed (start app@b: exit 127: not found)");
}

TEST(ExecutorTest, ReadinessThatNeverPassesFailsAfterStartTimeoutAndBlocksDependents) {
  DesiredState d = Load(kChain, /*max_parallel=*/1);
  FakeClock clock;
  Rig rig(d, Observed(d), clock.Options());
  rig.prober.never_ready = {"db@a"};
  ExecutionReport r = rig.exec.Execute(ColdPlan(d), nullptr);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kFailed);
  EXPECT_EQ(r.outcomes[0].detail,
            "started pid 1; not ready after 5s (last check: HTTP 503, expected 200)");
  EXPECT_EQ(r.outcomes[0].duration_ms(), 5000);
  EXPECT_EQ(r.outcomes[1].detail, "skipped: dependency db@a failed");
  EXPECT_EQ(r.outcomes[3].detail, "skipped: dependency app@a skipped");
  EXPECT_EQ(rig.driver.calls(), std::vector<std::string>{"start db@a"});
  // Probed every 25 ms at first, a quarter of the time waited later, and
  // every 200 ms from the second second on: 15 probes in the first 921 ms,
  // then 20 more up to 5 s.
  EXPECT_EQ(rig.prober.probes("db@a"), 35);
}

TEST(ExecutorTest, ARequirementThatIsNotMetBlocksTheStep) {
  DesiredState d = Load(kChain, /*max_parallel=*/1);  // One waiter on the fake clock.
  // db@a already runs (no step), but is not ready.
  ClusterObservation obs = Observed(d, {"db@a"});
  Plan plan = PlanFor(d, obs);
  ASSERT_EQ(plan.steps.size(), 3u);
  FakeClock clock;
  Rig rig(d, obs, clock.Options());
  rig.prober.never_ready = {"db@a"};
  ExecutionReport r = rig.exec.Execute(plan, nullptr);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kSkipped);
  EXPECT_EQ(r.outcomes[0].detail, "blocked: db@a not ready after 60s (HTTP 503, expected 200)");
  EXPECT_TRUE(rig.driver.calls().empty());
}

TEST(ExecutorTest, ARequirementOnAnUnknownInstanceBlocksAtOnceSayingWhy) {
  DesiredState d = Load(kChain);
  ClusterObservation obs = Observed(d);
  // Machine a could not be observed: db@a and app@a are unknown.
  std::erase_if(obs.instances, [](const ObservedInstance& i) { return i.machine == "a"; });
  obs.unreachable["a"] = "timeout after 10000 ms";
  Plan plan = PlanFor(d, obs);
  ASSERT_EQ(plan.steps.size(), 2u);  // app@b, lb@b
  FakeClock clock;
  Rig rig(d, obs, clock.Options());
  ExecutionReport r = rig.exec.Execute(plan, nullptr);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kSkipped);
  EXPECT_EQ(r.outcomes[0].detail,
            "blocked: db@a unknown (machine a unreachable: timeout after 10000 ms)");
  EXPECT_EQ(r.outcomes[0].duration_ms(), 0);
  EXPECT_EQ(r.outcomes[1].detail, "skipped: dependency app@b skipped");
  EXPECT_TRUE(rig.driver.calls().empty());
  EXPECT_EQ(rig.driver.observes, 0);
}

TEST(ExecutorTest, ARequirementOnTwentyInstancesStartedInThePlanIsALookup) {
  // svc2 on every machine requires every svc1 ready, svc3 every svc2
  // running: 2 x 20 x 20 requirement checks.
  const std::string yaml = R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: svc1}
spec: {machines: [all], process: {command: [/bin/x]}, readiness: {tcp: {port: 1}}}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: svc2}
spec: {machines: [all], process: {command: [/bin/x]}, dependsOn: [{service: svc1}]}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: svc3}
spec: {machines: [all], process: {command: [/bin/x]},
       dependsOn: [{service: svc2, condition: started}]}
)";
  std::string with_machines = yaml;
  std::string list;
  for (int i = 0; i < 20; ++i) list += (i ? ", m" : "m") + std::to_string(i);
  for (size_t at; (at = with_machines.find("[all]")) != std::string::npos;)
    with_machines.replace(at, 5, "[" + list + "]");
  DesiredState d = LoadWith(Machines(20), with_machines, /*max_parallel=*/8);
  Plan plan = ColdPlan(d);
  ASSERT_EQ(plan.steps.size(), 60u);
  size_t requirements = 0;
  for (const Step& st : plan.steps) requirements += st.requires_.size();
  ASSERT_EQ(requirements, 800u);
  Rig rig(d, Observed(d), LiveView::Options{});
  ExecutionReport r = rig.exec.Execute(plan, nullptr);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(rig.driver.calls().size(), 60u);
  EXPECT_EQ(rig.driver.observes, 0);
  // One probe per svc1 instance (its own readiness wait); the 400 readiness
  // requirements on them are lookups.
  EXPECT_EQ(rig.prober.total(), 20);
}

TEST(ExecutorTest, ADependentStartsAsSoonAsItsDependencyIsReady) {
  // s1 <- s2 <- s3 <- s4, each ready 200 ms after its start. Real clock.
  std::string yaml;
  for (int i = 1; i <= 4; ++i) {
    yaml += "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: s" +
            std::to_string(i) +
            "}\nspec: {machines: [a], process: {command: [/bin/x]}, readiness: {tcp: {port: 1}}" +
            (i > 1 ? ", dependsOn: [{service: s" + std::to_string(i - 1) + "}]" : "") + "}\n";
  }
  DesiredState d = Load(yaml);
  Rig rig(d, Observed(d), LiveView::Options{});
  rig.prober.ready = [&](const std::string& key) {
    const int64_t started = rig.driver.acted_at(key);
    return started != 0 && SteadyMs() >= started + 200;
  };
  ExecutionReport r = rig.exec.Execute(ColdPlan(d), nullptr);
  ASSERT_TRUE(r.ok());
  for (int i = 1; i <= 4; ++i) {
    const std::string key = "s" + std::to_string(i) + "@a";
    // Readiness is noticed within a quarter of the wait (+ scheduling).
    const int64_t noticed = rig.prober.first_ok(key) - (rig.driver.acted_at(key) + 200);
    EXPECT_GE(noticed, 0) << key;
    EXPECT_LE(noticed, 90) << key;
    if (i == 1) continue;
    // The dependent starts the moment the passing probe comes back.
    const std::string dep = "s" + std::to_string(i - 1) + "@a";
    const int64_t lag = rig.driver.acted_at(key) - rig.prober.first_ok(dep);
    EXPECT_GE(lag, 0) << key;
    EXPECT_LE(lag, 40) << key;
  }
}

TEST(ExecutorTest, AWaitingStepStartsTheMomentTheWatchReportsItsRequirementRunning) {
  // app needs db started; db is stopped and has no step (only app is
  // selected), so only an external event can unblock app.
  DesiredState d = Load(R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: db}
spec: {machines: [a], process: {command: [/bin/db]}}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: app}
spec: {machines: [b], process: {command: [/bin/app]},
       dependsOn: [{service: db, condition: started}]}
)");
  ClusterObservation obs = Observed(d);
  Plan plan = PlanFor(d, obs, "app");
  ASSERT_EQ(plan.steps.size(), 1u);
  LiveView::Options o;
  std::atomic<bool> waiting{false};
  o.wait_for = [&](std::condition_variable& cv, std::unique_lock<std::mutex>& l, milliseconds t) {
    waiting = true;  // mu_ is held until cv.wait_for releases it.
    cv.wait_for(l, t);
  };
  o.max_probe_interval = seconds(5);  // Polling could not explain a fast start.
  Rig rig(d, obs, o);
  ExecutionReport r;
  std::thread run([&] { r = rig.exec.Execute(plan, nullptr); });
  ASSERT_TRUE(testing::WaitFor([&] { return waiting.load(); }, seconds(10), milliseconds(1)));
  const int64_t updated = SteadyMs();
  rig.live.Update("db@a", ObservedState::kRunning, "pid 77");
  run.join();
  EXPECT_TRUE(r.ok()) << r.outcomes[0].detail;
  const int64_t lag = rig.driver.acted_at("app@b") - updated;
  EXPECT_GE(lag, 0);
  EXPECT_LE(lag, 40);
}

TEST(ExecutorTest, AStepWhoseIntentCannotBeRecordedNeverRuns) {
  DesiredState d = Load(kChain);
  FakeClock clock;
  Rig rig(d, Observed(d), clock.Options());
  RecordingListener listener;
  listener.refuse = {"db@a"};
  ExecutionReport r = rig.exec.Execute(ColdPlan(d), &listener);
  EXPECT_TRUE(rig.driver.calls().empty());
  EXPECT_EQ(r.outcomes[0].detail, "not run: audit log: no space left on device");
}

TEST(ExecutorTest, RunsIndependentStepsConcurrentlyUpToMaxParallel) {
  std::string yaml;
  for (int i = 0; i < 12; ++i) {
    yaml += "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: s" +
            std::to_string(i) + "}\nspec: {machines: [a], process: {command: [/bin/x]}}\n";
  }
  DesiredState d = Load(yaml, /*max_parallel=*/3);
  // Actions block until 3 are in flight at once; the highest concurrency
  // seen is recorded.
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0, max_seen = 0;
  bool released = false;
  FakeClock clock;
  Rig rig(d, Observed(d), clock.Options());
  rig.driver.on_act = [&] {
    std::unique_lock<std::mutex> l(mu);
    ++in_flight;
    max_seen = std::max(max_seen, in_flight);
    cv.notify_all();
    cv.wait_for(l, seconds(5), [&] { return in_flight >= 3 || released; });
    released = true;
    cv.notify_all();
    --in_flight;
  };
  ExecutionReport r = rig.exec.Execute(ColdPlan(d), nullptr);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(max_seen, 3);
  EXPECT_EQ(rig.driver.calls().size(), 12u);
}

TEST(ExecutorTest, CancelLetsRunningStepsFinishAndStartsNoNewOne) {
  DesiredState d = Load(kChain, 1);
  FakeClock clock;
  Rig rig(d, Observed(d), clock.Options());
  class CancelAfterFirst : public StepListener {
   public:
    Status OnStepStart(const Step&) override { return Status::Ok(); }
    void OnStepEnd(const Step&, const StepOutcome&) override {
      if (exec) exec->Cancel();
    }
    RealExecutor* exec = nullptr;
  } listener;
  listener.exec = &rig.exec;
  ExecutionReport r = rig.exec.Execute(ColdPlan(d), &listener);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kOk);
  for (size_t i = 1; i < r.outcomes.size(); ++i) {
    EXPECT_EQ(r.outcomes[i].result, StepResult::kInterrupted) << i;
  }
  EXPECT_EQ(rig.driver.calls(), std::vector<std::string>{"start db@a"});
}

TEST(ExecutorTest, CancelWakesAStepWaitingForARequirementAtOnce) {
  // db@a runs but never gets ready; app waits up to 60 s for it.
  DesiredState d = Load(kChain, /*max_parallel=*/1);
  ClusterObservation obs = Observed(d, {"db@a"});
  Plan plan = PlanFor(d, obs);
  Rig rig(d, obs, LiveView::Options{});
  rig.prober.never_ready = {"db@a"};
  ExecutionReport r;
  std::thread run([&] { r = rig.exec.Execute(plan, nullptr); });
  ASSERT_TRUE(testing::WaitFor([&] { return rig.prober.probes("db@a") >= 2; }, seconds(10),
                               milliseconds(1)));
  const int64_t cancelled = SteadyMs();
  rig.exec.Cancel();
  run.join();
  EXPECT_LE(SteadyMs() - cancelled, 100);
  ASSERT_EQ(r.outcomes.size(), 3u);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kInterrupted);
  EXPECT_EQ(r.outcomes[0].detail,
            "not started: the controller is shutting down (waiting for db@a: HTTP 503, expected "
            "200)");
  EXPECT_EQ(r.outcomes[2].result, StepResult::kInterrupted);
  EXPECT_TRUE(rig.driver.calls().empty());
}

TEST(ExecutorTest, CancelCutsAStartedStepsReadinessWaitShort) {
  // db@a started but is not ready for 60 s; SIGTERM comes while it starts.
  DesiredState d = LoadWith(
      "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: a}\nspec: {address: "
      "10.0.0.1}\n",
      R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: db}
spec: {machines: [a], process: {command: [/bin/db]}, readiness: {tcp: {port: 1}, startTimeoutSeconds: 60}}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: app}
spec: {machines: [a], process: {command: [/bin/app]}, dependsOn: [{service: db}]}
)",
      /*max_parallel=*/1);
  Rig rig(d, Observed(d), LiveView::Options{});
  rig.prober.never_ready = {"db@a"};
  rig.driver.on_act = [&] { rig.exec.Cancel(); };
  RecordingListener listener;
  const int64_t t0 = SteadyMs();
  ExecutionReport r = rig.exec.Execute(ColdPlan(d), &listener);
  EXPECT_LT(SteadyMs() - t0, 2000);
  ASSERT_EQ(r.outcomes.size(), 2u);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kInterrupted);
  EXPECT_EQ(r.outcomes[0].detail,
            "started pid 1; readiness wait cut short: the controller is shutting down (last "
            "check: running, readiness not probed yet)");
  EXPECT_EQ(r.outcomes[1].result, StepResult::kInterrupted);
  EXPECT_EQ(rig.driver.calls(), std::vector<std::string>{"start db@a"});
  // The audit log sees the intent and an honest result of the step in flight.
  EXPECT_EQ(listener.events,
            (std::vector<std::string>{
                "intent start db@a",
                "result interrupted db@a: started pid 1; readiness wait cut short: the "
                "controller is shutting down (last check: running, readiness not probed yet)",
                "result interrupted app@a: not started: the controller is shutting down"}));
}

TEST(ExecutorTest, CancelDuringAReadinessWaitEndsItAtOnceWithTheLastCheck) {
  DesiredState d = Load(kChain, /*max_parallel=*/1);
  Rig rig(d, Observed(d), LiveView::Options{});
  rig.prober.never_ready = {"db@a"};
  ExecutionReport r;
  std::thread run([&] { r = rig.exec.Execute(ColdPlan(d), nullptr); });
  ASSERT_TRUE(testing::WaitFor([&] { return rig.prober.probes("db@a") >= 2; }, seconds(10),
                               milliseconds(1)));
  const int64_t cancelled = SteadyMs();
  rig.exec.Cancel();
  run.join();
  EXPECT_LE(SteadyMs() - cancelled, 500);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kInterrupted);
  EXPECT_EQ(r.outcomes[0].detail,
            "started pid 1; readiness wait cut short: the controller is shutting down (last "
            "check: HTTP 503, expected 200)");
  for (size_t i = 1; i < r.outcomes.size(); ++i) {
    EXPECT_EQ(r.outcomes[i].result, StepResult::kInterrupted) << i;
  }
}

// Two independent services, one per machine, no readiness probes.
const char* kPair = R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: x}
spec: {machines: [a], process: {command: [/bin/x]}}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: y}
spec: {machines: [b], process: {command: [/bin/y]}}
)";

TEST(ExecutorTest, ASlowListenerDoesNotHoldBackTheCompletionOfAnotherStep) {
  // The audit result of x@a takes long (a slow fsync); meanwhile y@b must be
  // able to act, end and be recorded. x's listener call waits (bounded) for
  // y's result: under the scheduler's lock it would wait in vain.
  DesiredState d = Load(kPair, /*max_parallel=*/2);
  Rig rig(d, Observed(d), LiveView::Options{});
  std::mutex mu;
  std::condition_variable cv;
  bool x_ending = false, y_ended = false, y_in_time = false;
  rig.driver.on_act_key = [&](const std::string& key) {
    if (key != "y@b") return;
    std::unique_lock<std::mutex> l(mu);
    cv.wait_for(l, seconds(5), [&] { return x_ending; });  // y acts once x is being recorded.
  };
  class Listener : public StepListener {
   public:
    explicit Listener(std::function<void(const Step&)> on_end) : on_end_(std::move(on_end)) {}
    Status OnStepStart(const Step&) override { return Status::Ok(); }
    void OnStepEnd(const Step& s, const StepOutcome&) override { on_end_(s); }

   private:
    std::function<void(const Step&)> on_end_;
  } listener([&](const Step& s) {
    std::unique_lock<std::mutex> l(mu);
    if (s.Key() == "x@a") {
      x_ending = true;
      cv.notify_all();
      y_in_time = cv.wait_for(l, seconds(5), [&] { return y_ended; });
    } else {
      y_ended = true;
      cv.notify_all();
    }
  });
  const int64_t t0 = SteadyMs();
  ExecutionReport r = rig.exec.Execute(ColdPlan(d), &listener);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(y_in_time) << "y@b could not end while x@a's result was being recorded";
  EXPECT_LT(SteadyMs() - t0, 4000);
}

TEST(ExecutorTest, ASlowListenerDoesNotHoldBackTheStartOfAnotherStep) {
  // Three independent steps, two workers: z@a gets a worker when y@b ends.
  // y@b acts once x@a's result is being recorded, and x@a's listener call
  // waits (bounded) for z@a's intent: z must start meanwhile.
  DesiredState d = Load(std::string(kPair) + R"(---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: z}
spec: {machines: [a], process: {command: [/bin/z]}}
)",
                        /*max_parallel=*/2);
  Plan plan = ColdPlan(d);
  ASSERT_EQ(plan.steps.size(), 3u);
  ASSERT_EQ(plan.steps[2].Key(), "z@a");
  Rig rig(d, Observed(d), LiveView::Options{});
  std::mutex mu;
  std::condition_variable cv;
  bool x_ending = false, z_started = false, z_in_time = false;
  rig.driver.on_act_key = [&](const std::string& key) {
    if (key != "y@b") return;
    std::unique_lock<std::mutex> l(mu);
    cv.wait_for(l, seconds(5), [&] { return x_ending; });
  };
  class Listener : public StepListener {
   public:
    Listener(std::function<void(const Step&)> on_start, std::function<void(const Step&)> on_end)
        : on_start_(std::move(on_start)), on_end_(std::move(on_end)) {}
    Status OnStepStart(const Step& s) override {
      on_start_(s);
      return Status::Ok();
    }
    void OnStepEnd(const Step& s, const StepOutcome&) override { on_end_(s); }

   private:
    std::function<void(const Step&)> on_start_, on_end_;
  } listener(
      [&](const Step& s) {
        std::unique_lock<std::mutex> l(mu);
        if (s.Key() != "z@a") return;
        z_started = true;
        cv.notify_all();
      },
      [&](const Step& s) {
        std::unique_lock<std::mutex> l(mu);
        if (s.Key() != "x@a") return;
        x_ending = true;
        cv.notify_all();
        z_in_time = cv.wait_for(l, seconds(5), [&] { return z_started; });
      });
  const int64_t t0 = SteadyMs();
  ExecutionReport r = rig.exec.Execute(plan, &listener);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(z_in_time) << "z@a could not start while x@a's result was being recorded";
  EXPECT_LT(SteadyMs() - t0, 4000);
}

TEST(ExecutorTest, ADriverThatThrowsFailsItsStepNotTheProcess) {
  // As a driver that indexes an empty observation (instances.at(0)) would.
  DesiredState d = Load(kPair, /*max_parallel=*/2);
  Rig rig(d, Observed(d), LiveView::Options{});
  rig.driver.on_act_key = [](const std::string& key) {
    if (key == "x@a") (void)std::vector<ObservedInstance>{}.at(0);
  };
  RecordingListener listener;
  ExecutionReport r = rig.exec.Execute(ColdPlan(d), &listener);
  ASSERT_EQ(r.outcomes.size(), 2u);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kFailed);
  EXPECT_EQ(r.outcomes[0].detail.rfind("internal error running the step: ", 0), 0u)
      << r.outcomes[0].detail;
  EXPECT_EQ(r.outcomes[1].result, StepResult::kOk) << r.outcomes[1].detail;
  // Its audit result is written like any other.
  EXPECT_EQ(std::count(listener.events.begin(), listener.events.end(),
                       "result failed x@a: " + r.outcomes[0].detail),
            1);
}

TEST(ExecutorTest, AnInstanceMissingFromItsMachinesAnswerIsUnknownNotACrash) {
  // The driver answers for machine a without db@a: db@a is unknown, and the
  // start of app@a that requires it is skipped, saying why.
  DesiredState d = Load(kChain);
  class Driver : public RecordingDriver {
   public:
    Result<MachineObservation> Observe(
        const desired_state::Machine& m,
        const std::vector<const desired_state::Service*>& svcs) override {
      MachineObservation o;
      o.facts.machine = m.name;
      o.facts.reachable = true;
      for (const auto* s : svcs) {
        if (s->name == "db") continue;  // No instance in the answer.
        ObservedInstance i;
        i.service = s->name;
        i.machine = m.name;
        i.state = ObservedState::kStopped;
        o.instances.push_back(i);
      }
      return o;
    }
  } driver;
  FakeProber prober;
  ClusterObservation obs = ObserveCluster(d, nullptr, driver, &prober, {});
  Plan plan = PlanFor(d, obs);
  FakeClock clock;
  LiveView live(&d, nullptr, &prober, clock.Options());
  live.Seed(obs);
  RealExecutor exec(&d, nullptr, &driver, &live);
  ExecutionReport r = exec.Execute(plan, nullptr);
  ASSERT_EQ(plan.steps.size(), 3u);  // app@a, app@b, lb@b
  EXPECT_EQ(r.outcomes[0].result, StepResult::kSkipped);
  EXPECT_EQ(r.outcomes[0].detail, "blocked: db@a unknown (not observed)");
  EXPECT_TRUE(driver.calls().empty());
}

TEST(ExecutorTest, AFailedStopDoesNotSkipUnrelatedStarts) {
  DesiredState d = Load(kChain);
  Plan plan;
  plan.max_parallel = 2;
  Step stop;
  stop.id = 0;
  stop.action = Action::kStop;
  stop.service = "lb";
  stop.machine = "b";
  Step start;
  start.id = 1;
  start.action = Action::kStart;
  start.service = "db";
  start.machine = "a";
  start.after_any = {0};
  plan.steps = {stop, start};
  FakeClock clock;
  Rig rig(d, Observed(d, {"lb@b"}), clock.Options());
  rig.driver.fail = {"lb@b"};
  ExecutionReport r = rig.exec.Execute(plan, nullptr);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kFailed);
  EXPECT_EQ(r.outcomes[1].result, StepResult::kOk);
  EXPECT_EQ(rig.driver.calls(), (std::vector<std::string>{"stop lb@b", "start db@a"}));
}

TEST(DryRunExecutorTest, RecordsTheStepsAndTouchesNothing) {
  DesiredState d = Load(kChain);
  Plan plan = ColdPlan(d);
  DryRunExecutor dry;
  ExecutionReport r = dry.Execute(plan, nullptr);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(dry.recorded(),
            (std::vector<std::string>{"start db@a", "start app@a", "start app@b", "start lb@b"}));
}

}  // namespace
}  // namespace clusterctl::reconcilers

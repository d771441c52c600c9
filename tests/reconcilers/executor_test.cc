// The executor's step function, behind its interfaces: a recording driver
// and a scripted live status, with a fake clock (sleeping advances it). The
// real drivers are tested on real machines in driver_test.cc and end to end
// in tests/cli/.
#include "reconcilers/executor.h"

#include <gtest/gtest.h>

#include <mutex>
#include <set>

#include "desired-state/loader.h"

namespace clusterctl::reconcilers {
namespace {

using desired_state::DesiredState;

DesiredState Load(const std::string& services, int max_parallel = 8) {
  std::vector<desired_state::SourceFile> files = {
      {"c.yaml",
       "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: t}\nspec:\n"
       "  reconcile: {maxParallel: " +
           std::to_string(max_parallel) + "}\n"},
      {"m.yaml",
       "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: a}\nspec: {address: 10.0.0.1}\n"
       "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: b}\nspec: {address: "
       "10.0.0.2}\n"},
      {"s.yaml", services}};
  auto r = desired_state::LoadFiles(files, {});
  EXPECT_TRUE(r.ok()) << r.errors.ToString();
  return *r.state;
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

class RecordingDriver : public ServiceDriver {
 public:
  Result<MachineObservation> Observe(const desired_state::Machine&,
                                     const std::vector<const desired_state::Service*>&) override {
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
  std::set<std::string> fail;  // Keys whose action fails.

 private:
  Result<std::string> Act(const std::string& verb, const std::string& key) {
    std::lock_guard<std::mutex> g(mu_);
    calls_.push_back(verb + " " + key);
    if (fail.count(key)) return Status::Internal(verb + " " + key + ": exit 127: not found");
    return std::string("started pid 1");
  }
  std::mutex mu_;
  std::vector<std::string> calls_;
};

// Instances in `never_ready` never pass; everything else is ready.
class ScriptedLive : public LiveStatus {
 public:
  bool Check(const std::string& key, bool, std::string* detail) override {
    std::lock_guard<std::mutex> g(mu_);
    ++checks[key];
    if (never_ready.count(key)) {
      *detail = "HTTP 503, expected 200";
      return false;
    }
    *detail = "HTTP 200";
    return true;
  }
  std::set<std::string> never_ready;
  std::map<std::string, int> checks;

 private:
  std::mutex mu_;
};

class FakeClock {
 public:
  RealExecutor::Options Options() {
    RealExecutor::Options o;
    o.now_ms = [this] { return now_.load(); };
    o.sleep = [this](std::chrono::milliseconds d) { now_ += d.count(); };
    return o;
  }

 private:
  std::atomic<int64_t> now_{1000000};
};

class RecordingListener : public StepListener {
 public:
  Status OnStepStart(const Step& s) override {
    events.push_back("intent " + std::string(ActionName(s.action)) + " " + s.Key());
    if (refuse.count(s.Key())) return Status::Exhausted("audit log: no space left on device");
    return Status::Ok();
  }
  void OnStepEnd(const Step& s, const StepOutcome& o) override {
    events.push_back(std::string("result ") + StepResultName(o.result) + " " + s.Key() + ": " +
                     o.detail);
  }
  std::vector<std::string> events;
  std::set<std::string> refuse;
};

Plan ColdPlan(const DesiredState& d) {
  PlanInput in;
  in.desired = &d;
  for (const auto& i : d.instances) {
    ObservedInstance o;
    o.service = i.service;
    o.machine = i.machine;
    o.state = ObservedState::kStopped;
    in.observed.push_back(o);
  }
  return MakePlan(in);
}

TEST(ExecutorTest, RunsStepsInDependencyOrderAndAuditsEachOne) {
  DesiredState d = Load(kChain, /*max_parallel=*/1);
  Plan plan = ColdPlan(d);
  RecordingDriver driver;
  ScriptedLive live;
  FakeClock clock;
  RealExecutor exec(&d, nullptr, &driver, &live, clock.Options());
  RecordingListener listener;
  ExecutionReport r = exec.Execute(plan, &listener);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(driver.calls(),
            (std::vector<std::string>{"start db@a", "start app@a", "start app@b", "start lb@b"}));
  EXPECT_EQ(listener.events,
            (std::vector<std::string>{
                "intent start db@a", "result ok db@a: started pid 1; ready after 1 probe(s)",
                "intent start app@a", "result ok app@a: started pid 1; running",
                "intent start app@b", "result ok app@b: started pid 1; running",
                "intent start lb@b", "result ok lb@b: started pid 1; running"}));
}

TEST(ExecutorTest, AFailedStepSkipsItsDependents) {
  DesiredState d = Load(kChain);
  Plan plan = ColdPlan(d);
  RecordingDriver driver;
  driver.fail = {"app@b"};
  ScriptedLive live;
  FakeClock clock;
  RealExecutor exec(&d, nullptr, &driver, &live, clock.Options());
  RecordingListener listener;
  ExecutionReport r = exec.Execute(plan, &listener);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.Count(StepResult::kOk), 2u);
  EXPECT_EQ(r.Count(StepResult::kFailed), 1u);
  EXPECT_EQ(r.Count(StepResult::kSkipped), 1u);
  EXPECT_EQ(r.outcomes[3].detail, "skipped: dependency app@b failed");
  EXPECT_EQ(r.outcomes[2].detail, "start app@b: exit 127: not found");
  for (const auto& c : driver.calls()) EXPECT_NE(c, "start lb@b");
}

TEST(ExecutorTest, ReadinessThatNeverPassesFailsAfterStartTimeoutAndBlocksDependents) {
  DesiredState d = Load(kChain, /*max_parallel=*/1);
  Plan plan = ColdPlan(d);
  RecordingDriver driver;
  ScriptedLive live;
  live.never_ready = {"db@a"};
  FakeClock clock;
  RealExecutor exec(&d, nullptr, &driver, &live, clock.Options());
  ExecutionReport r = exec.Execute(plan, nullptr);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kFailed);
  EXPECT_EQ(r.outcomes[0].detail,
            "started pid 1; not ready after 5s (last check: HTTP 503, expected 200)");
  EXPECT_EQ(r.outcomes[0].duration_ms(), 5000);
  EXPECT_EQ(r.outcomes[1].detail, "skipped: dependency db@a failed");
  EXPECT_EQ(r.outcomes[3].detail, "skipped: dependency app@a skipped");
  EXPECT_EQ(driver.calls(), std::vector<std::string>{"start db@a"});
  // Polled every 200 ms for 5 s.
  EXPECT_EQ(live.checks["db@a"], 26);
}

TEST(ExecutorTest, ARequirementThatIsNotMetBlocksTheStep) {
  DesiredState d = Load(kChain, /*max_parallel=*/1);  // One sleeper on the fake clock.
  // db@a already runs (no step), but is not ready.
  PlanInput in;
  in.desired = &d;
  for (const auto& i : d.instances) {
    ObservedInstance o;
    o.service = i.service;
    o.machine = i.machine;
    o.state = ObservedState::kStopped;
    if (i.service == "db") o.state = ObservedState::kRunning, o.spec_hash = i.spec_hash;
    in.observed.push_back(o);
  }
  Plan plan = MakePlan(in);
  ASSERT_EQ(plan.steps.size(), 3u);
  RecordingDriver driver;
  ScriptedLive live;
  live.never_ready = {"db@a"};
  FakeClock clock;
  RealExecutor exec(&d, nullptr, &driver, &live, clock.Options());
  ExecutionReport r = exec.Execute(plan, nullptr);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kSkipped);
  EXPECT_EQ(r.outcomes[0].detail, "blocked: db@a not ready after 60s (HTTP 503, expected 200)");
  EXPECT_TRUE(driver.calls().empty());
}

TEST(ExecutorTest, AStepWhoseIntentCannotBeRecordedNeverRuns) {
  DesiredState d = Load(kChain);
  Plan plan = ColdPlan(d);
  RecordingDriver driver;
  ScriptedLive live;
  FakeClock clock;
  RealExecutor exec(&d, nullptr, &driver, &live, clock.Options());
  RecordingListener listener;
  listener.refuse = {"db@a"};
  ExecutionReport r = exec.Execute(plan, &listener);
  EXPECT_TRUE(driver.calls().empty());
  EXPECT_EQ(r.outcomes[0].detail, "not run: audit log: no space left on device");
}

TEST(ExecutorTest, RunsIndependentStepsConcurrentlyUpToMaxParallel) {
  std::string yaml;
  for (int i = 0; i < 12; ++i) {
    yaml += "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: s" +
            std::to_string(i) + "}\nspec: {machines: [a], process: {command: [/bin/x]}}\n";
  }
  DesiredState d = Load(yaml, /*max_parallel=*/3);
  Plan plan = ColdPlan(d);
  // A live status that blocks until 3 checks are in flight at once, then
  // records the highest concurrency it saw.
  class Gate : public LiveStatus {
   public:
    bool Check(const std::string&, bool, std::string*) override {
      std::unique_lock<std::mutex> l(mu);
      ++in_flight;
      max_seen = std::max(max_seen, in_flight);
      cv.notify_all();
      cv.wait_for(l, std::chrono::seconds(5), [&] { return in_flight >= 3 || released; });
      released = true;
      cv.notify_all();
      --in_flight;
      return true;
    }
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0, max_seen = 0;
    bool released = false;
  } gate;
  RecordingDriver driver;
  FakeClock clock;
  RealExecutor exec(&d, nullptr, &driver, &gate, clock.Options());
  ExecutionReport r = exec.Execute(plan, nullptr);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(gate.max_seen, 3);
  EXPECT_EQ(driver.calls().size(), 12u);
}

TEST(ExecutorTest, CancelLetsRunningStepsFinishAndStartsNoNewOne) {
  DesiredState d = Load(kChain, 1);
  Plan plan = ColdPlan(d);
  RecordingDriver driver;
  ScriptedLive live;
  FakeClock clock;
  RealExecutor* exec_ptr = nullptr;
  class CancelAfterFirst : public StepListener {
   public:
    Status OnStepStart(const Step&) override { return Status::Ok(); }
    void OnStepEnd(const Step&, const StepOutcome&) override {
      if (exec) exec->Cancel();
    }
    RealExecutor* exec = nullptr;
  } listener;
  RealExecutor exec(&d, nullptr, &driver, &live, clock.Options());
  exec_ptr = &exec;
  listener.exec = exec_ptr;
  ExecutionReport r = exec.Execute(plan, &listener);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kOk);
  for (size_t i = 1; i < r.outcomes.size(); ++i) {
    EXPECT_EQ(r.outcomes[i].result, StepResult::kInterrupted) << i;
  }
  EXPECT_EQ(driver.calls(), std::vector<std::string>{"start db@a"});
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
  RecordingDriver driver;
  driver.fail = {"lb@b"};
  ScriptedLive live;
  FakeClock clock;
  RealExecutor exec(&d, nullptr, &driver, &live, clock.Options());
  ExecutionReport r = exec.Execute(plan, nullptr);
  EXPECT_EQ(r.outcomes[0].result, StepResult::kFailed);
  EXPECT_EQ(r.outcomes[1].result, StepResult::kOk);
  EXPECT_EQ(driver.calls(), (std::vector<std::string>{"stop lb@b", "start db@a"}));
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

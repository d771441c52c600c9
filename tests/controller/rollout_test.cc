// The pure canary rollout policy (controller/rollout.h) and what it hands
// the planner: wave sizes, the order of machines, holds per wave, the
// analysis clock, the failure budget, pause/resume/abort, and the memory
// round trip. Values in, values out; time is an argument.
#include "controller/rollout.h"

#include <gtest/gtest.h>

#include "desired-state/loader.h"
#include "reconcilers/plan.h"

namespace clusterctl::controller {
namespace {

using desired_state::DesiredState;
using reconcilers::Action;
using reconcilers::ObservedInstance;
using reconcilers::ObservedState;
using reconcilers::PlanInput;

constexpr int64_t kT0 = 1'767'225'600'000;

// Six machines m1..m6 and a service web on all of them with `rollout`.
DesiredState Load(const std::string& rollout, const std::string& command = "v1",
                  const std::string& commit = "c100000000000000000000000000000000000000") {
  std::string machines;
  for (int i = 1; i <= 6; ++i) {
    machines += "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m" +
                std::to_string(i) + "}\nspec: {address: 10.0.0." + std::to_string(i) + "}\n";
  }
  std::vector<desired_state::SourceFile> files = {
      {"c.yaml", "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: t}\nspec: {}\n"},
      {"m.yaml", machines},
      {"s.yaml",
       "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
       "  machines: [m1, m2, m3, m4, m5, m6]\n"
       "  process: {command: [/bin/web, " +
           command +
           "]}\n"
           "  readiness: {tcp: {port: 80}}\n"
           "  rollout: " +
           rollout + "\n"}};
  auto r = desired_state::LoadFiles(files, {});
  EXPECT_TRUE(r.ok()) << r.errors.ToString();
  DesiredState d = *r.state;
  d.revision.commit = commit;
  return d;
}

// Instances of `d`: those in `updated` run d's spec, the rest `old`'s; all
// running; ready as `ready` says (absent: ready).
PlanInput Observe(const DesiredState& d, const DesiredState& old,
                  const std::set<std::string>& updated,
                  const std::map<std::string, bool>& ready = {}) {
  PlanInput in;
  in.desired = &d;
  in.now_ms = kT0;
  for (size_t i = 0; i < d.instances.size(); ++i) {
    ObservedInstance o;
    o.service = d.instances[i].service;
    o.machine = d.instances[i].machine;
    o.state = ObservedState::kRunning;
    o.spec_hash = updated.count(o.machine) ? d.instances[i].spec_hash : old.instances[i].spec_hash;
    in.observed.push_back(o);
    auto r = ready.find(o.machine);
    in.ready[o.Key()] = r == ready.end() || r->second;
  }
  return in;
}

std::vector<std::string> Restarts(const PlanInput& in) {
  std::vector<std::string> out;
  for (const auto& s : reconcilers::MakePlan(in).steps) {
    if (s.action == Action::kRestart) out.push_back(s.machine);
  }
  return out;
}

const char* kWaves = "{canary: {count: 1, analysisSeconds: 30}, waves: [50%, 100%]}";

TEST(RolloutTest, WaveSizesAreCumulativeRoundUpAndEndAtEveryInstance) {
  DesiredState d = Load(kWaves);
  EXPECT_EQ(WaveSizes(d.services[0], 6), (std::vector<int>{1, 3, 6}));
  EXPECT_EQ(WaveSizes(d.services[0], 3), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(WaveSizes(d.services[0], 1), (std::vector<int>{1}));
  DesiredState counts = Load("{canary: {percent: 20}, waves: [2, 2, 4]}");
  EXPECT_EQ(WaveSizes(counts.services[0], 6), (std::vector<int>{2, 4, 6}));
}

TEST(RolloutTest, CanaryMachinesGoFirstInTheirOrder) {
  DesiredState d = Load("{canary: {machines: [m5, m2]}}");
  EXPECT_EQ(RolloutOrder(d.services[0], {"m1", "m2", "m3", "m4", "m5", "m6"}),
            (std::vector<std::string>{"m5", "m2", "m1", "m3", "m4", "m6"}));
  EXPECT_EQ(WaveSizes(d.services[0], 6), (std::vector<int>{2, 6}));
}

TEST(RolloutTest, RejectsWavesWithoutCanaryAndUnknownCanaryMachines) {
  std::vector<desired_state::SourceFile> files = {
      {"c.yaml", "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: t}\nspec: {}\n"},
      {"m.yaml",
       "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m1}\nspec: {address: x}\n"},
      {"s.yaml",
       "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
       "  machines: [m1]\n  process: {command: [a]}\n  rollout: {waves: [1]}\n---\n"
       "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: api}\nspec:\n"
       "  machines: [m1]\n  process: {command: [a]}\n"
       "  rollout: {canary: {machines: [m9]}}\n"}};
  auto r = desired_state::LoadFiles(files, {});
  ASSERT_FALSE(r.ok());
  const std::string errors = r.errors.ToString();
  EXPECT_NE(errors.find("spec.rollout.waves needs spec.rollout.canary"), std::string::npos)
      << errors;
  EXPECT_NE(errors.find("canary machine \"m9\" of Service \"api\" is not one of its machines"),
            std::string::npos)
      << errors;
}

TEST(RolloutTest, WavesOpenOnlyAfterTheAnalysis) {
  DesiredState v1 = Load(kWaves, "v1", "a100000000000000000000000000000000000000");
  DesiredState v2 = Load(kWaves, "v2", "b200000000000000000000000000000000000000");
  RolloutBook book;

  // The new revision: a rollout starts, only the canary (m1) may change.
  PlanInput in = Observe(v2, v1, {});
  auto events = book.Update(v2, reconcilers::Diff(in), v1.revision.commit, false, kT0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, "rollout_started");
  EXPECT_EQ(events[0].detail,
            "rollout of web to b200000 started: 6 instance(s) in waves of 1, 3, 6; canary m1, "
            "budget 0 failed instance(s)");
  book.AddHolds(v2, reconcilers::Diff(in), &in.hold);
  EXPECT_EQ(Restarts(in), (std::vector<std::string>{"m1"}));
  EXPECT_EQ(in.hold.at("web@m4"),
            "rollout of web to b200000: wave 1 of 3 (canary), 0/1 ready; this instance is in "
            "wave 3");

  // The canary runs v2 and is ready: the analysis starts, nothing else moves.
  in = Observe(v2, v1, {"m1"});
  events = book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, "rollout_analysis");
  EXPECT_EQ(events[0].detail,
            "rollout of web to b200000: wave 1 of 3 (canary), 1/1 ready, analysis 30 s left");
  const Rollout& r = book.rollouts().at("web");
  EXPECT_EQ(r.Describe(kT0 + 15000),
            "rollout of web to b200000: wave 1 of 3 (canary), 1/1 ready, analysis 20 s left");
  EXPECT_EQ(book.NextDeadlineMs(), kT0 + 35000);
  book.AddHolds(v2, reconcilers::Diff(in), &in.hold);
  EXPECT_TRUE(Restarts(in).empty());

  // Past the analysis: wave 2 opens (m2, m3).
  in = Observe(v2, v1, {"m1"});
  events = book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 35000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, "rollout_wave");
  EXPECT_EQ(events[0].detail,
            "rollout of web to b200000: wave 2 of 3, 0/3 ready; 3/6 instance(s) may change");
  book.AddHolds(v2, reconcilers::Diff(in), &in.hold);
  EXPECT_EQ(Restarts(in), (std::vector<std::string>{"m2", "m3"}));

  // Wave 2 ready and analysed: wave 3; then done.
  in = Observe(v2, v1, {"m1", "m2", "m3"});
  EXPECT_EQ(book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 40000).size(), 1u);
  events = book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 70000);
  ASSERT_EQ(events.size(), 1u);
  book.AddHolds(v2, reconcilers::Diff(in), &in.hold);
  EXPECT_EQ(Restarts(in), (std::vector<std::string>{"m4", "m5", "m6"}));
  in = Observe(v2, v1, {"m1", "m2", "m3", "m4", "m5", "m6"});
  EXPECT_EQ(book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 71000).size(), 1u);
  events = book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 101000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, "rollout_succeeded");
  EXPECT_EQ(book.rollouts().at("web").phase, RolloutPhase::kSucceeded);
}

TEST(RolloutTest, AnInstanceNotReadyDuringTheAnalysisSpendsTheBudget) {
  DesiredState v1 = Load(kWaves, "v1", "a100000000000000000000000000000000000000");
  DesiredState v2 = Load(kWaves, "v2", "b200000000000000000000000000000000000000");
  RolloutBook book;
  PlanInput in = Observe(v2, v1, {});
  book.Update(v2, reconcilers::Diff(in), v1.revision.commit, false, kT0);
  in = Observe(v2, v1, {"m1"});
  book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 1000);  // Analysis starts.
  in = Observe(v2, v1, {"m1"}, {{"m1", false}});
  auto events = book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 2000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, "rollout_failed");
  EXPECT_EQ(events[0].detail,
            "rollout of web to b200000: failed at wave 1 of 3 (canary): 1 failed instance(s), "
            "budget 0 (m1: readiness failed during the analysis); rolled back to a100000");
  // Nothing else of the service moves until the rollback is in force.
  book.AddHolds(v2, reconcilers::Diff(in), &in.hold);
  EXPECT_TRUE(Restarts(in).empty());
  ASSERT_NE(book.PendingRollback(), nullptr);
  book.RollbackDone("web", "d400000000000000000000000000000000000000");
  EXPECT_EQ(book.PendingRollback(), nullptr);
  EXPECT_TRUE(book.IsAutoRollback("d400000000000000000000000000000000000000"));
  EXPECT_FALSE(book.IsAutoRollback(v2.revision.commit));
}

TEST(RolloutTest, TheBudgetToleratesMaxFailedInstances) {
  const char* rollout = "{canary: {count: 2, analysisSeconds: 0}, maxFailedInstances: 1}";
  DesiredState v1 = Load(rollout, "v1", "a100000000000000000000000000000000000000");
  DesiredState v2 = Load(rollout, "v2", "b200000000000000000000000000000000000000");
  RolloutBook book;
  PlanInput in = Observe(v2, v1, {});
  book.Update(v2, reconcilers::Diff(in), v1.revision.commit, false, kT0);
  book.RecordFailure(v2.revision.commit, "web", "m1", "restart failed: not ready within 5s");
  book.RecordFailure(v2.revision.commit, "web", "m5", "not in a wave yet: ignored");
  in = Observe(v2, v1, {"m2"});
  auto before = book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 1000);
  EXPECT_TRUE(before.empty() || before[0].action != "rollout_failed");
  book.RecordFailure(v2.revision.commit, "web", "m2", "liveness failed 3 times");
  auto events = book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 2000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, "rollout_failed");
}

TEST(RolloutTest, PauseHoldsEveryChangeAndResumeGoesOn) {
  DesiredState v1 = Load(kWaves, "v1", "a100000000000000000000000000000000000000");
  DesiredState v2 = Load(kWaves, "v2", "b200000000000000000000000000000000000000");
  RolloutBook book;
  PlanInput in = Observe(v2, v1, {});
  book.Update(v2, reconcilers::Diff(in), v1.revision.commit, false, kT0);
  ASSERT_TRUE(book.Pause("web", "alice@laptop").ok());
  EXPECT_EQ(book.Pause("web", "alice@laptop").status().message(), "web is paused already");
  book.AddHolds(v2, reconcilers::Diff(in), &in.hold);
  EXPECT_TRUE(Restarts(in).empty());
  EXPECT_EQ(in.hold.at("web@m1"),
            "rollout of web paused to b200000: wave 1 of 3 (canary), 0/1 ready; this instance is "
            "in wave 1");
  ASSERT_TRUE(book.Resume("web", "alice@laptop").ok());
  in = Observe(v2, v1, {});
  book.AddHolds(v2, reconcilers::Diff(in), &in.hold);
  EXPECT_EQ(Restarts(in), (std::vector<std::string>{"m1"}));
  EXPECT_EQ(book.Resume("api", "alice@laptop").status().code(), Code::kNotFound);
  ASSERT_TRUE(book.Abort("web", "alice@laptop", kT0 + 1).ok());
  EXPECT_EQ(book.rollouts().at("web").phase, RolloutPhase::kFailed);
  EXPECT_NE(book.PendingRollback(), nullptr);
}

TEST(RolloutTest, ARollbackRevisionIsNotRolledOutInWaves) {
  DesiredState v1 = Load(kWaves, "v1", "a100000000000000000000000000000000000000");
  DesiredState v2 = Load(kWaves, "v2", "b200000000000000000000000000000000000000");
  RolloutBook book;
  PlanInput in = Observe(v1, v2, {"m1"});
  EXPECT_TRUE(book.Update(v1, reconcilers::Diff(in), "", /*exempt=*/true, kT0).empty());
  book.AddHolds(v1, reconcilers::Diff(in), &in.hold);
  EXPECT_EQ(Restarts(in).size(), 5u);
}

TEST(RolloutTest, AServiceThatLeftLeavesNoRollout) {
  DesiredState v1 = Load(kWaves, "v1", "a100000000000000000000000000000000000000");
  DesiredState v2 = Load(kWaves, "v2", "b200000000000000000000000000000000000000");
  // v3: the same cluster without the service web.
  DesiredState v3 = v2;
  v3.services.clear();
  v3.instances.clear();
  v3.revision.commit = "c300000000000000000000000000000000000000";
  RolloutBook book;
  PlanInput in = Observe(v2, v1, {});
  book.Update(v2, reconcilers::Diff(in), v1.revision.commit, false, kT0);
  ASSERT_EQ(book.rollouts().count("web"), 1u);
  EXPECT_TRUE(book.Update(v3, {}, v2.revision.commit, false, kT0 + 1000).empty());
  EXPECT_TRUE(book.rollouts().empty());
  EXPECT_TRUE(book.ToJson().empty());

  // A failed rollout stays until its rollback is written, then goes too.
  in = Observe(v2, v1, {});
  book.Update(v2, reconcilers::Diff(in), v1.revision.commit, false, kT0 + 2000);
  in = Observe(v2, v1, {"m1"});
  book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 3000);  // Analysis starts.
  in = Observe(v2, v1, {"m1"}, {{"m1", false}});
  book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 4000);
  ASSERT_NE(book.PendingRollback(), nullptr);
  book.Update(v3, {}, v2.revision.commit, false, kT0 + 5000);
  ASSERT_NE(book.PendingRollback(), nullptr);
  book.RollbackDone("web", "d400000000000000000000000000000000000000");
  book.Update(v3, {}, v2.revision.commit, false, kT0 + 6000);
  EXPECT_TRUE(book.rollouts().empty());
}

TEST(RolloutTest, SurvivesTheMemoryRoundTrip) {
  DesiredState v1 = Load(kWaves, "v1", "a100000000000000000000000000000000000000");
  DesiredState v2 = Load(kWaves, "v2", "b200000000000000000000000000000000000000");
  RolloutBook book;
  PlanInput in = Observe(v2, v1, {});
  book.Update(v2, reconcilers::Diff(in), v1.revision.commit, false, kT0);
  in = Observe(v2, v1, {"m1"});
  book.Update(v2, reconcilers::Diff(in), "", false, kT0 + 1000);
  RolloutBook restored;
  bool ok = false;
  restored.Restore(book.ToJson(), &ok);
  ASSERT_TRUE(ok);
  EXPECT_EQ(restored.ToJson(), book.ToJson());
  EXPECT_EQ(restored.NextDeadlineMs(), kT0 + 31000);
  restored.Restore(nlohmann::json::array({{{"service", 1}}}), &ok);
  EXPECT_FALSE(ok);
  EXPECT_TRUE(restored.rollouts().empty());
}

}  // namespace
}  // namespace clusterctl::controller

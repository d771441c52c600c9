// The pure planner: whole recorded step sequences on the example cluster and
// on generated DAGs. No I/O, no fakes: values in, values out.
#include "reconcilers/plan.h"

#include <gtest/gtest.h>

#include <random>

#include "desired-state/dir_source.h"
#include "desired-state/loader.h"
#include "tests/harness/paths.h"

namespace clusterctl::reconcilers {
namespace {

using desired_state::DesiredState;
using desired_state::RunState;

DesiredState LoadExample(const std::string& profile = "production") {
  auto snap = desired_state::ReadDirectory(testing::SourceDir() + "/examples/langgraph");
  EXPECT_TRUE(snap.ok());
  for (auto& f : snap->files) {
    if (f.path == "cluster.yaml") {
      auto pos = f.content.find("profile: production");
      f.content.replace(pos, 19, "profile: " + profile);
    }
  }
  auto r = desired_state::Load(*snap);
  EXPECT_TRUE(r.ok()) << r.errors.ToString();
  return *r.state;
}

// `reconcile_extra` is added to the Cluster's reconcile settings.
DesiredState LoadYaml(const std::string& services, const std::string& reconcile_extra = "") {
  std::vector<desired_state::SourceFile> files = {
      {"c.yaml",
       "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: t}\nspec:\n"
       "  reconcile: {maxParallel: 4" +
           reconcile_extra + "}\n"},
      {"m.yaml",
       "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: a}\nspec: {address: 10.0.0.1}\n"
       "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: b}\nspec: {address: "
       "10.0.0.2}\n"
       "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: c}\nspec: {address: "
       "10.0.0.3}\n"},
      {"s.yaml", services}};
  auto r = desired_state::LoadFiles(files, {});
  EXPECT_TRUE(r.ok()) << r.errors.ToString();
  return *r.state;
}

// Every desired instance observed as `state` with the desired spec hash.
std::vector<ObservedInstance> ObserveAll(const DesiredState& d, ObservedState state,
                                         bool only_desired_running = false) {
  std::vector<ObservedInstance> out;
  for (const auto& i : d.instances) {
    ObservedInstance o;
    o.service = i.service;
    o.machine = i.machine;
    o.state = state;
    if (only_desired_running && i.desired != RunState::kRunning) o.state = ObservedState::kStopped;
    o.spec_hash = o.state == ObservedState::kRunning ? i.spec_hash : "";
    out.push_back(o);
  }
  return out;
}

// "L<level> <action> <key>" per step, in plan order.
std::vector<std::string> Steps(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& s : p.steps) {
    out.push_back("L" + std::to_string(s.level) + " " + ActionName(s.action) + " " + s.Key());
  }
  return out;
}

TEST(PlanTest, ColdStartOfTheExampleFollowsTheDependencyLevels) {
  DesiredState d = LoadExample();
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kStopped);
  Plan p = MakePlan(in);
  EXPECT_EQ(Steps(p), (std::vector<std::string>{
                          "L0 start redis-server@cpu-coordinator",
                          "L1 start embeddings-server@rp-embeddings",
                          "L1 start llama-server@jetson",
                          "L1 start ollama@jetson",
                          "L2 start tools-server@worker-tools",
                          "L3 start haproxy@cpu-coordinator",
                          "L3 start monitoring-server@worker-monitor",
                      }));
  EXPECT_EQ(p.steps[4].after, (std::vector<int>{0, 1, 3}));  // tools: redis, embeddings, ollama
  EXPECT_EQ(p.steps[0].reason, "should run but is stopped");
  ASSERT_EQ(p.steps[6].requires_.size(), 2u);  // monitoring: redis ready, tools started
  EXPECT_EQ(p.steps[6].requires_[1].key, "tools-server@worker-tools");
  EXPECT_FALSE(p.steps[6].requires_[1].ready);
  EXPECT_TRUE(p.steps[6].requires_[0].ready);
  EXPECT_EQ(p.steps[1].start_timeout_seconds, 90);
  EXPECT_EQ(p.max_parallel, 8);
}

TEST(PlanTest, AConvergedClusterIsInSync) {
  DesiredState d = LoadExample();
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kRunning);
  for (const auto& i : d.instances) in.ready[i.Key()] = true;
  Plan p = MakePlan(in);
  EXPECT_TRUE(p.InSync());
  EXPECT_EQ(FormatPlan(p), "no changes: every observed instance is in sync\n");
  for (const auto& x : p.diffs) EXPECT_EQ(x.reason, "in sync") << x.Key();
}

TEST(PlanTest, StoppingTheClusterStopsDependentsBeforeTheirDependencies) {
  DesiredState running = LoadExample();
  auto snap = desired_state::ReadDirectory(testing::SourceDir() + "/examples/langgraph");
  for (auto& f : snap->files) {
    if (f.path == "cluster.yaml") f.content += "  state: stopped\n";
  }
  DesiredState d = *desired_state::Load(*snap).state;
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(running, ObservedState::kRunning);
  Plan p = MakePlan(in);
  ASSERT_TRUE(p.refused.empty()) << p.refused;
  EXPECT_EQ(Steps(p), (std::vector<std::string>{
                          "L0 stop haproxy@cpu-coordinator",
                          "L0 stop monitoring-server@worker-monitor",
                          "L1 stop tools-server@worker-tools",
                          "L2 stop embeddings-server@rp-embeddings",
                          "L1 stop llama-server@jetson",
                          "L2 stop ollama@jetson",
                          "L3 stop redis-server@cpu-coordinator",
                      }));
  EXPECT_EQ(p.steps[0].reason, "the cluster has state: stopped");
  // redis stops after everything that depends on it.
  EXPECT_EQ(p.steps[6].after, (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST(PlanTest, ProfileSwitchDevelopmentToProductionStartsOnlyTheNewServices) {
  DesiredState dev = LoadExample("development");
  DesiredState prod = LoadExample("production");
  PlanInput in;
  in.desired = &prod;
  in.observed = ObserveAll(dev, ObservedState::kRunning, /*only_desired_running=*/true);
  for (const auto& i : dev.instances) in.ready[i.Key()] = i.desired == RunState::kRunning;
  Plan p = MakePlan(in);
  EXPECT_EQ(Steps(p), (std::vector<std::string>{
                          "L0 start llama-server@jetson",
                          "L1 start haproxy@cpu-coordinator",
                          "L0 start monitoring-server@worker-monitor",
                      }));
  EXPECT_EQ(p.steps[1].after, (std::vector<int>{0}));
}

TEST(PlanTest, ProfileSwitchProductionToDevelopmentStopsInReverseOrder) {
  DesiredState dev = LoadExample("development");
  DesiredState prod = LoadExample("production");
  PlanInput in;
  in.desired = &dev;
  in.observed = ObserveAll(prod, ObservedState::kRunning);
  Plan p = MakePlan(in);
  ASSERT_TRUE(p.refused.empty()) << p.refused;
  EXPECT_EQ(Steps(p), (std::vector<std::string>{
                          "L0 stop haproxy@cpu-coordinator",
                          "L0 stop monitoring-server@worker-monitor",
                          "L1 stop llama-server@jetson",
                      }));
  EXPECT_EQ(p.steps[2].reason, "not in profile \"development\"");
}

const char* kThreeReplicas = R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: web}
spec:
  machines: [a, b, c]
  process: {command: [/bin/web, --v2]}
  readiness: {http: {port: 80}}
  rollout: {maxUnavailable: MAXU}
)";

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  s.replace(s.find(from), from.size(), to);
  return s;
}

TEST(PlanTest, ASpecChangeIsARollingRestartOneAtATime) {
  DesiredState d = LoadYaml(Replace(kThreeReplicas, "MAXU", "1"));
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kRunning);
  for (auto& o : in.observed) o.spec_hash = "0ld0000";
  Plan p = MakePlan(in);
  EXPECT_EQ(Steps(p),
            (std::vector<std::string>{"L0 restart web@a", "L1 restart web@b", "L2 restart web@c"}));
  EXPECT_EQ(p.steps[0].reason,
            "spec changed (0ld0000 -> " + d.instances[0].spec_hash.substr(0, 7) + ")");
  EXPECT_TRUE(p.steps[1].wait_ready);
}

TEST(PlanTest, MaxUnavailableTwoRestartsInBatchesOfTwo) {
  DesiredState d = LoadYaml(Replace(kThreeReplicas, "MAXU", "2"));
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kRunning);
  for (auto& o : in.observed) o.spec_hash = "old";
  Plan p = MakePlan(in);
  EXPECT_EQ(Steps(p),
            (std::vector<std::string>{"L0 restart web@a", "L0 restart web@b", "L1 restart web@c"}));
  EXPECT_EQ(p.steps[2].after, (std::vector<int>{0, 1}));
}

TEST(PlanTest, OnlyProbesChangedMeansNoRestart) {
  DesiredState d = LoadYaml(Replace(kThreeReplicas, "MAXU", "1"));
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kRunning);
  for (const auto& i : d.instances) in.ready[i.Key()] = true;
  EXPECT_TRUE(MakePlan(in).InSync());
}

TEST(PlanTest, InstancesRemovedFromGitArePruned) {
  DesiredState previous = LoadYaml(R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: old}
spec: {machines: [a], process: {command: [/bin/old]}, stopTimeoutSeconds: 7}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: keep}
spec: {machines: [a, b, c], process: {command: [/bin/keep]}}
)");
  DesiredState d = LoadYaml(R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: keep}
spec: {machines: [a, b, c], process: {command: [/bin/keep]}}
)");
  PlanInput in;
  in.desired = &d;
  in.previous = &previous;
  in.observed = ObserveAll(previous, ObservedState::kRunning);
  for (const auto& i : previous.instances) in.ready[i.Key()] = true;
  Plan p = MakePlan(in);
  EXPECT_EQ(Steps(p), (std::vector<std::string>{"L0 stop old@a"}));
  EXPECT_EQ(p.steps[0].reason, "pruned: removed from the desired state");
  EXPECT_EQ(p.steps[0].stop_timeout_seconds, 7);
}

TEST(PlanTest, APrunedDependentStopsBeforeAPrunedDependency) {
  const std::string keep = R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: keep}
spec: {machines: [a, b, c], process: {command: [/bin/keep]}}
)";
  DesiredState previous = LoadYaml(keep + R"(---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: zdb}
spec: {machines: [a], process: {command: [/bin/db]}}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: app}
spec: {machines: [a], process: {command: [/bin/app]}, dependsOn: [{service: zdb}]}
)");
  DesiredState d = LoadYaml(keep);
  PlanInput in;
  in.desired = &d;
  in.previous = &previous;
  in.observed = ObserveAll(previous, ObservedState::kRunning);
  Plan p = MakePlan(in);
  EXPECT_EQ(Steps(p), (std::vector<std::string>{"L0 stop app@a", "L1 stop zdb@a"}));
  EXPECT_EQ(p.steps[1].after, std::vector<int>{0});
}

TEST(PlanTest, StartsComeAfterStopsWithoutDependingOnTheirSuccess) {
  DesiredState dev = LoadExample("development");
  DesiredState prod = LoadExample("production");
  PlanInput in;
  in.desired = &dev;
  in.observed = ObserveAll(prod, ObservedState::kRunning);
  for (auto& o : in.observed) {
    if (o.service == "ollama") o.state = ObservedState::kStopped;
  }
  Plan p = MakePlan(in);
  const Step& start = p.steps.back();
  EXPECT_EQ(start.Key(), "ollama@jetson");
  EXPECT_TRUE(start.after.empty());
  EXPECT_EQ(start.after_any, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(start.level, 2);
}

TEST(PlanTest, AnInstanceWithoutARecordedSpecHashIsAdoptedNotRestarted) {
  DesiredState d = LoadYaml(Replace(kThreeReplicas, "MAXU", "1"));
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kRunning);
  for (auto& o : in.observed) o.spec_hash.clear();
  for (const auto& i : d.instances) in.ready[i.Key()] = true;
  Plan p = MakePlan(in);
  EXPECT_TRUE(p.steps.empty());
  EXPECT_EQ(p.diffs[0].reason, "in sync (adopted: no recorded spec hash)");
}

TEST(PlanTest, AMassStopIsRefusedUnlessAllowed) {
  DesiredState previous = LoadExample();
  DesiredState d = LoadYaml(R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: keep}
spec: {machines: [a], process: {command: [/bin/keep]}}
)");
  PlanInput in;
  in.desired = &d;
  in.previous = &previous;
  in.observed = ObserveAll(previous, ObservedState::kRunning);
  Plan p = MakePlan(in);
  EXPECT_TRUE(p.steps.empty());
  EXPECT_EQ(p.refused,
            "the plan would stop 7 of 7 running instances; set spec.reconcile.allowMassStop: "
            "true in the Cluster (or spec.state: stopped) if that is intended");

  DesiredState allowed = LoadYaml(R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: keep}
spec: {machines: [a], process: {command: [/bin/keep]}}
)",
                                  ", allowMassStop: true");
  in.desired = &allowed;
  EXPECT_EQ(MakePlan(in).Count(Action::kStop), 7u);
}

TEST(PlanTest, AnUnreachableMachineGetsNoStepAndBlocksItsDependents) {
  DesiredState d = LoadExample();
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kStopped);
  // cpu-coordinator (redis, haproxy) cannot be observed.
  std::erase_if(in.observed,
                [](const ObservedInstance& o) { return o.machine == "cpu-coordinator"; });
  in.unreachable["cpu-coordinator"] = "timeout after 5000 ms";
  Plan p = MakePlan(in);
  for (const auto& s : p.steps) EXPECT_NE(s.machine, "cpu-coordinator") << s.Key();
  EXPECT_EQ(p.blocked.at("redis-server@cpu-coordinator"),
            "machine cpu-coordinator unreachable: timeout after 5000 ms");
  // ollama still gets a step, gated at run time on redis readiness.
  const Step* ollama = nullptr;
  for (const auto& s : p.steps) {
    if (s.service == "ollama") ollama = &s;
  }
  ASSERT_NE(ollama, nullptr);
  ASSERT_EQ(ollama->requires_.size(), 1u);
  EXPECT_EQ(ollama->requires_[0].key, "redis-server@cpu-coordinator");
}

TEST(PlanTest, AnInstanceInBackoffWaitsForItsRetryTime) {
  DesiredState d = LoadExample();
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kRunning);
  for (const auto& i : d.instances) in.ready[i.Key()] = true;
  for (auto& o : in.observed) {
    if (o.service == "ollama") o.state = ObservedState::kFailed, o.detail = "exited";
  }
  in.now_ms = 100000;
  in.backoff["ollama@jetson"] = {3, 104000};
  Plan p = MakePlan(in);
  EXPECT_TRUE(p.steps.empty());
  EXPECT_EQ(p.blocked.at("ollama@jetson"),
            "should run but failed (exited); backoff after 3 failure(s), retry in 4s");
  in.now_ms = 104000;
  EXPECT_EQ(Steps(MakePlan(in)), std::vector<std::string>{"L0 start ollama@jetson"});
}

TEST(PlanTest, DependentsOfAnInstanceInBackoffAreBlockedNotLeftWaiting) {
  DesiredState d = LoadExample();
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kStopped);  // A cold start...
  in.now_ms = 100000;
  in.backoff["redis-server@cpu-coordinator"] = {2, 102000};  // ...with redis held back.
  Plan p = MakePlan(in);
  // Nothing that needs redis, directly or through another service, is
  // planned: it could only wait out its start timeout in this pass.
  std::set<std::string> planned;
  for (const auto& s : p.steps) planned.insert(s.service);
  EXPECT_FALSE(planned.count("redis-server"));
  for (const auto& s : p.steps) {
    const auto* svc = d.FindService(s.service);
    ASSERT_NE(svc, nullptr);
    for (const auto& dep : svc->depends_on) {
      for (const auto& i : d.instances) {
        if (i.service == dep.service) {
          EXPECT_FALSE(p.blocked.count(i.Key())) << s.Key();
        }
      }
    }
  }
  ASSERT_FALSE(p.blocked.empty());
  for (const auto& [key, why] : p.blocked) {
    if (key == "redis-server@cpu-coordinator") continue;
    EXPECT_NE(why.find("(in crash-loop backoff)"), std::string::npos) << key << ": " << why;
  }
  // When the backoff ends, everything is planned, dependencies first.
  in.now_ms = 102000;
  Plan later = MakePlan(in);
  EXPECT_TRUE(later.blocked.empty());
  EXPECT_EQ(later.steps.size(), p.steps.size() + p.blocked.size());
}

TEST(PlanTest, AHeldInstanceGetsNoStepWhateverItsDriftAndItsDependentsWait) {
  DesiredState d = LoadExample();
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kStopped);
  in.now_ms = 100000;
  const std::string lease = "drift lease 1 by bob@h until 10:00: moving the RDB file";
  in.hold["redis-server@cpu-coordinator"] = lease;
  Plan p = MakePlan(in);
  for (const auto& s : p.steps) EXPECT_NE(s.service, "redis-server");
  ASSERT_TRUE(p.blocked.count("redis-server@cpu-coordinator"));
  EXPECT_NE(p.blocked.at("redis-server@cpu-coordinator").find("not acted on: " + lease),
            std::string::npos);
  // Its dependents wait, naming the lease.
  bool waits = false;
  for (const auto& [key, why] : p.blocked) {
    waits |= why.find("waits for redis-server@cpu-coordinator (" + lease + ")") == 0;
  }
  EXPECT_TRUE(waits);
  // A held instance running another spec is not restarted either.
  in.observed = ObserveAll(d, ObservedState::kRunning);
  for (auto& o : in.observed) {
    if (o.Key() == "redis-server@cpu-coordinator") o.spec_hash = "changed by hand";
  }
  Plan changed = MakePlan(in);
  for (const auto& s : changed.steps) EXPECT_NE(s.Key(), "redis-server@cpu-coordinator");
  EXPECT_TRUE(changed.blocked.count("redis-server@cpu-coordinator"));
}

TEST(PlanTest, EveryDiffAndStepCarriesATypedCause) {
  DesiredState d = LoadExample();
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kRunning);
  for (const auto& i : d.instances) in.ready[i.Key()] = true;
  for (auto& o : in.observed) {
    if (o.service == "ollama") o.state = ObservedState::kFailed, o.detail = "exited";
    if (o.service == "tools-server") o.state = ObservedState::kStopped;
  }
  in.force_restart.insert("redis-server@cpu-coordinator");
  Plan p = MakePlan(in);
  std::map<std::string, Cause> causes;
  for (const auto& x : p.diffs) causes[x.Key()] = x.cause;
  EXPECT_EQ(Cause::kFailed, causes.at("ollama@jetson"));
  EXPECT_EQ(Cause::kRestartRequested, causes.at("redis-server@cpu-coordinator"));
  for (const auto& x : p.diffs) {
    if (x.service == "tools-server") {
      EXPECT_EQ(Cause::kStopped, x.cause) << x.Key();
    }
    if (x.action == Action::kNone) {
      EXPECT_EQ(Cause::kInSync, x.cause) << x.Key();
    }
  }
  // A step carries the cause of its instance's diff; the reason text is for
  // people and may change wording without changing policy.
  ASSERT_FALSE(p.steps.empty());
  for (const auto& st : p.steps) EXPECT_EQ(causes.at(st.Key()), st.cause) << st.Key();
  EXPECT_STREQ("failed", CauseName(Cause::kFailed));
}

TEST(PlanTest, ServiceAndMachineFiltersRestrictSteps) {
  DesiredState d = LoadExample();
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kStopped);
  in.only_service = "ollama";
  EXPECT_EQ(Steps(MakePlan(in)), std::vector<std::string>{"L0 start ollama@jetson"});
  in.only_service.clear();
  in.only_machine = "jetson";
  EXPECT_EQ(Steps(MakePlan(in)),
            (std::vector<std::string>{"L0 start llama-server@jetson", "L0 start ollama@jetson"}));
}

TEST(PlanTest, FormatsAReadablePlanWithWhy) {
  DesiredState d = LoadYaml(Replace(kThreeReplicas, "MAXU", "1"));
  PlanInput in;
  in.desired = &d;
  in.observed = ObserveAll(d, ObservedState::kStopped);
  in.observed[1].state = ObservedState::kFailed;
  in.observed[1].detail = "exited";
  EXPECT_EQ(FormatPlan(MakePlan(in)),
            "level 0:\n"
            "  1. start web@a  # should run but is stopped\n"
            "  2. start web@b  # should run but failed (exited)\n"
            "  3. start web@c  # should run but is stopped\n");
}

// Generated layered DAGs: every start comes after the steps of its
// dependencies, every stop after the stops of its dependents.
TEST(PlanTest, GeneratedDagsRespectDependencyOrderBothWays) {
  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::string yaml;
    const int n = 30;
    for (int i = 0; i < n; ++i) {
      yaml += "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: s" +
              std::to_string(i) + "}\nspec:\n  machines: [" + std::string(1, "abc"[i % 3]) +
              "]\n  process: {command: [/bin/s" + std::to_string(i) + "]}\n";
      std::vector<int> deps;
      for (int j = 0; j < i; ++j) {
        if (rng() % 6 == 0) deps.push_back(j);
      }
      if (!deps.empty()) {
        yaml += "  dependsOn:\n";
        for (int j : deps) yaml += "    - {service: s" + std::to_string(j) + "}\n";
      }
    }
    DesiredState d = LoadYaml(yaml, ", allowMassStop: true");
    for (bool starting : {true, false}) {
      DesiredState stopped_state = d;
      if (!starting) {
        stopped_state.cluster.state = RunState::kStopped;
        for (auto& i : stopped_state.instances) i.desired = RunState::kStopped;
      }
      PlanInput in;
      in.desired = &stopped_state;
      in.observed = ObserveAll(d, starting ? ObservedState::kStopped : ObservedState::kRunning);
      Plan p = MakePlan(in);
      ASSERT_EQ(p.steps.size(), static_cast<size_t>(n));
      std::map<std::string, int> index;
      for (const auto& s : p.steps) index[s.service] = s.id;
      for (const auto& svc : d.services) {
        for (const auto& dep : svc.depends_on) {
          const Step& mine = p.steps[index[svc.name]];
          const Step& theirs = p.steps[index[dep.service]];
          const Step& first = starting ? theirs : mine;
          const Step& second = starting ? mine : theirs;
          EXPECT_LT(first.id, second.id);
          EXPECT_NE(std::find(second.after.begin(), second.after.end(), first.id),
                    second.after.end())
              << second.Key() << " must wait for " << first.Key();
          EXPECT_GT(second.level, first.level);
        }
      }
    }
  }
}

}  // namespace
}  // namespace clusterctl::reconcilers

#include "reconcilers/health.h"

#include <gtest/gtest.h>

#include "desired-state/dir_source.h"
#include "desired-state/loader.h"
#include "tests/harness/paths.h"

namespace clusterctl::reconcilers {
namespace {

class HealthTest : public ::testing::Test {
 protected:
  HealthTest() {
    auto snap = desired_state::ReadDirectory(testing::SourceDir() + "/examples/langgraph");
    desired_ = *desired_state::Load(*snap).state;
    in_.desired = &desired_;
    for (const auto& i : desired_.instances) {
      ObservedInstance o;
      o.service = i.service;
      o.machine = i.machine;
      o.state = ObservedState::kRunning;
      o.spec_hash = i.spec_hash;
      in_.observed.push_back(o);
      in_.ready[i.Key()] = true;
    }
  }
  HealthReport Assess() { return AssessHealth(desired_, Diff(in_), in_.unreachable); }

  desired_state::DesiredState desired_;
  PlanInput in_;
};

TEST_F(HealthTest, EverythingReadyIsHealthy) {
  HealthReport r = Assess();
  EXPECT_EQ(r.overall, Health::kHealthy);
  EXPECT_TRUE(r.reasons.empty());
}

TEST_F(HealthTest, ANonCriticalServiceNotReadyIsDegraded) {
  in_.ready["llama-server@jetson"] = false;
  HealthReport r = Assess();
  EXPECT_EQ(r.overall, Health::kDegraded);
  EXPECT_EQ(r.reasons, std::vector<std::string>{"llama-server@jetson is not ready"});
}

TEST_F(HealthTest, ACriticalServiceWithoutAReadyInstanceIsUnhealthy) {
  for (auto& o : in_.observed) {
    if (o.service == "ollama") o.state = ObservedState::kFailed;
  }
  HealthReport r = Assess();
  EXPECT_EQ(r.overall, Health::kUnhealthy);
  EXPECT_EQ(r.reasons, (std::vector<std::string>{"critical service ollama has no ready instance",
                                                 "ollama@jetson is failed"}));
}

TEST_F(HealthTest, AnUnreachableMachineIsAtLeastDegraded) {
  std::erase_if(in_.observed,
                [](const ObservedInstance& o) { return o.machine == "worker-monitor"; });
  in_.unreachable["worker-monitor"] = "timeout";
  HealthReport r = Assess();
  EXPECT_EQ(r.overall, Health::kDegraded);
  EXPECT_EQ(r.reasons.back(), "machine worker-monitor unreachable: timeout");
}

}  // namespace
}  // namespace clusterctl::reconcilers

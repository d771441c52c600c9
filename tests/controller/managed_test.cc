// The record of what the controller started (controller/managed.h): how a
// pass updates it, the prune basis built from it, and its round trip through
// a real store.
#include "controller/managed.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "store/store.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::controller {
namespace {

using desired_state::DesiredState;
using reconcilers::ObservedState;

DesiredState Rev(const std::string& commit, int64_t time,
                 const std::vector<std::pair<std::string, std::string>>& instances) {
  DesiredState d;
  d.revision.commit = commit;
  d.revision.time = time;
  for (const auto& [svc, m] : instances) {
    desired_state::Instance i;
    i.service = svc;
    i.machine = m;
    d.instances.push_back(i);
    if (!d.FindService(svc)) {
      desired_state::Service s;
      s.name = svc;
      s.stop_timeout_seconds = static_cast<int>(time);  // Tells revisions apart.
      d.services.push_back(s);
      d.service_order.push_back(svc);
    }
    if (!d.FindMachine(m)) {
      desired_state::Machine mm;
      mm.name = m;
      d.machines.push_back(mm);
    }
  }
  // Find* look names up by binary search, as a loaded revision is sorted.
  auto by_name = [](const auto& a, const auto& b) { return a.name < b.name; };
  std::sort(d.services.begin(), d.services.end(), by_name);
  std::sort(d.machines.begin(), d.machines.end(), by_name);
  return d;
}

reconcilers::ObservedInstance Seen(const std::string& svc, const std::string& m, ObservedState s) {
  reconcilers::ObservedInstance o;
  o.service = svc;
  o.machine = m;
  o.state = s;
  return o;
}

TEST(NextManaged, DesiredInstancesCarryTheCommitInForce) {
  DesiredState r2 = Rev("c2", 2, {{"api", "m1"}, {"db", "m1"}});
  ManagedInstances m = NextManaged({{"api@m1", "c1"}}, r2, {}, {}, {});
  EXPECT_EQ(m, (ManagedInstances{{"api@m1", "c2"}, {"db@m1", "c2"}}));
}

TEST(NextManaged, AnInstanceNotDesiredStaysUntilSeenStoppedOrStopped) {
  DesiredState r3 = Rev("c3", 3, {{"api", "m1"}});
  const ManagedInstances before = {
      {"api@m1", "c2"}, {"old@m1", "c1"}, {"gone@m2", "c2"}, {"far@m3", "c1"}};
  reconcilers::ClusterObservation obs;
  obs.instances = {Seen("old", "m1", ObservedState::kRunning),
                   Seen("gone", "m2", ObservedState::kStopped)};  // far@m3: unreachable.
  ManagedInstances m = NextManaged(before, r3, obs, {}, {});
  EXPECT_EQ(m, (ManagedInstances{{"api@m1", "c3"}, {"old@m1", "c1"}, {"far@m3", "c1"}}));

  reconcilers::Plan plan;
  reconcilers::Step stop;
  stop.id = 0;
  stop.action = reconcilers::Action::kStop;
  stop.service = "old";
  stop.machine = "m1";
  plan.steps = {stop};
  reconcilers::ExecutionReport failed;
  failed.outcomes = {{0, reconcilers::StepResult::kFailed, "", 0, 0}};
  EXPECT_TRUE(NextManaged(m, r3, obs, plan, failed).count("old@m1"));  // Still to prune.
  reconcilers::ExecutionReport ok;
  ok.outcomes = {{0, reconcilers::StepResult::kOk, "", 0, 0}};
  EXPECT_FALSE(NextManaged(m, r3, obs, plan, ok).count("old@m1"));
}

TEST(PruneBasis, HoldsEveryManagedInstanceNotDesiredWithTheDefinitionThatStartedIt) {
  DesiredState r1 = Rev("c1", 1, {{"old", "m9"}, {"api", "m1"}});
  DesiredState r2 = Rev("c2", 2, {{"api", "m1"}, {"api", "m2"}});
  DesiredState r3 = Rev("c3", 3, {{"api", "m1"}});
  const ManagedInstances managed = {
      {"old@m9", "c1"}, {"api@m2", "c2"}, {"api@m1", "c3"}, {"lost@m1", "c0"}};
  std::map<std::string, const DesiredState*> revs = {{"c1", &r1}, {"c2", &r2}, {"c3", &r3}};
  std::vector<std::string> unreadable;
  DesiredState basis = PruneBasis(
      r3, managed, [&](const std::string& c) { return revs.count(c) ? revs[c] : nullptr; },
      &unreadable);
  ASSERT_EQ(basis.instances.size(), 2u);
  EXPECT_EQ(basis.instances[0].Key(), "api@m2");
  EXPECT_EQ(basis.instances[1].Key(), "old@m9");
  ASSERT_NE(basis.FindService("old"), nullptr);
  EXPECT_EQ(basis.FindService("old")->stop_timeout_seconds, 1);  // From c1.
  EXPECT_EQ(basis.FindService("api")->stop_timeout_seconds, 2);  // From c2.
  EXPECT_NE(basis.FindMachine("m9"), nullptr);
  EXPECT_EQ(basis.FindMachine("m1"), nullptr);  // No instance to prune there.
  EXPECT_EQ(unreadable, (std::vector<std::string>{"lost@m1 (revision c0)"}));
}

TEST(PruneBasisLoader, ReadsEachRevisionOnceAndReturnsNullWhenNothingIsToPrune) {
  DesiredState r1 = Rev("c1", 1, {{"old", "m1"}});
  DesiredState r2 = Rev("c2", 2, {{"api", "m1"}});
  int reads = 0;
  PruneBasisLoader loader([&](const std::string& c) -> Result<DesiredState> {
    ++reads;
    if (c == "c1") return r1;
    return Status::NotFound("no commit " + c);
  });
  std::vector<std::string> unreadable;
  auto basis = loader.Build(r2, {{"old@m1", "c1"}, {"api@m1", "c2"}}, &unreadable);
  ASSERT_NE(basis, nullptr);
  EXPECT_EQ(basis->instances.size(), 1u);
  basis = loader.Build(r2, {{"old@m1", "c1"}, {"api@m1", "c2"}}, &unreadable);
  EXPECT_EQ(reads, 1);
  EXPECT_TRUE(unreadable.empty());
  EXPECT_EQ(loader.Build(r2, {{"api@m1", "c2"}}, &unreadable), nullptr);
}

TEST(ManagedRecord, RoundTripsThroughTheStoreAndSurvivesAReopen) {
  testing::TempDir dir;
  {
    auto store = store::Store::OpenPrimary(dir.path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store::StateStore state(store->get());
    bool found = true;
    auto none = LoadManaged(state, &found);
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(found);
    EXPECT_TRUE(none->empty());
    ASSERT_TRUE(SaveManaged(&state, {{"api@m1", "c2"}, {"old@m9", "c1"}}).ok());
  }
  auto store = store::Store::OpenPrimary(dir.path());
  ASSERT_TRUE(store.ok());
  store::StateStore state(store->get());
  bool found = false;
  auto back = LoadManaged(state, &found);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(found);
  EXPECT_EQ(*back, (ManagedInstances{{"api@m1", "c2"}, {"old@m9", "c1"}}));
}

TEST(ManagedRecord, SeedsFromTheLastAppliedRevision) {
  EXPECT_EQ(SeedManaged(Rev("c1", 1, {{"api", "m1"}, {"db", "m2"}})),
            (ManagedInstances{{"api@m1", "c1"}, {"db@m2", "c1"}}));
}

}  // namespace
}  // namespace clusterctl::controller

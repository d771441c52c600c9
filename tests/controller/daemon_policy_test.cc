// The daemon's pure rules (controller/daemon_policy.h) and the one record of
// a pass over a revision (controller/revision_pass.h).
#include "controller/daemon_policy.h"

#include <gtest/gtest.h>

#include "audit/audit_log.h"
#include "base/clock.h"
#include "controller/revision_pass.h"
#include "store/revisions.h"
#include "store/store.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::controller {
namespace {

DesiredPtr State(const std::string& commit) {
  auto s = std::make_shared<desired_state::DesiredState>();
  s->revision.commit = commit;
  return s;
}

TEST(InForceAfterRefusal, PutsThePreviousRevisionBackWhenNothingNewerArrived) {
  DesiredPtr a = State("a"), b = State("b");
  EXPECT_EQ(InForceAfterRefusal(b, b, a), a);
}

TEST(InForceAfterRefusal, KeepsARevisionThatArrivedWhileThePassPlanned) {
  DesiredPtr a = State("a"), b = State("b"), c = State("c");
  // The pass planned b (refused); c replaced b meanwhile: c stays.
  EXPECT_EQ(InForceAfterRefusal(c, b, a), c);
}

TEST(EraseGoneInstances, DropsTheBookkeepingOfInstancesThatLeft) {
  std::map<std::string, int64_t> due = {
      {"api@m1/readiness", 1}, {"api@m1/liveness", 2}, {"old@m2/readiness", 3}};
  std::map<std::string, bool> ready = {{"api@m1", true}, {"old@m2", false}};
  std::set<std::string> forced = {"old@m2", "api@m1"};
  const std::set<std::string> live = {"api@m1"};
  EXPECT_EQ(EraseGoneInstances(&due, live), 1u);
  EXPECT_EQ(EraseGoneInstances(&ready, live), 1u);
  EXPECT_EQ(EraseGoneInstances(&forced, live), 1u);
  EXPECT_EQ(due.size(), 2u);
  EXPECT_TRUE(due.count("api@m1/liveness"));
  EXPECT_EQ(ready, (std::map<std::string, bool>{{"api@m1", true}}));
  EXPECT_EQ(forced, (std::set<std::string>{"api@m1"}));
  EXPECT_EQ(EraseGoneInstances(&ready, live), 0u);
}

TEST(LoopHealth, HealthyWhileEveryLoopBeatsWithinItsBound) {
  LoopHealth h;
  h.Start("source", 0, 10000);
  h.Start("reconcile", 0, 20000);
  h.Beat("source", 9000);
  EXPECT_EQ(h.Stalled(10000), "");
  EXPECT_EQ(h.Stalled(19000), "");  // source last beat at 9 s: 10 s idle is within 10 s.
}

TEST(LoopHealth, NamesTheLoopThatStalledAndForHowLong) {
  LoopHealth h;
  h.Start("source", 0, 10000);
  h.Start("reconcile", 0, 35000);
  h.Beat("source", 30000);
  h.Beat("source", 39000);
  EXPECT_EQ(h.Stalled(40001), "reconcile loop stalled for 40s (bound 35s)");
  h.Beat("reconcile", 40001);
  EXPECT_EQ(h.Stalled(40001), "");
}

TEST(LoopHealth, ALoopThatNeverCompletedAPassStallsFromItsStart) {
  LoopHealth h;
  h.Start("source", 5000, 1000);  // The initial clone hangs.
  EXPECT_EQ(h.Stalled(6000), "");
  EXPECT_EQ(h.Stalled(7000), "source loop stalled for 2s (bound 1s)");
  h.Stop("source");  // Returned on shutdown: no longer judged.
  EXPECT_EQ(h.Stalled(70000), "");
}

TEST(LoopHealth, ANewBoundAppliesAtOnceAndRestartingKeepsTheClock) {
  LoopHealth h;
  h.Start("reconcile", 0, 100000);
  EXPECT_EQ(h.Stalled(50000), "");
  h.SetBound("reconcile", 40000);
  EXPECT_NE(h.Stalled(50000), "");
  h.Start("reconcile", 45000, 100000);  // Re-bounding does not reset progress.
  EXPECT_EQ(h.Stalled(50000), "");
  EXPECT_NE(h.Stalled(100001), "");
}

TEST(WallStep, ReportsAJumpOfTheWallClockOnceAndIgnoresJitter) {
  FakeClock clock;
  WallStep w;
  EXPECT_EQ(0, w.Observe(clock.WallMs(), clock.SteadyMs()));
  clock.Advance(5000);  // Time passes: no step.
  EXPECT_EQ(0, w.Observe(clock.WallMs(), clock.SteadyMs()));
  clock.SetWallMs(clock.WallMs() + 400);  // Within the tolerance.
  EXPECT_EQ(0, w.Observe(clock.WallMs(), clock.SteadyMs()));
  clock.SetWallMs(clock.WallMs() - 3600000 - 400);  // An hour back.
  EXPECT_EQ(-3600000, w.Observe(clock.WallMs(), clock.SteadyMs()));
  EXPECT_EQ(0, w.Observe(clock.WallMs(), clock.SteadyMs()));  // Reported once.
  clock.SetWallMs(clock.WallMs() + 3600000);
  clock.Advance(1000);
  EXPECT_EQ(3600000, w.Observe(clock.WallMs(), clock.SteadyMs()));
}

TEST(LoopBounds, TheReconcileBoundCoversTheLongestStepAndTheInterval) {
  desired_state::DesiredState d;
  d.cluster.reconcile.interval_seconds = 10;
  desired_state::Service quick, slow;
  quick.stop_timeout_seconds = 15;
  slow.readiness.emplace();
  slow.readiness->start_timeout_seconds = 300;
  d.services = {quick, slow};
  // interval 10 + 2 x command 30 + longest step 300, + 30 s of slack.
  EXPECT_EQ(ReconcileLoopBoundMs(&d, 30), (10 + 60 + 300) * 1000 + 30000);
  EXPECT_EQ(ReconcileLoopBoundMs(nullptr, 30), (30 + 60 + 30) * 1000 + 30000);
  // The sleep between fetches is at most the retry cap (60 s) or the poll.
  EXPECT_EQ(SourceLoopBoundMs(15, 60), (60 + 60) * 1000 + 30000);
  EXPECT_EQ(SourceLoopBoundMs(300, 10), (300 + 10) * 1000 + 30000);
}

// Issue 10 item 4: a failing source retries with backoff, then polls again.
TEST(SourceRetry, BacksOffFromOneSecondToTheCapAndPollsAgainAfterASuccess) {
  EXPECT_EQ(SourceRetryDelayMs(0, 15), 15000);
  EXPECT_EQ(SourceRetryDelayMs(1, 15), 1000);
  EXPECT_EQ(SourceRetryDelayMs(2, 15), 2000);
  EXPECT_EQ(SourceRetryDelayMs(4, 15), 8000);
  EXPECT_EQ(SourceRetryDelayMs(7, 15), 60000);
  EXPECT_EQ(SourceRetryDelayMs(1000, 15), 60000);  // No overflow.
  EXPECT_EQ(SourceRetryDelayMs(10, 300), 300000);  // A long poll is the cap.
  for (int f = 1; f < 40; ++f) {
    EXPECT_LE(SourceRetryDelayMs(f, 15), SourceLoopBoundMs(15, 0) - 30000) << f;
  }
}

reconcilers::Plan PlanOf(size_t steps, size_t blocked) {
  reconcilers::Plan p;
  p.steps.resize(steps);
  for (size_t i = 0; i < blocked; ++i) p.blocked["s" + std::to_string(i) + "@m"] = "unreachable";
  return p;
}

reconcilers::ExecutionReport ReportOf(std::vector<reconcilers::StepResult> results) {
  reconcilers::ExecutionReport r;
  for (auto x : results) {
    reconcilers::StepOutcome o;
    o.result = x;
    r.outcomes.push_back(o);
  }
  return r;
}

TEST(ClassifyPass, OkOnlyWhenEveryStepIsOkAndNothingIsBlocked) {
  using reconcilers::StepResult;
  EXPECT_EQ(ClassifyPass(PlanOf(2, 0), ReportOf({StepResult::kOk, StepResult::kOk})),
            RevisionResult::kOk);
  EXPECT_EQ(ClassifyPass(PlanOf(0, 0), ReportOf({})), RevisionResult::kOk);
  EXPECT_EQ(ClassifyPass(PlanOf(2, 0), ReportOf({StepResult::kOk, StepResult::kFailed})),
            RevisionResult::kPartial);
  EXPECT_EQ(ClassifyPass(PlanOf(1, 1), ReportOf({StepResult::kOk})), RevisionResult::kPartial);
  EXPECT_EQ(ClassifyPass(PlanOf(2, 0), ReportOf({StepResult::kFailed, StepResult::kSkipped})),
            RevisionResult::kFailed);
  EXPECT_EQ(ClassifyPass(PlanOf(0, 1), ReportOf({})), RevisionResult::kFailed);
}

class RevisionPassTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::Store::OpenPrimary(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store.value());
    auto audit = audit::AuditLog::Open(store_.get());
    ASSERT_TRUE(audit.ok());
    audit_ = std::move(audit.value());
    revisions_ = std::make_unique<store::RevisionLog>(store_.get());
  }
  RevisionPassRecord Pass(RevisionResult result) {
    RevisionPassRecord p;
    p.revision.commit = "0123456789abcdef0123456789abcdef01234567";
    p.revision.author = "Alice <alice@example.org>";
    p.revision.message = "add a service\n\nbody";
    p.result = result;
    p.actor = "clusterd@test";
    p.trigger = audit::Trigger::kRevision;
    p.summary = "1 ok, 1 failed, 0 skipped, 0 interrupted, 0 blocked";
    p.now_ms = 1000;
    return p;
  }
  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::unique_ptr<store::RevisionLog> revisions_;
};

// Issue 10 item 9: a partly applied revision kept its revision record but
// lost its revision_applied audit event ("partial" is no audit result).
TEST_F(RevisionPassTest, APartialPassIsAuditedAsFailedWithAPartialDetail) {
  ASSERT_TRUE(
      RecordRevisionPass(revisions_.get(), audit_.get(), Pass(RevisionResult::kPartial)).ok());
  auto history = revisions_->History(0);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].result, "partial");
  audit::AuditFilter f;
  f.action = "revision_applied";
  auto records = audit_->Query(f);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].result, "failed");
  EXPECT_EQ((*records)[0].detail.rfind("partial: Alice", 0), 0u) << (*records)[0].detail;
  EXPECT_EQ((*records)[0].revision, "0123456");
}

// Issue 10 item 15: a record that cannot be written is an error the caller
// sees (and retries), not a silently dropped line.
TEST_F(RevisionPassTest, AWriteThatFailsIsReported) {
  auto ro = store::Store::OpenReadOnly(dir_.path());
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  store::RevisionLog revisions(ro->get());
  Status s = RecordRevisionPass(&revisions, audit_.get(), Pass(RevisionResult::kOk));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("revision record"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace clusterctl::controller

// The daemon's pure rules (controller/daemon_policy.h) and the one record of
// a pass over a revision (controller/revision_pass.h).
#include "controller/daemon_policy.h"

#include <gtest/gtest.h>

#include "controller/audit_log.h"
#include "controller/revision_pass.h"
#include "controller/revisions.h"
#include "controller/store.h"
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
    auto store = Store::OpenPrimary(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store.value());
    auto audit = AuditLog::Open(store_.get());
    ASSERT_TRUE(audit.ok());
    audit_ = std::move(audit.value());
    revisions_ = std::make_unique<RevisionLog>(store_.get());
  }
  RevisionPassRecord Pass(RevisionResult result) {
    RevisionPassRecord p;
    p.revision.commit = "0123456789abcdef0123456789abcdef01234567";
    p.revision.author = "Alice <alice@example.org>";
    p.revision.message = "add a service\n\nbody";
    p.result = result;
    p.actor = "clusterd@test";
    p.trigger = "revision";
    p.summary = "1 ok, 1 failed, 0 skipped, 0 interrupted, 0 blocked";
    p.now_ms = 1000;
    return p;
  }
  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<RevisionLog> revisions_;
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
  AuditFilter f;
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
  auto ro = Store::OpenReadOnly(dir_.path());
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  RevisionLog revisions(ro->get());
  Status s = RecordRevisionPass(&revisions, audit_.get(), Pass(RevisionResult::kOk));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("revision record"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace clusterctl::controller

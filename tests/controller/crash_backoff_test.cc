// The crash-loop rule on a fake clock: what counts, how the delay grows, the
// alert threshold, and the reset after 10 healthy minutes.
#include "controller/crash_backoff.h"

#include <gtest/gtest.h>

#include "base/clock.h"

namespace clusterctl::controller {
namespace {

using reconcilers::Cause;
using reconcilers::Step;
using reconcilers::StepResult;

Step Start(Cause cause) {
  Step st;
  st.action = reconcilers::Action::kStart;
  st.service = "api";
  st.machine = "m1";
  st.cause = cause;
  return st;
}

constexpr int kBase = 2;  // restart.backoffSeconds
constexpr int kMax = 10;  // restart.maxBackoffSeconds

TEST(CrashLoopBackoffTest, AFailedStartCountsAndTheDelayDoublesUpToTheCap) {
  FakeClock clock;
  CrashLoopBackoff b;
  std::vector<int64_t> delays;
  for (int i = 0; i < 5; ++i) {
    auto c = b.OnStart(Start(Cause::kStopped), StepResult::kFailed, kBase, kMax, clock.WallMs());
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(i + 1, c->failures);
    delays.push_back(c->delay_ms);
    EXPECT_EQ(clock.WallMs() + c->delay_ms, b.entries().at("api@m1").not_before_ms);
    clock.Advance(c->delay_ms);
  }
  EXPECT_EQ((std::vector<int64_t>{2000, 4000, 8000, 10000, 10000}), delays);
}

TEST(CrashLoopBackoffTest, RepairingACrashedInstanceCountsButAStartOfAStoppedOneDoesNot) {
  FakeClock clock;
  CrashLoopBackoff b;
  // Started fine, and it was merely stopped: nothing counts.
  EXPECT_FALSE(b.OnStart(Start(Cause::kStopped), StepResult::kOk, kBase, kMax, clock.WallMs()));
  EXPECT_TRUE(b.entries().empty());
  // Started fine, but it had crashed: it will likely crash again.
  auto c = b.OnStart(Start(Cause::kFailed), StepResult::kOk, kBase, kMax, clock.WallMs());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(1, c->failures);
  // Skipped or interrupted steps say nothing about the instance.
  EXPECT_FALSE(b.OnStart(Start(Cause::kFailed), StepResult::kSkipped, kBase, kMax, 0));
  EXPECT_FALSE(b.OnStart(Start(Cause::kFailed), StepResult::kInterrupted, kBase, kMax, 0));
  EXPECT_EQ(1, b.entries().at("api@m1").failures);
}

TEST(CrashLoopBackoffTest, TheAlertComesWithTheThirdCountedFailure) {
  CrashLoopBackoff b;
  std::vector<bool> alerts;
  for (int i = 0; i < 4; ++i) {
    alerts.push_back(b.OnStart(Start(Cause::kFailed), StepResult::kFailed, kBase, kMax, 0)->alert);
  }
  EXPECT_EQ((std::vector<bool>{false, false, true, true}), alerts);
  CrashLoopBackoff::Counted third{3, 8000, true};
  EXPECT_EQ("api@m1 keeps failing (3 times); next retry in 8s",
            CrashLoopBackoff::AlertMessage("api@m1", third));
  EXPECT_EQ("crashloop/api@m1", CrashLoopBackoff::AlertId("api@m1"));
}

TEST(CrashLoopBackoffTest, TenHealthyMinutesResetTheCount) {
  FakeClock clock;
  CrashLoopBackoff b;
  for (int i = 0; i < 3; ++i)
    b.OnStart(Start(Cause::kFailed), StepResult::kOk, kBase, kMax, clock.WallMs());
  ASSERT_EQ(3, b.entries().at("api@m1").failures);
  const std::set<std::string> running = {"api@m1"};
  // A minute short of the period: nothing is forgotten.
  clock.Advance(CrashLoopBackoff::kHealthyResetMs - 60000);
  EXPECT_TRUE(b.ResetHealthy(clock.WallMs(), running).empty());
  EXPECT_EQ(3, b.entries().at("api@m1").failures);
  // Not running at the end of the period (it crashed again): kept.
  clock.Advance(60000);
  EXPECT_TRUE(b.ResetHealthy(clock.WallMs(), {}).empty());
  // Running after 10 minutes: forgotten, once.
  EXPECT_EQ(std::vector<std::string>{"api@m1"}, b.ResetHealthy(clock.WallMs(), running));
  EXPECT_TRUE(b.entries().empty());
  EXPECT_TRUE(b.ResetHealthy(clock.WallMs(), running).empty());
  // The next crash counts from one again.
  EXPECT_EQ(1, b.OnStart(Start(Cause::kFailed), StepResult::kFailed, kBase, kMax, 0)->failures);
}

TEST(CrashLoopBackoffTest, ACrashWithinTheHealthyPeriodCountsOnAndRestartsThePeriod) {
  FakeClock clock;
  CrashLoopBackoff b;
  b.OnStart(Start(Cause::kFailed), StepResult::kOk, kBase, kMax, clock.WallMs());
  clock.Advance(9 * 60000);
  // Crashed after 9 minutes and repaired: 2 failures, and a new period.
  EXPECT_EQ(
      2, b.OnStart(Start(Cause::kFailed), StepResult::kOk, kBase, kMax, clock.WallMs())->failures);
  clock.Advance(2 * 60000);  // 11 minutes after the first start, 2 after the second.
  EXPECT_TRUE(b.ResetHealthy(clock.WallMs(), {"api@m1"}).empty());
  clock.Advance(8 * 60000);
  EXPECT_EQ(std::vector<std::string>{"api@m1"}, b.ResetHealthy(clock.WallMs(), {"api@m1"}));
}

TEST(CrashLoopBackoffTest, TheNextRetryIsOfTheFirstDownInstance) {
  FakeClock clock;
  CrashLoopBackoff b;
  Step other = Start(Cause::kFailed);
  other.service = "db";
  b.OnStart(Start(Cause::kFailed), StepResult::kFailed, kBase, kMax, clock.WallMs());  // 2 s
  b.OnStart(other, StepResult::kFailed, 5, kMax, clock.WallMs());                      // 5 s
  EXPECT_EQ(2000, b.NextRetryInMs(clock.WallMs(), {}, 30000));
  // A running instance does not wait for a retry.
  EXPECT_EQ(5000, b.NextRetryInMs(clock.WallMs(), {"api@m1"}, 30000));
  EXPECT_EQ(1000, b.NextRetryInMs(clock.WallMs(), {}, 1000));  // The cap.
  clock.Advance(6000);
  EXPECT_EQ(30000, b.NextRetryInMs(clock.WallMs(), {}, 30000));  // Nobody waits any more.
}

TEST(CrashLoopBackoffTest, AStopOrLeavingTheDesiredStateForgetsTheInstance) {
  CrashLoopBackoff b;
  Step other = Start(Cause::kFailed);
  other.service = "db";
  b.OnStart(Start(Cause::kFailed), StepResult::kFailed, kBase, kMax, 0);
  b.OnStart(other, StepResult::kFailed, kBase, kMax, 0);
  b.OnStop("api@m1");
  EXPECT_EQ(0u, b.entries().count("api@m1"));
  b.EraseGone({"api@m1"});
  EXPECT_TRUE(b.entries().empty());
}

// The wall clock stepped back an hour: the deadline moves with it, so the
// instance waits its delay, not an hour more.
TEST(CrashLoopBackoffTest, AStepOfTheWallClockMovesTheDeadlinesWithIt) {
  FakeClock clock;
  CrashLoopBackoff b;
  b.OnStart(Start(Cause::kFailed), StepResult::kOk, kBase, kMax, clock.WallMs());
  clock.SetWallMs(clock.WallMs() - 3600000);
  EXPECT_EQ(3600000 + 2000, b.NextRetryInMs(clock.WallMs(), {}, 1LL << 40));
  b.Shift(-3600000);
  EXPECT_EQ(2000, b.NextRetryInMs(clock.WallMs(), {}, 1LL << 40));
  EXPECT_EQ(clock.WallMs(), b.healthy_since_ms().at("api@m1"));
}

TEST(CrashLoopBackoffTest, RestoreBringsBackWhatWasSaved) {
  CrashLoopBackoff a;
  a.OnStart(Start(Cause::kFailed), StepResult::kOk, kBase, kMax, 1000);
  CrashLoopBackoff b;
  b.Restore(a.entries(), a.healthy_since_ms());
  EXPECT_EQ(1, b.entries().at("api@m1").failures);
  EXPECT_EQ(1000, b.healthy_since_ms().at("api@m1"));
}

}  // namespace
}  // namespace clusterctl::controller

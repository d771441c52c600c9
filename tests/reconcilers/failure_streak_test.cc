// readiness.failureThreshold: consecutive failures, reset by a pass.
#include "reconcilers/failure_streak.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace clusterctl::reconcilers {
namespace {

// The verdicts after each result of `results` ('p' pass, 'f' fail).
std::string Verdicts(int threshold, const std::string& results) {
  FailureStreak s(threshold);
  std::string out;
  for (char c : results) {
    s.Add(c == 'p');
    out += s.ready() ? 'R' : '-';
  }
  return out;
}

TEST(FailureStreakTest, FewerFailuresInARowThanTheThresholdKeepItReady) {
  EXPECT_EQ(Verdicts(3, "pffpffpff"), "RRRRRRRRR");
}

TEST(FailureStreakTest, TheThresholdOfConsecutiveFailuresMakesItNotReady) {
  EXPECT_EQ(Verdicts(3, "pfff"), "RRR-");
  EXPECT_EQ(Verdicts(3, "pffff"), "RRR--");
}

TEST(FailureStreakTest, APassMakesItReadyAtOnceAndEndsTheStreak) {
  EXPECT_EQ(Verdicts(3, "pfffpff"), "RRR-RRR");
}

TEST(FailureStreakTest, ThresholdOneIsTheOldBehaviour) {
  EXPECT_EQ(Verdicts(1, "pfpf"), "R-R-");
  EXPECT_EQ(Verdicts(0, "pf"), "R-");  // Below 1 counts as 1.
}

TEST(FailureStreakTest, NeverPassedIsNotReadyWhateverItsFailures) {
  EXPECT_EQ(Verdicts(3, "ffp"), "--R");
}

TEST(FailureStreakTest, AddSaysWhenTheVerdictChanged) {
  FailureStreak s(2);
  EXPECT_TRUE(s.Add(true));
  EXPECT_FALSE(s.Add(false));
  EXPECT_EQ(s.failures(), 1);
  EXPECT_TRUE(s.Add(false));
  EXPECT_FALSE(s.Add(false));
  EXPECT_EQ(s.failures(), 3);
  EXPECT_TRUE(s.Add(true));
  EXPECT_EQ(s.failures(), 0);
}

TEST(ReadinessStreaksTest, KeepsOneStreakPerInstance) {
  ReadinessStreaks r;
  bool changed = false;
  EXPECT_TRUE(r.Add("a@m", true, 2, &changed));
  EXPECT_TRUE(changed);
  EXPECT_FALSE(r.Add("b@m", false, 2, &changed));
  EXPECT_FALSE(changed);  // Unknown counts as not ready before.
  EXPECT_TRUE(r.Add("a@m", false, 2, &changed));
  EXPECT_FALSE(changed);
  EXPECT_EQ(r.Failures("a@m"), 1);
  EXPECT_FALSE(r.Add("a@m", false, 2, &changed));
  EXPECT_TRUE(changed);
  EXPECT_FALSE(r.Ready("c@m"));
  EXPECT_EQ(r.size(), 2u);
}

TEST(ReadinessStreaksTest, ANewThresholdAppliesToTheStreakSoFar) {
  ReadinessStreaks r;
  r.Add("a@m", true, 5, nullptr);
  r.Add("a@m", false, 5, nullptr);
  r.Add("a@m", false, 5, nullptr);
  EXPECT_TRUE(r.Ready("a@m"));
  EXPECT_FALSE(r.Add("a@m", false, 3, nullptr));  // Third failure, threshold now 3.
}

TEST(ReadinessStreaksTest, ResetAndMarkReadyStartANewLife) {
  ReadinessStreaks r;
  r.Add("a@m", true, 3, nullptr);
  r.Reset("a@m");
  EXPECT_FALSE(r.Ready("a@m"));
  EXPECT_EQ(r.size(), 0u);
  r.MarkReady("a@m", 3);
  EXPECT_TRUE(r.Ready("a@m"));
  EXPECT_TRUE(r.Add("a@m", false, 3, nullptr));
}

}  // namespace
}  // namespace clusterctl::reconcilers

// The clock: FakeClock for tests, the system clock, and the rule that no
// production file reads a clock except through base/clock.h.
#include "base/clock.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace clusterctl {
namespace {

TEST(ClockTest, FakeClockMovesOnlyWhenTold) {
  FakeClock clock(5000, 70);
  EXPECT_EQ(5000, clock.WallMs());
  EXPECT_EQ(70, clock.SteadyMs());
  clock.Advance(250);
  EXPECT_EQ(5250, clock.WallMs());
  EXPECT_EQ(320, clock.SteadyMs());
  clock.SetWallMs(100);  // An NTP step back: steady time does not follow.
  EXPECT_EQ(100, clock.WallMs());
  EXPECT_EQ(320, clock.SteadyMs());
}

TEST(ClockTest, ClockOrFallsBackToTheRealClock) {
  FakeClock fake(42, 43);
  EXPECT_EQ(&fake, &ClockOr(&fake));
  EXPECT_EQ(&RealClock(), &ClockOr(nullptr));
}

TEST(ClockTest, TheSystemClockIsNowAndItsSteadyClockNeverGoesBack) {
  // Sanity only: after 2024 and before 2100.
  EXPECT_GT(RealClock().WallMs(), 1704067200000);
  EXPECT_LT(RealClock().WallMs(), 4102444800000);
  EXPECT_GT(WallClockMs(), 1704067200000);
  const int64_t a = RealClock().SteadyMs();
  const int64_t b = RealClock().SteadyMs();
  EXPECT_LE(a, b);
}

// Every production folder; tests and benchmarks may time themselves.
const char* const kProductionDirs[] = {"base", "desired-state", "reconcilers", "store",    "audit",
                                       "api",  "controller",    "cli",         "clusterd", "ha"};

std::vector<std::string> ClockReads(const std::string& root) {
  // A call of now() on any std::chrono clock (or an alias of one), time(),
  // gettimeofday() or clock_gettime().
  static const std::regex kRead(
      R"((_clock|Clock)::now\s*\(|\btime\s*\(\s*(nullptr|NULL|0)\s*\)|\bgettimeofday\s*\(|\bclock_gettime\s*\()");
  std::vector<std::string> found;
  for (const char* dir : kProductionDirs) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(root + "/" + dir)) {
      const std::string path = e.path().string();
      const std::string name = e.path().filename().string();
      if (!e.is_regular_file()) continue;
      if (name.size() < 3 ||
          (path.substr(path.size() - 3) != ".cc" && path.substr(path.size() - 2) != ".h"))
        continue;
      if (path.find("/base/clock.") != std::string::npos) continue;
      std::ifstream in(path);
      std::string line;
      for (int n = 1; std::getline(in, line); ++n) {
        const std::string code = line.substr(0, line.find("//"));
        if (std::regex_search(code, kRead))
          found.push_back(path + ":" + std::to_string(n) + ": " + line);
      }
    }
  }
  return found;
}

TEST(ClockLintTest, NoProductionFileReadsAClockOutsideBaseClock) {
  const std::vector<std::string> reads = ClockReads(CLUSTERCTL_SOURCE_DIR);
  EXPECT_THAT(reads, ::testing::IsEmpty())
      << "read time through base/clock.h: a `const Clock*` for policy, SteadyNow() for I/O "
         "deadlines";
}

TEST(ClockLintTest, TheLintFindsAClockRead) {
  // The pattern itself, on a file written for the purpose.
  const std::string root = ::testing::TempDir() + "/clock-lint";
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root + "/controller");
  for (const char* dir : kProductionDirs) std::filesystem::create_directories(root + "/" + dir);
  std::ofstream(root + "/controller/x.cc") << "int64_t a = 1;\n"
                                           << "auto t = std::chrono::steady_clock::now();\n"
                                           << "// std::chrono::system_clock::now() in a comment\n"
                                           << "time_t u = time(nullptr);\n";
  const std::vector<std::string> reads = ClockReads(root);
  ASSERT_EQ(2u, reads.size()) << ::testing::PrintToString(reads);
  EXPECT_NE(std::string::npos, reads[0].find("x.cc:2:"));
  EXPECT_NE(std::string::npos, reads[1].find("x.cc:4:"));
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace clusterctl

// Every case of tests/testdata/invalid/ (see its README.md) is built into a
// real git repository, loaded, and must fail with exactly the errors of its
// expected.txt. Set CLUSTERCTL_UPDATE_GOLDEN=1 to rewrite expected.txt files
// (then read the diff: each line is a promise to users).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "desired-state/git_source.h"
#include "desired-state/loader.h"
#include "tests/harness/git_repo.h"
#include "tests/harness/paths.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::desired_state {
namespace {
namespace fs = std::filesystem;
using testing::GitRepo;

std::string FixturesDir() { return testing::SourceDir() + "/tests/testdata/invalid"; }

std::vector<std::string> Cases() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(FixturesDir())) {
    if (e.is_directory() && e.path().filename().string()[0] != '_') {
      out.push_back(e.path().filename().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

class InvalidFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(InvalidFixtureTest, FailsWithTheExpectedErrors) {
  const std::string dir = FixturesDir() + "/" + GetParam();
  testing::TempDir tmp;
  GitRepo repo(tmp.Sub("repo"));
  fs::copy(FixturesDir() + "/_base", repo.path(), fs::copy_options::recursive);
  if (fs::exists(dir + "/input")) {
    fs::copy(dir + "/input", repo.path(),
             fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  }
  if (fs::exists(dir + "/make.sh")) {
    std::string out;
    ASSERT_EQ(
        testing::RunShell(
            "cd '" + repo.path() + "' && " + GitRepo::Env() + "sh '" + dir + "/make.sh'", &out),
        0)
        << out;
  }
  std::string head;
  if (testing::RunShell("cd '" + repo.path() + "' && git rev-parse -q --verify HEAD", &head) != 0) {
    repo.CommitAll("case " + GetParam());
  }

  GitSource::Options opts;
  opts.repo = repo.path();
  auto source = GitSource::Open(opts);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  auto snap = (*source)->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  LoadResult result = Load(*snap);

  EXPECT_FALSE(result.ok());
  const std::string actual = result.errors.ToString();
  if (std::getenv("CLUSTERCTL_UPDATE_GOLDEN") != nullptr) {
    testing::WriteFile(dir + "/expected.txt", actual);
  }
  EXPECT_EQ(testing::ReadFile(dir + "/expected.txt"), actual);
}

INSTANTIATE_TEST_SUITE_P(Cases, InvalidFixtureTest, ::testing::ValuesIn(Cases()),
                         [](const auto& test_info) {
                           std::string n = test_info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace clusterctl::desired_state

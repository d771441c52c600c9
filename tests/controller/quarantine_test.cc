// Quarantine of rolled-back revisions (controller/quarantine.h): the rollback
// trailer, and a quarantine file that survives a crash.
#include "controller/quarantine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::controller {
namespace {

const std::string kSha = "0123456789abcdef0123456789abcdef01234567";

// Issue 10 item 19: the marker was found anywhere in the message.
TEST(RollbackTrailer, OnlyTheTrailerBlockMarksARollback) {
  EXPECT_EQ(RollbackTarget(RollbackMessage("Roll back to 0123456: x\n\nbecause", kSha)), kSha);
  // Mentioned in the body, in a subject, or quoted: not a rollback.
  EXPECT_EQ(RollbackTarget("docs: explain clusterctl-rollback-to: " + kSha), std::nullopt);
  EXPECT_EQ(RollbackTarget("Subject\n\nclusterctl-rollback-to: " + kSha +
                           "\nis what a rollback commit says.\n\nSigned-off-by: A <a@b>"),
            std::nullopt);
  EXPECT_EQ(RollbackTarget("Subject\n\nclusterctl-rollback-to: " + kSha + "\n\nMore prose here."),
            std::nullopt);
  // A trailer block with other trailers, any key case, trailing blank lines.
  EXPECT_EQ(RollbackTarget("Subject\n\nbody\n\nSigned-off-by: A <a@b>\nClusterctl-Rollback-To: " +
                           kSha + "\n\n\n"),
            kSha);
  // Not a full commit id.
  EXPECT_EQ(RollbackTarget("Subject\n\nclusterctl-rollback-to: 0123456"), std::nullopt);
  EXPECT_EQ(RollbackTarget(""), std::nullopt);
}

TEST(RollbackTrailer, RollingBackToARollbackKeepsOneTrailerAtTheEnd) {
  const std::string other = "fedcba9876543210fedcba9876543210fedcba98";
  const std::string first = RollbackMessage("Roll back to fedcba9: y", other);
  const std::string second = RollbackMessage("Roll back to 0123456: " + first + "\n\nwhy", kSha);
  EXPECT_EQ(RollbackTarget(second), kSha);
}

TEST(QuarantineFile, RoundTripsAndClears) {
  testing::TempDir dir;
  Quarantine q;
  q.rollback_commit = kSha;
  q.target_commit = "t";
  q.commits = {"a", "b"};
  q.created_ms = 42;
  ASSERT_TRUE(WriteQuarantine(dir.path(), q).ok());
  std::optional<Quarantine> back = ReadQuarantine(dir.path());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->rollback_commit, kSha);
  EXPECT_EQ(back->commits, q.commits);
  EXPECT_EQ(back->created_ms, 42);
  ASSERT_TRUE(ClearQuarantine(dir.path()).ok());
  EXPECT_FALSE(ReadQuarantine(dir.path()).has_value());
}

// Run by QuarantineFile.IsSyncedBeforeAndAfterItsRename under strace.
TEST(QuarantineChild, Write) {
  const char* dir = std::getenv("CLUSTERCTL_QUARANTINE_CHILD_DIR");
  if (dir == nullptr) GTEST_SKIP() << "only runs as the child of another test";
  Quarantine q;
  q.rollback_commit = kSha;
  ASSERT_TRUE(WriteQuarantine(dir, q).ok());
}

// Issue 10 item 18: quarantine.json was renamed into place without an fsync,
// so a crash could leave an empty file and the quarantine lost.
TEST(QuarantineFile, IsSyncedBeforeAndAfterItsRename) {
  if (testing::RunShell("strace -f -o /dev/null /bin/true >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "strace is missing or cannot trace here (scripts/install-deps.sh installs it)";
  }
  testing::TempDir dir;
  char self[PATH_MAX] = {};
  ASSERT_GT(readlink("/proc/self/exe", self, sizeof self - 1), 0);
  testing::SpawnOptions opts = testing::OutputTo(dir.Sub("child.log"));
  opts.env.push_back("CLUSTERCTL_QUARANTINE_CHILD_DIR=" + dir.Sub("data"));
  testing::Process child({"strace", "-f", "-e",
                          "trace=openat,fsync,fdatasync,rename,renameat,"
                          "renameat2",
                          "-o", dir.Sub("trace"), self, "--gtest_filter=QuarantineChild.Write"},
                         opts);
  std::optional<int> code = child.WaitForExit(std::chrono::seconds(60));
  ASSERT_EQ(code, std::optional<int>(0)) << testing::ReadFile(dir.Sub("child.log"));
  // The calls in order: the temporary file synced, renamed, the directory synced.
  std::istringstream trace(testing::ReadFile(dir.Sub("trace")));
  std::vector<std::string> events;
  std::map<std::string, std::string> fd_path;
  for (std::string line; std::getline(trace, line);) {
    auto quoted = [&] {
      const size_t a = line.find('"');
      const size_t b = line.find('"', a + 1);
      return a == std::string::npos || b == std::string::npos ? "" : line.substr(a + 1, b - a - 1);
    };
    if (line.find("openat(") != std::string::npos) {
      const size_t eq = line.rfind("= ");
      if (eq != std::string::npos && line[eq + 2] != '-') fd_path[line.substr(eq + 2)] = quoted();
    } else if (line.find("fsync(") != std::string::npos ||
               line.find("fdatasync(") != std::string::npos) {
      const size_t open = line.find('(');
      const std::string fd = line.substr(open + 1, line.find(')', open) - open - 1);
      events.push_back("fsync " + fd_path[fd]);
    } else if (line.find("rename") != std::string::npos) {
      events.push_back("rename " + quoted());
    }
  }
  const std::string data = dir.Sub("data");
  const std::vector<std::string> want = {"fsync " + data + "/quarantine.json.tmp",
                                         "rename " + data + "/quarantine.json.tmp",
                                         "fsync " + data};
  size_t next = 0;
  for (const auto& e : events) {
    if (next < want.size() && e == want[next]) ++next;
  }
  EXPECT_EQ(next, want.size()) << testing::ReadFile(dir.Sub("trace"));
}

}  // namespace
}  // namespace clusterctl::controller

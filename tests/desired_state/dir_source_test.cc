// Reading a desired-state directory (desired-state/dir_source.h): files that
// cannot be read are problems, never empty documents.
#include "desired-state/dir_source.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "tests/harness/temp_dir.h"

namespace clusterctl::desired_state {
namespace {

// Issue 10 item 21: an unreadable file loaded as empty content with no error.
TEST(DirSourceTest, AnUnreadableFileIsAProblemNamingItNotAnEmptyFile) {
  testing::TempDir tmp;
  const std::string dir = tmp.Sub("repo");
  std::filesystem::create_directories(dir + "/services");
  testing::WriteFile(dir + "/services/good.yaml", "kind: Service\n");
  testing::WriteFile(dir + "/services/secret.yaml", "kind: Service\n");
  ASSERT_EQ(chmod((dir + "/services/secret.yaml").c_str(), 0), 0);
  // Root reads any file: read as an unprivileged user in a child process.
  EXPECT_EXIT(
      {
        if (geteuid() == 0) {
          chmod(tmp.path().c_str(), 0755);
          if (setgid(65534) != 0 || setuid(65534) != 0) std::_Exit(10);
        }
        Result<Snapshot> snap = ReadDirectory(dir);
        if (!snap.ok()) std::_Exit(11);
        const std::string text = snap->problems.ToString();
        const bool named = text.find("services/secret.yaml") != std::string::npos &&
                           text.find("cannot read") != std::string::npos &&
                           text.find("Permission denied") != std::string::npos;
        bool loaded_empty = false;
        for (const auto& f : snap->files) loaded_empty |= f.path == "services/secret.yaml";
        std::_Exit(named && !loaded_empty && snap->files.size() == 1 ? 0 : 12);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace clusterctl::desired_state

#include "tests/harness/git_repo.h"

#include <gtest/gtest.h>

#include "tests/harness/temp_dir.h"

namespace clusterctl::testing {

std::string GitRepo::Env() {
  return "env GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME='Test Author' "
         "GIT_AUTHOR_EMAIL=author@example.com GIT_COMMITTER_NAME='Test Author' "
         "GIT_COMMITTER_EMAIL=author@example.com ";
}

GitRepo::GitRepo(std::string path, bool bare) : path_(std::move(path)) {
  std::string out;
  int rc =
      RunShell("mkdir -p '" + path_ + "' && " + Env() + "git -c init.defaultBranch=main init -q " +
                   (bare ? "--bare " : "") + "'" + path_ + "'",
               &out);
  EXPECT_EQ(rc, 0) << out;
}

std::string GitRepo::Git(const std::string& args) const {
  std::string out;
  int rc = RunShell("cd '" + path_ + "' && " + Env() + "git " + args, &out);
  EXPECT_EQ(rc, 0) << "git " << args << ":\n" << out;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

void GitRepo::Write(const std::string& rel, const std::string& content) const {
  WriteFile(path_ + "/" + rel, content);
}

std::string GitRepo::CommitAll(const std::string& message) const {
  Git("add -A");
  Git("commit -q --allow-empty -m '" + message + "'");
  return Rev();
}

std::string GitRepo::Rev(const std::string& rev) const { return Git("rev-parse " + rev); }

}  // namespace clusterctl::testing

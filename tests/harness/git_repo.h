// GitRepo: a real git repository made by a test with the git CLI, isolated
// from the user's and the system's git configuration.
#pragma once

#include <string>

namespace clusterctl::testing {

class GitRepo {
 public:
  // Creates (git init) a repository at `path` with branch "main".
  explicit GitRepo(std::string path, bool bare = false);

  const std::string& path() const { return path_; }

  // Runs `git <args>` in the repository (args are passed to /bin/sh: quote
  // them). Returns trimmed stdout; fails the current test on a non-zero exit.
  std::string Git(const std::string& args) const;

  // Writes a file relative to the work tree.
  void Write(const std::string& rel, const std::string& content) const;

  // git add -A && git commit; returns the new commit's full SHA.
  std::string CommitAll(const std::string& message) const;

  // Full SHA of `rev`.
  std::string Rev(const std::string& rev = "HEAD") const;

  // The environment prefix every git command runs with.
  static std::string Env();

 private:
  std::string path_;
};

}  // namespace clusterctl::testing

// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with everything
// in it when the object goes away.
#pragma once

#include <string>

namespace clusterctl::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `content` to `path`, creating parent directories.
void WriteFile(const std::string& path, const std::string& content);
// The whole content of `path`; empty if it cannot be read.
std::string ReadFile(const std::string& path);
// Runs `/bin/sh -c command`, returns its exit status and stdout+stderr.
int RunShell(const std::string& command, std::string* output = nullptr);

}  // namespace clusterctl::testing

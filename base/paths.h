// Paths named by people: in a config file, on the command line.
//
// Thread-safety: reentrant (reads the environment and, with getpwuid_r, the
// password database).
#pragma once

#include <sys/types.h>

#include <string>

namespace clusterctl {

// The password database's entry for `uid` (thread-safe, unlike getpwuid).
struct PasswdEntry {
  bool found = false;
  std::string name, home;
  static PasswdEntry Of(uid_t uid);
};

// "~" and "~/x" with the home directory: $HOME, or the password database's
// entry for the effective user when HOME is unset or empty. Anything else,
// "~user/x" included, is returned unchanged.
std::string ExpandHome(const std::string& path);

}  // namespace clusterctl

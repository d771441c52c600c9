// Paths named by people: in a config file, on the command line.
//
// Thread-safety: reentrant (reads the environment and the password database).
#pragma once

#include <string>

namespace clusterctl {

// "~" and "~/x" with the home directory: $HOME, or the password database's
// entry for the effective user when HOME is unset or empty. Anything else,
// "~user/x" included, is returned unchanged.
std::string ExpandHome(const std::string& path);

}  // namespace clusterctl

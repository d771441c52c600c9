#include "base/paths.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace clusterctl {

PasswdEntry PasswdEntry::Of(uid_t uid) {
  // getpwuid_r, not getpwuid: the latter returns a static buffer that another
  // thread's call overwrites.
  PasswdEntry out;
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
    out.found = true;
    out.name = pw.pw_name ? pw.pw_name : "";
    out.home = pw.pw_dir ? pw.pw_dir : "";
  }
  return out;
}

std::string ExpandHome(const std::string& path) {
  if (path != "~" && path.rfind("~/", 0) != 0) return path;
  const char* home = std::getenv("HOME");
  std::string h = home && *home ? home : "";
  if (h.empty()) h = PasswdEntry::Of(geteuid()).home;
  return h + path.substr(1);
}

}  // namespace clusterctl

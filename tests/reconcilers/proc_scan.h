// Reading /proc in driver tests: process groups, parents, and processes by
// program path. Racy by nature (processes come and go): callers that wait
// for a condition poll with WaitFor.
#pragma once

#include <dirent.h>
#include <sys/types.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "tests/harness/temp_dir.h"

namespace clusterctl::testing {

// Fields 3.. of /proc/<pid>/stat (state first), split after the last ") "
// (comm may contain spaces and ')'). Empty when there is no such process.
inline std::vector<std::string> StatAfterComm(pid_t pid) {
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(") ");
  if (close == std::string::npos) return {};
  std::istringstream in(stat.substr(close + 2));
  std::vector<std::string> out;
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

// Every pid in /proc.
inline std::vector<pid_t> AllPids() {
  std::vector<pid_t> out;
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      char* end = nullptr;
      const long pid = std::strtol(e->d_name, &end, 10);
      if (end != e->d_name && *end == '\0' && pid > 0) out.push_back(static_cast<pid_t>(pid));
    }
    closedir(d);
  }
  return out;
}

inline bool IsZombieState(const std::string& state) { return state == "Z" || state == "X"; }

// Live (not zombie) processes whose process group is `pgid`.
inline std::vector<pid_t> LiveGroupMembers(pid_t pgid) {
  std::vector<pid_t> out;
  for (pid_t pid : AllPids()) {
    const std::vector<std::string> f = StatAfterComm(pid);
    if (f.size() > 2 && !IsZombieState(f[0]) && f[2] == std::to_string(pgid)) out.push_back(pid);
  }
  return out;
}

// Every process (zombies included) whose parent is `ppid`.
inline std::vector<pid_t> ChildrenOf(pid_t ppid) {
  std::vector<pid_t> out;
  for (pid_t pid : AllPids()) {
    const std::vector<std::string> f = StatAfterComm(pid);
    if (f.size() > 1 && f[1] == std::to_string(ppid)) out.push_back(pid);
  }
  return out;
}

// True when a live process of group `pgid` runs a program named `comm`
// (/proc/<pid>/comm, without the newline).
inline bool GroupRuns(pid_t pgid, const std::string& comm) {
  for (pid_t pid : LiveGroupMembers(pgid)) {
    if (ReadFile("/proc/" + std::to_string(pid) + "/comm") == comm + "\n") return true;
  }
  return false;
}

// Live processes with `word` as one of their arguments (argv[0] included).
// A service started as `setsid env PROGRAM ...` keeps its pid through every
// exec, and PROGRAM is an argument all along, so this finds it from the
// moment setsid runs.
inline std::vector<pid_t> LiveProcessesWithArgument(const std::string& word) {
  std::vector<pid_t> out;
  for (pid_t pid : AllPids()) {
    const std::string cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
    bool found = false;
    for (size_t at = 0; at < cmdline.size() && !found;) {
      const size_t end = cmdline.find('\0', at);
      found = cmdline.compare(at, end == std::string::npos ? end : end - at, word) == 0;
      at = end == std::string::npos ? cmdline.size() : end + 1;
    }
    const std::vector<std::string> f = found ? StatAfterComm(pid) : std::vector<std::string>{};
    if (!f.empty() && !IsZombieState(f[0])) out.push_back(pid);
  }
  return out;
}

}  // namespace clusterctl::testing

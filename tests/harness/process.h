// Child processes, bounded waits and local ports for tests.
//
// Every process a test starts is owned by a Process object: its destructor
// kills the child (and, when it leads its own process group, the group) and
// reaps it, so a failing ASSERT never leaves a process behind. Every wait is
// bounded: WaitFor() polls a condition until a deadline instead of sleeping
// for a guessed time.
//
// Failures to spawn throw std::runtime_error (tests only: gtest reports it as
// a failure of the test that caused it).
//
// Thread-safety: a Process must be used from one thread at a time. The free
// functions are thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace clusterctl::testing {

struct SpawnOptions {
  // File that receives the child's stdout (created or truncated).
  // Default: empty = inherit the test's stdout.
  std::string stdout_path;
  // File that receives the child's stderr. Default: empty = the same file as
  // stdout_path when that is set, else inherit.
  std::string stderr_path;
  // Extra "NAME=value" entries added to (or replacing in) the test's
  // environment. Default: none.
  std::vector<std::string> env;
  // Run the child as the leader of a new process group, so Kill() and the
  // destructor reach its children too. Default: true.
  bool new_process_group = true;
  // Working directory of the child. Default: empty = the test's.
  std::string working_dir;
};

// SpawnOptions that send stdout and stderr to `path`.
inline SpawnOptions OutputTo(const std::string& path) {
  SpawnOptions o;
  o.stdout_path = path;
  return o;
}

// One child process, spawned with posix_spawnp (PATH is searched). Signal
// dispositions and the signal mask are reset to defaults in the child.
class Process {
 public:
  // Spawns argv[0] with `argv`. Throws std::runtime_error on failure.
  explicit Process(std::vector<std::string> argv, SpawnOptions options = {});
  // Kills the child (SIGKILL, to its process group when it has its own) and
  // reaps it unless it was reaped already.
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::vector<std::string>& argv() const { return argv_; }

  // True while the child has not exited. Reaps it once it has.
  bool Running();

  // Waits at most `timeout` for the child to exit and reaps it. Returns its
  // exit code, 128 + signal number when a signal ended it, or nullopt when it
  // is still running at the deadline. Returns the same value again once the
  // child has been reaped.
  std::optional<int> WaitForExit(std::chrono::milliseconds timeout);

  // Sends `sig` to the child only (not its group). No-op once reaped.
  void Kill(int sig);
  // Sends `sig` to the child's process group (or the child alone when it
  // does not lead a group). No-op once reaped.
  void KillGroup(int sig);

  // SIGTERM, then SIGKILL after `grace`; waits for the exit and returns the
  // exit value as WaitForExit does.
  int Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

 private:
  std::vector<std::string> argv_;
  bool own_group_ = true;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_value_ = -1;

  bool TryReap(bool block);
};

// Polls `condition` every `interval` until it returns true (returns true) or
// `timeout` has passed (returns false). The condition is evaluated at least
// once and once more at the deadline.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
             std::chrono::milliseconds interval = std::chrono::milliseconds(10));

// True when a process with this pid exists and is not a zombie (a zombie can
// linger for seconds before PID 1 reaps it on these machines).
bool ProcessAlive(pid_t pid);

// Every live process whose parent chain leads to `root` (root excluded),
// read from /proc. Racy by nature: a caller that must catch late forks
// calls it again.
std::vector<pid_t> Descendants(pid_t root);

// Pids of processes whose environment holds exactly `marker` ("NAME=value"),
// read from /proc (this process excluded).
std::vector<pid_t> ProcessesWithEnvVar(const std::string& marker);

// Time the process started, in clock ticks since boot (/proc/<pid>/stat
// field 22); 0 when the process does not exist.
unsigned long long ProcessStartTicks(pid_t pid);

// A TCP port on `address` that was free a moment ago (bound, then released),
// chosen at random below the kernel's ephemeral range: a port from that range
// can be taken again by the local end of any outgoing connection (an SSH
// session to the same loopback address holds it for the whole test), and
// then the service meant to listen on it cannot start. Throws
// std::runtime_error if none can be bound.
int PickFreePort(const std::string& address = "127.0.0.1");

// True when a TCP connection to address:port is accepted within `timeout`.
bool CanConnect(const std::string& address, int port,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(500));

}  // namespace clusterctl::testing

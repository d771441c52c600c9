// RunProcess: runs a program with arguments (no shell), feeds it `input` on
// stdin, collects what it writes to stdout and stderr (each capped), and
// waits for it within a deadline, killing it (SIGKILL) past that.
//
// Used where clusterctl runs a local helper program: the command sink of
// notifications (notify/sinks.cc) and ssh-keygen signing commits
// (desired-state/commit_signer.cc). Never with text from the desired-state
// repository as argv[0].
//
// Thread-safety: reentrant; SIGPIPE must be ignored by the process (both
// binaries do at startup; RunProcess also sets it to SIG_IGN).
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace clusterctl {

struct ProcessResult {
  int exit_code = -1;  // The exit status; -1 when killed by a signal.
  int signal = 0;      // The signal that ended it, else 0.
  std::string out;     // stdout, at most max_output bytes.
  std::string err;     // stderr, at most max_output bytes.
};

struct ProcessOptions {
  std::string input;            // Written to stdin, then stdin is closed.
  int timeout_ms = 30000;       // Killed past this. Default: 30 s.
  size_t max_output = 1 << 20;  // Bytes kept of stdout and of stderr each.
  bool capture_output = true;   // false: stdout and stderr go to /dev/null.
};

// Errors: Invalid for an empty argv; Unavailable when argv[0] cannot be run;
// Timeout past the deadline. A program that runs and exits non-zero is OK:
// the caller reads exit_code.
Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                 const ProcessOptions& options);

// "exited 3", "killed by signal 9": for error messages.
std::string DescribeExit(const ProcessResult& r);

}  // namespace clusterctl

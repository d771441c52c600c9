// Framing of commands sent to a persistent remote shell (issue 9). Pure: text
// in, text out; the I/O is SshPool's (ssh.cc).
//
// A machine's shell is one `/bin/sh` (dash on Debian) started once per SSH
// channel and fed commands on its stdin. Each command is framed so that its
// output, its stderr and its exit status come back unambiguously:
//
//   [sync]     printf '\n%s%s\n' '<tok[0:8]>' '<tok[8:]>:s'       (and to stderr)
//   [library]  command eval '<library>'
//   trusted:   _cc_main() { command eval '<script>'
//              }
//              _cc_main </dev/null
//   untrusted: ( eval '<script>'
//              ) </dev/null
//   printf '\n%s%s %s\n' '<tok[0:8]>' '<tok[8:]>:<seq>' "$?"        (stdout)
//   printf '\n%s%s\n' '<tok[0:8]>' '<tok[8:]>:<seq>' >&2            (stderr)
//
// - The end marker is a random per-shell token plus the request's sequence
//   number, printed in two parts, so the marker never appears in the request
//   text and no output can forge it (it is matched as a whole line).
// - The sync marker, sent with a shell's first command, skips whatever the
//   user's login shell printed before `exec /bin/sh` (rc files).
// - `( eval ... )`: an untrusted script may `exit`, `exec`, `set -e`, read
//   stdin or contain a syntax error: the subshell ends, the shell survives.
// - `command eval` inside a function: a trusted script (built by clusterctl)
//   runs without a fork and may `return`; `command` keeps a syntax error from
//   ending the shell. The library is evaluated the same way.
// - stdin is /dev/null, so a script never reads the next command.
//
// StreamParser collects one stream of one command: the bytes before the
// marker line (capped; the rest is drained and counted as truncated) and, for
// stdout, the exit status written after the marker.
//
// Thread-safety: value types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "reconcilers/ssh.h"

namespace clusterctl::reconcilers {

// The command that replaces the login shell on a new channel.
inline constexpr const char* kShellCommand = "exec /bin/sh";

// `token`: at least 16 characters of [0-9a-f], random per shell.
std::string FrameRequest(const Command& command, const std::string& token, uint64_t seq,
                         bool send_sync, bool send_library);

class StreamParser {
 public:
  // `with_status`: the stream is stdout, whose marker line carries "$?".
  // `synced`: false for a shell's first command (skip to the sync marker).
  StreamParser(const std::string& token, uint64_t seq, bool with_status, bool synced,
               size_t max_bytes);

  void Feed(std::string_view bytes);

  bool done() const { return done_; }
  bool truncated() const { return truncated_; }
  // The command's output (without the marker line). Valid once done(), or
  // what came so far.
  const std::string& data() const { return data_; }
  // Exit status from the marker line (stdout only); -1 if not a number.
  int status() const { return status_; }

 private:
  void Keep(std::string_view bytes);

  std::string sync_key_, end_key_;
  bool with_status_, synced_;
  size_t max_bytes_;
  std::string tail_, data_;
  bool done_ = false, truncated_ = false;
  int status_ = -1;
};

}  // namespace clusterctl::reconcilers

// Running shell scripts on machines over SSH.
//
// CommandRunner is the seam between the reconcilers and the machines: the
// service drivers, exec probes and observers hand it a script and get back
// exit code and output. SshPool is the real implementation (libssh); tests
// and --dry-run substitute their own.
//
//   SshOptions options;
//   options.known_hosts = "/var/lib/clusterctl/known_hosts";
//   SshPool pool(options);
//   SshTarget t;  // machine "jetson", address "192.168.1.177", user "ops", ...
//   Result<CommandResult> r = pool.Run(t, "exec " + ShellJoin(argv), 30s);
//   if (!r.ok()) { ... r.status() ... } else if (r->exit_code != 0) { ... }
//
// A failed Run is a Status; a command that ran and failed is an OK Result
// with a non-zero exit_code. Status codes:
//   kUnavailable  the machine cannot be reached (connect refused or timed
//                 out, connection lost, within a reconnect backoff window), or
//                 the connection dropped while the command ran: then the
//                 message says the outcome is unknown, because the command may
//                 still be running or may have finished. Re-observe the machine
//                 before retrying; never assume the command failed.
//   kTimeout      the command did not finish within its timeout (it may still
//                 be running on the machine: same caution).
//   kPermission   the host key is unknown ("host_key_unknown") or changed
//                 ("host_key_mismatch"), or authentication was refused. No
//                 command runs on such a machine.
//   kInvalid      the script cannot be sent (NUL byte, larger than 100 KiB).
//
// Thread-safety: CommandRunner implementations must be safe to call from
// many threads at once; SshPool is.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <semaphore>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/secret_file.h"
#include "base/status.h"

struct ssh_session_struct;

namespace clusterctl::reconcilers {

// Where and as whom to run a command.
struct SshTarget {
  std::string machine;        // the Machine's metadata.name: names it in messages
  std::string address;        // host name or IP address
  int port = 22;              // Default: 22.
  std::string user;           // Default: empty = the controller's own user name.
  std::string identity_file;  // private key on the controller host ("~/" allowed).
                              // Default: empty = SshOptions::default_identity_file.
};

enum class HostKeyPolicy {
  kStrict,     // a host must already be in known_hosts with the key it shows
  kAcceptNew,  // a host not in known_hosts is added on first contact; a
               // changed key is still refused
};

struct SshOptions {
  // The known_hosts file the controller owns ("~/" allowed). The system-wide
  // file and ~/.ssh/config are never read. Default: empty = ~/.ssh/known_hosts.
  std::string known_hosts;
  // Default: kStrict.
  HostKeyPolicy policy = HostKeyPolicy::kStrict;
  // Private key used when a target names none ("~/" allowed). Default: empty
  // = try the ssh-agent ($SSH_AUTH_SOCK), then ~/.ssh/id_* keys.
  std::string default_identity_file;
  // Where a key a target names (a Machine's or the Cluster's identityFile,
  // from the desired-state repository) may be read from: the rule of
  // base/secret_file.h, checked again when the key is read. clusterd
  // and clusterctl always set it. Default: unset = a target's identity_file
  // is read as given (tests and tools whose targets are not from a
  // repository). default_identity_file is the controller's own and is read
  // as given.
  std::optional<SecretsPolicy> secrets;
  // Bound on establishing a session: TCP connect, key exchange, host key
  // check and authentication. Default: 5000 ms.
  int connect_timeout_ms = 5000;
  // Timeout of a command when Run is given a timeout <= 0. Default: 30000 ms.
  int command_timeout_ms = 30000;
  // Sessions being established at once, over all machines. Default: 32.
  int max_concurrent_connects = 32;
  // A session idle for longer is probed (SSH_MSG_IGNORE) before reuse; also
  // the TCP keepalive idle time. Default: 15 s.
  int keepalive_seconds = 15;
  // Reconnect backoff per machine after a failed connect: the first wait is
  // about backoff_initial_ms, doubling per further failure up to
  // backoff_max_ms, each with random jitter (50-100% of the nominal value).
  // Defaults: 500 ms, 30000 ms.
  int backoff_initial_ms = 500;
  int backoff_max_ms = 30000;
  // Persistent shells per machine for actions and for exec probes (one each
  // for observation and the watch). With sshd's default MaxSessions of 10,
  // the sum stays below it. Defaults: 4, 3.
  int max_action_shells = 4;
  int max_probe_shells = 3;
};

struct CommandResult {
  // The script's exit status; 128 + N when signal N killed it; -1 if the
  // machine reported neither.
  int exit_code = -1;
  // Output of the script (each capped at 8 MiB; the rest is drained and
  // discarded and "[output truncated]" appended).
  std::string out, err;
  // From sending the command to its end (excludes waiting for a shell and
  // connecting).
  int64_t duration_ms = 0;
};

// What a command is for. Each purpose has its own persistent shells on a
// machine, so no purpose can starve another: an exec probe never waits for a
// stop, and a 25 s probe never delays the observation.
enum class Purpose {
  kObserve,  // observation of a machine (one shell; rarely two)
  kAction,   // start, stop, restart (up to SshOptions::max_action_shells)
  kProbe,    // exec probes (up to SshOptions::max_probe_shells)
  kWatch,    // the drift watch tick (one shell)
  kStream,   // a streamed command (SshPool::Stream): a channel of its own per
             // call, closed when the command ends; not reused
};
// "observe", "action", "probe", "watch", "stream"
const char* PurposeName(Purpose p);

// Receives the output of a streamed command as it arrives, in pieces that
// need not end at a line break. `is_stderr` tells the stream apart.
using StreamSink = std::function<void(std::string_view data, bool is_stderr)>;

// One command for a machine's shell.
//
//   script   POSIX sh text.
//   library  shell functions `script` calls. A persistent shell defines them
//            once (keyed by their content) and keeps them for later commands,
//            so a command sends only its call.
//   trusted  false (default): `script` may do anything (`exit`, `exec`, read
//            stdin, `set -e`): it runs in a `( ... )` subshell with stdin from
//            /dev/null, as `sh -c` would run it. true: `script` is built by
//            clusterctl, never exits or execs the shell, uses `return` to end
//            early, and runs inside the persistent shell as the body of a
//            function (no fork), stdin from /dev/null.
struct Command {
  Command() = default;
  Command(std::string s) : script(std::move(s)) {}  // NOLINT: an untrusted action script
  Command(const char* s) : script(s) {}             // NOLINT
  Command(std::string s, std::string lib, bool is_trusted, Purpose p)
      : script(std::move(s)), library(std::move(lib)), trusted(is_trusted), purpose(p) {}

  std::string script;
  std::string library;
  bool trusted = false;
  Purpose purpose = Purpose::kAction;

  // The same command as one self-contained script for `sh -c` (library,
  // then the script; a trusted script wrapped in a function so its `return`
  // works). For runners without persistent shells.
  std::string Standalone() const;
};

class CommandRunner {
 public:
  virtual ~CommandRunner();
  // Runs `command` on the machine and waits at most `timeout` (<= 0: the
  // runner's default) for it to finish. Stdin is empty.
  virtual Result<CommandResult> Run(const SshTarget& target, const Command& command,
                                    std::chrono::milliseconds timeout) = 0;
};

// One persistent authenticated SSH session per (machine, address, port,
// user), and on it persistent shells: channels running `/bin/sh`, fed
// framed commands on stdin (shell_framing.h), reused for every command of
// their purpose. A command costs one round trip and no process start.
//
// Shells per purpose: observation 1, watch 1, actions up to
// max_action_shells, exec probes up to max_probe_shells, opened on demand.
// A command takes an idle shell of its purpose, or opens one while under
// the limit, or waits for one to be freed (then fails with
// kResourceExhausted "busy: ...; the command was not started" at its
// deadline: callers must not count that as a failure of what they ran).
// So a 25 s exec probe never delays an observation or a stop.
//
// Concurrency: a libssh session is not thread-safe, so every libssh call on
// a machine's session happens under its mutex, in short non-blocking calls.
// One waiting caller at a time polls the socket and dispatches what arrives
// to every shell; the others wait on a condition variable. Commands on
// different machines never share a lock during network I/O, so a dead or
// frozen machine delays only the callers of that machine. A caller waits
// for a busy shell at most its timeout, for a connect and a new shell at most
// connect_timeout + its timeout; then the command runs with its own timeout. At most
// max_concurrent_connects sessions are being established at once.
//
// Failures: a command past its deadline gets SIGTERM on its shell's channel,
// the channel is closed (the next command opens a new shell), and the result
// is kTimeout "outcome unknown"; three timeouts in a row rebuild the session
// (sshd holds a session slot while a timed-out child lives). A shell that
// ended between commands is replaced transparently; one that ended during a
// command gives that command the shell's exit status (as `sh -c` would), or
// kUnavailable "outcome unknown" when none came. A session-level error frees
// the session and every shell; commands in flight get kUnavailable "outcome
// unknown". A session found dead before the command was sent is replaced and
// the command sent once more (it cannot have run). A failed connect starts a
// backoff window for that machine: Runs within it fail at once with the same
// error and "retry in N ms", without touching the network. A successful
// connect ends the backoff.
//
// Host keys: checked after every connect against SshOptions::known_hosts,
// before authenticating. Nothing is ever logged or returned about keys but
// their fingerprints; key contents never appear in logs.
class SshPool : public CommandRunner {
 public:
  explicit SshPool(SshOptions options);
  // Frees every session. No Run may be in progress.
  ~SshPool() override;
  SshPool(const SshPool&) = delete;
  SshPool& operator=(const SshPool&) = delete;

  Result<CommandResult> Run(const SshTarget& target, const Command& command,
                            std::chrono::milliseconds timeout) override;

  // Runs `script` (POSIX sh, untrusted: it may `exec` or `exit`) on a
  // channel of its own on the machine's session, for a command whose output
  // is read while it runs (clusterctl logs -f: `tail -F`, `journalctl -f`).
  // Its stdout and stderr go to `sink` as they arrive, from the calling
  // thread, with no lock held; whatever the login shell prints before the
  // script starts is skipped. Stdin is empty. There is no timeout: it
  // returns when the script ends (its exit code, as Run reports it) or when
  // `cancelled()` returns true (checked at least every 50 ms; the command
  // gets SIGTERM and its channel is closed: then the result is 128 + 15).
  // Errors as Run (connect, host key, a lost connection: kUnavailable).
  // Host keys are checked exactly as for Run: the same session is used.
  Result<int> Stream(const SshTarget& target, const std::string& script, const StreamSink& sink,
                     const std::function<bool()>& cancelled);

  // Forgets the sessions and backoff state of `machine`; a command in flight
  // on it finishes first, then its session is freed. The next Run connects
  // afresh.
  void Close(const std::string& machine);

  // Sessions successfully established to `machine` since the pool was made.
  int ConnectsForTest(const std::string& machine) const;
  // Shells opened on `machine`'s current connections.
  int ShellsOpenedForTest(const std::string& machine) const;

  const SshOptions& options() const { return options_; }

 private:
  struct Conn;
  struct Shell;

  std::shared_ptr<Conn> GetConn(const SshTarget& target);
  Status EnsureSession(Conn& conn, std::unique_lock<std::mutex>& l, const SshTarget& target,
                       SteadyTime deadline, bool* fresh);
  Result<std::shared_ptr<Shell>> AcquireShell(Conn& conn, std::unique_lock<std::mutex>& l,
                                              const SshTarget& target, Purpose purpose,
                                              SteadyTime deadline, SteadyTime busy_deadline);
  Result<std::shared_ptr<Shell>> OpenShell(Conn& conn, std::unique_lock<std::mutex>& l,
                                           Purpose purpose, SteadyTime deadline);
  void PumpOrWait(Conn& conn, std::unique_lock<std::mutex>& l, SteadyTime deadline);
  Status Connect(Conn& conn, const SshTarget& target, ssh_session_struct** out);
  Status Establish(Conn& conn, const SshTarget& target, ssh_session_struct** out);
  int BackoffMs(int failures);
  int MaxShells(Purpose p) const;

  const SshOptions options_;
  std::counting_semaphore<> connect_slots_;

  mutable std::mutex mu_;  // guards the members below; never held during I/O
  std::map<std::string, std::shared_ptr<Conn>> conns_;  // by session key
  std::map<std::string, int> connects_;                 // by machine
  std::mt19937 rng_;

  std::mutex known_hosts_mu_;  // serializes appends to the known_hosts file
};

}  // namespace clusterctl::reconcilers

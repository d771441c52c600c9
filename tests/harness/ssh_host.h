// Real sshd "machines" for tests.
//
// SshHost runs one /usr/sbin/sshd in the foreground (-D, so the test owns
// its PID) on its own loopback address 127.0.0.N and a free port, with a
// per-host ed25519 host key, an authorized ed25519 client key, and an empty
// home directory (HOME is set by the sshd config, so bash does not source
// the real /root/.bashrc). Commands run as the test's user (root here).
//
//   clusterctl::testing::SshHost host;              // started, accepting
//   target.address = host.address(); target.port = host.port();
//   target.identity_file = host.client_key_path();
//   options.known_hosts = host.known_hosts_path();  // holds host's line
//
// Fault injection: Kill(SIGKILL) (sshd and every session die), Kill(SIGSTOP)
// / Kill(SIGCONT) (the machine freezes / thaws), Stop() + Restart(), and
// RegenerateHostKey() + Restart() (a reinstalled machine).
//
// Teardown kills, by PID: sshd and every process descended from it; every
// process that carries this host's marker variable CLUSTERCTL_TEST_HOST=<dir>
// in its environment (set for every session by the sshd config, so services
// started with setsid are found after they left the session); and every
// process named by a pid file (*.pid or "pid") under state_dir(), with its
// process group. A process is only killed from a pid file if it started after
// this host did, so a stale pid file cannot hit an unrelated process.
//
// Errors (sshd does not start, ssh-keygen fails) throw std::runtime_error
// with the tail of the sshd log.
//
// Thread-safety: not thread-safe; drive a host from one thread (the code
// under test may talk to it from any number of threads).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::testing {

struct SshHostOptions {
  // Directory for the host's files (keys, config, log, home, state).
  // Default: empty = a fresh TempDir owned by the host.
  std::string dir;
  // N in the loopback address 127.0.0.N (2..254). Default: 0 = the next one
  // from a process-wide counter that starts at a random base in 20..200, so
  // test binaries running in parallel rarely share an address.
  int octet = 0;
  // TCP port. Default: 0 = a free port on the host's address.
  int port = 0;
  // Private key whose "<path>.pub" is authorized on this host. Default:
  // empty = generate one as <dir>/client_key.
  std::string client_key_path;
  // How long sshd may take to accept connections. Default: 10 s.
  std::chrono::milliseconds start_timeout{10000};
};

class SshHost {
 public:
  // Generates keys, writes the config and starts sshd; returns once sshd
  // accepts connections.
  explicit SshHost(SshHostOptions options = {});
  // Stops sshd and kills every process of this host (see above), by PID.
  ~SshHost();
  SshHost(const SshHost&) = delete;
  SshHost& operator=(const SshHost&) = delete;

  // "127.0.0.N".
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  // The user sessions run as (the test's own user).
  std::string user() const;
  // Public host key as "ssh-ed25519 AAAA..." (no comment).
  const std::string& host_key_pub() const { return host_key_pub_; }
  const std::string& client_key_path() const { return client_key_path_; }
  // Root of this host's files.
  const std::string& dir() const { return dir_; }
  // A per-host directory for service state (use it as a Machine's stateDir).
  std::string state_dir() const { return dir_ + "/state"; }
  // HOME of every session on this host (holds an empty .bashrc).
  std::string home_dir() const { return dir_ + "/home"; }
  std::string log_path() const { return dir_ + "/sshd.log"; }
  // "[127.0.0.N]:PORT ssh-ed25519 AAAA..." for the current host key.
  std::string known_hosts_line() const;
  // <dir>/known_hosts, written at construction with known_hosts_line(). It is
  // not rewritten by RegenerateHostKey(): that is how tests see a changed key.
  std::string known_hosts_path() const { return dir_ + "/known_hosts"; }
  // PID of the running sshd, or -1 when it is stopped.
  pid_t pid() const;
  bool running() const;

  // Kills sshd and every session process (SIGKILL, after freezing the
  // whole tree so that nothing forks meanwhile), as a machine's sshd going
  // away looks to a client. Services that left their session (setsid) keep
  // running. Idempotent.
  void Stop();
  // Sends `sig` to sshd and every process descended from it (open sessions
  // and the commands they run). SIGKILL is Stop(): the host stays down until
  // Restart(). SIGSTOP freezes the tree (new connections wait in the kernel's
  // backlog) until Kill(SIGCONT).
  void Kill(int sig);
  // Stop(), then start sshd again on the same address and port with the
  // current host key.
  void Restart();
  // Replaces the host key with a new one. sshd serves it from the next
  // Restart(); known_hosts_path() is left as it was.
  void RegenerateHostKey();
  // Kills, by PID, every process carrying this host's environment marker and
  // every process named by a pid file under state_dir() (with its process
  // group). Waits (bounded) until they are gone. Called by the destructor.
  void KillServices();

  // Runs `command` on the host with the OpenSSH client (strict host key
  // checking against known_hosts_path()), independent of the code under
  // test. Returns the exit status; *output receives stdout and stderr.
  int RunWithOpenSsh(const std::string& command, std::string* output = nullptr,
                     std::chrono::milliseconds timeout = std::chrono::milliseconds(30000));

 private:
  void Start();
  void WriteConfig();
  std::string LogTail() const;

  std::unique_ptr<TempDir> owned_dir_;  // first: destroyed last
  SshHostOptions options_;
  std::string dir_;
  std::string address_;
  int port_ = 0;
  bool fixed_port_ = false;
  std::string client_key_path_;
  std::string host_key_pub_;
  unsigned long long start_ticks_ = 0;  // of the first sshd, for pid-file checks
  std::unique_ptr<Process> sshd_;
};

// Generates an ed25519 key pair at `path` and `path`.pub (replacing any) with
// ssh-keygen -q -t ed25519 -N ''. Throws std::runtime_error on failure.
void GenerateEd25519Key(const std::string& path, const std::string& comment = "clusterctl-test");

// N machines, one sshd each, sharing one client key and one known_hosts file
// that lists every host.
//
// Thread-safety: as SshHost.
class TestCluster {
 public:
  // Starts `n` hosts under a fresh TempDir.
  explicit TestCluster(int n);
  ~TestCluster();
  TestCluster(const TestCluster&) = delete;
  TestCluster& operator=(const TestCluster&) = delete;

  size_t size() const { return hosts_.size(); }
  SshHost& host(size_t i) { return *hosts_.at(i); }
  const std::string& dir() const { return tmp_.path(); }
  std::string client_key_path() const { return tmp_.Sub("client_key"); }
  std::string known_hosts_path() const { return tmp_.Sub("known_hosts"); }
  // Rewrites known_hosts_path() from every host's current key (after a
  // RegenerateHostKey() that the test wants to accept).
  void WriteKnownHosts();

 private:
  TempDir tmp_;  // first: destroyed after the hosts
  std::vector<std::unique_ptr<SshHost>> hosts_;
};

}  // namespace clusterctl::testing

// Many real sshd "machines" on few sshd processes, for tests and benchmarks
// with tens or hundreds of machines (tests/controller/shards_scale_e2e_test.cc,
// bench/scale_bench.cc).
//
// Every sshd serves up to `per_sshd` machines through one `ListenAddress` per
// machine, each machine its own address 127.77.X.Y (all on 127.0.0.0/8, which
// Linux routes to lo without configuration), on one port shared by all. One
// host key per sshd; known_hosts() has a line per address. Every machine has
// its own stateDir (state_dir(i)). One client key (client_key(), in
// secrets_dir()) is authorized everywhere. Sessions run as the caller's user
// with HOME an empty directory and the fleet's marker variable Marker() in
// their environment (as SshHost's).
//
//   clusterctl::testing::SshFleet fleet({.dir = tmp.Sub("fleet"), .machines = 30});
//   machine i: address fleet.address(i), port fleet.port(), name
//   SshFleet::MachineName(i), stateDir fleet.state_dir(i)
//
// Teardown (Kill(), also from the destructor) kills, by PID: the sshd trees
// (frozen first: a frozen process cannot fork), every process with the
// fleet's marker variable, and every process named by a `pid` file under a
// stateDir that started after the first sshd, with its process group.
//
// Errors (an sshd does not start, no port free on every address) throw
// std::runtime_error.
//
// Thread-safety: not thread-safe; Kill() may also be called from a signal
// watcher thread while the owner thread waits.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/harness/process.h"

namespace clusterctl::testing {

struct SshFleetOptions {
  // Directory for the fleet's files (created). Required.
  std::string dir;
  int machines = 1;
  int per_sshd = 16;  // Machines (ListenAddress lines) per sshd.
  // Machine i has the address index first_address + i (see Address()), so
  // fleets of test binaries running in parallel can stay apart. Default: 0.
  int first_address = 0;
  // The port is the first at or above this that every address can bind.
  int first_port = 23000;
  std::string key_comment = "clusterctl-fleet";
};

class SshFleet {
 public:
  explicit SshFleet(SshFleetOptions options);
  ~SshFleet();
  SshFleet(const SshFleet&) = delete;
  SshFleet& operator=(const SshFleet&) = delete;

  // "m0000", "m0001", ...
  static std::string MachineName(int i);
  // Address index n: 127.77.<n / 250>.<1 + n % 250> (n < 64000).
  static std::string Address(int n);

  // Kills every sshd, session, shell and service of the fleet, by PID, and
  // waits (bounded) until they are gone. Idempotent.
  void Kill();

  int machines() const { return options_.machines; }
  std::string address(int i) const { return Address(options_.first_address + i); }
  int port() const { return port_; }
  std::string client_key() const { return dir_ + "/keys/client_key"; }
  std::string secrets_dir() const { return dir_ + "/keys"; }
  std::string known_hosts() const { return dir_ + "/known_hosts"; }
  std::string state_dir(int i) const { return dir_ + "/machines/" + MachineName(i) + "/state"; }
  const std::string& dir() const { return dir_; }
  size_t sshds() const { return sshds_.size(); }
  // "CLUSTERCTL_TEST_HOST=<dir>", in every session's environment.
  std::string Marker() const { return "CLUSTERCTL_TEST_HOST=" + dir_; }

 private:
  SshFleetOptions options_;
  std::string dir_;
  int port_ = 0;
  unsigned long long start_ticks_ = 0;
  std::vector<std::unique_ptr<Process>> sshds_;
};

// A TCP port at or above `from` (below 32000) that every address can bind
// now; 0 if none.
int PortBindableOnAll(const std::vector<std::string>& addresses, int from);

}  // namespace clusterctl::testing

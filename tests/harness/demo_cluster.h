// DemoCluster: the examples/langgraph topology on this machine, for the
// end-to-end tests and the README demo.
//
// Five real sshd hosts on loopback addresses (jetson, cpu-coordinator,
// rp-embeddings, worker-tools, worker-monitor), a desired-state repository
// with the example's services, dependencies and profiles, where redis-server
// is a real redis-server and every other service is the project's test
// service with an HTTP /health readiness probe; a bare "origin" repository
// the working repository pushes to; and a clusterctl.yaml config pointing at
// all of it with a data directory and a known_hosts file.
//
// Everything it starts is stopped by PID when it goes away (SshHost kills the
// services it started through sshd).
//
// Thread-safety: not thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/harness/git_repo.h"
#include "tests/harness/process.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/tcp_proxy.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::testing {

struct DemoOptions {
  // Root directory. Default: empty = a fresh TempDir removed at the end.
  std::string dir;
  // Readiness delay of every test service. Default: 300 ms.
  int ready_delay_ms = 300;
  // The active profile. Default: production.
  std::string profile = "production";
  // Seconds between polls of clusterd. Default: 2.
  int poll_seconds = 2;
  // A machine whose SSH goes through a TcpProxy the cluster owns (proxy()),
  // listening on the machine's own address so that its known_hosts entry
  // "[127.0.0.N]:<proxy port>" names it; tests slow or cut that link with
  // the proxy's modes. Only SSH goes through it: clusterd's readiness and
  // liveness probes (HTTP, TCP, Redis) go to the machine's address directly.
  // Default: empty = none.
  std::string proxied_machine;
  // ssh.commandTimeoutSeconds of the config. Default: 0 = clusterd's (30).
  int ssh_command_timeout_seconds = 0;
  // alerts.diskPercent of the config, the last line of the file as
  // `alerts: {diskPercent: N}`. Default: 99, so that the tests that expect
  // no open alert do not depend on how full the host's own disk is (every
  // demo machine's stateDir is on it; a full test tmpfs still fires).
  int disk_percent = 99;
};

class DemoCluster {
 public:
  explicit DemoCluster(DemoOptions options = {});
  ~DemoCluster();

  static const std::vector<std::string>& MachineNames();

  SshHost& host(const std::string& machine) { return *hosts_.at(machine); }
  const std::string& dir() const { return dir_; }
  // The working repository (commit and push here) and its bare origin.
  GitRepo& repo() { return *repo_; }
  const std::string& origin() const { return origin_; }
  const std::string& config_path() const { return config_path_; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& token_file() const { return token_file_; }
  const std::string& listen() const { return listen_; }
  int port_of(const std::string& service) const { return ports_.at(service); }
  const std::string& address_of(const std::string& machine) const;
  // The proxy in front of options.proxied_machine's sshd; null when none.
  TcpProxy* proxy() { return proxy_.get(); }

  // Rewrites the config's repo.url (the bare origin by default) with this
  // fetchTimeoutSeconds (0: clusterd's default); read by the next clusterd.
  void UseRemote(const std::string& url, int fetch_timeout_seconds = 0);

  // The text of services/<file>.yaml as generated; tests edit and commit it.
  std::string ServiceFile(const std::string& file) const;

  // `clusterctl --config <config> <args>` with the built binary.
  int Cli(const std::string& args, std::string* output = nullptr) const;

  // The API token (tokenFile's first line), and GET `path` of the running
  // clusterd's API with it: the JSON object or array answered with 200, an
  // empty object otherwise (not up yet, an error).
  std::string Token() const;
  nlohmann::json Api(const std::string& path) const;

  // The built clusterd on this cluster's config, its output in
  // <dir>/clusterd.log (ClusterdLog()); stopped by PID when the Process goes.
  std::unique_ptr<Process> StartClusterd() const;
  std::string ClusterdLog() const;
  // The status of one instance in GET /api/v1/status; {} when absent.
  nlohmann::json Instance(const std::string& service, const std::string& machine) const;
  // Waits (bounded) until the status says overall_status healthy.
  bool WaitHealthy(std::chrono::seconds timeout = std::chrono::seconds(90)) const;

 private:
  void WriteRepository();
  void WriteConfig();

  std::unique_ptr<TempDir> owned_;
  DemoOptions options_;
  std::string dir_, origin_, config_path_, data_dir_, token_file_, listen_;
  std::string remote_url_;
  int fetch_timeout_seconds_ = 0;
  std::string client_key_, known_hosts_;
  std::map<std::string, std::unique_ptr<SshHost>> hosts_;
  std::unique_ptr<TcpProxy> proxy_;  // After hosts_: goes first.
  std::map<std::string, int> ports_;
  std::unique_ptr<GitRepo> repo_;
};

}  // namespace clusterctl::testing

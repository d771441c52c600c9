// Reconcile (issues 4 and 9): converge, no-op, repair and planning, on 20
// real sshd hosts (tests/harness TestCluster: one sshd per machine on
// 127.0.0.N), compared with Ansible on the same hosts in the same run.
//
// Two desired states on the same 20 machines, each 20 x 5 = 100 instances of
// the project's test service with a readiness probe `http /health`
// (periodSeconds 1):
//
//   the chain (issue 9)  svc1..svc5 on every machine; every instance of svcK
//                        depends on every instance of svc(K-1) (a
//                        service-level dependency: `dependsOn: [{service:
//                        svc(K-1), condition: started}]`), no readiness delay.
//                        chain200 is the same with `--ready-delay-ms 200` and
//                        `condition: ready`, for the critical-path bound.
//   the DAG (issue 4)    on machine i, l0-i; l1-i depends on l0-i and
//                        l0-(i+1); l2-i on l1-i and l1-(i+1); l3-i and l3b-i
//                        on l2-i and l2-(i+1) (indexes mod 20),
//                        `--ready-delay-ms 200`.
//
// The chain's services listen on their machine's address: the command is
// `sh -c 'read a < ../../address && exec clusterctl-test-service --host "$a"
// ...'`, run in stateDir/<service> as the process driver does, with the
// machine's address in <host dir>/address (one Service spec for 20 machines).
//
//   BM_SshRoundTrip      one trivial command over a warm persistent shell (the
//                        round trip of the bound)
//   BM_ChainConverge     cold converge of the chain from nothing: one
//                        clusterd-style pass (Reconciler::RunPass: observe,
//                        record, plan, execute, every step audited in RocksDB)
//                        over warm sessions
//   BM_Chain200Converge  the same for chain200, compared with the critical-path
//                        bound levels x (readiness delay + one round trip)
//   BM_ChainNoop         the converged chain: observe + readiness probes +
//                        record + plan, nothing to do
//   BM_ChainRepair       svc3 killed (SIGKILL) on every machine: one pass that
//                        starts the 20 again
//   BM_ApplyChain*       converge, no-op and repair with `clusterctl apply` run
//                        as a fresh process (build tree's clusterctl, --repo a
//                        plain directory, its own --data-dir): it connects
//                        every machine itself (cold)
//   BM_AnsibleChain*     the same three with ansible-playbook in its best
//                        configuration (bench/ansible.h: forks 20, pipelining,
//                        ControlPersist kept warm): one `shell` task per level
//                        that starts the host's svcK unless its pid is alive,
//                        then polls its /health every 50 ms; the linear
//                        strategy finishes a level on every host before the
//                        next starts, which is the service-level dependency.
//                        Skipped, with how to install it, when ansible-playbook
//                        is absent.
//   BM_ColdConverge      cold converge of the DAG with RealExecutor (args:
//                        readiness poll ms, max parallel steps), vs its bound
//   BM_ColdConvergeApply the DAG through the Reconciler (audited)
//   BM_NoopReconcile     the converged DAG: observe + probes + plan
//   BM_DiffPlan10k       pure diff + plan of 10,000 instances (1,000 machines,
//                        10,000 services, 10-level DAG) (goal: under 50 ms).
//                        Arg: 0 in sync, 1 10% stopped, 2 from nothing.
//
// Before each converge (not timed) every service is killed (SIGKILL, by the
// host's marker variable and pid files; the controller's persistent shells
// are left alone) and the state directories are emptied. Each scenario runs
// several times within a time budget (bench_util.h Repeat); its figure is the
// median. At the end the program prints the medians and a goals table (issue
// 9 "Targets"). SIGINT/SIGTERM stop every sshd and service by PID.
//
// Build and run (Release): scripts/bench.sh, or
//   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
//   cmake --build build-bench --target reconcile_bench clusterctl clusterctl-test-service -j2
//   build-bench/bench/reconcile_bench
// Figures: docs/benchmarks.md.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit_log.h"
#include "bench/ansible.h"
#include "bench/bench_util.h"
#include "controller/reconcile.h"
#include "desired-state/loader.h"
#include "reconcilers/driver.h"
#include "reconcilers/executor.h"
#include "reconcilers/observer.h"
#include "reconcilers/plan.h"
#include "reconcilers/probes.h"
#include "reconcilers/shell.h"
#include "reconcilers/ssh.h"
#include "reconcilers/target.h"
#include "store/state_store.h"
#include "store/store.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"

namespace {

namespace ctl = clusterctl::controller;
namespace store = clusterctl::store;
namespace audit = clusterctl::audit;
namespace ds = clusterctl::desired_state;
namespace rc = clusterctl::reconcilers;
namespace th = clusterctl::testing;
using std::chrono::milliseconds;

constexpr int kMachines = 20;
constexpr int kLevels = 4;  // Of the DAG.
constexpr int kReadyDelayMs = 200;
constexpr int kMaxParallel = 40;
constexpr int kInstances = kMachines * 5;
constexpr int kChainLevels = 5;
constexpr int kRepairedLevel = 3;  // svc3 is killed on every machine for the repair.

using namespace clusterctl::bench;  // NOLINT: the shared benchmark helpers

// A TCP port that can be bound on `address`, at or above `from` and below
// the kernel's ephemeral range (so no outgoing connection can be holding it
// when a service restarts). 0 if none.
int BindablePort(const std::string& address, int from) {
  for (int port = from; port < 32000; ++port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
    const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    close(fd);
    if (ok) return port;
  }
  return 0;
}

// A port at or above `from` that can be bound on every address; 0 if none.
int PortBindableOnAll(const std::vector<std::string>& addresses, int from) {
  for (int port = from; port > 0 && port < 32000;) {
    int agreed = port;
    for (const auto& a : addresses) agreed = std::max(agreed, BindablePort(a, agreed));
    if (agreed == port) return port;
    if (agreed == 0) return 0;
    port = agreed;
  }
  return 0;
}

std::string MachineName(int i) {
  char name[8];
  snprintf(name, sizeof name, "m%02d", i);
  return name;
}

// --- The cluster. ---

// One instance: service `name` on machine `machine`, in dependency level
// `level` (0 = no dependencies), listening on `port`.
struct Svc {
  std::string name;
  int machine = 0, level = 0, port = 0;
  std::vector<std::string> deps;
};

// A desired state on the 20 hosts and what the benchmarks need about it.
struct Scenario {
  std::string name;
  std::vector<Svc> svcs;
  ds::DesiredState desired;
  int levels = 0;
  std::string repo_dir;  // A plain directory holding cluster.yaml (clusterctl apply --repo).
};

struct World {
  th::TestCluster cluster{kMachines};
  std::vector<Svc> svcs;     // The DAG.
  ds::DesiredState desired;  // The DAG.
  Scenario chain, chain200;
  rc::SshOptions ssh_options;
  std::unique_ptr<rc::SshPool> pool;
  std::unique_ptr<rc::ShellDriver> driver;
  std::unique_ptr<rc::RealProber> prober;
  double rtt_ms = 0;  // Median trivial command over a warm persistent shell.
  std::string error;  // Set when the setup failed.
  // What the machines run now ("" nothing; "dag", "chain", "chain200" by
  // clusterctl; "ansible" by the playbook).
  std::string running;

  // The state store and audit log of the in-process passes.
  th::TempDir data_dir;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<store::StateStore> state_store;
  std::unique_ptr<audit::AuditLog> audit;
  // clusterctl apply as a process: its config file and data directory.
  th::TempDir apply_dir;

  std::unique_ptr<BenchAnsible> ansible;

  World() {
    if (!std::filesystem::exists(th::TestServiceBin())) {
      error = "build clusterctl-test-service first (" + th::TestServiceBin() + ")";
      return;
    }
    for (int i = 0; i < kMachines; ++i) {
      const std::string m = std::to_string(i), next = std::to_string((i + 1) % kMachines);
      const std::string addr = cluster.host(i).address();
      th::WriteFile(cluster.host(i).dir() + "/address", addr + "\n");
      int port = 21000;
      auto add = [&](const std::string& name, int level, std::vector<std::string> deps) {
        port = BindablePort(addr, port);
        svcs.push_back({name, i, level, port, std::move(deps)});
        ++port;
      };
      add("l0-" + m, 0, {});
      add("l1-" + m, 1, {"l0-" + m, "l0-" + next});
      add("l2-" + m, 2, {"l1-" + m, "l1-" + next});
      add("l3-" + m, 3, {"l2-" + m, "l2-" + next});
      add("l3b-" + m, 3, {"l2-" + m, "l2-" + next});
    }
    for (const Svc& s : svcs) {
      if (s.port == 0) {
        error = "no free port on " + cluster.host(s.machine).address();
        return;
      }
    }
    std::string yaml = ClusterYaml("reconcile-bench");
    for (const Svc& s : svcs) {
      const std::string port = std::to_string(s.port);
      yaml += "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: " + s.name +
              "}\nspec:\n  machines: [" + MachineName(s.machine) +
              "]\n  process:\n    command: [\"" + th::TestServiceBin() + "\", --host, " +
              cluster.host(s.machine).address() + ", --port, \"" + port +
              "\", --ready-delay-ms, \"" + std::to_string(kReadyDelayMs) +
              "\"]\n  readiness:\n    http: {port: " + port +
              ", path: /health}\n    periodSeconds: 1\n    startTimeoutSeconds: 20\n"
              "  stopTimeoutSeconds: 2\n";
      if (!s.deps.empty()) {
        yaml += "  dependsOn:\n";
        for (const auto& d : s.deps) yaml += "    - {service: " + d + "}\n";
      }
    }
    if (!Load(yaml, "1111111111111111111111111111111111111111", &desired)) return;
    if (!MakeChain("chain", 0, "started", &chain)) return;
    if (!MakeChain("chain200", kReadyDelayMs, "ready", &chain200)) return;

    ssh_options.known_hosts = cluster.known_hosts_path();
    pool = std::make_unique<rc::SshPool>(ssh_options);
    driver = std::make_unique<rc::ShellDriver>(pool.get());
    prober = std::make_unique<rc::RealProber>(pool.get());
    // Warm every session and measure the round trip.
    for (const auto& m : desired.machines) {
      auto res = pool->Run(rc::TargetFor(m), RoundTripCommand(), milliseconds(10000));
      if (!res.ok()) {
        error = "ssh to " + m.name + ": " + res.status().ToString();
        return;
      }
    }
    std::vector<double> rtts;
    const rc::SshTarget t0 = rc::TargetFor(desired.machines[0]);
    for (int k = 0; k < 30; ++k) {
      rtts.push_back(
          WallMsOf([&] { (void)pool->Run(t0, RoundTripCommand(), milliseconds(10000)); }));
    }
    rtt_ms = Median(rtts);

    auto st = store::Store::OpenPrimary(data_dir.path());
    if (!st.ok()) {
      error = "store: " + st.status().ToString();
      return;
    }
    store = std::move(st.value());
    state_store = std::make_unique<store::StateStore>(store.get());
    auto log = audit::AuditLog::Open(store.get());
    if (!log.ok()) {
      error = "audit log: " + log.status().ToString();
      return;
    }
    audit = std::move(log.value());
    // clusterctl's config: how to reach the machines; a listen address where
    // no clusterd answers, so apply works on its own data directory.
    th::WriteFile(
        apply_dir.Sub("clusterctl.yaml"),
        "listen: 127.0.0.1:" + std::to_string(th::PickFreePort()) + "\nssh:\n  knownHosts: " +
            cluster.known_hosts_path() + "\n  hostKeyPolicy: strict\nsecretsDir: " +
            std::filesystem::path(cluster.client_key_path()).parent_path().string() + "\n");

    ansible = std::make_unique<BenchAnsible>(cluster);
    if (ansible->installed()) SetUpAnsible();
  }

  // A command that does nothing, run inside the persistent shell (trusted:
  // no subshell): its time is the wire's round trip plus the framing.
  static rc::Command RoundTripCommand() { return rc::Command(":", "", true, rc::Purpose::kAction); }

  std::string ClusterYaml(const std::string& name) {
    std::string yaml = "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: " + name +
                       "}\nspec:\n  defaults:\n    ssh: {user: " + cluster.host(0).user() +
                       ", identityFile: " + cluster.client_key_path() +
                       "}\n  reconcile: {maxParallel: " + std::to_string(kMaxParallel) + "}\n";
    for (int i = 0; i < kMachines; ++i) {
      th::SshHost& h = cluster.host(i);
      yaml += "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: " + MachineName(i) +
              "}\nspec:\n  address: " + h.address() +
              "\n  ssh: {port: " + std::to_string(h.port()) + "}\n  stateDir: " + h.state_dir() +
              "\n";
    }
    return yaml;
  }

  bool Load(const std::string& yaml, const std::string& commit, ds::DesiredState* out) {
    ds::Revision rev;
    rev.commit = commit;
    ds::LoadResult r = ds::LoadFiles({{"cluster.yaml", yaml}}, rev);
    if (!r.ok()) {
      error = "load: " + r.errors.ToString().substr(0, 400);
      return false;
    }
    *out = std::move(*r.state);
    return true;
  }

  // svc1..svc5 on every machine, svcK depending on svc(K-1) at the service
  // level with `condition`.
  bool MakeChain(const std::string& name, int ready_delay_ms, const std::string& condition,
                 Scenario* sc) {
    sc->name = name;
    sc->levels = kChainLevels;
    std::vector<std::string> addresses;
    std::string machines;
    for (int i = 0; i < kMachines; ++i) {
      addresses.push_back(cluster.host(i).address());
      machines += (i ? ", " : "") + MachineName(i);
    }
    std::string yaml = ClusterYaml(name);
    int port = 23000;
    for (int k = 1; k <= kChainLevels; ++k) {
      port = PortBindableOnAll(addresses, port);
      if (port == 0) {
        error = "no port free on every machine";
        return false;
      }
      const std::string svc = "svc" + std::to_string(k);
      for (int i = 0; i < kMachines; ++i) {
        sc->svcs.push_back({svc, i, k - 1, port,
                            k > 1 ? std::vector<std::string>{"svc" + std::to_string(k - 1)}
                                  : std::vector<std::string>{}});
      }
      const std::string run = "read a < ../../address && exec " + th::TestServiceBin() +
                              " --host \"$a\" --port " + std::to_string(port) +
                              " --ready-delay-ms " + std::to_string(ready_delay_ms);
      yaml += "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: " + svc +
              "}\nspec:\n  machines: [" + machines + "]\n  process:\n    command: [/bin/sh, -c, " +
              YamlQuote(run) + "]\n  readiness:\n    http: {port: " + std::to_string(port) +
              ", path: /health}\n    periodSeconds: 1\n    startTimeoutSeconds: 600\n"
              "  stopTimeoutSeconds: 2\n";
      if (k > 1) {
        yaml += "  dependsOn:\n    - {service: svc" + std::to_string(k - 1) +
                ", condition: " + condition + "}\n";
      }
      ++port;
    }
    if (!Load(yaml,
              name == "chain" ? "3333333333333333333333333333333333333333"
                              : "4444444444444444444444444444444444444444",
              &sc->desired)) {
      return false;
    }
    sc->repo_dir = cluster.dir() + "/repo-" + name;
    std::filesystem::create_directories(sc->repo_dir);
    th::WriteFile(sc->repo_dir + "/cluster.yaml", yaml);
    return true;
  }

  // On SIGINT/SIGTERM (from the watcher thread): stop every sshd and
  // service by PID before the process exits without destructors.
  void EmergencyCleanup() {
    for (size_t i = 0; i < cluster.size(); ++i) {
      cluster.host(i).Kill(SIGKILL);
      cluster.host(i).KillServices();
    }
    std::error_code ec;
    std::filesystem::remove_all(cluster.dir(), ec);
  }

  // Kills every service and empties the state directories: the next
  // converge starts from nothing. The persistent shells stay.
  void Teardown() {
    for (size_t i = 0; i < cluster.size(); ++i) {
      KillServicesKeepShells(cluster.host(i));
      ClearStateDir(cluster.host(i));
    }
    running.clear();
  }

  // The level script of one machine for the playbook: start the machine's
  // services of `level` (unless their pid is alive), then poll their /health
  // every 50 ms (at most 20 s).
  std::string LevelScript(const Scenario& sc, int machine, int level) const {
    const ds::Machine& m = sc.desired.machines[machine];
    std::string start, urls;
    for (const Svc& s : sc.svcs) {
      if (s.machine != machine || s.level != level) continue;
      const ds::Service* def = sc.desired.FindService(s.name);
      const std::string d = rc::ShellQuote(m.state_dir + "/" + s.name);
      start += "d=" + d +
               "; mkdir -p \"$d\"\n"
               "if ! { [ -f \"$d/pid\" ] && kill -0 \"$(cat \"$d/pid\")\" 2>/dev/null; }; then\n"
               "  (cd \"$d\" && exec setsid " +
               rc::ShellJoin(def->process.command) +
               " >\"$d/log\" 2>&1 </dev/null) &\n"
               "  echo $! >\"$d/pid\"\nfi\n";
      urls +=
          " " + rc::ShellQuote("http://" + m.address + ":" + std::to_string(s.port) + "/health");
    }
    return start + "i=0\nwhile :; do\n  ok=1\n  for u in" + urls +
           "; do curl -fs -o /dev/null --max-time 1 \"$u\" || { ok=0; break; }; done\n"
           "  [ $ok = 1 ] && exit 0\n  i=$((i + 1)); [ $i -ge 400 ] && { echo not ready >&2; "
           "exit 1; }\n  sleep 0.05\ndone\n";
  }

  // The chain as a playbook: one shell task per level.
  void SetUpAnsible() {
    std::vector<std::pair<std::string, std::string>> hosts;
    for (int i = 0; i < kMachines; ++i) {
      const ds::Machine& m = chain.desired.machines[i];
      std::map<std::string, std::string> vars;
      for (int l = 0; l < chain.levels; ++l) {
        vars["level" + std::to_string(l + 1)] = LevelScript(chain, i, l);
      }
      hosts.push_back({m.name, BenchAnsible::Host(m.address, m.ssh.port, vars)});
    }
    ansible->WriteInventory(hosts);
    std::string play = "- hosts: all\n  gather_facts: false\n  tasks:\n";
    for (int l = 1; l <= chain.levels; ++l) {
      play += "    - name: svc" + std::to_string(l) + "\n      shell: \"{{ level" +
              std::to_string(l) + " }}\"\n";
    }
    ansible->WritePlaybook("chain.yml", play);
  }

  // Every instance of `d` answers its readiness probe (/health 200). Probed
  // directly, not through an observation: the playbook's services have no
  // `starttime` file, so the process driver would not count them as running.
  bool AllReady(const ds::DesiredState& d, std::string* why) {
    std::vector<rc::ProbeRequest> requests;
    for (const auto& i : d.instances) {
      requests.push_back(
          {d.FindService(i.service), d.FindMachine(i.machine), rc::ProbeRole::kReadiness});
    }
    size_t ready = 0;
    for (const auto& r : rc::RunProbes(*prober, requests, 32)) ready += r.ok;
    if (ready != d.instances.size()) {
      *why = std::to_string(ready) + " of " + std::to_string(d.instances.size()) + " ready";
      return false;
    }
    return true;
  }
  bool AllReady(std::string* why) { return AllReady(desired, why); }

  // Kills (SIGKILL) the instance of `service` on every machine, by its pid
  // file, and waits until they are gone (zombies count as gone).
  std::string KillEverywhere(const std::string& service) {
    std::vector<pid_t> pids;
    for (size_t i = 0; i < cluster.size(); ++i) {
      const std::string f = cluster.host(i).state_dir() + "/" + service + "/pid";
      const pid_t pid = static_cast<pid_t>(atol(th::ReadFile(f).c_str()));
      if (pid <= 1 || !th::ProcessAlive(pid)) return "no live pid in " + f;
      pids.push_back(pid);
    }
    for (pid_t p : pids) ::kill(p, SIGKILL);
    const bool gone = th::WaitFor(
        [&] {
          for (pid_t p : pids) {
            if (th::ProcessAlive(p)) return false;
          }
          return true;
        },
        milliseconds(10000));
    return gone ? "" : "killed processes still alive after 10 s";
  }
};

std::atomic<World*> g_world{nullptr};  // For the signal watcher.
std::unique_ptr<World> g_world_owner;  // Reset at the end of main.
std::string g_world_failure;

// The world, built on first use (starting 20 sshd takes a moment) and torn
// down at the end of main (before static destructors: RocksDB must close
// while its library is intact), which stops every process it started by PID.
World* TheWorld(std::string* error) {
  if (!g_world_owner && g_world_failure.empty()) {
    try {
      g_world_owner = std::make_unique<World>();
      g_world = g_world_owner.get();
      g_world_failure = g_world_owner->error;
    } catch (const std::exception& e) {
      g_world_failure = std::string("setting up the cluster: ") + e.what();
    }
  }
  *error = g_world_failure;
  return g_world_failure.empty() ? g_world_owner.get() : nullptr;
}

#define WORLD_OR_SKIP(w)                      \
  std::string world_error;                    \
  World* w_ptr = TheWorld(&world_error);      \
  if (w_ptr == nullptr) {                     \
    state.SkipWithError(world_error.c_str()); \
    return;                                   \
  }                                           \
  World& w = *w_ptr

double BoundMs(const World& w) { return kLevels * (kReadyDelayMs + w.rtt_ms); }

void BM_SshRoundTrip(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  const rc::SshTarget t = rc::TargetFor(w.desired.machines[0]);
  for (auto _ : state) {
    bool ok = true;
    TimeIteration(state, "ssh round trip (persistent shell)", [&] {
      auto r = w.pool->Run(t, World::RoundTripCommand(), milliseconds(10000));
      ok = r.ok() && r->exit_code == 0;
    });
    if (!ok) return state.SkipWithError("ssh round trip failed");
  }
}
BENCHMARK(BM_SshRoundTrip)->Iterations(50)->UseManualTime()->Unit(benchmark::kMillisecond);

// Per level: from the first step's start to the last step's end.
std::string LevelBreakdown(const rc::Plan& plan, const rc::ExecutionReport& rep, int64_t t0) {
  std::map<int, std::pair<int64_t, int64_t>> span;
  for (const auto& st : plan.steps) {
    const auto& o = rep.outcomes[st.id];
    auto it = span.find(st.level);
    if (it == span.end()) {
      span[st.level] = {o.started_ms, o.ended_ms};
    } else {
      it->second.first = std::min(it->second.first, o.started_ms);
      it->second.second = std::max(it->second.second, o.ended_ms);
    }
  }
  std::string s;
  for (const auto& [level, se] : span) {
    s += "L" + std::to_string(level) + " " + std::to_string(se.first - t0) + ".." +
         std::to_string(se.second - t0) + " ms; ";
  }
  return s;
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool CheckConverged(benchmark::State& state, const rc::Plan& plan, const rc::ExecutionReport& rep) {
  if (plan.steps.size() != static_cast<size_t>(kInstances) || !rep.ok()) {
    std::string why = std::to_string(plan.steps.size()) + " steps, " +
                      std::to_string(rep.Count(rc::StepResult::kOk)) + " ok";
    for (const auto& o : rep.outcomes) {
      if (o.result != rc::StepResult::kOk) {
        why += "; " + plan.steps[o.step_id].Key() + ": " + o.detail;
        break;
      }
    }
    state.SkipWithError(why.c_str());
    return false;
  }
  return true;
}

void BM_ColdConverge(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  const int poll_ms = static_cast<int>(state.range(0));
  const int parallel = static_cast<int>(state.range(1));
  const std::string name = "cold converge, poll " + std::to_string(poll_ms) + " ms, parallel " +
                           std::to_string(parallel);
  int64_t observe_ms = 0, plan_us = 0;
  std::string levels;
  for (auto _ : state) {
    w.Teardown();
    rc::Plan plan;
    rc::ExecutionReport rep;
    int64_t t0 = 0;
    TimeIteration(state, name, [&] {
      t0 = SteadyMs();
      rc::ClusterObservation obs =
          rc::ObserveCluster(w.desired, nullptr, *w.driver, w.prober.get(), {});
      observe_ms = SteadyMs() - t0;
      const auto p0 = std::chrono::steady_clock::now();
      plan = rc::MakePlan(ctl::MakePlanInput(w.desired, nullptr, obs, ctl::PassOptions{}));
      plan_us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - p0)
                    .count();
      plan.max_parallel = parallel;
      rc::LiveView::Options o;
      o.max_probe_interval = milliseconds(poll_ms);
      rc::LiveView live(&w.desired, nullptr, w.prober.get(), o);
      live.Seed(obs);
      rc::RealExecutor ex(&w.desired, nullptr, w.driver.get(), &live);
      rep = ex.Execute(plan, nullptr);
    });
    if (!CheckConverged(state, plan, rep)) return;
    levels = LevelBreakdown(plan, rep, t0);
  }
  const double bound = BoundMs(w);
  state.counters["bound_ms"] = bound;
  state.counters["ratio"] = MedianOf(name) / bound;
  Notes()[name] = "observe " + std::to_string(observe_ms) + " ms, plan " + std::to_string(plan_us) +
                  " us; " + levels;
}
BENCHMARK(BM_ColdConverge)
    ->ArgNames({"poll_ms", "parallel"})
    ->Args({50, kMaxParallel})
    ->Args({200, kMaxParallel})
    ->Args({200, 8})
    ->Iterations(5)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// The path of `clusterctl apply`: observations recorded, steps audited,
// default executor options.
void BM_ColdConvergeApply(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  const std::string name = "cold converge as clusterctl apply (audited, poll 200 ms)";
  ctl::ReconcileDeps deps;
  deps.state = w.state_store.get();
  deps.audit = w.audit.get();
  deps.driver = w.driver.get();
  deps.prober = w.prober.get();
  deps.actor = "bench@localhost";
  ctl::Reconciler reconciler(deps);
  for (auto _ : state) {
    w.Teardown();
    rc::Plan plan;
    rc::ExecutionReport rep;
    TimeIteration(state, name, [&] {
      ctl::PassOptions po;
      auto obs = ctl::ObserveAndRecord(deps, w.desired, nullptr);
      plan = rc::MakePlan(ctl::MakePlanInput(w.desired, nullptr, obs, po));
      rep = reconciler.Execute(w.desired, nullptr, plan, obs, po);
    });
    if (!CheckConverged(state, plan, rep)) return;
  }
  state.counters["bound_ms"] = BoundMs(w);
  state.counters["ratio"] = MedianOf(name) / BoundMs(w);
}
BENCHMARK(BM_ColdConvergeApply)->Iterations(3)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_NoopReconcile(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  const bool record = state.range(0) != 0;
  const std::string name =
      std::string("no-op reconcile (observe + probe + plan") + (record ? " + record)" : ")");
  std::string why;
  if (!w.AllReady(&why)) return state.SkipWithError(("not converged: " + why).c_str());
  ctl::ReconcileDeps deps;
  deps.state = record ? w.state_store.get() : nullptr;
  deps.driver = w.driver.get();
  deps.prober = w.prober.get();
  int64_t observe_ms = 0;
  for (auto _ : state) {
    rc::Plan plan;
    TimeIteration(state, name, [&] {
      const int64_t t0 = SteadyMs();
      auto obs = ctl::ObserveAndRecord(deps, w.desired, nullptr);
      observe_ms = SteadyMs() - t0;
      plan = rc::MakePlan(ctl::MakePlanInput(w.desired, nullptr, obs, ctl::PassOptions{}));
    });
    if (!plan.InSync()) {
      return state.SkipWithError(
          ("not in sync: " + std::to_string(plan.steps.size()) + " steps").c_str());
    }
  }
  Notes()[name] = "last iteration: observe + probes " + std::to_string(observe_ms) + " ms";
}
BENCHMARK(BM_NoopReconcile)
    ->ArgName("record")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(10)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// --- The chain (issue 9): converge, no-op and repair, in-process, as
// `clusterctl apply` processes, and with Ansible. ---

ctl::ReconcileDeps PassDeps(World& w) {
  ctl::ReconcileDeps deps;
  deps.state = w.state_store.get();
  deps.audit = w.audit.get();
  deps.driver = w.driver.get();
  deps.prober = w.prober.get();
  deps.actor = "bench@localhost";
  return deps;
}

// Per level: from the first step's start to the last step's end, relative to
// t0 (steady ms).
std::string ChainLevels(const rc::Plan& plan, const rc::ExecutionReport& rep, int64_t t0) {
  std::map<std::string, std::pair<int64_t, int64_t>> span;
  for (const auto& st : plan.steps) {
    const auto& o = rep.outcomes[st.id];
    auto it = span.find(st.service);
    if (it == span.end()) {
      span[st.service] = {o.started_ms, o.ended_ms};
    } else {
      it->second.first = std::min(it->second.first, o.started_ms);
      it->second.second = std::max(it->second.second, o.ended_ms);
    }
  }
  std::string s;
  for (const auto& [svc, se] : span) {
    s +=
        svc + " " + std::to_string(se.first - t0) + ".." + std::to_string(se.second - t0) + " ms; ";
  }
  return s;
}

// One clusterd-style pass over `sc` (observe, record, plan, execute, audit);
// checks that it ran `steps` start steps, all ok. *ms: the pass's wall time.
std::string TimedPass(World& w, const Scenario& sc, audit::Trigger trigger, size_t steps,
                      double* ms, std::string* breakdown) {
  ctl::Reconciler reconciler(PassDeps(w));
  ctl::PassOptions po;
  po.trigger = trigger;
  ctl::PassResult r;
  const int64_t t0 = SteadyMs();
  *ms = WallMsOf([&] { r = reconciler.RunPass(sc.desired, nullptr, po); });
  if (r.plan.steps.size() != steps || r.plan.Count(rc::Action::kStart) != steps || !r.report.ok()) {
    std::string why = std::to_string(r.plan.steps.size()) + " steps (expected " +
                      std::to_string(steps) + " starts), " +
                      std::to_string(r.report.Count(rc::StepResult::kOk)) + " ok";
    for (const auto& [m, reason] : r.observation.unreachable) why += "; " + m + ": " + reason;
    for (const auto& o : r.report.outcomes) {
      if (o.result != rc::StepResult::kOk) {
        why += "; " + r.plan.steps[o.step_id].Key() + ": " + o.detail;
        break;
      }
    }
    return why;
  }
  if (breakdown) {
    *breakdown = "observe " + std::to_string(r.observation.duration_ms) + " ms; " +
                 ChainLevels(r.plan, r.report, t0);
  }
  return "";
}

// Makes the machines run `sc` as clusterctl started it (untimed).
std::string EnsureConverged(World& w, Scenario& sc) {
  std::string why;
  if (w.running == sc.name && w.AllReady(sc.desired, &why)) return "";
  w.Teardown();
  double ms = 0;
  std::string e =
      TimedPass(w, sc, audit::Trigger::kRevision, sc.desired.instances.size(), &ms, nullptr);
  if (!e.empty()) return "converging " + sc.name + ": " + e;
  if (!w.AllReady(sc.desired, &why)) return sc.name + " not ready after converging: " + why;
  w.running = sc.name;
  return "";
}

void ChainConverge(benchmark::State& state, Scenario World::*which, const std::string& name) {
  WORLD_OR_SKIP(w);
  Scenario& sc = w.*which;
  std::string breakdown;
  Repeat(state, name, {3, 5, 120000}, [&](double* ms) {
    w.Teardown();
    std::string e =
        TimedPass(w, sc, audit::Trigger::kRevision, sc.desired.instances.size(), ms, &breakdown);
    if (!e.empty()) return e;
    std::string why;
    if (!w.AllReady(sc.desired, &why)) return "not ready after the pass: " + why;
    w.running = sc.name;
    return std::string();
  });
  Notes()[name] = "last run: " + breakdown;
}

void BM_ChainConverge(benchmark::State& state) {
  ChainConverge(state, &World::chain, "chain: cold converge (in-process pass, warm sessions)");
}
BENCHMARK(BM_ChainConverge)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_Chain200Converge(benchmark::State& state) {
  ChainConverge(state, &World::chain200,
                "chain200: cold converge, 200 ms readiness delay (in-process pass)");
}
BENCHMARK(BM_Chain200Converge)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_ChainNoop(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  const std::string name = "chain: no-op (observe + probes + record + plan)";
  if (std::string e = EnsureConverged(w, w.chain); !e.empty()) {
    return state.SkipWithError(e.c_str());
  }
  ctl::ReconcileDeps deps = PassDeps(w);
  int64_t observe_ms = 0;
  Repeat(state, name, {5, 10, 60000}, [&](double* ms) {
    rc::Plan plan;
    *ms = WallMsOf([&] {
      const int64_t t0 = SteadyMs();
      auto obs = ctl::ObserveAndRecord(deps, w.chain.desired, nullptr);
      observe_ms = SteadyMs() - t0;
      plan = rc::MakePlan(ctl::MakePlanInput(w.chain.desired, nullptr, obs, ctl::PassOptions{}));
    });
    if (!plan.InSync()) return "not in sync: " + std::to_string(plan.steps.size()) + " steps";
    return std::string();
  });
  // Breakdown (untimed, medians of 3): the observation alone, the 100
  // readiness probes alone.
  std::vector<double> observe_only, probes_only;
  rc::ObserveOptions no_probes;
  no_probes.probe_readiness = false;
  std::vector<rc::ProbeRequest> requests;
  for (const auto& i : w.chain.desired.instances) {
    requests.push_back({w.chain.desired.FindService(i.service),
                        w.chain.desired.FindMachine(i.machine), rc::ProbeRole::kReadiness});
  }
  for (int k = 0; k < 3; ++k) {
    observe_only.push_back(WallMsOf(
        [&] { rc::ObserveCluster(w.chain.desired, nullptr, *w.driver, nullptr, no_probes); }));
    probes_only.push_back(WallMsOf([&] { rc::RunProbes(*w.prober, requests, 32); }));
  }
  Notes()[name] = "last run: observe + probes + record " + std::to_string(observe_ms) +
                  " ms; alone: observation of 20 machines " + FormatMs(Median(observe_only)) +
                  ", 100 readiness probes " + FormatMs(Median(probes_only));
}
BENCHMARK(BM_ChainNoop)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_ChainRepair(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  const std::string name = "chain: repair svc3 killed on 20 machines (in-process pass)";
  const std::string victim = "svc" + std::to_string(kRepairedLevel);
  std::string breakdown;
  Repeat(state, name, {3, 5, 90000}, [&](double* ms) {
    if (std::string e = EnsureConverged(w, w.chain); !e.empty()) return e;
    if (std::string e = w.KillEverywhere(victim); !e.empty()) return e;
    return TimedPass(w, w.chain, audit::Trigger::kDrift, kMachines, ms, &breakdown);
  });
  Notes()[name] = "last run: " + breakdown;
}
BENCHMARK(BM_ChainRepair)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

// `clusterctl apply` as a fresh process on the chain's repository. Checks
// its exit status and the step count of its --json summary.
std::string RunApply(World& w, size_t steps, double* ms) {
  const std::string out_path = w.apply_dir.Sub("apply.out");
  std::string out;
  int rc = -1;
  *ms = WallMsOf([&] {
    rc = RunBounded({th::CliBin(), "--config", w.apply_dir.Sub("clusterctl.yaml"), "--repo",
                     w.chain.repo_dir, "--data-dir", w.apply_dir.Sub("data"), "--json", "apply"},
                    {}, out_path, milliseconds(900000), &out);
  });
  // The last line is the --json summary: {"event": "summary", "steps": N, ...}.
  std::string last = out;
  while (!last.empty() && last.back() == '\n') last.pop_back();
  last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
  const nlohmann::json summary = nlohmann::json::parse(last, nullptr, false);
  if (rc != 0 || !summary.is_object() || summary.value("event", "") != "summary" ||
      summary.value("steps", -1) != static_cast<int>(steps) ||
      summary.value("result", "") != "ok") {
    return "clusterctl apply exit " + std::to_string(rc) + " (expected " + std::to_string(steps) +
           " steps, ok): " + out.substr(0, 300) + " ... " + last;
  }
  return "";
}

void BM_ApplyChainConverge(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  if (!std::filesystem::exists(th::CliBin())) {
    return state.SkipWithError(("build clusterctl first (" + th::CliBin() + ")").c_str());
  }
  Repeat(state, "chain: cold converge, clusterctl apply (fresh process, cold)", {3, 5, 120000},
         [&](double* ms) {
           w.Teardown();
           std::string e = RunApply(w, w.chain.desired.instances.size(), ms);
           if (!e.empty()) return e;
           std::string why;
           if (!w.AllReady(w.chain.desired, &why)) return "not ready after apply: " + why;
           w.running = w.chain.name;
           return std::string();
         });
}
BENCHMARK(BM_ApplyChainConverge)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_ApplyChainNoop(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  if (std::string e = EnsureConverged(w, w.chain); !e.empty()) {
    return state.SkipWithError(e.c_str());
  }
  Repeat(state, "chain: no-op, clusterctl apply (fresh process, cold)", {3, 5, 60000},
         [&](double* ms) { return RunApply(w, 0, ms); });
}
BENCHMARK(BM_ApplyChainNoop)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_ApplyChainRepair(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  Repeat(state, "chain: repair, clusterctl apply (fresh process, cold)", {3, 5, 90000},
         [&](double* ms) {
           if (std::string e = EnsureConverged(w, w.chain); !e.empty()) return e;
           if (std::string e = w.KillEverywhere("svc" + std::to_string(kRepairedLevel));
               !e.empty()) {
             return e;
           }
           return RunApply(w, kMachines, ms);
         });
}
BENCHMARK(BM_ApplyChainRepair)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

// --- Ansible's best configuration on the chain. ---

#define ANSIBLE_OR_SKIP(w)                                           \
  if (!(w).ansible->installed()) {                                   \
    std::printf("%s\n", BenchAnsible::kInstallHint);                 \
    return state.SkipWithError("ansible-playbook is not installed"); \
  }

// The playbook once, untimed, so the ControlPersist connections are warm.
std::string WarmAnsible(World& w) {
  static bool warm = false;
  if (warm) return "";
  std::string e = w.ansible->RunPlaybook("chain.yml");
  if (e.empty()) warm = true;
  w.running = "ansible";
  return e;
}

// Every chain instance answers /health (the playbook's services have no
// clusterctl state files, so readiness is probed directly).
std::string AnsibleLeftAllReady(World& w) {
  std::string why;
  if (!w.AllReady(w.chain.desired, &why)) return "playbook left " + why;
  return "";
}

void BM_AnsibleChainConverge(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  ANSIBLE_OR_SKIP(w);
  if (std::string e = WarmAnsible(w); !e.empty()) return state.SkipWithError(e.c_str());
  Repeat(state, "chain: cold converge, ansible-playbook (best: forks 20, pipelining, warm)",
         {3, 3, 150000}, [&](double* ms) {
           w.Teardown();
           std::string e;
           *ms = WallMsOf([&] { e = w.ansible->RunPlaybook("chain.yml"); });
           w.running = "ansible";
           return e.empty() ? AnsibleLeftAllReady(w) : e;
         });
}
BENCHMARK(BM_AnsibleChainConverge)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_AnsibleChainNoop(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  ANSIBLE_OR_SKIP(w);
  if (std::string e = WarmAnsible(w); !e.empty()) return state.SkipWithError(e.c_str());
  Repeat(state, "chain: no-op, ansible-playbook (best)", {3, 3, 150000}, [&](double* ms) {
    if (std::string e = AnsibleLeftAllReady(w); !e.empty()) return e;
    std::string e;
    *ms = WallMsOf([&] { e = w.ansible->RunPlaybook("chain.yml"); });
    return e;
  });
}
BENCHMARK(BM_AnsibleChainNoop)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_AnsibleChainRepair(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  ANSIBLE_OR_SKIP(w);
  if (std::string e = WarmAnsible(w); !e.empty()) return state.SkipWithError(e.c_str());
  Repeat(state, "chain: repair, ansible-playbook (best)", {3, 3, 150000}, [&](double* ms) {
    if (std::string e = AnsibleLeftAllReady(w); !e.empty()) return e;
    if (std::string e = w.KillEverywhere("svc" + std::to_string(kRepairedLevel)); !e.empty()) {
      return e;
    }
    std::string e;
    *ms = WallMsOf([&] { e = w.ansible->RunPlaybook("chain.yml"); });
    return e.empty() ? AnsibleLeftAllReady(w) : e;
  });
}
BENCHMARK(BM_AnsibleChainRepair)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

// --- Pure diff + plan of 10,000 instances. ---

struct Big {
  ds::DesiredState desired;
  std::string error;
};

const Big& BigState() {
  static Big big = [] {
    Big b;
    const int machines = 1000, services = 10000, layer = services / 10;
    // 100 documents per file (a file is limited to 1 MiB).
    std::vector<ds::SourceFile> files;
    files.push_back({"cluster.yaml",
                     "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: big}\n"
                     "spec:\n  defaults:\n    ssh: {user: ops}\n"});
    std::string yaml;
    auto flush = [&](int n) {
      if ((n + 1) % 100 == 0 || n < 0) {
        if (!yaml.empty()) files.push_back({"f" + std::to_string(files.size()) + ".yaml", yaml});
        yaml.clear();
      }
    };
    for (int m = 0; m < machines; ++m) {
      yaml += "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m" +
              std::to_string(m) + "}\nspec:\n  address: 10." + std::to_string(m / 250) + "." +
              std::to_string(m % 250) + ".1\n";
      flush(m);
    }
    flush(-1);
    for (int s = 0; s < services; ++s) {
      yaml += "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: s" +
              std::to_string(s) + "}\nspec:\n  machines: [m" + std::to_string(s % machines) +
              "]\n  process:\n    command: [/usr/bin/svc, --id, \"" + std::to_string(s) +
              "\"]\n  readiness:\n    http: {port: 8080, path: /health}\n";
      if (s >= layer) {
        const int below = s - layer;
        yaml += "  dependsOn:\n    - {service: s" + std::to_string(below) + "}\n    - {service: s" +
                std::to_string(below - below % layer + (below + 1) % layer) + "}\n";
      }
      flush(s);
    }
    flush(-1);
    ds::Revision rev;
    rev.commit = "2222222222222222222222222222222222222222";
    ds::LoadResult r = ds::LoadFiles(files, rev);
    if (!r.ok()) {
      b.error = r.errors.ToString().substr(0, 400);
    } else {
      b.desired = std::move(*r.state);
    }
    return b;
  }();
  return big;
}

// Observations of every instance: running and ready with the desired spec
// hash, except every `stopped_every`-th (0: none) which never started.
rc::PlanInput BigInput(const ds::DesiredState& d, int stopped_every) {
  rc::PlanInput in;
  in.desired = &d;
  in.now_ms = 1795343445123;
  size_t k = 0;
  for (const auto& i : d.instances) {
    rc::ObservedInstance o;
    o.service = i.service;
    o.machine = i.machine;
    o.observed_at_ms = in.now_ms;
    if (stopped_every > 0 && k % stopped_every == 0) {
      o.state = rc::ObservedState::kStopped;
      o.detail = "never-started";
    } else {
      o.state = rc::ObservedState::kRunning;
      o.pid = 1000 + static_cast<int64_t>(k);
      o.started_at = 1795343000;
      o.spec_hash = i.spec_hash;
      o.restarts = 1;
      in.ready[o.Key()] = true;
    }
    in.observed.push_back(std::move(o));
    ++k;
  }
  return in;
}

void BM_DiffPlan10k(benchmark::State& state) {
  const Big& big = BigState();
  if (!big.error.empty()) return state.SkipWithError(big.error.c_str());
  static const char* kNames[] = {"in sync", "10% stopped", "from nothing"};
  const int variant = static_cast<int>(state.range(0));
  const int every[] = {0, 10, 1};
  const rc::PlanInput in = BigInput(big.desired, every[variant]);
  const std::string name = std::string("diff + plan 10,000 instances, ") + kNames[variant];
  size_t steps = 0;
  for (auto _ : state) {
    rc::Plan plan;
    TimeIteration(state, name, [&] { plan = rc::MakePlan(in); });
    steps = plan.steps.size();
    benchmark::DoNotOptimize(plan);
  }
  // Breakdown: the diff alone (pairing + per-instance decisions); the rest
  // of MakePlan is ordering the steps.
  std::vector<double> diff_ms;
  for (int k = 0; k < 5; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    auto diffs = rc::Diff(in);
    benchmark::DoNotOptimize(diffs);
    diff_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["diff_only_ms"] = Median(diff_ms);
  char note[96];
  snprintf(note, sizeof note, "Diff alone %.1f ms (median of 5); %zu steps", Median(diff_ms),
           steps);
  Notes()[name] = note;
  state.counters["instances"] = static_cast<double>(big.desired.instances.size());
  state.counters["steps"] = static_cast<double>(steps);
}
BENCHMARK(BM_DiffPlan10k)
    ->ArgName("variant")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Iterations(20)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void PrintSummary() {
  auto& s = Samples();
  if (s.empty()) return;
  std::printf("\nSummary (wall ms per run; median [min..max], n):\n");
  for (const auto& [name, v] : s) {
    if (v.empty()) continue;
    std::printf("  %-66s %10.2f  [%.2f..%.2f]  n=%zu\n", name.c_str(), Median(v),
                *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()),
                v.size());
  }
  for (const auto& [name, note] : Notes()) std::printf("  %s: %s\n", name.c_str(), note.c_str());
  World* w = g_world.load();
  const double rtt = w != nullptr ? w->rtt_ms : 0;
  std::printf("  round trip over a warm persistent shell (setup, median of 30): %.2f ms\n", rtt);

  const bool ansible = !FindInPath("ansible-playbook").empty();
  const std::string no_ansible =
      "not measured: ansible-playbook not installed "
      "(apt-get install ansible-core)";
  // "ours vs Ansible's best" as a goal row: the ratio Ansible / ours.
  auto versus = [&](const std::string& what, const std::string& ours, const std::string& theirs,
                    double goal) {
    const double a = MedianOf(theirs), o = MedianOf(ours);
    if (o <= 0) return;
    if (!ansible || a <= 0) {
      AddGoal(what, MedianText(ours), ">= " + Ratio(goal) + " faster than Ansible's best",
              ansible ? "not measured: no Ansible figure in this run" : no_ansible);
      return;
    }
    AddGoal(what, Ratio(a / o) + " (clusterctl " + FormatMs(o) + ", Ansible " + FormatMs(a) + ")",
            ">= " + Ratio(goal) + " faster than Ansible's best", Verdict(a / o >= goal));
  };

  const std::string converge = "chain: cold converge (in-process pass, warm sessions)";
  const std::string converge200 =
      "chain200: cold converge, 200 ms readiness delay (in-process pass)";
  const std::string noop = "chain: no-op (observe + probes + record + plan)";
  const std::string repair = "chain: repair svc3 killed on 20 machines (in-process pass)";
  const std::string a_converge = "chain: cold converge, clusterctl apply (fresh process, cold)";
  const std::string a_noop = "chain: no-op, clusterctl apply (fresh process, cold)";
  const std::string a_repair = "chain: repair, clusterctl apply (fresh process, cold)";
  const std::string ans_converge =
      "chain: cold converge, ansible-playbook (best: forks 20, pipelining, warm)";
  const std::string ans_noop = "chain: no-op, ansible-playbook (best)";
  const std::string ans_repair = "chain: repair, ansible-playbook (best)";

  if (MedianOf(noop) > 0) {
    AddGoal("no-op reconcile, chain 20 x 5 (observe + probes + plan)", MedianText(noop), "< 150 ms",
            Verdict(MedianOf(noop) < 150));
  }
  versus("no-op reconcile vs Ansible's best no-op", noop, ans_noop, 200);
  versus("cold converge, chain 20 x 5, vs Ansible", converge, ans_converge, 30);
  if (MedianOf(converge200) > 0) {
    const double bound = kChainLevels * (kReadyDelayMs + rtt);
    const double r = MedianOf(converge200) / bound;
    char b[160];
    snprintf(b, sizeof b, "%.2fx the bound %d x (%d + %.1f) ms = %.0f ms", r, kChainLevels,
             kReadyDelayMs, rtt, bound);
    AddGoal("cold converge, chain with 200 ms readiness delay per level",
            MedianText(converge200) + ": " + b, "<= 1.3x the critical-path bound",
            Verdict(r <= 1.3));
  }
  versus("repair of svc3 killed on each of 20 machines vs Ansible", repair, ans_repair, 30);
  versus("`clusterctl apply` (fresh process, cold): converge vs Ansible (warm)", a_converge,
         ans_converge, 20);
  versus("`clusterctl apply` (fresh process, cold): no-op vs Ansible (warm)", a_noop, ans_noop, 25);
  versus("`clusterctl apply` (fresh process, cold): repair vs Ansible (warm)", a_repair, ans_repair,
         25);
  if (ansible && MedianOf(ans_converge) > 0) {
    AddGoal("Ansible's best: converge / no-op / repair of the chain",
            FormatMs(MedianOf(ans_converge)) + " / " + FormatMs(MedianOf(ans_noop)) + " / " +
                FormatMs(MedianOf(ans_repair)),
            "(reference)", "-");
  }
  for (const auto& [name, v] : s) {
    if (name.rfind("cold converge", 0) != 0) continue;  // The DAG (issue 4).
    const double bound = kLevels * (kReadyDelayMs + rtt);
    const double r = Median(v) / bound;
    char b[64];
    snprintf(b, sizeof b, ": %.2fx the bound (%.0f ms)", r, bound);
    AddGoal("DAG " + name, MedianText(name) + b, "<= 1.3x the bound (issue 4)", Verdict(r <= 1.3));
  }
  for (const char* v : {"in sync", "10% stopped", "from nothing"}) {
    const std::string name = std::string("diff + plan 10,000 instances, ") + v;
    if (MedianOf(name) > 0) {
      AddGoal(name, MedianText(name), "< 50 ms (issue 4)", Verdict(MedianOf(name) < 50));
    }
  }
  PrintGoals("reconcile_bench");
}

}  // namespace

int main(int argc, char** argv) {
  StartSignalWatcher("reconcile_bench", [] {
    if (World* w = g_world.load()) w->EmergencyCleanup();
  });
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::printf(
      "reconcile_bench: %d machines x 5 services (the chain svc1..svc5; the %d-level DAG with "
      "a %d ms readiness delay); load average at start: %s",
      kMachines, kLevels, kReadyDelayMs, th::ReadFile("/proc/loadavg").c_str());
  if (FindInPath("ansible-playbook").empty()) std::printf("%s\n", BenchAnsible::kInstallHint);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  PrintSummary();
  g_world = nullptr;
  g_world_owner.reset();
  return 0;
}

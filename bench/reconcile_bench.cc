// Reconcile (issue 4): converge, no-op and planning, on 20 real sshd hosts
// (tests/harness TestCluster: one sshd per machine on 127.0.0.N).
//
// The cluster: 20 machines x 5 services = 100 instances of the project's
// test service (`--ready-delay-ms 200`, readiness http /health, periodSeconds
// 1), in a 4-level dependency DAG: on machine i, l0-i; l1-i depends on l0-i
// and l0-(i+1); l2-i on l1-i and l1-(i+1); l3-i and l3b-i on l2-i and
// l2-(i+1) (indexes mod 20). The widest level has 40 instances;
// reconcile.maxParallel is 40.
//
//   BM_SshRoundTrip   one `true` over a warm session (the round trip in the bound)
//   BM_ColdConverge   from nothing (state directories empty): observe + plan +
//                     execute until every instance is ready, over warm sessions.
//                     Args: readiness poll interval (ms) and max parallel steps.
//                     Compared with the critical-path bound
//                     levels x (readiness delay + one round trip).
//   BM_ColdConvergeApply  the same path as `clusterctl apply`: observations
//                     recorded in a RocksDB state store, every step audited
//                     (synced intent and result), default executor options
//                     (200 ms readiness polls).
//   BM_NoopReconcile  the converged cluster: observe + readiness probes + plan,
//                     nothing to do (goal: under 150 ms); /1 also records the
//                     observation and probes in the state store, as clusterd does.
//   BM_DiffPlan10k    pure diff + plan of 10,000 instances (1,000 machines,
//                     10,000 services, 10-level DAG) (goal: under 50 ms).
//                     Arg: 0 in sync, 1 10% stopped, 2 from nothing.
//   BM_Ansible*       an equivalent playbook (one task per level: start the
//                     host's services of that level with setsid, then poll
//                     their /health every 50 ms), forks=20, over the same
//                     hosts: from nothing, and again on the converged cluster.
//                     Skipped when `ansible-playbook` is not installed.
//
// Between converge iterations (not timed) every service is killed by the pid
// files (SshHost::KillServices) and the state directories are emptied. Each
// iteration is timed by hand (wall clock) and kept; after the runs a summary
// prints medians, the bound and the ratios. SIGINT/SIGTERM stop every sshd
// and service by PID before exiting.
//
// Build and run (Release):
//   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
//   cmake --build build-bench --target reconcile_bench clusterctl-test-service -j2
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
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "controller/audit_log.h"
#include "controller/reconcile.h"
#include "controller/state_store.h"
#include "controller/store.h"
#include "desired-state/loader.h"
#include "reconcilers/driver.h"
#include "reconcilers/executor.h"
#include "reconcilers/observer.h"
#include "reconcilers/plan.h"
#include "reconcilers/probes.h"
#include "reconcilers/shell.h"
#include "reconcilers/ssh.h"
#include "reconcilers/target.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"

namespace {

namespace ctl = clusterctl::controller;
namespace ds = clusterctl::desired_state;
namespace rc = clusterctl::reconcilers;
namespace th = clusterctl::testing;
using std::chrono::milliseconds;

constexpr int kMachines = 20;
constexpr int kLevels = 4;
constexpr int kReadyDelayMs = 200;
constexpr int kMaxParallel = 40;
constexpr int kInstances = kMachines * 5;

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

std::string MachineName(int i) {
  char name[8];
  snprintf(name, sizeof name, "m%02d", i);
  return name;
}

// --- The cluster. ---

struct Svc {
  std::string name;
  int machine = 0, level = 0, port = 0;
  std::vector<std::string> deps;
};

struct World {
  th::TestCluster cluster{kMachines};
  std::vector<Svc> svcs;
  ds::DesiredState desired;
  rc::SshOptions ssh_options;
  std::unique_ptr<rc::SshPool> pool;
  std::unique_ptr<rc::ShellDriver> driver;
  std::unique_ptr<rc::RealProber> prober;
  double rtt_ms = 0;  // Median `true` over a warm session.
  std::string error;  // Set when the setup failed.

  // The state store and audit log of the "apply" path.
  th::TempDir data_dir;
  std::unique_ptr<ctl::Store> store;
  std::unique_ptr<ctl::StateStore> state_store;
  std::unique_ptr<ctl::AuditLog> audit;

  // Ansible (when installed).
  std::unique_ptr<th::TempDir> ansible_dir;
  std::string ansible_playbook;

  World() {
    if (!std::filesystem::exists(th::TestServiceBin())) {
      error = "build clusterctl-test-service first (" + th::TestServiceBin() + ")";
      return;
    }
    for (int i = 0; i < kMachines; ++i) {
      const std::string m = std::to_string(i), next = std::to_string((i + 1) % kMachines);
      const std::string addr = cluster.host(i).address();
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
    std::string yaml =
        "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: reconcile-bench}\n"
        "spec:\n  defaults:\n    ssh: {user: " +
        cluster.host(0).user() + ", identityFile: " + cluster.client_key_path() +
        "}\n  reconcile: {maxParallel: " + std::to_string(kMaxParallel) + "}\n";
    for (int i = 0; i < kMachines; ++i) {
      th::SshHost& h = cluster.host(i);
      yaml += "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: " + MachineName(i) +
              "}\nspec:\n  address: " + h.address() +
              "\n  ssh: {port: " + std::to_string(h.port()) + "}\n  stateDir: " + h.state_dir() +
              "\n";
    }
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
    ds::Revision rev;
    rev.commit = "1111111111111111111111111111111111111111";
    ds::LoadResult r = ds::LoadFiles({{"cluster.yaml", yaml}}, rev);
    if (!r.ok()) {
      error = "load: " + r.errors.ToString().substr(0, 400);
      return;
    }
    desired = std::move(*r.state);
    ssh_options.known_hosts = cluster.known_hosts_path();
    pool = std::make_unique<rc::SshPool>(ssh_options);
    driver = std::make_unique<rc::ShellDriver>(pool.get());
    prober = std::make_unique<rc::RealProber>(pool.get());
    // Warm every session and measure the round trip.
    for (const auto& m : desired.machines) {
      auto res = pool->Run(rc::TargetFor(m), "true", milliseconds(10000));
      if (!res.ok()) {
        error = "ssh to " + m.name + ": " + res.status().ToString();
        return;
      }
    }
    std::vector<double> rtts;
    const rc::SshTarget t0 = rc::TargetFor(desired.machines[0]);
    for (int k = 0; k < 30; ++k) {
      const auto t = std::chrono::steady_clock::now();
      (void)pool->Run(t0, "true", milliseconds(10000));
      rtts.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
    }
    rtt_ms = Median(rtts);

    auto st = ctl::Store::OpenPrimary(data_dir.path());
    if (!st.ok()) {
      error = "store: " + st.status().ToString();
      return;
    }
    store = std::move(st.value());
    state_store = std::make_unique<ctl::StateStore>(store.get());
    auto log = ctl::AuditLog::Open(store.get());
    if (!log.ok()) {
      error = "audit log: " + log.status().ToString();
      return;
    }
    audit = std::move(log.value());

    ansible_playbook = FindInPath("ansible-playbook");
    if (!ansible_playbook.empty()) SetUpAnsible();
  }

  ~World() {
    if (ansible_dir) {
      // Close Ansible's ControlPersist masters (local ssh processes).
      for (size_t i = 0; i < cluster.size(); ++i) {
        th::SshHost& h = cluster.host(i);
        RunBounded({"ssh", "-o", "ControlPath=" + ansible_dir->Sub("cp/%C"), "-p",
                    std::to_string(h.port()), "-O", "exit", h.user() + "@" + h.address()},
                   {}, ansible_dir->Sub("ssh_exit.out"), milliseconds(5000), nullptr);
      }
    }
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

  // Kills every service by its pid file and empties the state directories:
  // the next converge starts from nothing.
  void Teardown() {
    for (size_t i = 0; i < cluster.size(); ++i) {
      th::SshHost& h = cluster.host(i);
      h.KillServices();
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(h.state_dir(), ec)) {
        std::filesystem::remove_all(e.path(), ec);
      }
    }
  }

  // The level script of one machine for the playbook: start the machine's
  // services of `level` (unless their pid is alive), then poll their /health
  // every 50 ms (at most 20 s).
  std::string LevelScript(int machine, int level) const {
    const ds::Machine& m = desired.machines[machine];
    std::string start, urls;
    for (const Svc& s : svcs) {
      if (s.machine != machine || s.level != level) continue;
      const ds::Service* def = desired.FindService(s.name);
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

  void SetUpAnsible() {
    ansible_dir = std::make_unique<th::TempDir>();
    std::filesystem::create_directories(ansible_dir->Sub("cp"));
    std::filesystem::create_directories(ansible_dir->Sub("home"));
    std::string inv =
        "all:\n  vars:\n    ansible_user: " + cluster.host(0).user() +
        "\n    ansible_ssh_private_key_file: " + cluster.client_key_path() +
        "\n    ansible_ssh_common_args: '-o UserKnownHostsFile=" + cluster.known_hosts_path() +
        " -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null'\n"
        "    ansible_python_interpreter: /usr/bin/python3\n  hosts:\n";
    for (int i = 0; i < kMachines; ++i) {
      const ds::Machine& m = desired.machines[i];
      inv += "    " + m.name + ":\n      ansible_host: " + m.address +
             "\n      ansible_port: " + std::to_string(m.ssh.port) + "\n";
      for (int l = 0; l < kLevels; ++l) {
        inv +=
            "      level" + std::to_string(l) + ": !unsafe " + YamlQuote(LevelScript(i, l)) + "\n";
      }
    }
    th::WriteFile(ansible_dir->Sub("inventory.yml"), inv);
    std::string play = "- hosts: all\n  gather_facts: false\n  tasks:\n";
    for (int l = 0; l < kLevels; ++l) {
      play += "    - name: level " + std::to_string(l) + "\n      shell: \"{{ level" +
              std::to_string(l) + " }}\"\n";
    }
    th::WriteFile(ansible_dir->Sub("converge.yml"), play);
    th::WriteFile(ansible_dir->Sub("ansible.cfg"),
                  "[defaults]\nforks = 20\ndeprecation_warnings = False\n"
                  "interpreter_python = /usr/bin/python3\nlocal_tmp = " +
                      ansible_dir->Sub("local") +
                      "\n\n[ssh_connection]\ncontrol_path = " + ansible_dir->Sub("cp/%%C") + "\n");
  }

  // Runs the playbook. Returns "" on success, else what went wrong.
  std::string RunPlaybook(bool pipelining) {
    std::string out;
    int rc = RunBounded(
        {ansible_playbook, "-i", ansible_dir->Sub("inventory.yml"), "-f", "20",
         ansible_dir->Sub("converge.yml")},
        {"ANSIBLE_CONFIG=" + ansible_dir->Sub("ansible.cfg"),
         "ANSIBLE_HOME=" + ansible_dir->Sub("home"),
         std::string("ANSIBLE_PIPELINING=") + (pipelining ? "True" : "False"), "ANSIBLE_NOCOLOR=1"},
        ansible_dir->Sub("playbook.out"), milliseconds(300000), &out);
    if (rc != 0) {
      size_t recap = out.find("PLAY RECAP");
      return "ansible-playbook exit " + std::to_string(rc) + ": " +
             out.substr(recap == std::string::npos ? 0 : recap, 800);
    }
    return "";
  }

  // Every instance answers its readiness probe (/health 200). Probed
  // directly, not through an observation: the playbook's services have no
  // `starttime` file, so the process driver would not count them as running.
  bool AllReady(std::string* why) {
    std::vector<rc::ProbeRequest> requests;
    for (const auto& i : desired.instances) {
      requests.push_back({desired.FindService(i.service), desired.FindMachine(i.machine),
                          rc::ProbeRole::kReadiness});
    }
    size_t ready = 0;
    for (const auto& r : rc::RunProbes(*prober, requests, 32)) ready += r.ok;
    if (ready != static_cast<size_t>(kInstances)) {
      *why = std::to_string(ready) + " of " + std::to_string(kInstances) + " ready";
      return false;
    }
    return true;
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
    TimeIteration(state, "ssh round trip (true)", [&] {
      auto r = w.pool->Run(t, "true", milliseconds(10000));
      ok = r.ok() && r->exit_code == 0;
    });
    if (!ok) return state.SkipWithError("ssh true failed");
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

// --- Ansible. ---

void BM_AnsibleConverge(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  const bool pipelining = state.range(0) != 0;
  const std::string name =
      std::string("ansible-playbook cold converge") + (pipelining ? ", pipelining" : "");
  if (w.ansible_playbook.empty()) {
    std::printf("ansible-playbook not installed (apt-get install ansible-core): skipped\n");
    return state.SkipWithError("ansible-playbook not installed (apt-get install ansible-core)");
  }
  for (auto _ : state) {
    w.Teardown();
    std::string e;
    TimeIteration(state, name, [&] { e = w.RunPlaybook(pipelining); });
    if (!e.empty()) return state.SkipWithError(e.c_str());
    std::string why;
    if (!w.AllReady(&why)) return state.SkipWithError(("playbook left " + why).c_str());
  }
}
BENCHMARK(BM_AnsibleConverge)
    ->ArgName("pipelining")
    ->Arg(0)
    ->Iterations(2)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_AnsibleNoop(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  const bool pipelining = state.range(0) != 0;
  const std::string name =
      std::string("ansible-playbook no-op") + (pipelining ? ", pipelining" : "");
  if (w.ansible_playbook.empty()) {
    return state.SkipWithError("ansible-playbook not installed (apt-get install ansible-core)");
  }
  std::string why;
  if (!w.AllReady(&why)) return state.SkipWithError(("not converged: " + why).c_str());
  for (auto _ : state) {
    std::string e;
    TimeIteration(state, name, [&] { e = w.RunPlaybook(pipelining); });
    if (!e.empty()) return state.SkipWithError(e.c_str());
  }
}
BENCHMARK(BM_AnsibleNoop)
    ->ArgName("pipelining")
    ->Arg(0)
    ->Iterations(2)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void PrintSummary() {
  auto& s = Samples();
  if (s.empty()) return;
  std::printf("\nSummary (wall ms per iteration; median [min..max], n):\n");
  for (const auto& [name, v] : s) {
    std::printf("  %-58s %9.2f  [%.2f..%.2f]  n=%zu\n", name.c_str(), Median(v),
                *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()),
                v.size());
  }
  for (const auto& [name, note] : Notes()) std::printf("  %s: %s\n", name.c_str(), note.c_str());
  const std::string conv50 = "cold converge, poll 50 ms, parallel " + std::to_string(kMaxParallel);
  World* w = g_world.load();
  if (w != nullptr) {
    const double rtt = w->rtt_ms;
    const double bound = kLevels * (kReadyDelayMs + rtt);
    std::printf("  critical-path bound: %d levels x (%d ms + %.2f ms round trip) = %.1f ms\n",
                kLevels, kReadyDelayMs, rtt, bound);
    for (const auto& [name, v] : s) {
      if (name.rfind("cold converge", 0) == 0) {
        const double r = Median(v) / bound;
        std::printf("  %-58s %.2fx the bound (goal 1.3x: %s)\n", name.c_str(), r,
                    r <= 1.3 ? "met" : "NOT met");
      }
    }
  }
  const double noop = MedianOf("no-op reconcile (observe + probe + plan)");
  if (noop > 0) std::printf("  no-op goal < 150 ms: %s\n", noop < 150 ? "met" : "NOT met");
  for (const char* v : {"in sync", "10% stopped", "from nothing"}) {
    const double d = MedianOf(std::string("diff + plan 10,000 instances, ") + v);
    if (d > 0) std::printf("  diff + plan (%s) goal < 50 ms: %s\n", v, d < 50 ? "met" : "NOT met");
  }
  if (FindInPath("ansible-playbook").empty()) {
    std::printf("  Ansible comparison: ansible-playbook not installed, skipped\n");
    return;
  }
  auto ratio = [&](const std::string& a, const std::string& ours) {
    if (MedianOf(a) > 0 && MedianOf(ours) > 0) {
      std::printf("  ratio %s / %s = %.1fx\n", a.c_str(), ours.c_str(),
                  MedianOf(a) / MedianOf(ours));
    }
  };
  ratio("ansible-playbook cold converge", conv50);
  ratio("ansible-playbook cold converge",
        "cold converge as clusterctl apply (audited, poll 200 ms)");
  ratio("ansible-playbook no-op", "no-op reconcile (observe + probe + plan)");
}

// Blocks SIGINT, SIGTERM and SIGHUP in every thread (children get the
// default mask back) and handles them on one thread: an interrupted run
// still stops the hosts and services it started.
void StartSignalWatcher() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr, "reconcile_bench: signal %d, stopping the hosts\n", sig);
    if (World* w = g_world.load()) w->EmergencyCleanup();
    _exit(128 + sig);
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  StartSignalWatcher();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::printf(
      "reconcile_bench: %d machines x 5 services, %d levels, readiness delay %d ms; "
      "load average at start: %s",
      kMachines, kLevels, kReadyDelayMs, th::ReadFile("/proc/loadavg").c_str());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  PrintSummary();
  g_world = nullptr;
  g_world_owner.reset();
  return 0;
}

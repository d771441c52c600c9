// Observation of 20 machines x 10 services (issues 3 and 9), on 20 real sshd
// hosts (tests/harness TestCluster: one sshd per machine on 127.0.0.N).
//
//   BM_SshRoundTrip        one `true` over a warm session
//   BM_SshRoundTripAll20   `true` on all 20 machines at once
//   BM_ObserveOneMachine   one machine's batched observation (10 services +
//                          facts)
//   BM_ObserveScriptLocal  the same script run here with /bin/sh, no SSH; with
//                          strace installed, counts the processes it creates
//   BM_ForkExecTrue        fork + exec + reap of /bin/true on this host
//   BM_ObserveWarm         one full ObserveCluster (probes off) over the
//                          persistent sessions and shells (goal: under 100 ms);
//                          checks that the timed cycles opened no session and
//                          no shell. Arg: machines observed at once (32 = the
//                          default)
//   BM_ObserveCold         the same with a fresh SshPool: connect + key
//                          exchange + host key check + auth + observe
//   BM_ProcessesPerObservation  processes created on a machine per warm
//                          observation (goal: 0), two ways: `strace -f`
//                          attached to every process of the 20 sshd trees
//                          (exact), and the kernel's process counter
//                          (/proc/stat `processes`) over the cycles minus a
//                          quiet window of the same length (global, so other
//                          activity on the host is noise). The observations
//                          run from 20 threads made beforehand, so the
//                          controller itself creates nothing meanwhile.
//   BM_AnsibleShell*       the same observation script, per machine, run by
//                          `ansible all -m shell` over the same hosts,
//                          forks=20: ControlPersist warm, with pipelining, and
//                          with no connection reuse (cold); skipped when
//                          `ansible` is not installed
//
// On every machine svc-0 and svc-1 run (the test service without a port) and
// svc-2 was stopped, so the observation sees running, stopped and
// never-started instances. Each figure is the median of several runs within a
// time budget (bench_util.h Repeat); after the runs a summary prints the
// medians, the Ansible ratios and the goals table. SIGINT/SIGTERM stop every
// sshd and service by PID before exiting.
//
// Build and run (Release): scripts/bench.sh, or
//   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
//   cmake --build build-bench --target observe_bench clusterctl-test-service -j2
//   build-bench/bench/observe_bench
// Figures: docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
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
#include "desired-state/loader.h"
#include "desired-state/spec_hash.h"
#include "reconcilers/driver.h"
#include "reconcilers/driver_scripts.h"
#include "reconcilers/observer.h"
#include "reconcilers/ssh.h"
#include "reconcilers/target.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"

namespace {

namespace ds = clusterctl::desired_state;
namespace rc = clusterctl::reconcilers;
namespace th = clusterctl::testing;
using std::chrono::milliseconds;

constexpr int kMachines = 20;
constexpr int kServices = 10;
constexpr int kRunning = 2;  // Services started on every machine.

using namespace clusterctl::bench;  // NOLINT: the shared benchmark helpers

// --- The cluster: 20 sshd hosts, a desired state, a warm pool. ---

struct World {
  th::TestCluster cluster{kMachines};
  ds::DesiredState desired;
  rc::SshOptions ssh_options;
  std::unique_ptr<rc::SshPool> pool;
  std::unique_ptr<rc::ShellDriver> driver;
  std::string error;  // Set when the setup failed.

  // Ansible (when installed).
  std::unique_ptr<th::TempDir> ansible_dir;
  std::string ansible;  // Path of the ansible binary; empty: not installed.

  World() {
    std::string yaml =
        "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: observe-bench}\n"
        "spec:\n  defaults:\n    ssh: {user: " +
        cluster.host(0).user() + ", identityFile: " + cluster.client_key_path() + "}\n";
    std::string machine_list;
    for (int i = 0; i < kMachines; ++i) {
      th::SshHost& h = cluster.host(i);
      char name[8];
      snprintf(name, sizeof name, "m%02d", i);
      machine_list += std::string(i ? ", " : "") + name;
      yaml +=
          "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: " + std::string(name) +
          "}\nspec:\n  address: " + h.address() + "\n  ssh: {port: " + std::to_string(h.port()) +
          "}\n  stateDir: " + h.state_dir() + "\n";
    }
    for (int s = 0; s < kServices; ++s) {
      yaml += "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: svc-" +
              std::to_string(s) + "}\nspec:\n  machines: [" + machine_list +
              "]\n  process:\n    command: [\"" + th::TestServiceBin() +
              "\"]\n  stopTimeoutSeconds: 2\n";
    }
    ds::Revision rev;
    rev.commit = "0000000000000000000000000000000000000000";
    ds::LoadResult r = ds::LoadFiles({{"cluster.yaml", yaml}}, rev);
    if (!r.ok()) {
      error = "load: " + r.errors.ToString().substr(0, 400);
      return;
    }
    desired = std::move(*r.state);
    ssh_options.known_hosts = cluster.known_hosts_path();
    pool = std::make_unique<rc::SshPool>(ssh_options);
    driver = std::make_unique<rc::ShellDriver>(pool.get());
    if (!std::filesystem::exists(th::TestServiceBin())) {
      error = "build clusterctl-test-service first (" + th::TestServiceBin() + ")";
      return;
    }
    // Start svc-0 .. svc-kRunning everywhere, then stop svc-kRunning, so
    // running, stopped and never-started instances are all present.
    for (const auto& m : desired.machines) {
      for (int s = 0; s < kRunning + 1; ++s) {
        const ds::Service* svc = desired.FindService("svc-" + std::to_string(s));
        auto started = driver->Start(m, *svc, ds::SpecHash(*svc));
        if (!started.ok()) {
          error = "start on " + m.name + ": " + started.status().ToString();
          return;
        }
      }
      const ds::Service* last = desired.FindService("svc-" + std::to_string(kRunning));
      auto stopped = driver->Stop(m, *last);
      if (!stopped.ok()) {
        error = "stop on " + m.name + ": " + stopped.status().ToString();
        return;
      }
    }
    ansible = FindInPath("ansible");
    if (!ansible.empty()) SetUpAnsible();
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

  // Inventory: every machine with the exact script ObserveCluster sends it
  // (as an !unsafe variable, so Jinja leaves it alone), and ansible.cfg.
  void SetUpAnsible() {
    ansible_dir = std::make_unique<th::TempDir>();
    std::filesystem::create_directories(ansible_dir->Sub("cp"));
    std::filesystem::create_directories(ansible_dir->Sub("home"));
    std::vector<const ds::Service*> services;
    for (const auto& s : desired.services) services.push_back(&s);
    std::string inv =
        "all:\n  vars:\n    ansible_user: " + cluster.host(0).user() +
        "\n    ansible_ssh_private_key_file: " + cluster.client_key_path() +
        "\n    ansible_ssh_common_args: '-o UserKnownHostsFile=" + cluster.known_hosts_path() +
        " -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null'\n"
        "    ansible_python_interpreter: /usr/bin/python3\n  hosts:\n";
    for (size_t i = 0; i < desired.machines.size(); ++i) {
      const ds::Machine& m = desired.machines[i];
      inv += "    " + m.name + ":\n      ansible_host: " + m.address +
             "\n      ansible_port: " + std::to_string(m.ssh.port) +
             "\n      observe_script: !unsafe " +
             YamlQuote(rc::Command(rc::ObserveScript(m, services), rc::ShellLibrary(), true,
                                   rc::Purpose::kObserve)
                           .Standalone()) +
             "\n";
    }
    th::WriteFile(ansible_dir->Sub("inventory.yml"), inv);
    th::WriteFile(ansible_dir->Sub("ansible.cfg"),
                  "[defaults]\nforks = 20\ndeprecation_warnings = False\n"
                  "interpreter_python = /usr/bin/python3\nlocal_tmp = " +
                      ansible_dir->Sub("local") +
                      "\n\n[ssh_connection]\ncontrol_path = " + ansible_dir->Sub("cp/%%C") + "\n");
  }

  // Runs the ad-hoc observation; `ssh_args` replaces Ansible's ssh_args.
  // Returns "" on success, else what went wrong.
  std::string RunAnsible(const std::string& ssh_args, bool pipelining) {
    std::string out;
    int rc = RunBounded(
        {ansible, "all", "-i", ansible_dir->Sub("inventory.yml"), "-m", "shell", "-a",
         "{{ observe_script }}", "-f", "20", "-o"},
        {"ANSIBLE_CONFIG=" + ansible_dir->Sub("ansible.cfg"),
         "ANSIBLE_HOME=" + ansible_dir->Sub("home"), "ANSIBLE_SSH_ARGS=" + ssh_args,
         std::string("ANSIBLE_PIPELINING=") + (pipelining ? "True" : "False"), "ANSIBLE_NOCOLOR=1"},
        ansible_dir->Sub("ansible.out"), milliseconds(120000), &out);
    size_t ok = 0;
    for (size_t p = out.find("| CHANGED | rc=0"); p != std::string::npos;
         p = out.find("| CHANGED | rc=0", p + 1)) {
      ++ok;
    }
    if (rc != 0 || ok != static_cast<size_t>(kMachines)) {
      return "ansible exit " + std::to_string(rc) + ", " + std::to_string(ok) +
             " hosts ok: " + out.substr(0, 600);
    }
    return "";
  }
};

std::atomic<World*> g_world{nullptr};  // For the signal watcher.
std::unique_ptr<World> g_world_owner;  // Reset at the end of main.
std::string g_world_failure;

// The world, built on first use (starting 20 sshd takes a moment) and torn
// down at the end of main, before static destructors, which stops every
// process it started by PID.
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

bool CheckObservation(benchmark::State& state, const rc::ClusterObservation& obs) {
  if (!obs.unreachable.empty()) {
    state.SkipWithError(
        ("unreachable: " + obs.unreachable.begin()->first + ": " + obs.unreachable.begin()->second)
            .c_str());
    return false;
  }
  if (obs.instances.size() != static_cast<size_t>(kMachines * kServices)) {
    state.SkipWithError("wrong number of observed instances");
    return false;
  }
  size_t running = 0;
  for (const auto& i : obs.instances) running += i.state == rc::ObservedState::kRunning;
  if (running != static_cast<size_t>(kMachines * kRunning)) {
    state.SkipWithError("wrong number of running instances");
    return false;
  }
  return true;
}

#define WORLD_OR_SKIP(w)                      \
  std::string world_error;                    \
  World* w_ptr = TheWorld(&world_error);      \
  if (w_ptr == nullptr) {                     \
    state.SkipWithError(world_error.c_str()); \
    return;                                   \
  }                                           \
  World& w = *w_ptr

rc::ObserveOptions NoProbes() {
  rc::ObserveOptions o;
  o.probe_readiness = false;
  return o;
}

void BM_SshRoundTrip(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  const rc::SshTarget t = rc::TargetFor(w.desired.machines[0]);
  (void)w.pool->Run(t, "true", milliseconds(10000));  // Warm.
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

// `true` on all 20 machines at once (20 threads): the floor of a cycle
// on this host, where the 20 machines share 2 cores.
void BM_SshRoundTripAll20(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  std::vector<rc::SshTarget> targets;
  for (const auto& m : w.desired.machines) targets.push_back(rc::TargetFor(m));
  for (auto _ : state) {
    std::atomic<int> failed{0};
    TimeIteration(state, "ssh round trip (true) on 20 machines at once", [&] {
      std::vector<std::thread> threads;
      for (const auto& t : targets) {
        threads.emplace_back([&, t] {
          auto r = w.pool->Run(t, "true", milliseconds(10000));
          if (!r.ok() || r->exit_code != 0) ++failed;
        });
      }
      for (auto& t : threads) t.join();
    });
    if (failed > 0) return state.SkipWithError("ssh true failed");
  }
}
BENCHMARK(BM_SshRoundTripAll20)->Iterations(20)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_ObserveOneMachine(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  std::vector<const ds::Service*> services;
  for (const auto& s : w.desired.services) services.push_back(&s);
  const ds::Machine& m = w.desired.machines[0];
  (void)w.driver->Observe(m, services);  // Warm.
  for (auto _ : state) {
    bool ok = true;
    TimeIteration(state, "observe 1 machine x 10 services", [&] {
      auto r = w.driver->Observe(m, services);
      ok = r.ok() && r->instances.size() == services.size();
    });
    if (!ok) return state.SkipWithError("observe failed");
  }
}
BENCHMARK(BM_ObserveOneMachine)->Iterations(20)->UseManualTime()->Unit(benchmark::kMillisecond);

// The same script run on this host with /bin/sh, without SSH: what the
// script itself costs. Counts the processes it creates with strace when
// strace is installed.
void BM_ObserveScriptLocal(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  std::vector<const ds::Service*> services;
  for (const auto& s : w.desired.services) services.push_back(&s);
  const std::string script = rc::Command(rc::ObserveScript(w.desired.machines[0], services),
                                         rc::ShellLibrary(), true, rc::Purpose::kObserve)
                                 .Standalone();
  const std::string out = w.cluster.dir() + "/local_observe.out";
  for (auto _ : state) {
    std::optional<int> rc;
    TimeIteration(state, "observe script run locally (no ssh)", [&] {
      th::Process p({"/bin/sh", "-c", script}, th::OutputTo(out));
      rc = p.WaitForExit(milliseconds(30000));
    });
    if (rc != 0) return state.SkipWithError("local observe script failed");
  }
  if (!FindInPath("strace").empty()) {
    const std::string trace = w.cluster.dir() + "/observe.strace";
    th::Process p({"strace", "-f", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork", "-o", trace,
                   "/bin/sh", "-c", script},
                  th::OutputTo(out));
    if (p.WaitForExit(milliseconds(30000)) == 0) {
      std::stringstream lines(th::ReadFile(trace));
      std::string line;
      int forks = 0, execs = 0;
      while (std::getline(lines, line)) {
        if (line.find("execve(") != std::string::npos && line.find("= 0") != std::string::npos) {
          ++execs;
        } else if (line.find("clone") != std::string::npos ||
                   line.find("fork(") != std::string::npos) {
          ++forks;
        }
      }
      state.counters["forks"] = forks;
      state.counters["execs"] = execs;
      Notes()["observe script of 1 machine x 10 services"] =
          std::to_string(forks) + " forks, " + std::to_string(execs) + " execs (strace)";
    }
  }
}
BENCHMARK(BM_ObserveScriptLocal)->Iterations(20)->UseManualTime()->Unit(benchmark::kMillisecond);

// Process creation on this host: fork + exec of /bin/true, the unit the
// observe script is made of.
void BM_ForkExecTrue(benchmark::State& state) {
  for (auto _ : state) {
    TimeIteration(state, "fork + exec /bin/true (local)", [&] {
      th::Process p({"/bin/true"}, th::OutputTo("/dev/null"));
      p.WaitForExit(milliseconds(10000));
    });
  }
}
BENCHMARK(BM_ForkExecTrue)->Iterations(100)->UseManualTime()->Unit(benchmark::kMillisecond);

// Shells and sessions opened so far on every machine (SshPool's counters).
int ShellsOpened(World& w) {
  int n = 0;
  for (const auto& m : w.desired.machines) n += w.pool->ShellsOpenedForTest(m.name);
  return n;
}
int Connects(World& w) {
  int n = 0;
  for (const auto& m : w.desired.machines) n += w.pool->ConnectsForTest(m.name);
  return n;
}

// Arg: machines observed at once (ObserveOptions::max_parallel; 32, the
// default, observes all 20 at once). Lower values show how CPU-bound the
// cycle is on this host, where all 20 machines share 2 cores. Warm: the
// sessions and the persistent observation shells are open before the timed
// cycles (one untimed cycle), and the benchmark checks that the timed cycles
// opened no session and no shell.
void BM_ObserveWarm(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  rc::ObserveOptions options = NoProbes();
  options.max_parallel = static_cast<int>(state.range(0));
  const std::string name =
      options.max_parallel >= kMachines
          ? std::string("warm cycle (20 x 10)")
          : "warm cycle (20 x 10), " + std::to_string(options.max_parallel) + " machines at once";
  auto warm = rc::ObserveCluster(w.desired, nullptr, *w.driver, nullptr, options);
  if (!CheckObservation(state, warm)) return;
  const int shells = ShellsOpened(w), connects = Connects(w);
  bool ok = Repeat(state, name, {5, 20, 30000}, [&](double* ms) {
    rc::ClusterObservation obs;
    *ms = WallMsOf(
        [&] { obs = rc::ObserveCluster(w.desired, nullptr, *w.driver, nullptr, options); });
    if (!obs.unreachable.empty()) return "unreachable: " + obs.unreachable.begin()->second;
    if (obs.instances.size() != static_cast<size_t>(kMachines * kServices)) {
      return std::string("wrong number of observed instances");
    }
    size_t running = 0;
    for (const auto& i : obs.instances) running += i.state == rc::ObservedState::kRunning;
    if (running != static_cast<size_t>(kMachines * kRunning)) {
      return std::string("wrong number of running instances");
    }
    return std::string();
  });
  if (!ok) return;
  const int new_shells = ShellsOpened(w) - shells, new_connects = Connects(w) - connects;
  state.counters["shells_opened"] = new_shells;
  state.counters["connects"] = new_connects;
  Notes()[name] = std::to_string(new_connects) + " connects and " + std::to_string(new_shells) +
                  " shells opened during the timed cycles (warm: 0 and 0); " +
                  std::to_string(shells) + " shells open on 20 machines";
  state.counters["machines"] = kMachines;
  state.counters["instances"] = kMachines * kServices;
}
BENCHMARK(BM_ObserveWarm)
    ->ArgName("parallel")
    ->Arg(32)
    ->Arg(4)
    ->Arg(2)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_ObserveCold(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  Repeat(state, "cold cycle (connect + observe)", {3, 5, 30000}, [&](double* ms) {
    rc::ClusterObservation obs;
    auto pool = std::make_unique<rc::SshPool>(w.ssh_options);
    rc::ShellDriver driver(pool.get());
    *ms = WallMsOf(
        [&] { obs = rc::ObserveCluster(w.desired, nullptr, driver, nullptr, NoProbes()); });
    pool.reset();  // Disconnect outside the timed part.
    if (!obs.unreachable.empty()) return "unreachable: " + obs.unreachable.begin()->second;
    if (obs.instances.size() != static_cast<size_t>(kMachines * kServices)) {
      return std::string("wrong number of observed instances");
    }
    return std::string();
  });
}
BENCHMARK(BM_ObserveCold)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

// --- Processes created on the machines per observation (issue 9: 0). ---

// Counts process creations (fork, vfork, clone, clone3 returning a pid) and
// successful execve calls in an `strace -f -o` file.
void CountStrace(const std::string& text, int* forks, int* execs) {
  std::stringstream lines(text);
  std::string line;
  *forks = *execs = 0;
  while (std::getline(lines, line)) {
    const size_t eq = line.rfind(") = ");
    if (eq == std::string::npos) continue;  // "<unfinished ...>", signals, exits
    const long result = atol(line.c_str() + eq + 4);
    const bool exec = line.find("execve(") != std::string::npos ||
                      line.find("execve resumed>") != std::string::npos;
    const bool fork = !exec && (line.find("clone") != std::string::npos ||
                                line.find("fork") != std::string::npos);
    if (exec && line.compare(eq, 5, ") = 0") == 0) ++*execs;
    if (fork && result > 0) ++*forks;
  }
}

// Runs `cycles` warm observations of every machine from 20 threads made
// beforehand (so the controller creates no thread or process meanwhile);
// returns the wall time in ms, or -1 when an observation failed.
double ObserveFromFixedThreads(World& w, int cycles) {
  std::vector<const ds::Service*> services;
  for (const auto& s : w.desired.services) services.push_back(&s);
  const size_t n = w.desired.machines.size();
  std::barrier<> sync(static_cast<std::ptrdiff_t>(n + 1));
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      for (int c = 0; c < cycles; ++c) {
        sync.arrive_and_wait();  // start
        auto r = w.driver->Observe(w.desired.machines[i], services);
        if (!r.ok() || r->instances.size() != services.size()) failed = true;
        sync.arrive_and_wait();  // end
      }
    });
  }
  double ms = 0;
  for (int c = 0; c < cycles; ++c) {
    ms += WallMsOf([&] {
      sync.arrive_and_wait();
      sync.arrive_and_wait();
    });
  }
  for (auto& t : threads) t.join();
  return failed ? -1 : ms;
}

// Method 1: strace -f attached to every process of the 20 sshd trees (sshd,
// its session processes and the persistent shells) during `cycles` warm
// cycles. Exact, per machine. Returns "" or why it could not measure.
std::string MeasureWithStrace(World& w, int cycles, int* forks, int* execs) {
  if (FindInPath("strace").empty()) return "strace not installed";
  std::vector<std::string> argv = {"strace", "-f",
                                   "-e",     "trace=clone,clone3,fork,vfork,execve",
                                   "-o",     w.cluster.dir() + "/observe.strace"};
  size_t attached_wanted = 0;
  for (size_t i = 0; i < w.cluster.size(); ++i) {
    std::vector<pid_t> tree = th::Descendants(w.cluster.host(i).pid());
    tree.push_back(w.cluster.host(i).pid());
    for (pid_t p : tree) {
      argv.push_back("-p");
      argv.push_back(std::to_string(p));
      ++attached_wanted;
    }
  }
  const std::string err = w.cluster.dir() + "/strace.err";
  th::Process strace(argv, th::OutputTo(err));
  auto attached = [&] {
    std::string e = th::ReadFile(err);
    size_t k = 0;
    for (size_t p = e.find("attached"); p != std::string::npos; p = e.find("attached", p + 1)) ++k;
    return k;
  };
  if (!th::WaitFor([&] { return attached() >= attached_wanted; }, milliseconds(15000))) {
    strace.KillGroup(SIGKILL);
    strace.WaitForExit(milliseconds(5000));
    return "strace attached to " + std::to_string(attached()) + " of " +
           std::to_string(attached_wanted) + " processes: " + th::ReadFile(err).substr(0, 300);
  }
  const double ms = ObserveFromFixedThreads(w, cycles);
  ::kill(strace.pid(), SIGINT);  // Detaches; the traced processes go on.
  if (!strace.WaitForExit(milliseconds(10000))) {
    strace.KillGroup(SIGKILL);
    strace.WaitForExit(milliseconds(5000));
  }
  if (ms < 0) return "an observation failed under strace";
  CountStrace(th::ReadFile(w.cluster.dir() + "/observe.strace"), forks, execs);
  return "";
}

// Method 2: the kernel's process counter (/proc/stat `processes`, global):
// the delta over `cycles` warm cycles minus the delta over a quiet window of
// the same length. Anything else on this host that creates processes
// meanwhile shows up as noise.
void MeasureWithKernelCounter(World& w, int cycles, long long* during, long long* baseline,
                              double* window_ms) {
  const long long c0 = ProcessesCreatedSinceBoot();
  *window_ms = ObserveFromFixedThreads(w, cycles);
  const long long c1 = ProcessesCreatedSinceBoot();
  std::this_thread::sleep_for(milliseconds(static_cast<int64_t>(std::max(*window_ms, 1.0))));
  const long long c2 = ProcessesCreatedSinceBoot();
  *during = c1 - c0;
  *baseline = c2 - c1;
}

void BM_ProcessesPerObservation(benchmark::State& state) {
  WORLD_OR_SKIP(w);
  const double n = static_cast<double>(w.desired.machines.size());
  // Cycles: enough for a few seconds of observation (at least 2, at most 20).
  const double one = ObserveFromFixedThreads(w, 1);  // Also warms every shell.
  if (one < 0) return state.SkipWithError("observation failed");
  const int cycles = std::clamp(static_cast<int>(3000 / std::max(one, 1.0)), 2, 20);
  for (auto _ : state) {
    int forks = 0, execs = 0;
    const std::string why = MeasureWithStrace(w, cycles, &forks, &execs);
    long long during = 0, baseline = 0;
    double window_ms = 0;
    MeasureWithKernelCounter(w, cycles, &during, &baseline, &window_ms);
    state.SetIterationTime(window_ms / 1000);
    char b[400];
    if (why.empty()) {
      const double per = forks / (cycles * n);
      snprintf(b, sizeof b,
               "%.1f processes (%d forks, %d execs over %d cycles x %d machines, strace -f on "
               "every sshd tree)",
               per, forks, execs, cycles, static_cast<int>(n));
      state.counters["strace_per_machine_per_observation"] = per;
      AddGoal("processes created on a machine per observation (strace -f)", b, "0",
              Verdict(forks == 0));
    } else {
      AddGoal("processes created on a machine per observation (strace -f)", "not measured", "0",
              "not measured: " + why);
    }
    const double per_k = (during - baseline) / (cycles * n);
    snprintf(b, sizeof b,
             "%.1f ((%lld during %d cycles - %lld in a quiet window of %.0f ms) / %d machines / "
             "%d cycles, /proc/stat processes)",
             per_k, during, cycles, baseline, window_ms, static_cast<int>(n), cycles);
    state.counters["kernel_per_machine_per_observation"] = per_k;
    AddGoal("processes created on a machine per observation (kernel counter)", b, "0",
            Verdict(per_k < 0.5));
  }
}
BENCHMARK(BM_ProcessesPerObservation)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Ansible defaults: ssh_args "-C -o ControlMaster=auto -o ControlPersist=60s".
constexpr const char* kAnsibleDefaultSshArgs = "-C -o ControlMaster=auto -o ControlPersist=60s";

void AnsibleRuns(benchmark::State& state, const std::string& name, const std::string& ssh_args,
                 bool pipelining, bool warm_up) {
  WORLD_OR_SKIP(w);
  if (w.ansible.empty()) {
    std::printf("ansible not installed (apt-get install ansible-core): %s skipped\n", name.c_str());
    return state.SkipWithError("ansible not installed (apt-get install ansible-core)");
  }
  if (warm_up) {
    std::string e = w.RunAnsible(ssh_args, pipelining);
    if (!e.empty()) return state.SkipWithError(e.c_str());
  }
  for (auto _ : state) {
    std::string e;
    TimeIteration(state, name, [&] { e = w.RunAnsible(ssh_args, pipelining); });
    if (!e.empty()) return state.SkipWithError(e.c_str());
  }
}

void BM_AnsibleShellWarm(benchmark::State& state) {
  AnsibleRuns(state, "ansible -m shell, ControlPersist warm", kAnsibleDefaultSshArgs, false, true);
}
BENCHMARK(BM_AnsibleShellWarm)->Iterations(3)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_AnsibleShellWarmPipelining(benchmark::State& state) {
  AnsibleRuns(state, "ansible -m shell, ControlPersist warm, pipelining", kAnsibleDefaultSshArgs,
              true, true);
}
BENCHMARK(BM_AnsibleShellWarmPipelining)
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_AnsibleShellCold(benchmark::State& state) {
  AnsibleRuns(state, "ansible -m shell, no connection reuse", "-C -o ControlMaster=no", false,
              false);
}
BENCHMARK(BM_AnsibleShellCold)->Iterations(3)->UseManualTime()->Unit(benchmark::kMillisecond);

void PrintSummary() {
  auto& s = Samples();
  if (s.empty()) return;
  std::printf("\nSummary (wall ms per iteration; median [min..max], n):\n");
  for (const auto& [name, v] : s) {
    if (v.empty()) continue;
    std::printf("  %-48s %9.2f  [%.2f..%.2f]  n=%zu\n", name.c_str(), Median(v),
                *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()),
                v.size());
  }
  for (const auto& [name, note] : Notes()) std::printf("  %s: %s\n", name.c_str(), note.c_str());
  auto med = [&](const std::string& n) { return s.count(n) ? Median(s.at(n)) : 0.0; };
  const double warm = med("warm cycle (20 x 10)"), cold = med("cold cycle (connect + observe)");
  if (warm > 0) {
    AddGoal("one warm observation cycle, 20 machines x 10 services",
            MedianText("warm cycle (20 x 10)"), "< 100 ms", Verdict(warm < 100));
  }
  if (cold > 0) {
    AddGoal("one cold observation cycle (new SshPool: connect 20 machines, then observe)",
            MedianText("cold cycle (connect + observe)"), "(reference)", "-");
  }
  // Printed after the ratios below, or now when there are none.
  struct PrintAtExit {
    ~PrintAtExit() { PrintGoals("observe_bench"); }
  } print_goals;
  if (FindInPath("ansible").empty()) {
    std::printf("  Ansible comparison: ansible not installed, skipped\n");
    return;
  }
  auto ratio = [&](const std::string& a, double ours, const char* what) {
    if (med(a) > 0 && ours > 0) {
      std::printf("  ratio %-44s / %-5s = %.1fx\n", a.c_str(), what, med(a) / ours);
    }
  };
  ratio("ansible -m shell, ControlPersist warm", warm, "warm");
  ratio("ansible -m shell, ControlPersist warm, pipelining", warm, "warm");
  ratio("ansible -m shell, no connection reuse", cold, "cold");
}

}  // namespace

int main(int argc, char** argv) {
  StartSignalWatcher("observe_bench", [] {
    if (World* w = g_world.load()) w->EmergencyCleanup();
  });
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::printf("observe_bench: %d machines x %d services; load average at start: ", kMachines,
              kServices);
  std::printf("%s", th::ReadFile("/proc/loadavg").c_str());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  PrintSummary();
  g_world = nullptr;
  g_world_owner.reset();
  return 0;
}

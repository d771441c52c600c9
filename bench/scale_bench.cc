// The scale harness of issue 17: N machines x 10 services under one clusterd,
// on this one box.
//
// The machines are loopback sshd endpoints, but not one sshd each: every sshd
// serves up to 16 machines through one `ListenAddress` per machine, each
// machine its own address 127.77.X.Y (all on 127.0.0.0/8, which Linux routes
// to lo without configuration), on one port shared by all. One host key per
// sshd; known_hosts has a line per address. Every machine has its own
// stateDir. A service is `sleep infinity` started by clusterd's process
// driver (about 0.1 MiB of private memory per instance). The desired state is
// a real git repository (a bare origin and a work tree that pushes to it):
// Machines in files of 100, and N x 10 Service documents, service k on machine
// k mod N, in files of 100 (the layout of bench/load_bench.cc). The built
// clusterd follows the origin (repo.pollSeconds 300: every pass measured here
// is asked for with POST /api/v1/sync, as packaging/post-receive does).
//
// The phases, in order (each figure with the load average when it was taken):
//   cold start     clusterd started on a revision with the machines and no
//                  services: its first pass connects to every machine and
//                  observes it (clusterd's own duration of that pass, from
//                  /metrics clusterctl_reconcile_duration_seconds, and the wall
//                  time from the spawn to the pass being counted)
//   converge       a push adding the N x 10 services: from the push to every
//                  instance running under the new revision (the pass with
//                  outcome ok); with --converge-runs > 1 the services are
//                  removed again (allowMassStop) and added again
//   no-op pass     a sync with everything in place: clusterd's duration of
//                  the pass (outcome noop), and wall time from the sync
//   idle           clusterd's CPU (utime + stime from /proc/PID/stat) over
//                  --idle-seconds with nothing asked of it: the periodic pass
//                  (reconcile.intervalSeconds 30) and the drift watch (a tick
//                  to every machine every watch.intervalMs, 200 ms by default)
//   1% change      a commit changing the env of service 0 on every tenth
//                  machine (N/10 instances, 1% of them): push to every
//                  changed instance restarted (the pass with outcome ok)
//   RSS            VmRSS after each of --passes back-to-back no-op passes
//                  (and for --soak-minutes more: back to back, or with
//                  --soak-pass-seconds between them), VmHWM at the end
//   restart        clusterd stopped (SIGTERM) and started again on the
//                  converged machines: spawn to the first pass counted
//   idle, no watch the idle minute again with watch.enabled false, to show
//                  what the drift watch costs at this size
//   observation    clusterd stopped; the library's ObserveCluster (what
//                  every pass runs, 32 machines at once) from this process:
//                  cold (a fresh SshPool: connect, key exchange, host key
//                  check and authentication to every machine, then the
//                  observation) and warm (the persistent sessions and shells)
// Then the goals of issue 17 as a table (bench_util.h PrintGoals).
//
// Usage: scale_bench [--machines N] [--services-per-machine S] [--runs R]
//          [--converge-runs C] [--passes P] [--soak-minutes M]
//          [--soak-pass-seconds S]
//          [--idle-seconds T] [--max-parallel K]
// Run by scripts/bench.sh --only scale [--machines N] [--soak-minutes M].
// Defaults: 100 machines, 10 services each, R = 5 (no-op passes and warm
// observations; 3 for the 1% change and restarts), C = 3 below 500 machines
// and 1 from 500, P = 30, M = 0, T = 60, K = 32 (reconcile.maxParallel).
// Before anything starts it checks the file descriptor limit, pid_max and
// the free memory for the processes it is about to make, and refuses when
// they do not fit. SIGINT/SIGTERM/SIGHUP stop clusterd, every sshd, session
// and service by PID.
//
// Figures: docs/benchmarks.md ("The scale harness").
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/paths.h"
#include "bench/bench_util.h"
#include "desired-state/git_source.h"
#include "desired-state/loader.h"
#include "reconcilers/driver_scripts.h"
#include "reconcilers/observer.h"
#include "reconcilers/ssh.h"
#include "tests/harness/git_repo.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/ssh_fleet.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"

namespace {

namespace ds = clusterctl::desired_state;
namespace rc = clusterctl::reconcilers;
using nlohmann::json;
using std::chrono::milliseconds;

using namespace clusterctl::bench;  // NOLINT: the shared benchmark helpers

constexpr int kAddressesPerSshd = 16;
constexpr int kPerFile = 100;  // Documents per file, as bench/load_bench.cc.

struct Options {
  int machines = 100;
  int services = 10;  // Per machine.
  int runs = 5;
  int converge_runs = 0;  // 0: 3 below 500 machines, else 1.
  int passes = 30;
  int soak_minutes = 0;
  int soak_pass_seconds = 0;  // 0: the soak's passes run back to back.
  int idle_seconds = 60;
  int max_parallel = 32;
  bool watch = true;  // --no-watch: the drift watch off in every phase.
};

// --- /proc ---

// A "Key:   123 kB" line of /proc/PID/status (or /proc/meminfo) in kB; -1.
long long KbField(const std::string& file, const std::string& key) {
  std::istringstream in(th::ReadFile(file));
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size() + 1, key + ":") == 0)
      return atoll(line.c_str() + key.size() + 1);
  }
  return -1;
}

double MiB(long long kb) { return static_cast<double>(kb) / 1024.0; }

// utime + stime of `pid` in seconds (/proc/PID/stat fields 14 and 15).
double CpuSeconds(pid_t pid) {
  const std::string stat = th::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream in(stat.substr(paren + 2));
  std::string field;
  unsigned long long ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i >= 14) ticks += std::stoull(field);
  }
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string LoadAverage() {
  std::istringstream in(th::ReadFile("/proc/loadavg"));
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

int ProcessCount() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    n += !name.empty() && name.find_first_not_of("0123456789") == std::string::npos;
  }
  return n;
}

// Progress on stderr, stamped with the time since the start and the load.
void Say(const std::string& what) {
  static const auto t0 = std::chrono::steady_clock::now();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "[%7.1f s, load %s] %s\n", s, LoadAverage().c_str(), what.c_str());
}

// The load average recorded with every figure.
std::map<std::string, std::string>& LoadAt() {
  static std::map<std::string, std::string> load;
  return load;
}

void Record(const std::string& name, double ms) {
  Samples()[name].push_back(ms);
  LoadAt()[name] = LoadAverage();
  Say(name + ": " + FormatMs(ms));
}

// --- The machines: sshd processes with up to 16 addresses each. ---

std::string CurrentUser() {
  const clusterctl::PasswdEntry me = clusterctl::PasswdEntry::Of(geteuid());
  return me.found ? me.name : "root";
}

std::string MachineName(int i) { return th::SshFleet::MachineName(i); }

std::string MachineAddress(int i) { return th::SshFleet::Address(i); }

// The machines: tests/harness/ssh_fleet.h, kAddressesPerSshd per sshd.
class Fleet : public th::SshFleet {
 public:
  Fleet(const std::string& dir, int machines)
      : th::SshFleet({.dir = dir,
                      .machines = machines,
                      .per_sshd = kAddressesPerSshd,
                      .key_comment = "scale-bench"}) {}
};

// --- The desired state. ---

// The revision's files: the machines always; the services when `services`;
// `gen` is the env GEN of the changed 1% (service 0 of every tenth machine).
std::vector<ds::SourceFile> Revision(const Options& o, const Fleet& fleet, bool services, int gen) {
  std::vector<ds::SourceFile> files;
  files.push_back({"cluster.yaml",
                   "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: scale-bench}\n"
                   "spec:\n  defaults:\n    ssh: {user: " +
                       CurrentUser() + ", identityFile: " + fleet.client_key() +
                       "}\n  reconcile: {intervalSeconds: 30, maxParallel: " +
                       std::to_string(o.max_parallel) + ", allowMassStop: true}\n"});
  std::string text;
  auto flush = [&](const std::string& path, int i) {
    if ((i + 1) % kPerFile == 0 && !text.empty()) {
      files.push_back({path, text});
      text.clear();
    }
  };
  for (int m = 0; m < o.machines; ++m) {
    text += "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: " + MachineName(m) +
            "}\nspec:\n  address: " + MachineAddress(m) +
            "\n  ssh: {port: " + std::to_string(fleet.port()) +
            "}\n  stateDir: " + fleet.state_dir(m) + "\n";
    flush("machines/" + MachineName(m - m % kPerFile) + ".yaml", m);
  }
  if (!text.empty()) files.push_back({"machines/rest.yaml", text}), text.clear();
  if (!services) return files;
  const int total = o.machines * o.services;
  for (int k = 0; k < total; ++k) {
    const bool changed = k < o.machines && k % 10 == 0;
    text += "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: s" +
            std::to_string(k) + "}\nspec:\n  machines: [" + MachineName(k % o.machines) +
            "]\n  process:\n    command: [/bin/sleep, infinity]\n" +
            (changed ? "    env: {GEN: \"" + std::to_string(gen) + "\"}\n" : "") +
            "  stopTimeoutSeconds: 2\n";
    flush("services/s" + std::to_string(k - k % kPerFile) + ".yaml", k);
  }
  if (!text.empty()) files.push_back({"services/rest.yaml", text});
  return files;
}

// --- clusterd and its API. ---

class Clusterd {
 public:
  Clusterd(std::string dir, const Fleet& fleet, std::string origin)
      : dir_(std::move(dir)), fleet_(fleet), origin_(std::move(origin)) {
    listen_ = "127.0.0.1:" + std::to_string(th::PickFreePort());
    th::WriteFile(dir_ + "/token", "scale-bench-token-" + listen_ + "\n");
  }
  ~Clusterd() { Stop(); }

  // Starts clusterd with the drift watch on (its default interval) or off.
  void Start(bool watch) {
    th::WriteFile(dir_ + "/clusterctl.yaml",
                  "repo: {url: " + origin_ + ", branch: main, pollSeconds: 300}\ndataDir: " + dir_ +
                      "/data\nlisten: " + listen_ + "\ntokenFile: " + dir_ +
                      "/token\nssh:\n  knownHosts: " + fleet_.known_hosts() +
                      "\n  hostKeyPolicy: strict\nsecretsDir: " + fleet_.secrets_dir() +
                      "\nwatch: {enabled: " + (watch ? "true" : "false") + "}\n");
    process_ = std::make_unique<th::Process>(
        std::vector<std::string>{th::ClusterdBin(), "--config", dir_ + "/clusterctl.yaml"},
        th::OutputTo(dir_ + "/clusterd-" + std::to_string(++starts_) + ".log"));
  }

  // SIGTERM, then SIGKILL after 60 s.
  void Stop() {
    if (!process_) return;
    process_->Stop(milliseconds(60000));
    process_.reset();
  }

  void KillNow() {
    if (process_) process_->KillGroup(SIGKILL);
  }

  pid_t pid() const { return process_ ? process_->pid() : -1; }
  bool Running() { return process_ && process_->Running(); }

  std::string Log() const {
    std::string log = th::ReadFile(dir_ + "/clusterd-" + std::to_string(starts_) + ".log");
    return log.size() > 2000 ? log.substr(log.size() - 2000) : log;
  }

  // Every series of /metrics by its full name with labels; empty on error.
  std::map<std::string, double> Metrics() {
    std::map<std::string, double> out;
    httplib::Client c("http://" + listen_);
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(300, 0);
    const auto t0 = std::chrono::steady_clock::now();
    auto res = c.Get("/metrics");
    if (!res || res->status != 200) return out;
    Samples()["GET /metrics (every scrape of the run)"].push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    Notes()["GET /metrics, last answer"] = std::to_string(res->body.size() / 1024) + " KiB";
    std::istringstream in(res->body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      const size_t sp = line.rfind(' ');
      if (sp == std::string::npos) continue;
      out[line.substr(0, sp)] = atof(line.c_str() + sp + 1);
    }
    return out;
  }

  std::string Token() const {
    std::string token = th::ReadFile(dir_ + "/token");
    while (!token.empty() && token.back() == '\n') token.pop_back();
    return token;
  }

  // The size of GET `path`'s answer in bytes; -1 on error.
  long long AnswerBytes(const std::string& path) {
    httplib::Client c("http://" + listen_);
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(30, 0);
    auto res = c.Get(path.c_str(), {{"Authorization", "Bearer " + Token()}});
    return res && res->status == 200 ? static_cast<long long>(res->body.size()) : -1;
  }

  void Sync() {
    httplib::Client c("http://" + listen_);
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(30, 0);
    const std::string token = Token();
    c.Post("/api/v1/sync", {{"Authorization", "Bearer " + token}}, "{\"reason\":\"scale bench\"}",
           "application/json");
  }

 private:
  std::string dir_;
  const Fleet& fleet_;
  std::string origin_;
  std::string listen_;
  int starts_ = 0;
  std::unique_ptr<th::Process> process_;
};

// What the scale bench reads of /metrics.
struct Passes {
  double count = 0;     // Passes of the outcome(s) asked for.
  double seconds = 0;   // Their summed duration.
  double all = 0;       // Passes of any outcome.
  double running = -1;  // clusterctl_instances{state="running"}.
  double actions_ok = 0;
  std::string revision;  // clusterctl_revision_info's label.
  bool ok = false;       // /metrics answered.
};

Passes ReadPasses(const std::map<std::string, double>& m, const std::string& outcome) {
  Passes p;
  p.ok = !m.empty();
  const std::string d = "clusterctl_reconcile_duration_seconds";
  for (const auto& [k, v] : m) {
    if (k.compare(0, d.size() + 6, d + "_count") == 0) {
      p.all += v;
      if (k == d + "_count{outcome=\"" + outcome + "\"}") p.count += v;
    } else if (k == d + "_sum{outcome=\"" + outcome + "\"}") {
      p.seconds += v;
    } else if (k == "clusterctl_instances{state=\"running\"}") {
      p.running = v;
    } else if (k.compare(0, 26, "clusterctl_actions_total{a") == 0 &&
               k.find("result=\"ok\"") != std::string::npos) {
      p.actions_ok += v;
    } else if (k.compare(0, 35, "clusterctl_revision_info{revision=\"") == 0) {
      p.revision = k.substr(35, k.find('"', 35) - 35);
    }
  }
  return p;
}

// --- The run. ---

struct Bench {
  Options o;
  th::TempDir tmp;
  std::unique_ptr<Fleet> fleet;
  std::unique_ptr<th::GitRepo> origin, repo;
  std::unique_ptr<Clusterd> clusterd;
  int gen = 0;
  std::vector<double> rss_mib;  // VmRSS after each measured pass.
  long long mem_before_kb = 0;

  int instances() const { return o.machines * o.services; }
  milliseconds poll() const { return milliseconds(o.machines >= 500 ? 500 : 100); }

  void Commit(bool services, const std::string& message) {
    // Every file is rewritten; files of a revision without services go.
    std::error_code ec;
    std::filesystem::remove_all(repo->path() + "/services", ec);
    for (const auto& f : Revision(o, *fleet, services, gen)) repo->Write(f.path, f.content);
    repo->CommitAll(message);
  }

  bool Push() {
    return th::RunShell("cd '" + repo->path() + "' && " + th::GitRepo::Env() +
                        "git push -q origin main 2>&1") == 0;
  }

  // Waits (bounded) for a pass of `outcome` counted after `before` that
  // applied the head revision with `running` instances running. Returns the
  // metrics then, or an error.
  std::string WaitApplied(const Passes& before, const std::string& outcome, double running,
                          milliseconds timeout, Passes* after) {
    const std::string head = repo->Rev().substr(0, 7);
    const bool done = th::WaitFor(
        [&] {
          *after = ReadPasses(clusterd->Metrics(), outcome);
          return after->count > before.count && after->revision == head &&
                 after->running == running;
        },
        timeout, poll());
    if (done) return "";
    return "not applied in " + std::to_string(timeout.count() / 1000) + " s (revision " +
           after->revision + ", want " + head + "; " + std::to_string(after->running) +
           " running, want " + std::to_string(running) + "): " + clusterd->Log();
  }

  std::string PushAndWait(const std::string& name, bool services, const std::string& outcome) {
    Passes before = ReadPasses(clusterd->Metrics(), outcome), after;
    const auto t0 = std::chrono::steady_clock::now();
    if (!Push()) return "git push failed";
    clusterd->Sync();
    const std::string error =
        WaitApplied(before, outcome, services ? instances() : 0, milliseconds(3600000), &after);
    if (!error.empty()) return name + ": " + error;
    Record(
        name + " (wall, push to applied)",
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    Record(name + " (clusterd's pass)",
           1000 * (after.seconds - before.seconds) / std::max(1.0, after.count - before.count));
    return "";
  }

  // One sync-triggered no-op pass; its duration (clusterd's) into *ms.
  std::string NoopPass(double* ms, double* wall_ms) {
    Passes before = ReadPasses(clusterd->Metrics(), "noop"), after;
    const auto t0 = std::chrono::steady_clock::now();
    clusterd->Sync();
    const std::string error =
        WaitApplied(before, "noop", instances(), milliseconds(600000), &after);
    if (!error.empty()) return "no-op pass: " + error;
    *wall_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    *ms = 1000 * (after.seconds - before.seconds) / (after.count - before.count);
    return "";
  }

  // Starts clusterd and waits for its first pass; records the spawn-to-pass
  // wall time and the pass's own duration under `name`.
  std::string StartAndFirstPass(const std::string& name, bool watch) {
    const auto t0 = std::chrono::steady_clock::now();
    clusterd->Start(watch);
    Passes p;
    const bool done = th::WaitFor(
        [&] {
          if (!clusterd->Running()) return true;
          p = ReadPasses(clusterd->Metrics(), "noop");
          return p.all >= 1;
        },
        milliseconds(1800000), poll());
    if (!done || !clusterd->Running()) return name + ": no first pass: " + clusterd->Log();
    Record(
        name + " (wall, spawn to first pass)",
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    // Every pass so far is the first one (or it and a second).
    double sum = 0;
    for (const auto& [k, v] : clusterd->Metrics()) {
      if (k.compare(0, 41, "clusterctl_reconcile_duration_seconds_sum") == 0) sum += v;
    }
    Record(name + " (clusterd's first pass)", 1000 * sum / p.all);
    return "";
  }

  // clusterd's CPU over `seconds` of idleness, as % of one core.
  double IdleCpu(const std::string& name, int* passes) {
    const double c0 = CpuSeconds(clusterd->pid());
    const double p0 = ReadPasses(clusterd->Metrics(), "noop").all;
    const auto t0 = std::chrono::steady_clock::now();
    Say("idle for " + std::to_string(o.idle_seconds) + " s: " + name);
    // A measurement window, not a wait for a condition.
    std::this_thread::sleep_for(std::chrono::seconds(o.idle_seconds));
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double pct = 100 * (CpuSeconds(clusterd->pid()) - c0) / wall;
    *passes = static_cast<int>(ReadPasses(clusterd->Metrics(), "noop").all - p0);
    Samples()[name].push_back(pct);
    LoadAt()[name] = LoadAverage();
    Say(name + ": " + std::to_string(pct) + " % of one core, " + std::to_string(*passes) +
        " periodic passes");
    return pct;
  }

  double RssMiB() {
    return MiB(KbField("/proc/" + std::to_string(clusterd->pid()) + "/status", "VmRSS"));
  }

  std::string Run();
  std::string Observe();
};

std::string Bench::Run() {
  // Will it fit? Per machine: ~2 sshd processes, up to ~7 shells; per
  // instance one process.
  const long long needed_procs = o.machines * 10LL + instances();
  const long long pid_max = atoll(th::ReadFile("/proc/sys/kernel/pid_max").c_str());
  const int procs_now = ProcessCount();
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  mem_before_kb = KbField("/proc/meminfo", "MemAvailable");
  Say("machines " + std::to_string(o.machines) + " x " + std::to_string(o.services) +
      " services; RLIMIT_NOFILE " + std::to_string(nofile.rlim_cur) + "; pid_max " +
      std::to_string(pid_max) + "; processes now " + std::to_string(procs_now) + "; MemAvailable " +
      std::to_string(mem_before_kb / 1024) + " MiB");
  Notes()["box"] = std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " CPUs, MemAvailable " +
                   std::to_string(mem_before_kb / 1024) + " MiB at start, pid_max " +
                   std::to_string(pid_max) + ", RLIMIT_NOFILE " + std::to_string(nofile.rlim_cur);
  if (procs_now + needed_procs > pid_max * 9 / 10) {
    return "pid_max " + std::to_string(pid_max) + " is too small for ~" +
           std::to_string(needed_procs) + " more processes (raise /proc/sys/kernel/pid_max)";
  }
  // clusterd: a socket per machine and a few per connection being made.
  if (nofile.rlim_cur < static_cast<rlim_t>(o.machines * 2 + 256)) {
    return "RLIMIT_NOFILE " + std::to_string(nofile.rlim_cur) + " is too small (ulimit -n)";
  }
  // ~0.15 MiB per instance, ~4 MiB per machine's sessions, 2 GiB spare.
  if (mem_before_kb < instances() * 150LL + o.machines * 4096LL + 2 * 1048576LL) {
    return "not enough memory available";
  }
  for (const std::string& bin : {th::ClusterdBin()}) {
    if (!std::filesystem::exists(bin)) return "build " + bin + " first";
  }

  fleet = std::make_unique<Fleet>(tmp.Sub("fleet"), o.machines);
  Say(std::to_string(fleet->sshds()) + " sshd processes on port " + std::to_string(fleet->port()));
  origin = std::make_unique<th::GitRepo>(tmp.Sub("origin.git"), /*bare=*/true);
  repo = std::make_unique<th::GitRepo>(tmp.Sub("repo"));
  repo->Git("remote add origin '" + origin->path() + "'");
  Commit(/*services=*/false, "machines only");
  if (!Push()) return "first push failed";
  clusterd = std::make_unique<Clusterd>(tmp.Sub("clusterd"), *fleet, origin->path());
  const long long mem_fleet = KbField("/proc/meminfo", "MemAvailable");

  // Cold start: connect to every machine and observe it, nothing to run.
  if (auto e = StartAndFirstPass("cold start, no services", o.watch); !e.empty()) return e;
  const long long mem_sessions = KbField("/proc/meminfo", "MemAvailable");

  // Converge from nothing (and back, when more runs are asked for).
  const int converge_runs = o.converge_runs > 0 ? o.converge_runs : (o.machines < 500 ? 3 : 1);
  for (int r = 0; r < converge_runs; ++r) {
    if (r > 0) {
      Commit(false, "remove every service");
      if (auto e = PushAndWait("stop everything", false, "ok"); !e.empty()) return e;
    }
    Commit(true, "add " + std::to_string(instances()) + " services");
    if (auto e = PushAndWait("converge from nothing", true, "ok"); !e.empty()) return e;
  }
  const long long mem_services = KbField("/proc/meminfo", "MemAvailable");
  Notes()["memory of the machines"] =
      "MemAvailable fell by " + std::to_string((mem_before_kb - mem_fleet) / 1024) + " MiB for " +
      std::to_string(fleet->sshds()) + " idle sshd, " +
      std::to_string((mem_fleet - mem_sessions) / 1024) + " MiB for " + std::to_string(o.machines) +
      " connected machines (sessions and shells; clusterd included), " +
      std::to_string((mem_sessions - mem_services) / 1024) + " MiB for " +
      std::to_string(instances()) + " instances (`sleep`); " + std::to_string(ProcessCount()) +
      " processes on the box";

  // No-op passes.
  for (int r = 0; r < o.runs; ++r) {
    double ms = 0, wall = 0;
    if (auto e = NoopPass(&ms, &wall); !e.empty()) return e;
    Record("no-op pass (clusterd's pass)", ms);
    Record("no-op pass (wall, sync to pass counted)", wall);
  }

  // Idle.
  int idle_passes = 0;
  IdleCpu(o.watch ? "idle CPU, % of one core (drift watch on)"
                  : "idle CPU, % of one core (drift watch off)",
          &idle_passes);
  Notes()[o.watch ? "idle (drift watch on)" : "idle (drift watch off), first"] =
      std::to_string(idle_passes) + " periodic passes in " + std::to_string(o.idle_seconds) +
      " s; VmRSS " + std::to_string(RssMiB()) + " MiB";

  // One commit touching 1% of the instances.
  for (int r = 0; r < std::min(3, o.runs); ++r) {
    ++gen;
    Passes before = ReadPasses(clusterd->Metrics(), "ok");
    Commit(true, "change 1% of the instances");
    if (auto e = PushAndWait("1% change", true, "ok"); !e.empty()) return e;
    Passes after = ReadPasses(clusterd->Metrics(), "ok");
    Notes()["1% change: steps"] =
        std::to_string(static_cast<long long>(after.actions_ok - before.actions_ok)) +
        " steps ok in the last run (want " + std::to_string(o.machines / 10) + " restarts)";
  }

  // RSS over back-to-back passes, then the soak.
  const auto soak_end = std::chrono::steady_clock::now() + std::chrono::minutes(o.soak_minutes);
  for (int r = 0; r < o.passes || std::chrono::steady_clock::now() < soak_end; ++r) {
    // The soak waits --soak-pass-seconds after each pass (clusterd's own
    // periodic pass and drift watch run in between), or back to back.
    if (r >= o.passes && o.soak_pass_seconds > 0) {
      const auto next = std::min(
          soak_end, std::chrono::steady_clock::now() + std::chrono::seconds(o.soak_pass_seconds));
      std::this_thread::sleep_until(next);
      if (std::chrono::steady_clock::now() >= soak_end) break;
    }
    double ms = 0, wall = 0;
    if (auto e = NoopPass(&ms, &wall); !e.empty()) return e;
    Samples()["no-op pass during the RSS passes (clusterd's pass)"].push_back(ms);
    rss_mib.push_back(RssMiB());
    if (r % 10 == 9)
      Say("pass " + std::to_string(r + 1) + ": VmRSS " + std::to_string(rss_mib.back()) + " MiB");
  }
  const std::string status = "/proc/" + std::to_string(clusterd->pid()) + "/status";
  Notes()["clusterd at the end of the passes"] =
      "VmRSS " + std::to_string(MiB(KbField(status, "VmRSS"))) + " MiB, VmHWM " +
      std::to_string(MiB(KbField(status, "VmHWM"))) + " MiB, threads " +
      std::to_string(KbField(status, "Threads")) + ", load " + LoadAverage();
  Samples()["VmHWM MiB"].push_back(MiB(KbField(status, "VmHWM")));
  // Each pass keeps its status in memory (GET /api/v1/history): its size.
  Notes()["GET /api/v1/status"] =
      std::to_string(clusterd->AnswerBytes("/api/v1/status") / 1024) + " KiB of JSON";

  // Restarts on the converged machines.
  for (int r = 0; r < std::min(3, o.runs); ++r) {
    clusterd->Stop();
    if (auto e = StartAndFirstPass("restart, converged", o.watch); !e.empty()) return e;
  }
  // The idle minute without the drift watch.
  clusterd->Stop();
  if (auto e = StartAndFirstPass("start without the drift watch", /*watch=*/false); !e.empty()) {
    return e;
  }
  IdleCpu("idle CPU, % of one core (drift watch off)", &idle_passes);
  Notes()["idle (drift watch off)"] =
      std::to_string(idle_passes) + " periodic passes in " + std::to_string(o.idle_seconds) + " s";
  clusterd->Stop();
  return Observe();
}

// The library's observation of every machine from this process.
std::string Bench::Observe() {
  std::vector<ds::SourceFile> files = Revision(o, *fleet, true, gen);
  ds::Revision rev;
  rev.commit = std::string(40, '0');
  ds::LoadResult loaded = ds::LoadFiles(files, rev);
  if (!loaded.ok()) return "load: " + loaded.errors.ToString().substr(0, 400);
  rc::SshOptions so;
  so.known_hosts = fleet->known_hosts();
  rc::ObserveOptions oo;  // 32 machines at once, as clusterd.
  auto check = [&](const rc::ClusterObservation& obs) -> std::string {
    if (!obs.unreachable.empty()) return "unreachable: " + obs.unreachable.begin()->second;
    size_t running = 0;
    for (const auto& i : obs.instances) running += i.state == rc::ObservedState::kRunning;
    if (running != static_cast<size_t>(instances())) {
      return std::to_string(running) + " instances running, want " + std::to_string(instances());
    }
    return "";
  };
  for (int r = 0; r < std::min(3, o.runs); ++r) {
    rc::SshPool pool(so);
    rc::ShellDriver driver(&pool);
    rc::ClusterObservation obs;
    const double ms =
        WallMsOf([&] { obs = rc::ObserveCluster(*loaded.state, nullptr, driver, nullptr, oo); });
    if (auto e = check(obs); !e.empty()) return "cold observation: " + e;
    Record("observation, cold (library: connect all + observe)", ms);
    if (r > 0) continue;
    for (int w = 0; w < o.runs; ++w) {
      const double wms =
          WallMsOf([&] { obs = rc::ObserveCluster(*loaded.state, nullptr, driver, nullptr, oo); });
      if (auto e = check(obs); !e.empty()) return "warm observation: " + e;
      Record("observation cycle, warm (library)", wms);
    }
  }
  return "";
}

std::atomic<Bench*> g_bench{nullptr};

std::string FigureText(const std::string& name) {
  return MedianText(name) + (LoadAt().count(name) ? "; load " + LoadAt()[name] : "");
}

void PrintResults(Bench& b) {
  std::printf("\nscale_bench: %d machines x %d services (%d instances)\n", b.o.machines,
              b.o.services, b.instances());
  for (const auto& [name, v] : Samples()) {
    if (v.empty() || name.rfind("idle CPU", 0) == 0 || name == "VmHWM MiB") continue;
    std::printf("  %-62s %s\n", name.c_str(), FigureText(name).c_str());
  }
  for (const auto& [name, note] : Notes()) std::printf("  %s: %s\n", name.c_str(), note.c_str());
  const bool big = b.o.machines >= 1000;
  const std::string size = std::to_string(b.o.machines) + " x " + std::to_string(b.o.services);
  auto pct = [](const std::string& name) {
    char t[96];
    snprintf(t, sizeof t, "%.1f %% (load %s)", MedianOf(name), LoadAt()[name].c_str());
    return std::string(t);
  };
  const std::string cycle = "observation cycle, warm (library)";
  const std::string noop = "no-op pass (clusterd's pass)";
  auto judged = [&](const std::string& name, bool met) {
    return !big ? "-" : Samples().count(name) ? Verdict(met) : "NOT met: not measured (see above)";
  };
  AddGoal("one observation cycle, " + size, FigureText(cycle), big ? "< 5 s" : "-",
          judged(cycle, MedianOf(cycle) < 5000));
  AddGoal("no-op pass, " + size, FigureText(noop), big ? "< 5 s" : "-",
          judged(noop, MedianOf(noop) < 5000));
  const std::string on = "idle CPU, % of one core (drift watch on)";
  const std::string off = "idle CPU, % of one core (drift watch off)";
  AddGoal("idle clusterd CPU, drift watch on (default)", pct(on), big ? "< 10 %" : "-",
          judged(on, MedianOf(on) < 10));
  AddGoal("idle clusterd CPU, drift watch off", pct(off), big ? "< 10 %" : "-",
          judged(off, MedianOf(off) < 10));
  if (!b.rss_mib.empty()) {
    const auto& v = b.rss_mib;
    const double peak = *std::max_element(v.begin(), v.end());
    const double limit = big ? 250 : (b.o.machines <= 100 ? 50 : 0);
    char m[200];
    snprintf(m, sizeof m, "%.1f MiB after pass 1, %.1f after pass %zu, max %.1f; VmHWM %.1f", v[0],
             v.back(), v.size(), peak, MedianOf("VmHWM MiB"));
    AddGoal("clusterd RSS, " + size, m, limit > 0 ? "< " + std::to_string(int(limit)) + " MB" : "-",
            limit > 0 ? Verdict(peak * 1.048576 < limit) : "-");
    // Growth: the last 5 passes against passes 3..7 (the first ones still
    // fill caches and arenas).
    if (v.size() >= 12) {
      const double early = Median(std::vector<double>(v.begin() + 2, v.begin() + 7));
      const double late = Median(std::vector<double>(v.end() - 5, v.end()));
      snprintf(m, sizeof m,
               "%+.1f MiB over %zu passes (median of passes 3-7: %.1f, of the last 5: %.1f)",
               late - early, v.size(), early, late);
      AddGoal("clusterd RSS growth over repeated passes", m, "none (< 2 MiB)",
              Verdict(late - early < 2));
    }
  }
  PrintGoals("scale_bench", "issue 17");
}

int ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> int {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "scale_bench: %s wants a value\n", a.c_str());
        std::exit(2);
      }
      return atoi(argv[++i]);
    };
    if (a == "--machines")
      o->machines = next();
    else if (a == "--services-per-machine")
      o->services = next();
    else if (a == "--runs")
      o->runs = next();
    else if (a == "--converge-runs")
      o->converge_runs = next();
    else if (a == "--passes")
      o->passes = next();
    else if (a == "--soak-minutes")
      o->soak_minutes = next();
    else if (a == "--soak-pass-seconds")
      o->soak_pass_seconds = next();
    else if (a == "--idle-seconds")
      o->idle_seconds = next();
    else if (a == "--max-parallel")
      o->max_parallel = next();
    else if (a == "--no-watch")
      o->watch = false;
    else {
      std::fprintf(stderr,
                   "scale_bench: unknown argument %s (see the top of bench/scale_bench.cc)\n",
                   a.c_str());
      return 2;
    }
  }
  if (o->machines < 1 || o->machines > 250 * 256 || o->services < 1 || o->runs < 1) {
    std::fprintf(stderr, "scale_bench: bad --machines, --services-per-machine or --runs\n");
    return 2;
  }
  if (const char* forced = getenv("BENCH_RUNS")) o->runs = std::max(1, atoi(forced));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto bench = std::make_unique<Bench>();
  if (int rc = ParseArgs(argc, argv, &bench->o)) return rc;
  // One run at a time on a box: the fleets of two runs name the same
  // machines and services on the same host, so each clusterd would see (and
  // stop) the other's service processes as its own.
  const int lock = open("/tmp/clusterctl-scale-bench.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) {
    std::fprintf(stderr,
                 "scale_bench: another scale_bench runs on this box "
                 "(/tmp/clusterctl-scale-bench.lock); wait for it to end\n");
    return 2;
  }
  g_bench = bench.get();
  StartSignalWatcher("scale_bench", [] {
    if (Bench* b = g_bench.load()) {
      if (b->clusterd) b->clusterd->KillNow();
      if (b->fleet) b->fleet->Kill();
    }
  });
  std::printf("scale_bench: %d machines x %d services; load average at start: %s\n",
              bench->o.machines, bench->o.services, LoadAverage().c_str());
  std::string error;
  try {
    error = bench->Run();
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) std::fprintf(stderr, "scale_bench: %s\n", error.c_str());
  PrintResults(*bench);
  g_bench = nullptr;
  if (bench->clusterd) bench->clusterd->Stop();
  if (bench->fleet) bench->fleet->Kill();
  bench.reset();
  return error.empty() ? 0 : 1;
}

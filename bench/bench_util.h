// Helpers shared by the benchmarks that drive real machines
// (observe_bench.cc, reconcile_bench.cc, clusterd_bench.cc): wall-clock
// samples for medians and ratios, runs within a time budget, the goals table
// printed at the end, and small process and YAML utilities. Header-only; each
// benchmark is its own executable.
#pragma once

#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness/process.h"
#include "tests/harness/ssh_fleet.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::bench {

namespace th = clusterctl::testing;

// Blocks SIGINT, SIGTERM and SIGHUP in every thread (children get the
// default mask back) and handles them on one thread: `cleanup` stops the
// hosts and services the run started, then the program exits 128 + signal.
inline void StartSignalWatcher(const char* program, std::function<void()> cleanup) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, program, cleanup = std::move(cleanup)] {
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr, "%s: signal %d, stopping the hosts\n", program, sig);
    cleanup();
    _exit(128 + sig);
  }).detach();
}
using std::chrono::milliseconds;

// --- Timing: every iteration's wall time, for medians and ratios. ---

inline std::map<std::string, std::vector<double>>& Samples() {
  static std::map<std::string, std::vector<double>> samples;
  return samples;
}

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The median of the samples recorded under `name`; 0 when none.
inline double MedianOf(const std::string& name) {
  auto it = Samples().find(name);
  return it == Samples().end() ? 0 : Median(it->second);
}

// Times `fn` on the wall clock, records it under `name` and as the
// iteration's manual time. Returns the milliseconds.
template <typename Fn>
double TimeIteration(benchmark::State& state, const std::string& name, Fn&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  state.SetIterationTime(ms / 1000);
  Samples()[name].push_back(ms);
  return ms;
}

// Other figures of the summary, by name.
inline std::map<std::string, std::string>& Notes() {
  static std::map<std::string, std::string> notes;
  return notes;
}

// Milliseconds `fn` took on the wall clock.
template <typename Fn>
double WallMsOf(Fn&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// --- Runs within a budget: a figure is the median of several runs. ---
//
// Slow scenarios (a converge that takes minutes before issue 9's work, an
// Ansible playbook) cannot run many times in a ~15 min benchmark; fast ones
// should. A scenario runs at least `min` and at most `max` times, and no
// further run starts once its runs (untimed preparation included) took
// `budget_ms`. The environment variable BENCH_RUNS=N forces N runs of every
// scenario (N=1: a smoke test of the benchmark itself).
struct Runs {
  int min = 3;
  int max = 5;
  double budget_ms = 60000;
};

// Runs `run(double* ms) -> std::string` as `runs` says (one run: prepare,
// untimed; time the scenario into *ms; check the outcome; return "" or what
// went wrong, which ends the benchmark; a negative *ms ends the runs without
// a sample, for a figure that cannot be measured), records every timed
// sample under `name`, and reports the median as the benchmark's one
// iteration (register with ->Iterations(1)->UseManualTime()). Returns false
// (after SkipWithError) when a run failed.
template <typename Fn>
bool Repeat(benchmark::State& state, const std::string& name, Runs runs, Fn&& run) {
  if (const char* forced = getenv("BENCH_RUNS")) {
    const int n = std::max(1, atoi(forced));
    runs.min = runs.max = n;
  }
  bool ok = true;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < runs.max; ++k) {
      const double spent =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (k >= runs.min && spent >= runs.budget_ms) break;
      double ms = 0;
      const std::string error = run(&ms);
      if (!error.empty()) {
        std::fprintf(stderr, "%s: run %d failed: %s\n", name.c_str(), k + 1, error.c_str());
        state.SkipWithError(error.substr(0, 300).c_str());
        ok = false;
        break;
      }
      if (ms < 0) break;
      Samples()[name].push_back(ms);
      std::fprintf(stderr, "  %s: run %d: %.1f ms\n", name.c_str(), k + 1, ms);
    }
    state.SetIterationTime(std::max(MedianOf(name), 0.001) / 1000);
  }
  auto it = Samples().find(name);
  state.counters["runs"] = it == Samples().end() ? 0 : static_cast<double>(it->second.size());
  return ok;
}

// --- The goals table (issue 9, "Targets"), printed at the end of a run. ---

struct Goal {
  std::string what;      // "one warm observation cycle, 20 x 10"
  std::string measured;  // "6,812 ms (median of 5)"
  std::string goal;      // "< 100 ms"
  std::string verdict;   // "met", "NOT met", "not measurable yet: ...", "-"
};

inline std::vector<Goal>& Goals() {
  static std::vector<Goal> goals;
  return goals;
}

inline void AddGoal(const std::string& what, const std::string& measured, const std::string& goal,
                    const std::string& verdict) {
  Goals().push_back({what, measured, goal, verdict});
}

inline std::string Verdict(bool met) { return met ? "met" : "NOT met"; }

// "6,812 ms" / "40.3 ms" / "0.71 ms".
inline std::string FormatMs(double ms) {
  char b[64];
  if (ms >= 1000) {
    const long long v = static_cast<long long>(ms + 0.5);
    if (v >= 1000000) {
      snprintf(b, sizeof b, "%lld,%03lld,%03lld ms", v / 1000000, v / 1000 % 1000, v % 1000);
    } else {
      snprintf(b, sizeof b, "%lld,%03lld ms", v / 1000, v % 1000);
    }
  } else if (ms >= 10) {
    snprintf(b, sizeof b, "%.1f ms", ms);
  } else {
    snprintf(b, sizeof b, "%.2f ms", ms);
  }
  return b;
}

// "6,812 ms (median of 5: 6,700..7,020)".
inline std::string MedianText(const std::string& name) {
  auto it = Samples().find(name);
  if (it == Samples().end() || it->second.empty()) return "not run";
  const auto& v = it->second;
  std::string s = FormatMs(Median(v)) + " (median of " + std::to_string(v.size());
  if (v.size() > 1) {
    s += ": " + FormatMs(*std::min_element(v.begin(), v.end())) + " .. " +
         FormatMs(*std::max_element(v.begin(), v.end()));
  }
  return s + ")";
}

inline std::string Ratio(double x) {
  char b[32];
  snprintf(b, sizeof b, x >= 10 ? "%.0fx" : "%.1fx", x);
  return b;
}

// Prints the goals as a Markdown table, and appends them to the file named by
// $BENCH_SUMMARY (scripts/bench.sh prints that file at the end).
inline void PrintGoals(const std::string& bench, const std::string& issue = "issue 9") {
  if (Goals().empty()) return;
  std::ostringstream t;
  t << "\n"
    << bench << ": goals (" << issue << ")\n\n"
    << "| what | measured | goal | verdict |\n|---|---|---|---|\n";
  for (const Goal& g : Goals()) {
    t << "| " << g.what << " | " << g.measured << " | " << g.goal << " | " << g.verdict << " |\n";
  }
  std::printf("%s", t.str().c_str());
  std::fflush(stdout);
  if (const char* path = getenv("BENCH_SUMMARY")) {
    std::ofstream(path, std::ios::app) << t.str();
  }
}

// --- Processes on the machines. ---

// The kernel's count of processes (and threads) created since boot: the
// `processes` line of /proc/stat. Global: measure a quiet window and
// subtract a baseline window of the same length.
inline long long ProcessesCreatedSinceBoot() {
  std::ifstream in("/proc/stat");
  std::string key;
  long long value = -1;
  while (in >> key) {
    if (key == "processes") {
      in >> value;
      break;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return value;
}

// The path /proc/<pid>/exe points to; "" when unreadable.
inline std::string ExeOf(pid_t pid) {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  return ec ? "" : p.string();
}

// Whether `pid` is sshd or a shell (the persistent shells and what runs them).
inline bool IsSshdOrShell(pid_t pid) {
  const std::string exe = ExeOf(pid);
  const std::string base = exe.substr(exe.rfind('/') + 1);
  return base == "sshd" || base == "sh" || base == "dash" || base == "bash";
}

using th::ProcessesWithEnvVar;  // tests/harness/process.h

// Kills every service on `host` but leaves sshd and the controller's
// persistent shells alone (SshHost::KillServices would kill the shells too,
// since they carry the host's marker variable, and the next command would
// pay for new shells): every process with the host's marker variable that is
// not sshd or a shell, and every process named by a `pid` file under the
// state directory that started after sshd, each with its process group.
// Waits (bounded) until they are gone; zombies count as gone.
inline void KillServicesKeepShells(th::SshHost& host) {
  std::vector<pid_t> victims;
  for (pid_t p : ProcessesWithEnvVar("CLUSTERCTL_TEST_HOST=" + host.dir())) {
    if (!IsSshdOrShell(p)) victims.push_back(p);
  }
  const unsigned long long sshd_start = th::ProcessStartTicks(host.pid());
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(host.state_dir(), ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->path().filename() != "pid") continue;
    const pid_t pid = static_cast<pid_t>(atol(th::ReadFile(it->path().string()).c_str()));
    if (pid <= 1 || pid == getpid() || !th::ProcessAlive(pid)) continue;
    if (th::ProcessStartTicks(pid) < sshd_start || IsSshdOrShell(pid)) continue;
    victims.push_back(pid);
  }
  for (pid_t p : victims) {
    if (getpgid(p) == p) ::kill(-p, SIGKILL);
    ::kill(p, SIGKILL);
  }
  th::WaitFor(
      [&] {
        for (pid_t p : victims) {
          if (th::ProcessAlive(p)) return false;
        }
        return true;
      },
      milliseconds(5000));
}

// Empties `host`'s state directory (after KillServicesKeepShells).
inline void ClearStateDir(th::SshHost& host) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(host.state_dir(), ec)) {
    std::filesystem::remove_all(e.path(), ec);
  }
}

// --- Helpers. ---

using th::PortBindableOnAll;  // tests/harness/ssh_fleet.h

inline std::string FindInPath(const std::string& name) {
  const char* path = getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string p = (dir.empty() ? "." : dir) + "/" + name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// A YAML double-quoted scalar.
inline std::string YamlQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
  return out + "\"";
}

// Runs argv with extra environment, bounded by `timeout`; returns the exit
// status (-1 on timeout, after killing the process group) and the output.
inline int RunBounded(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                      const std::string& out_path, milliseconds timeout, std::string* output) {
  th::SpawnOptions o = th::OutputTo(out_path);
  o.env = env;
  th::Process p(argv, o);
  std::optional<int> rc = p.WaitForExit(timeout);
  if (!rc) {
    p.KillGroup(SIGKILL);
    p.WaitForExit(milliseconds(5000));
  }
  if (output) *output = th::ReadFile(out_path);
  return rc.value_or(-1);
}
}  // namespace clusterctl::bench

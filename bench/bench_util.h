// Helpers shared by the benchmarks that drive real machines
// (observe_bench.cc, reconcile_bench.cc): wall-clock samples for medians and
// ratios, and small process and YAML utilities. Header-only; each benchmark
// is its own executable.
#pragma once

#include <benchmark/benchmark.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::bench {

namespace th = clusterctl::testing;
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

// --- Helpers. ---

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

// Load + validate + expand a generated revision: 1,000 machines and 10,000
// services in a layered dependency DAG (issue 2 target: < 200 ms, < 200 MB
// peak), in memory; and the same revision read from a real git repository,
// cold and after a one-file change with the parse cache (issue 17 targets:
// cold < 1 s, reload < 100 ms). Figures are recorded in docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/malloc_tuning.h"
#include "base/process_stats.h"
#include "desired-state/git_source.h"
#include "desired-state/loader.h"
#include "tests/harness/git_repo.h"
#include "tests/harness/temp_dir.h"

namespace {
using namespace clusterctl::desired_state;

std::vector<SourceFile> GenerateRevision(int machines, int services, int per_file) {
  std::vector<SourceFile> files;
  files.push_back({"cluster.yaml",
                   "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: big}\n"
                   "spec:\n  defaults:\n    ssh: {user: ops}\n"});
  std::string text;
  for (int m = 0; m < machines; ++m) {
    text += "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata:\n  name: m" +
            std::to_string(m) + "\n  labels: {rack: r" + std::to_string(m % 20) +
            "}\nspec:\n  address: 10." + std::to_string(m / 250) + "." + std::to_string(m % 250) +
            ".1\n";
    if ((m + 1) % per_file == 0) {
      files.push_back({"machines/m" + std::to_string(m) + ".yaml", text});
      text.clear();
    }
  }
  if (!text.empty()) files.push_back({"machines/rest.yaml", text}), text.clear();
  // 10 layers; each service depends on two services of the layer below.
  const int layer = services / 10;
  for (int s = 0; s < services; ++s) {
    text += "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: s" +
            std::to_string(s) + "}\nspec:\n  machines: [m" + std::to_string(s % machines) +
            "]\n  process:\n    command: [/usr/bin/svc, --id, \"" + std::to_string(s) +
            "\"]\n    env: {LAYER: \"" + std::to_string(s / layer) +
            "\"}\n  readiness:\n    http: {port: 8080, path: /health}\n";
    if (s >= layer) {
      int below = s - layer;
      text += "  dependsOn:\n    - {service: s" + std::to_string(below) + "}\n    - {service: s" +
              std::to_string(below - below % layer + (below + 1) % layer) + "}\n";
    }
    if ((s + 1) % per_file == 0) {
      files.push_back({"services/s" + std::to_string(s) + ".yaml", text});
      text.clear();
    }
  }
  if (!text.empty()) files.push_back({"services/rest.yaml", text});
  return files;
}

void BM_LoadValidateExpand(benchmark::State& state) {
  const auto files = GenerateRevision(1000, static_cast<int>(state.range(0)), 100);
  size_t bytes = 0;
  for (const auto& f : files) bytes += f.content.size();
  Revision rev;
  rev.commit = "bench";
  size_t instances = 0;
  for (auto _ : state) {
    LoadResult r = LoadFiles(files, rev);
    if (!r.ok()) {
      state.SkipWithError(r.errors.ToString().substr(0, 500).c_str());
      return;
    }
    instances = r.state->instances.size();
    benchmark::DoNotOptimize(r);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  state.counters["instances"] = static_cast<double>(instances);
  state.counters["revision_MiB"] = static_cast<double>(bytes) / (1 << 20);
  state.counters["peak_rss_MiB"] = static_cast<double>(ru.ru_maxrss) / 1024;
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
}
BENCHMARK(BM_LoadValidateExpand)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

// The generated revision of 1,000 machines and `services` services committed
// to a git repository (revision A), then a second commit (revision B) that
// changes the command of one service in one file.
struct GitRevisions {
  clusterctl::testing::TempDir dir;
  std::unique_ptr<GitSource> source;
  std::string a, b;
  size_t files = 0;
};

const GitRevisions& Revisions(int services) {
  static std::map<int, std::unique_ptr<GitRevisions>> made;
  auto& r = made[services];
  if (r) return *r;
  r = std::make_unique<GitRevisions>();
  clusterctl::testing::GitRepo repo(r->dir.Sub("repo"));
  auto files = GenerateRevision(1000, services, 100);
  r->files = files.size();
  for (const auto& f : files) repo.Write(f.path, f.content);
  r->a = repo.CommitAll("A");
  const SourceFile& one = files.back();
  std::string changed = one.content;
  changed.replace(changed.find("/usr/bin/svc"), 12, "/usr/bin/new");
  repo.Write(one.path, changed);
  r->b = repo.CommitAll("B");
  GitSource::Options o;
  o.repo = repo.path();
  auto source = GitSource::Open(o);
  if (source.ok()) r->source = std::move(*source);
  return *r;
}

// CPU time of the whole process (every thread) so far, in ms.
double ProcessCpuMs() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

// One revision read from git and loaded; false (and the benchmark skipped)
// on any error.
bool ReadAndLoad(benchmark::State& state, const GitRevisions& r, const std::string& rev,
                 const LoadOptions& options, size_t* instances) {
  auto snap = r.source->Read(rev);
  if (!snap.ok()) {
    state.SkipWithError(snap.status().ToString().c_str());
    return false;
  }
  LoadResult loaded = Load(*snap, options);
  if (!loaded.ok()) {
    state.SkipWithError(loaded.errors.ToString().substr(0, 500).c_str());
    return false;
  }
  *instances = loaded.state->instances.size();
  return true;
}

// Cold: read from git and load without a cache (files parsed in parallel).
void BM_GitColdLoad(benchmark::State& state) {
  const GitRevisions& r = Revisions(static_cast<int>(state.range(0)));
  if (!r.source) return state.SkipWithError("no git repository");
  size_t instances = 0;
  const double cpu0 = ProcessCpuMs();
  for (auto _ : state) {
    if (!ReadAndLoad(state, r, r.a, LoadOptions{}, &instances)) return;
  }
  // Wall time counts one core; this counts the parsing threads too.
  state.counters["cpu_all_threads_ms"] =
      (ProcessCpuMs() - cpu0) / static_cast<double>(state.iterations());
  state.counters["files"] = static_cast<double>(r.files);
  state.counters["instances"] = static_cast<double>(instances);
}
BENCHMARK(BM_GitColdLoad)->Arg(10000)->Repetitions(5)->Unit(benchmark::kMillisecond);

// Reload after a one-file change: the parse cache holds the other revision;
// each iteration reads and loads A or B in turn, so exactly one file misses.
void BM_GitReloadOneFileChange(benchmark::State& state) {
  const GitRevisions& r = Revisions(static_cast<int>(state.range(0)));
  if (!r.source) return state.SkipWithError("no git repository");
  LoadOptions options;
  options.cache = std::make_shared<ParseCache>();
  size_t instances = 0;
  if (!ReadAndLoad(state, r, r.a, options, &instances)) return;  // Warm.
  bool b = true;
  const double cpu0 = ProcessCpuMs();
  for (auto _ : state) {
    if (!ReadAndLoad(state, r, b ? r.b : r.a, options, &instances)) return;
    b = !b;
  }
  state.counters["cpu_all_threads_ms"] =
      (ProcessCpuMs() - cpu0) / static_cast<double>(state.iterations());
  const ParseCache::Stats stats = options.cache->stats();
  // What the cache costs in memory: the resident set with the cache full
  // (one revision's parse) and after it is dropped.
  auto rss_mib = [] {
    clusterctl::ReleaseFreeMemory();
    auto process = clusterctl::ReadProcessStats();
    return process.ok() ? static_cast<double>(process->rss_bytes) / (1 << 20) : 0.0;
  };
  state.counters["rss_MiB"] = rss_mib();
  options.cache.reset();
  state.counters["rss_without_cache_MiB"] = rss_mib();
  state.counters["hits"] = static_cast<double>(stats.hits);
  state.counters["misses"] = static_cast<double>(stats.misses);
  state.counters["instances"] = static_cast<double>(instances);
}
BENCHMARK(BM_GitReloadOneFileChange)->Arg(10000)->Repetitions(5)->Unit(benchmark::kMillisecond);

}  // namespace

// malloc set up as clusterd sets it (base/malloc_tuning.h): the reload
// measured is clusterd's.
int main(int argc, char** argv) {
  clusterctl::TuneMallocForDaemon();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

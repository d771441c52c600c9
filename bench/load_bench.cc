// Load + validate + expand a generated revision: 1,000 machines and 10,000
// services in a layered dependency DAG (issue 2 target: < 200 ms, < 200 MB
// peak). Figures are recorded in docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <string>
#include <vector>

#include "desired-state/loader.h"

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

}  // namespace

BENCHMARK_MAIN();

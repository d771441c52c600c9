// The audit log at scale (issue 6): 1,000,000 records across 1,000 services
// on a real RocksDB, written with sync=true.
//
//   BM_AppendBatch100Synced   builds the million-record log: AppendBatch of
//                             100 records per synced write (group commit)
//   BM_AppendSingleSynced     one synced write per record (2,000 records,
//                             on a log of its own)
//   BM_QueryServiceTimeRange  service + time range, 50 records returned
//                             (goal: under 20 ms)
//   BM_QueryNewest50          no filter: the newest 50
//   BM_QueryMachineResult     machine + result (20,000 records per machine,
//                             1 in 200 failed), filtered on index entries
//   BM_QueryRareResultNoIndex a result filter alone that matches nothing:
//                             the worst case, a scan of the whole time index
//   BM_Verify                 the whole chain and every index entry
//                             (goal: under 10 s)
//
// Benchmarks run in this order and share the log the first one builds, in
// a temporary directory removed at exit. Figures: docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "store/store.h"
#include "tests/harness/temp_dir.h"

namespace {
using namespace clusterctl;  // NOLINT: a benchmark of the audit log

constexpr int kRecords = 1000000;
constexpr int kServices = 1000;
constexpr int kMachines = 50;
constexpr int kBatch = 100;
constexpr int64_t kT0 = 1795343445123;  // 2026-11-22T10:30:45.123Z
constexpr int64_t kStepMs = 100;        // One record every 100 ms: 27.8 hours.

// A clock that moves kStepMs on every read: one record per step.
class SteppingClock final : public Clock {
 public:
  explicit SteppingClock(int64_t start) : now_(start) {}
  int64_t WallMs() const override { return now_ += kStepMs; }
  int64_t SteadyMs() const override { return WallMs(); }

 private:
  mutable std::atomic<int64_t> now_;
};

// The shared million-record log.
struct Shared {
  clusterctl::testing::TempDir dir;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<audit::AuditLog> log;
  SteppingClock clock{kT0};
  int appended = 0;
};

// The shared log, built on first use; main() closes and removes it before
// exit (a static destructor would run after RocksDB's own statics are gone).
Shared* g_shared = nullptr;
Shared& Log() {
  if (g_shared == nullptr) {
    g_shared = new Shared;
    Shared* s = g_shared;
    s->store = std::move(store::Store::OpenPrimary(s->dir.path()).value());
    s->log = std::move(audit::AuditLog::Open(s->store.get(), &s->clock).value());
  }
  return *g_shared;
}

// prefix + n. (Not `"svc-" + std::to_string(n)`: GCC 12 warns falsely there.)
std::string Name(const char* prefix, int n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

// Record i of the generated log: intents and results alternate, services
// round-robin, one in 20 results failed.
audit::AuditRecord Generate(int i) {
  static const char* kActions[] = {"start", "stop", "restart"};
  audit::AuditRecord r;
  r.actor = i % 10 == 0 ? "alice@laptop" : "clusterd@cpu-node";
  r.trigger = i % 10 == 0 ? "manual" : i % 3 ? "drift" : "revision";
  r.revision = i % 2 ? "3f2c1e9" : "a1b2c3d";
  r.action = kActions[(i / 2) % 3];
  r.service = Name("svc-", i % kServices);
  r.machine = Name("m", i % kMachines);
  if (i % 2 == 0) {
    r.phase = audit::Name(audit::Phase::kIntent);
    r.detail = "not running; desired running";
  } else {
    r.phase = audit::Name(audit::Phase::kResult);
    r.result = i % 40 == 1 ? "failed" : "ok";
    r.duration_ms = 800 + i % 300;
    r.detail = r.result == "ok" ? "ready after 1 probe" : "readiness not reached in 60s: HTTP 503";
  }
  return r;
}

uint64_t DirBytes(const std::string& path) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

void BM_AppendBatch100Synced(benchmark::State& state) {
  Shared& s = Log();
  for (auto _ : state) {
    std::vector<audit::AuditRecord> batch;
    batch.reserve(kBatch);
    for (int k = 0; k < kBatch; ++k) batch.push_back(Generate(s.appended + k));
    auto out = s.log->AppendBatch(std::move(batch));
    if (!out.ok()) state.SkipWithError(out.status().ToString().c_str());
    s.appended += kBatch;
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["records"] = s.appended;
  state.counters["records_per_synced_write"] = kBatch;
  if (!s.store->Flush().ok()) state.SkipWithError("flush failed");
  state.counters["disk_bytes_per_record"] =
      static_cast<double>(DirBytes(s.dir.path())) / s.appended;
}
BENCHMARK(BM_AppendBatch100Synced)
    ->Iterations(kRecords / kBatch)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_AppendSingleSynced(benchmark::State& state) {
  clusterctl::testing::TempDir dir;
  auto store = std::move(store::Store::OpenPrimary(dir.path()).value());
  SteppingClock clock(kT0);
  auto log = std::move(audit::AuditLog::Open(store.get(), &clock).value());
  int i = 0;
  for (auto _ : state) {
    auto out = log->Append(Generate(i++));
    if (!out.ok()) state.SkipWithError(out.status().ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AppendSingleSynced)->Iterations(2000)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_QueryServiceTimeRange(benchmark::State& state) {
  Shared& s = Log();
  size_t returned = 0;
  int q = 0;
  for (auto _ : state) {
    // A different service and an 8-hour window each time; about 290 of the
    // service's 1,000 records fall in it, the newest 50 are returned.
    audit::AuditFilter f;
    f.service = Name("svc-", (q * 37) % kServices);
    f.since_ms = kT0 + (q % 10) * 3600000LL;
    f.until_ms = *f.since_ms + 8 * 3600000LL;
    ++q;
    auto out = s.log->Query(f);
    if (!out.ok()) state.SkipWithError(out.status().ToString().c_str());
    returned = out->size();
  }
  state.counters["returned"] = returned;
}
BENCHMARK(BM_QueryServiceTimeRange)->Unit(benchmark::kMillisecond);

void BM_QueryNewest50(benchmark::State& state) {
  Shared& s = Log();
  size_t returned = 0;
  for (auto _ : state) {
    auto out = s.log->Query(audit::AuditFilter{});
    if (!out.ok()) state.SkipWithError(out.status().ToString().c_str());
    returned = out->size();
  }
  state.counters["returned"] = returned;
}
BENCHMARK(BM_QueryNewest50)->Unit(benchmark::kMillisecond);

void BM_QueryMachineResult(benchmark::State& state) {
  Shared& s = Log();
  size_t returned = 0;
  int q = 0;
  for (auto _ : state) {
    // Machines m1, m11, ... m41 have failures (every 200th of their records).
    audit::AuditFilter f;
    f.machine = Name("m", (q++ % 5) * 10 + 1);
    f.result = "failed";
    auto out = s.log->Query(f);
    if (!out.ok()) state.SkipWithError(out.status().ToString().c_str());
    returned = out->size();
  }
  state.counters["returned"] = returned;
}
BENCHMARK(BM_QueryMachineResult)->Unit(benchmark::kMillisecond);

void BM_QueryRareResultNoIndex(benchmark::State& state) {
  Shared& s = Log();
  size_t returned = 0;
  for (auto _ : state) {
    audit::AuditFilter f;
    f.result = "interrupted";  // Never written: every time-index entry is looked at.
    auto out = s.log->Query(f);
    if (!out.ok()) state.SkipWithError(out.status().ToString().c_str());
    returned = out->size();
  }
  state.counters["returned"] = returned;
}
BENCHMARK(BM_QueryRareResultNoIndex)->Iterations(3)->Unit(benchmark::kMillisecond);

void BM_Verify(benchmark::State& state) {
  Shared& s = Log();
  for (auto _ : state) {
    auto rep = s.log->Verify();
    if (!rep.ok()) state.SkipWithError(rep.status().ToString().c_str());
    if (!rep->ok) state.SkipWithError(rep->reason.c_str());
    state.counters["records"] = rep->records;
    state.counters["index_entries"] = rep->index_entries;
  }
}
BENCHMARK(BM_Verify)->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  delete g_shared;  // Closes the log and the store, removes the directory.
  return 0;
}

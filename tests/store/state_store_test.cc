// The RocksDB store and the state store on it, on a real database on disk:
// opening (primary, secondary, conflicts), durability across close and
// kill, probe history order and retention, background cleanup, and the JSON
// form of the observed types.
#include "store/state_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "store/observed_json.h"
#include "store/store.h"
#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::store {
namespace {

namespace fs = std::filesystem;
using ::clusterctl::testing::Process;
using ::clusterctl::testing::SpawnOptions;
using ::clusterctl::testing::TempDir;
using ::clusterctl::testing::WaitFor;
using reconcilers::MachineFacts;
using reconcilers::MachineObservation;
using reconcilers::ObservedInstance;
using reconcilers::ObservedState;
using reconcilers::ProbeResult;
using reconcilers::ProbeRole;
using std::chrono::milliseconds;

// ---------------------------------------------------------------- helpers

ObservedInstance Instance(const std::string& service, const std::string& machine, int64_t pid) {
  ObservedInstance i;
  i.service = service;
  i.machine = machine;
  i.state = ObservedState::kRunning;
  i.pid = pid;
  i.started_at = 1700000000;
  i.spec_hash = "sha256:abc";
  i.restarts = 2;
  i.observed_at_ms = 1700000000123;
  i.detail = "pid " + std::to_string(pid);
  return i;
}

MachineObservation Observation(const std::string& machine, int instances, int64_t pid_base = 100) {
  MachineObservation o;
  o.facts.machine = machine;
  o.facts.reachable = true;
  o.facts.observed_at_ms = 1700000000123;
  o.facts.cpus = 4;
  for (int n = 0; n < instances; ++n) {
    o.instances.push_back(Instance("svc" + std::to_string(n), machine, pid_base + n));
  }
  return o;
}

ProbeResult Probe(const std::string& service, const std::string& machine, ProbeRole role,
                  int64_t time_ms) {
  ProbeResult p;
  p.service = service;
  p.machine = machine;
  p.role = role;
  p.kind = "tcp";
  p.ok = true;
  p.latency_ms = 3;
  p.time_ms = time_ms;
  p.detail = "t=" + std::to_string(time_ms);
  return p;
}

std::vector<int64_t> Times(const std::vector<ProbeResult>& history) {
  std::vector<int64_t> out;
  for (const ProbeResult& p : history) out.push_back(p.time_ms);
  return out;
}

std::unique_ptr<Store> OpenPrimaryOrDie(const std::string& dir) {
  Result<std::unique_ptr<Store>> store = Store::OpenPrimary(dir);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

size_t CountProbes(const StateStore& state, const std::string& service, const std::string& machine,
                   ProbeRole role) {
  Result<std::vector<ProbeResult>> h = state.ProbeHistory(service, machine, role, 0);
  EXPECT_TRUE(h.ok()) << h.status().ToString();
  return h.ok() ? h->size() : 0;
}

// ------------------------------------------------------- child processes
//
// Some tests need a second process (a writer that holds the LOCK, a writer
// that is killed). The test binary re-executes itself with
// CLUSTERCTL_STORE_TEST_CHILD=<mode>:<data dir>; this runs before main() and
// never returns in the child, so the child is a fresh process with no
// RocksDB threads inherited through fork().

constexpr char kChildEnv[] = "CLUSTERCTL_STORE_TEST_CHILD";
constexpr int kKilledWriterMachines = 20;
constexpr int kKilledWriterInstances = 10;
constexpr int kKilledWriterProbes = 500;

int RunChild(const std::string& spec) {
  size_t colon = spec.find(':');
  if (colon == std::string::npos) return 90;
  std::string mode = spec.substr(0, colon);
  std::string dir = spec.substr(colon + 1);
  Result<std::unique_ptr<Store>> store = Store::OpenPrimary(dir);
  if (!store.ok()) {
    std::fprintf(stderr, "child: %s\n", store.status().ToString().c_str());
    return 91;
  }
  if (mode == "hold") {
    clusterctl::testing::WriteFile(dir + "/held", "1");
    for (int i = 0; i < 1200; ++i) usleep(100 * 1000);  // Killed by the test long before.
    return 0;
  }
  if (mode == "write-then-kill") {
    StateStore state(store->get());
    for (int m = 0; m < kKilledWriterMachines; ++m) {
      Status s = state.RecordObservation(
          Observation("m" + std::to_string(m), kKilledWriterInstances, 1000 * m));
      if (!s.ok()) return 92;
    }
    for (int n = 0; n < kKilledWriterProbes; ++n) {
      if (!state.RecordProbe(Probe("svc0", "m0", ProbeRole::kReadiness, n)).ok()) return 93;
    }
    raise(SIGKILL);  // No close, no flush: only the WAL in the page cache remains.
    return 94;
  }
  return 95;
}

[[maybe_unused]] const bool kRanAsChild = [] {
  const char* spec = std::getenv(kChildEnv);
  if (spec != nullptr && *spec != '\0') std::_Exit(RunChild(spec));
  return false;
}();

std::unique_ptr<Process> SpawnChild(const std::string& mode, const std::string& dir,
                                    const std::string& log) {
  std::string self = fs::read_symlink("/proc/self/exe").string();
  SpawnOptions options;
  options.stdout_path = log;
  options.env = {std::string(kChildEnv) + "=" + mode + ":" + dir};
  return std::make_unique<Process>(std::vector<std::string>{self}, options);
}

// ------------------------------------------------------------------ Store

TEST(StoreTest, PrimaryCreatesTheStandardColumnFamilies) {
  TempDir tmp;
  std::string dir = tmp.Sub("data");
  auto store = OpenPrimaryOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(store->read_only());
  EXPECT_EQ(store->db_path(), dir + "/state");
  for (const char* name : {"default", "observations", "probes", "facts", "meta", "audit",
                           "audit_index", "revisions"}) {
    EXPECT_NE(store->cf(name), nullptr) << name;
  }
  EXPECT_EQ(store->cf("no-such-family"), nullptr);
}

TEST(StoreTest, FamiliesAddedByAnotherModuleAreCreatedAndReopenedWithoutBeingNamed) {
  TempDir tmp;
  std::string dir = tmp.Sub("data");
  {
    Result<std::unique_ptr<Store>> store = Store::OpenPrimary(dir, {"later_module"});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    StoreBatch batch(store->get());
    batch.Put("later_module", "k", "v");
    ASSERT_TRUE((*store)->Commit(&batch, true).ok());
  }
  // A process that does not know the family still opens the database.
  auto store = OpenPrimaryOrDie(dir);
  ASSERT_NE(store, nullptr);
  ASSERT_NE(store->cf("later_module"), nullptr);
  Result<std::optional<std::string>> v = store->Get("later_module", "k");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->value_or(""), "v");
}

TEST(StoreTest, SecondPrimaryOnTheSameDirIsRefusedWithConflictNamingTheDir) {
  TempDir tmp;
  std::string dir = tmp.Sub("data");
  auto first = OpenPrimaryOrDie(dir);
  ASSERT_NE(first, nullptr);
  Result<std::unique_ptr<Store>> second = Store::OpenPrimary(dir);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kConflict) << second.status().ToString();
  EXPECT_NE(second.status().message().find("data directory " + dir + " is in use"),
            std::string::npos)
      << second.status().message();
  EXPECT_NE(second.status().message().find("clusterd"), std::string::npos);
  EXPECT_NE(second.status().message().find("--server"), std::string::npos);
}

TEST(StoreTest, PrimaryHeldByAnotherProcessIsRefusedWithConflict) {
  TempDir tmp;
  std::string dir = tmp.Sub("data");
  auto child = SpawnChild("hold", dir, tmp.Sub("child.log"));
  ASSERT_TRUE(
      WaitFor([&] { return fs::exists(dir + "/held") || !child->Running(); }, milliseconds(30000)))
      << "child never opened the store";
  ASSERT_TRUE(child->Running()) << clusterctl::testing::ReadFile(tmp.Sub("child.log"));

  Result<std::unique_ptr<Store>> store = Store::OpenPrimary(dir);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kConflict) << store.status().ToString();
  EXPECT_NE(store.status().message().find(dir), std::string::npos) << store.status().message();

  // Reading works all the same.
  Result<std::unique_ptr<Store>> reader = Store::OpenReadOnly(dir);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();

  // Once the holder is gone, its lock is gone too.
  child->Kill(SIGKILL);
  ASSERT_TRUE(child->WaitForExit(milliseconds(10000)).has_value());
  Result<std::unique_ptr<Store>> after = Store::OpenPrimary(dir);
  EXPECT_TRUE(after.ok()) << after.status().ToString();
}

TEST(StoreTest, ReadOnlyOpenOfAMissingStoreIsNotFoundWithAHint) {
  TempDir tmp;
  Result<std::unique_ptr<Store>> store = Store::OpenReadOnly(tmp.Sub("nothing-here"));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kNotFound);
  EXPECT_EQ(store.status().message(), "no state store in " + tmp.Sub("nothing-here") +
                                          " (run clusterctl status or start clusterd first)");
}

TEST(StoreTest, ReadOnlyStoreRemovesItsSecondaryDirAndThoseOfDeadProcesses) {
  TempDir tmp;
  std::string dir = tmp.Sub("data");
  { ASSERT_NE(OpenPrimaryOrDie(dir), nullptr); }
  std::string stale = dir + "/secondary/999999999-deadbeef";
  fs::create_directories(stale);
  {
    Result<std::unique_ptr<Store>> reader = Store::OpenReadOnly(dir);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    EXPECT_TRUE((*reader)->read_only());
    EXPECT_FALSE(fs::exists(stale));
    EXPECT_FALSE(fs::is_empty(dir + "/secondary"));  // This process's own directory.
  }
  EXPECT_TRUE(fs::is_empty(dir + "/secondary"));
}

TEST(StoreTest, ScanVisitsARangeForwardOrReverseUpToALimit) {
  TempDir tmp;
  auto store = OpenPrimaryOrDie(tmp.Sub("data"));
  ASSERT_NE(store, nullptr);
  StoreBatch batch(store.get());
  for (const char* k : {"a", "b/1", "b/2", "b/3", "c"}) batch.Put("meta", k, std::string("v") + k);
  ASSERT_TRUE(store->Commit(&batch, false).ok());

  auto keys = [&](const ScanRange& range) {
    std::vector<std::string> out;
    Status s = store->Scan("meta", range, [&](std::string_view k, std::string_view v) {
      EXPECT_EQ(v, "v" + std::string(k));
      out.emplace_back(k);
      return true;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(V({"a", "b/1", "b/2", "b/3", "c"}), keys(ScanRange()));
  EXPECT_EQ(V({"b/1", "b/2", "b/3"}), keys(ScanRange::Prefix("b/")));
  EXPECT_EQ(V({"b/3", "b/2", "b/1"}), keys(ScanRange::Prefix("b/", true)));
  EXPECT_EQ(V({"b/3", "b/2"}), keys(ScanRange::Prefix("b/", true, 2)));
  EXPECT_EQ(V({"c", "b/3", "b/2", "b/1", "a"}), keys(ScanRange{"", "", true, 0}));
  EXPECT_EQ(V({"b/2", "b/3"}), keys(ScanRange{"b/2", "c", false, 0}));
  EXPECT_EQ(V(), keys(ScanRange::Prefix("zz")));
}

TEST(StoreTest, PrefixEndIsTheFirstKeyAfterThePrefix) {
  EXPECT_EQ(PrefixEnd("ab"), "ac");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixEnd(std::string("\xff\xff", 2)), "");
  EXPECT_EQ(PrefixEnd(""), "");
}

TEST(StoreTest, UnknownColumnFamilyIsAnInternalError) {
  TempDir tmp;
  auto store = OpenPrimaryOrDie(tmp.Sub("data"));
  ASSERT_NE(store, nullptr);
  StoreBatch batch(store.get());
  batch.Put("no-such-family", "k", "v");
  Status s = store->Commit(&batch, false);
  EXPECT_EQ(s.code(), Code::kInternal);
  EXPECT_EQ(s.message(), "write to unknown column family \"no-such-family\"");
  EXPECT_EQ(store->Get("no-such-family", "k").status().code(), Code::kInternal);
}

// ------------------------------------------------------------- StateStore

TEST(StateStoreTest, ObservationsSurviveClosingAndReopeningTheStore) {
  TempDir tmp;
  std::string dir = tmp.Sub("data");
  {
    auto store = OpenPrimaryOrDie(dir);
    ASSERT_NE(store, nullptr);
    StateStore state(store.get());
    ASSERT_TRUE(state.RecordObservation(Observation("jetson", 2)).ok());
    ASSERT_TRUE(state.RecordObservation(Observation("cpu-node", 1)).ok());
    // A newer observation replaces the older one.
    MachineObservation newer = Observation("jetson", 1, 555);
    newer.instances[0].state = ObservedState::kFailed;
    ASSERT_TRUE(state.RecordObservation(newer).ok());
  }
  auto store = OpenPrimaryOrDie(dir);
  ASSERT_NE(store, nullptr);
  StateStore state(store.get());

  Result<std::vector<ObservedInstance>> all = state.LatestInstances();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  std::vector<std::string> keys;
  for (const ObservedInstance& i : *all) keys.push_back(i.Key());
  EXPECT_EQ(std::vector<std::string>({"svc0@cpu-node", "svc0@jetson", "svc1@jetson"}), keys);

  Result<std::optional<ObservedInstance>> one = state.LatestInstance("svc0", "jetson");
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE(one->has_value());
  EXPECT_EQ((*one)->pid, 555);
  EXPECT_EQ((*one)->state, ObservedState::kFailed);
  Result<std::optional<ObservedInstance>> none = state.LatestInstance("svc9", "jetson");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  Result<std::vector<MachineFacts>> facts = state.LatestFacts();
  ASSERT_TRUE(facts.ok());
  ASSERT_EQ(facts->size(), 2u);
  EXPECT_EQ((*facts)[0].machine, "cpu-node");
  EXPECT_EQ((*facts)[1].machine, "jetson");
  Result<std::optional<MachineFacts>> jetson = state.LatestFactsFor("jetson");
  ASSERT_TRUE(jetson.ok());
  ASSERT_TRUE(jetson->has_value());
  EXPECT_EQ((*jetson)->cpus, 4);
  EXPECT_TRUE((*jetson)->reachable);
}

TEST(StateStoreTest, ObservationHoldingAnotherMachinesInstanceIsRejected) {
  TempDir tmp;
  auto store = OpenPrimaryOrDie(tmp.Sub("data"));
  ASSERT_NE(store, nullptr);
  StateStore state(store.get());
  MachineObservation o = Observation("jetson", 1);
  o.instances.push_back(Instance("svc", "other", 1));
  EXPECT_EQ(state.RecordObservation(o).code(), Code::kInvalid);
  EXPECT_EQ(state.RecordObservation(MachineObservation()).code(), Code::kInvalid);
  Result<std::vector<ObservedInstance>> all = state.LatestInstances();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());  // Nothing of the rejected batch was written.
}

TEST(StateStoreTest, SecondaryReaderSeesTheWritersDataAfterCatchUp) {
  TempDir tmp;
  std::string dir = tmp.Sub("data");
  auto writer_store = OpenPrimaryOrDie(dir);
  ASSERT_NE(writer_store, nullptr);
  StateStore writer(writer_store.get());
  ASSERT_TRUE(writer.RecordObservation(Observation("jetson", 1)).ok());
  ASSERT_TRUE(writer.RecordProbe(Probe("svc0", "jetson", ProbeRole::kReadiness, 10)).ok());
  ASSERT_TRUE(writer.PutMeta("revision", "3f2c1e9").ok());

  Result<std::unique_ptr<Store>> reader_store = Store::OpenReadOnly(dir);
  ASSERT_TRUE(reader_store.ok()) << reader_store.status().ToString();
  StateStore reader(reader_store->get());
  ASSERT_TRUE((*reader_store)->CatchUp().ok());
  Result<std::optional<ObservedInstance>> seen = reader.LatestInstance("svc0", "jetson");
  ASSERT_TRUE(seen.ok()) << seen.status().ToString();
  ASSERT_TRUE(seen->has_value());
  EXPECT_EQ((*seen)->pid, 100);
  EXPECT_EQ(CountProbes(reader, "svc0", "jetson", ProbeRole::kReadiness), 1u);
  Result<std::optional<std::string>> meta = reader.GetMeta("revision");
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->value_or(""), "3f2c1e9");

  // New writes appear at the next CatchUp, not before.
  ASSERT_TRUE(writer.RecordObservation(Observation("jetson", 1, 777)).ok());
  ASSERT_TRUE(writer.RecordProbe(Probe("svc0", "jetson", ProbeRole::kReadiness, 20)).ok());
  seen = reader.LatestInstance("svc0", "jetson");
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ((*seen)->pid, 100);
  ASSERT_TRUE((*reader_store)->CatchUp().ok());
  seen = reader.LatestInstance("svc0", "jetson");
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ((*seen)->pid, 777);
  Result<std::optional<ProbeResult>> last =
      reader.LastProbe("svc0", "jetson", ProbeRole::kReadiness);
  ASSERT_TRUE(last.ok());
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ((*last)->time_ms, 20);

  // Data the writer flushed to table files (and whose WAL it dropped) too:
  // RocksDB's own catch-up would keep serving 777 from the secondary's
  // memtable here (facebook/rocksdb#15051).
  ASSERT_TRUE(writer.RecordObservation(Observation("jetson", 1, 888)).ok());
  ASSERT_TRUE(writer_store->Flush().ok());
  ASSERT_TRUE((*reader_store)->CatchUp().ok());
  seen = reader.LatestInstance("svc0", "jetson");
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ((*seen)->pid, 888);
}

TEST(StateStoreTest, ReadsOnOtherThreadsContinueWhileCatchUpReopensTheReader) {
  TempDir tmp;
  std::string dir = tmp.Sub("data");
  auto writer_store = OpenPrimaryOrDie(dir);
  ASSERT_NE(writer_store, nullptr);
  StateStore writer(writer_store.get());
  ASSERT_TRUE(writer.RecordObservation(Observation("jetson", 5)).ok());
  Result<std::unique_ptr<Store>> reader_store = Store::OpenReadOnly(dir);
  ASSERT_TRUE(reader_store.ok()) << reader_store.status().ToString();
  StateStore reader(reader_store->get());

  std::atomic<bool> done{false};
  std::atomic<int> bad_reads{0};
  std::thread readers([&] {
    while (!done) {
      Result<std::vector<ObservedInstance>> all = reader.LatestInstances();
      if (!all.ok() || all->size() != 5) ++bad_reads;
    }
  });
  // Joins the reader thread however the loop below ends.
  struct Joiner {
    std::atomic<bool>& done;
    std::thread& thread;
    ~Joiner() {
      done = true;
      if (thread.joinable()) thread.join();
    }
  } joiner{done, readers};

  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(writer.RecordObservation(Observation("jetson", 5, round * 10)).ok());
    if (round % 4 == 0) {
      ASSERT_TRUE(writer_store->Flush().ok());
    }
    ASSERT_TRUE((*reader_store)->CatchUp().ok());
    Result<std::optional<ObservedInstance>> seen = reader.LatestInstance("svc4", "jetson");
    ASSERT_TRUE(seen.ok());
    ASSERT_TRUE(seen->has_value());
    EXPECT_EQ((*seen)->pid, round * 10 + 4) << "round " << round;
  }
  done = true;
  readers.join();
  EXPECT_EQ(bad_reads, 0);
}

TEST(StateStoreTest, WritesThroughAReadOnlyStoreFail) {
  TempDir tmp;
  std::string dir = tmp.Sub("data");
  { ASSERT_NE(OpenPrimaryOrDie(dir), nullptr); }
  Result<std::unique_ptr<Store>> store = Store::OpenReadOnly(dir);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  StateStore state(store->get());

  Status s = state.RecordObservation(Observation("jetson", 1));
  EXPECT_EQ(s.code(), Code::kPermission) << s.ToString();
  EXPECT_NE(s.message().find("read-only"), std::string::npos) << s.message();
  EXPECT_EQ(state.RecordProbe(Probe("a", "b", ProbeRole::kLiveness, 1)).code(), Code::kPermission);
  EXPECT_EQ(state.PutMeta("k", "v").code(), Code::kPermission);
  EXPECT_EQ((*store)->Flush().code(), Code::kPermission);
  Result<size_t> retention = state.EnforceRetention(0);
  EXPECT_TRUE(retention.ok());  // Nothing to delete: nothing is written.
}

TEST(StateStoreTest, ProbeHistoryIsNewestFirstPerInstanceAndRole) {
  TempDir tmp;
  auto store = OpenPrimaryOrDie(tmp.Sub("data"));
  ASSERT_NE(store, nullptr);
  StateStore state(store.get());
  for (int64_t t : {300, 100, -50, 500, 200, 200}) {
    ASSERT_TRUE(state.RecordProbe(Probe("redis", "m1", ProbeRole::kReadiness, t)).ok());
  }
  ASSERT_TRUE(state.RecordProbe(Probe("redis", "m1", ProbeRole::kLiveness, 1000)).ok());
  ASSERT_TRUE(state.RecordProbe(Probe("redis", "m2", ProbeRole::kReadiness, 1000)).ok());
  ASSERT_TRUE(state.RecordProbe(Probe("redis-x", "m1", ProbeRole::kReadiness, 1000)).ok());

  Result<std::vector<ProbeResult>> all =
      state.ProbeHistory("redis", "m1", ProbeRole::kReadiness, 0);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(std::vector<int64_t>({500, 300, 200, 200, 100, -50}), Times(*all));

  Result<std::vector<ProbeResult>> two =
      state.ProbeHistory("redis", "m1", ProbeRole::kReadiness, 2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(std::vector<int64_t>({500, 300}), Times(*two));

  Result<std::optional<ProbeResult>> last = state.LastProbe("redis", "m1", ProbeRole::kLiveness);
  ASSERT_TRUE(last.ok());
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ((*last)->time_ms, 1000);
  EXPECT_EQ((*last)->role, ProbeRole::kLiveness);

  Result<std::optional<ProbeResult>> none = state.LastProbe("nginx", "m1", ProbeRole::kLiveness);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(StateStoreTest, RetentionKeepsTheNewestRunsUpToTheCountPerInstanceAndRole) {
  TempDir tmp;
  auto store = OpenPrimaryOrDie(tmp.Sub("data"));
  ASSERT_NE(store, nullptr);
  Retention retention;
  retention.max_per_instance = 3;
  retention.max_age_ms = 0;  // No age limit.
  StateStore state(store.get(), retention);
  for (int64_t t = 1; t <= 10; ++t) {
    ASSERT_TRUE(state.RecordProbe(Probe("a", "m1", ProbeRole::kReadiness, t)).ok());
    ASSERT_TRUE(state.RecordProbe(Probe("a", "m1", ProbeRole::kLiveness, t)).ok());
  }
  ASSERT_TRUE(state.RecordProbe(Probe("b", "m1", ProbeRole::kReadiness, 1)).ok());
  ASSERT_TRUE(state.RecordProbe(Probe("b", "m1", ProbeRole::kReadiness, 2)).ok());

  Result<size_t> deleted = state.EnforceRetention(/*now_ms=*/1'000'000'000);
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, 14u);

  auto history = [&](const char* service, ProbeRole role) {
    Result<std::vector<ProbeResult>> h = state.ProbeHistory(service, "m1", role, 0);
    EXPECT_TRUE(h.ok());
    return h.ok() ? Times(*h) : std::vector<int64_t>();
  };
  EXPECT_EQ(std::vector<int64_t>({10, 9, 8}), history("a", ProbeRole::kReadiness));
  EXPECT_EQ(std::vector<int64_t>({10, 9, 8}), history("a", ProbeRole::kLiveness));
  EXPECT_EQ(std::vector<int64_t>({2, 1}), history("b", ProbeRole::kReadiness));

  // A second pass has nothing left to do.
  deleted = state.EnforceRetention(1'000'000'000);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 0u);
}

TEST(StateStoreTest, RetentionDeletesRunsOlderThanTheMaximumAge) {
  TempDir tmp;
  auto store = OpenPrimaryOrDie(tmp.Sub("data"));
  ASSERT_NE(store, nullptr);
  Retention retention;
  retention.max_age_ms = 5000;
  retention.max_per_instance = 1000;
  StateStore state(store.get(), retention);
  for (int64_t t = 0; t < 10'000; t += 1000) {
    ASSERT_TRUE(state.RecordProbe(Probe("a", "m1", ProbeRole::kReadiness, t)).ok());
  }
  ASSERT_TRUE(state.RecordProbe(Probe("b", "m2", ProbeRole::kReadiness, 100)).ok());

  // now 10000: the cutoff is 5000; a run exactly 5000 ms old stays.
  Result<size_t> deleted = state.EnforceRetention(10'000);
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, 6u);
  Result<std::vector<ProbeResult>> a = state.ProbeHistory("a", "m1", ProbeRole::kReadiness, 0);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(std::vector<int64_t>({9000, 8000, 7000, 6000, 5000}), Times(*a));
  EXPECT_EQ(CountProbes(state, "b", "m2", ProbeRole::kReadiness), 0u);

  // Much later, every run is too old.
  deleted = state.EnforceRetention(1'000'000);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 5u);
  EXPECT_EQ(CountProbes(state, "a", "m1", ProbeRole::kReadiness), 0u);
}

TEST(StateStoreTest, BackgroundCleanupRunsOnItsPeriodAndStopsPromptly) {
  TempDir tmp;
  auto store = OpenPrimaryOrDie(tmp.Sub("data"));
  ASSERT_NE(store, nullptr);
  FakeClock clock(100'000);
  Retention retention;
  retention.max_per_instance = 5;
  retention.max_age_ms = 60'000;
  StateStore state(store.get(), retention, &clock);
  for (int64_t t = 1; t <= 20; ++t) {
    ASSERT_TRUE(state.RecordProbe(Probe("a", "m1", ProbeRole::kReadiness, 90'000 + t)).ok());
  }

  state.StartBackgroundCleanup(milliseconds(10));
  EXPECT_TRUE(WaitFor([&] { return CountProbes(state, "a", "m1", ProbeRole::kReadiness) == 5; },
                      milliseconds(10'000)));
  // It keeps running: the injected clock moves past the maximum age.
  clock.SetWallMs(1'000'000);
  EXPECT_TRUE(WaitFor([&] { return CountProbes(state, "a", "m1", ProbeRole::kReadiness) == 0; },
                      milliseconds(10'000)));
  StateStore::CleanupStats stats = state.cleanup_stats();
  EXPECT_GE(stats.runs, 2u);
  EXPECT_EQ(stats.deleted, 20u);
  EXPECT_TRUE(stats.last_status.ok()) << stats.last_status.ToString();

  // A long period does not delay Stop(): it wakes the thread at once. The
  // count is read with no thread running, so only the new thread's first
  // run (at start) can raise it.
  state.Stop();
  uint64_t runs = state.cleanup_stats().runs;
  state.StartBackgroundCleanup(std::chrono::hours(1));
  ASSERT_TRUE(WaitFor([&] { return state.cleanup_stats().runs > runs; }, milliseconds(10'000)));
  auto start = std::chrono::steady_clock::now();
  state.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  state.Stop();  // Stopping twice is fine.
}

TEST(StateStoreTest, ProcessKilledAfterUnsyncedWritesLosesNothing) {
  TempDir tmp;
  std::string dir = tmp.Sub("data");
  auto child = SpawnChild("write-then-kill", dir, tmp.Sub("child.log"));
  std::optional<int> exit = child->WaitForExit(milliseconds(120'000));
  ASSERT_TRUE(exit.has_value()) << "writer did not finish";
  ASSERT_EQ(*exit, 128 + SIGKILL) << clusterctl::testing::ReadFile(tmp.Sub("child.log"));

  auto store = OpenPrimaryOrDie(dir);
  ASSERT_NE(store, nullptr);
  StateStore state(store.get());
  Result<std::vector<ObservedInstance>> instances = state.LatestInstances();
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  EXPECT_EQ(instances->size(), size_t{kKilledWriterMachines * kKilledWriterInstances});
  Result<std::optional<ObservedInstance>> last = state.LatestInstance("svc9", "m19");
  ASSERT_TRUE(last.ok());
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ((*last)->pid, 19 * 1000 + 9);
  Result<std::vector<MachineFacts>> facts = state.LatestFacts();
  ASSERT_TRUE(facts.ok());
  EXPECT_EQ(facts->size(), size_t{kKilledWriterMachines});
  Result<std::vector<ProbeResult>> probes =
      state.ProbeHistory("svc0", "m0", ProbeRole::kReadiness, 0);
  ASSERT_TRUE(probes.ok());
  ASSERT_EQ(probes->size(), size_t{kKilledWriterProbes});
  EXPECT_EQ(probes->front().time_ms, kKilledWriterProbes - 1);
  EXPECT_EQ(probes->back().time_ms, 0);
}

TEST(StateStoreTest, MetaValuesRoundTripAndMissingKeysAreEmpty) {
  TempDir tmp;
  std::string dir = tmp.Sub("data");
  {
    auto store = OpenPrimaryOrDie(dir);
    ASSERT_NE(store, nullptr);
    StateStore state(store.get());
    ASSERT_TRUE(state.PutMeta("last_applied", std::string("3f2c\0e9", 7)).ok());
  }
  auto store = OpenPrimaryOrDie(dir);
  ASSERT_NE(store, nullptr);
  StateStore state(store.get());
  Result<std::optional<std::string>> v = state.GetMeta("last_applied");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->value_or(""), std::string("3f2c\0e9", 7));
  Result<std::optional<std::string>> missing = state.GetMeta("nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

// ------------------------------------------------------------------- JSON

void ExpectSameInstance(const ObservedInstance& a, const ObservedInstance& b) {
  EXPECT_EQ(a.service, b.service);
  EXPECT_EQ(a.machine, b.machine);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.pid, b.pid);
  EXPECT_EQ(a.started_at, b.started_at);
  EXPECT_EQ(a.spec_hash, b.spec_hash);
  EXPECT_EQ(a.restarts, b.restarts);
  EXPECT_EQ(a.observed_at_ms, b.observed_at_ms);
  EXPECT_EQ(a.detail, b.detail);
}

void ExpectSameFacts(const MachineFacts& a, const MachineFacts& b) {
  EXPECT_EQ(a.machine, b.machine);
  EXPECT_EQ(a.reachable, b.reachable);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.observed_at_ms, b.observed_at_ms);
  EXPECT_EQ(a.uptime_seconds, b.uptime_seconds);
  EXPECT_EQ(a.load1, b.load1);
  EXPECT_EQ(a.load5, b.load5);
  EXPECT_EQ(a.load15, b.load15);
  EXPECT_EQ(a.mem_total_kb, b.mem_total_kb);
  EXPECT_EQ(a.mem_available_kb, b.mem_available_kb);
  EXPECT_EQ(a.disk_total_kb, b.disk_total_kb);
  EXPECT_EQ(a.disk_available_kb, b.disk_available_kb);
  EXPECT_EQ(a.cpus, b.cpus);
}

MachineFacts FullFacts() {
  MachineFacts f;
  f.machine = "jetson";
  f.reachable = false;
  f.error = "timeout after 5000 ms";
  f.observed_at_ms = 1700000000999;
  f.uptime_seconds = 12345.5;
  f.load1 = 0.25;
  f.load5 = 1.5;
  f.load15 = 2.75;
  f.mem_total_kb = 8000000;
  f.mem_available_kb = 4000000;
  f.disk_total_kb = 100000000;
  f.disk_available_kb = 50000000;
  f.cpus = 6;
  return f;
}

TEST(ObservedJsonTest, ObservedInstanceRoundTrips) {
  ObservedInstance in = Instance("ollama", "jetson", 4242);
  in.state = ObservedState::kStopped;
  in.detail = "exited \"1\"\n";
  std::string text = ToJsonString(in);
  Result<ObservedInstance> out = ParseObservedInstance(text);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectSameInstance(in, *out);
  EXPECT_EQ(nlohmann::json::parse(text)["state"], "stopped");
}

TEST(ObservedJsonTest, MachineFactsRoundTrip) {
  MachineFacts in = FullFacts();
  Result<MachineFacts> out = ParseMachineFacts(ToJsonString(in));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectSameFacts(in, *out);
}

TEST(ObservedJsonTest, MachineObservationRoundTrips) {
  MachineObservation in = Observation("jetson", 3);
  in.facts = FullFacts();
  Result<MachineObservation> out = ParseMachineObservation(ToJsonString(in));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectSameFacts(in.facts, out->facts);
  ASSERT_EQ(out->instances.size(), 3u);
  for (size_t i = 0; i < 3; ++i) ExpectSameInstance(in.instances[i], out->instances[i]);
}

TEST(ObservedJsonTest, ProbeResultRoundTrips) {
  ProbeResult in = Probe("redis-server", "coordinator", ProbeRole::kLiveness, 1700000000555);
  in.kind = "redis";
  in.ok = false;
  in.latency_ms = 2000;
  in.detail = "timeout after 2000 ms";
  in.info = {{"connected_clients", "3"}, {"used_memory_human", "1.2M"}};
  Result<ProbeResult> out = ParseProbeResult(ToJsonString(in));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->service, in.service);
  EXPECT_EQ(out->machine, in.machine);
  EXPECT_EQ(out->role, in.role);
  EXPECT_EQ(out->kind, in.kind);
  EXPECT_EQ(out->ok, in.ok);
  EXPECT_EQ(out->latency_ms, in.latency_ms);
  EXPECT_EQ(out->time_ms, in.time_ms);
  EXPECT_EQ(out->detail, in.detail);
  EXPECT_EQ(out->info, in.info);
}

TEST(ObservedJsonTest, FieldNamesAreSnakeCase) {
  EXPECT_EQ(ToJsonString(Instance("a", "m", 7)),
            R"({"detail":"pid 7","machine":"m","observed_at_ms":1700000000123,"pid":7,)"
            R"("restarts":2,"service":"a","spec_hash":"sha256:abc","started_at":1700000000,)"
            R"("state":"running"})");
}

TEST(ObservedJsonTest, InvalidUtf8FromAMachineIsReplacedNotThrown) {
  ObservedInstance in = Instance("a", "m", 1);
  in.detail = "bad \xff\xfe bytes";
  std::string text = ToJsonString(in);
  Result<ObservedInstance> out = ParseObservedInstance(text);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->detail, "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
}

TEST(ObservedJsonTest, AbsentFieldsKeepTheirDefaults) {
  Result<ObservedInstance> out = ParseObservedInstance(R"({"service":"a","machine":"m"})");
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->state, ObservedState::kUnknown);
  EXPECT_EQ(out->pid, 0);
  Result<MachineFacts> facts = ParseMachineFacts(R"({"machine":"m","load1":null})");
  ASSERT_TRUE(facts.ok()) << facts.status().ToString();
  EXPECT_EQ(facts->load1, 0);
}

TEST(ObservedJsonTest, MalformedOrMistypedJsonIsInvalid) {
  EXPECT_EQ(ParseObservedInstance("{not json").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseObservedInstance(R"({"service":"a","machine":"m","pid":"x"})").status().code(),
            Code::kInvalid);
  EXPECT_EQ(ParseObservedInstance(R"({"machine":"m"})").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseObservedInstance("[1,2]").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseMachineFacts(R"({"reachable":true})").status().code(), Code::kInvalid);
  Result<ProbeResult> role = ParseProbeResult(R"({"service":"a","machine":"m","role":"startup"})");
  ASSERT_FALSE(role.ok());
  EXPECT_EQ(role.status().code(), Code::kInvalid);
  EXPECT_NE(role.status().message().find("unknown probe role \"startup\""), std::string::npos)
      << role.status().message();
}

}  // namespace
}  // namespace clusterctl::store

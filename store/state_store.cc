#include "store/state_store.h"

#include <limits>
#include <utility>

#include "base/big_endian.h"
#include "store/observed_json.h"

namespace clusterctl::store {

using reconcilers::MachineFacts;
using reconcilers::MachineObservation;
using reconcilers::ObservedInstance;
using reconcilers::ProbeResult;
using reconcilers::ProbeRole;

namespace {

constexpr char kObservations[] = "observations";
constexpr char kFacts[] = "facts";
constexpr char kProbes[] = "probes";
constexpr char kMeta[] = "meta";
constexpr size_t kProbeSuffixSize = 16;  // time (8 bytes) + seq (8 bytes)

std::string InstanceKey(const std::string& service, const std::string& machine) {
  return service + "@" + machine;
}

// A value that does not parse is a broken store, not bad user input.
template <typename T>
Status Corrupt(const Result<T>& r, const char* cf, std::string_view key) {
  return Status::Internal("corrupt record " + std::string(cf) + "/" + std::string(key) + ": " +
                          r.status().message());
}

// Every value of a column family, parsed with `parse`, in key order.
template <typename T, typename Parse>
Result<std::vector<T>> ReadAll(const Store* store, const char* cf, Parse parse) {
  std::vector<T> out;
  Status error;
  Status s = store->Scan(cf, ScanRange(), [&](std::string_view key, std::string_view value) {
    Result<T> r = parse(value);
    if (!r.ok()) {
      error = Corrupt(r, cf, key);
      return false;
    }
    out.push_back(std::move(r).value());
    return true;
  });
  if (!s.ok()) return s;
  if (!error.ok()) return error;
  return out;
}

template <typename T, typename Parse>
Result<std::optional<T>> ReadOne(const Store* store, const char* cf, const std::string& key,
                                 Parse parse) {
  Result<std::optional<std::string>> raw = store->Get(cf, key);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return std::optional<T>();
  Result<T> r = parse(**raw);
  if (!r.ok()) return Corrupt(r, cf, key);
  return std::optional<T>(std::move(r).value());
}

}  // namespace

StateStore::StateStore(Store* store, Retention retention, const Clock* clock)
    : store_(store), retention_(retention), clock_(ClockOr(clock)) {}

StateStore::~StateStore() { Stop(); }

// ------------------------------------------------------------- Observations

Status StateStore::RecordObservation(const MachineObservation& observation) {
  const std::string& machine = observation.facts.machine;
  if (machine.empty()) return Status::Invalid("observation without a machine name");
  StoreBatch batch(store_);
  batch.Put(kFacts, machine, ToJsonString(observation.facts));
  for (const ObservedInstance& inst : observation.instances) {
    if (inst.service.empty() || inst.machine != machine) {
      return Status::Invalid("observation of " + machine + " holds instance \"" + inst.Key() +
                             "\" of another machine or without a service");
    }
    batch.Put(kObservations, inst.Key(), ToJsonString(inst));
  }
  return store_->Commit(&batch, /*sync=*/false).Annotate("recording observation of " + machine);
}

Result<std::vector<ObservedInstance>> StateStore::LatestInstances() const {
  return ReadAll<ObservedInstance>(store_, kObservations, ParseObservedInstance);
}

Result<std::vector<MachineFacts>> StateStore::LatestFacts() const {
  return ReadAll<MachineFacts>(store_, kFacts, ParseMachineFacts);
}

Result<std::optional<ObservedInstance>> StateStore::LatestInstance(
    const std::string& service, const std::string& machine) const {
  return ReadOne<ObservedInstance>(store_, kObservations, InstanceKey(service, machine),
                                   ParseObservedInstance);
}

Result<std::optional<MachineFacts>> StateStore::LatestFactsFor(const std::string& machine) const {
  return ReadOne<MachineFacts>(store_, kFacts, machine, ParseMachineFacts);
}

// ------------------------------------------------------------ Probe history

std::string StateStore::ProbePrefix(const std::string& service, const std::string& machine,
                                    ProbeRole role) {
  return InstanceKey(service, machine) + "/" + ProbeRoleName(role) + "/";
}

Status StateStore::RecordProbe(const ProbeResult& result) {
  if (result.service.empty() || result.machine.empty()) {
    return Status::Invalid("probe result without service or machine (\"" + result.Key() + "\")");
  }
  std::string key = ProbePrefix(result.service, result.machine, result.role);
  AppendTimeKey(&key, result.time_ms);
  AppendBigEndian(&key, probe_seq_.fetch_add(1, std::memory_order_relaxed));
  StoreBatch batch(store_);
  batch.Put(kProbes, key, ToJsonString(result));
  return store_->Commit(&batch, /*sync=*/false).Annotate("recording probe of " + result.Key());
}

Result<std::vector<ProbeResult>> StateStore::ProbeHistory(const std::string& service,
                                                          const std::string& machine,
                                                          ProbeRole role, size_t limit) const {
  std::vector<ProbeResult> out;
  Status error;
  ScanRange range = ScanRange::Prefix(ProbePrefix(service, machine, role), /*reverse=*/true, limit);
  Status s = store_->Scan(kProbes, range, [&](std::string_view key, std::string_view value) {
    Result<ProbeResult> r = ParseProbeResult(value);
    if (!r.ok()) {
      error = Corrupt(r, kProbes, key);
      return false;
    }
    out.push_back(std::move(r).value());
    return true;
  });
  if (!s.ok()) return s;
  if (!error.ok()) return error;
  return out;
}

Result<std::optional<ProbeResult>> StateStore::LastProbe(const std::string& service,
                                                         const std::string& machine,
                                                         ProbeRole role) const {
  Result<std::vector<ProbeResult>> h = ProbeHistory(service, machine, role, 1);
  if (!h.ok()) return h.status();
  if (h->empty()) return std::optional<ProbeResult>();
  return std::optional<ProbeResult>(std::move(h->front()));
}

// ---------------------------------------------------------------- Retention

Result<size_t> StateStore::EnforceRetention(int64_t now_ms) {
  size_t deleted = 0;
  std::string next;  // Where the scan for the next prefix starts.
  for (;;) {
    std::optional<std::string> key;
    ScanRange first;
    first.begin = next;
    first.limit = 1;
    Status s = store_->Scan(kProbes, first, [&](std::string_view k, std::string_view) {
      key = std::string(k);
      return false;
    });
    if (!s.ok()) return s.Annotate("enforcing probe retention");
    if (!key.has_value()) break;
    if (key->size() <= kProbeSuffixSize) {  // Not written by RecordProbe(): leave it.
      next = *key + std::string(1, '\0');
      continue;
    }
    std::string prefix = key->substr(0, key->size() - kProbeSuffixSize);
    s = EnforceOnPrefix(prefix, now_ms, &deleted);
    if (!s.ok()) return s.Annotate("enforcing probe retention");
    next = PrefixEnd(prefix);
    if (next.empty()) break;
  }
  return deleted;
}

Status StateStore::EnforceOnPrefix(const std::string& prefix, int64_t now_ms, size_t* deleted) {
  // Runs with keys below `age_bound` are older than max_age_ms.
  std::string age_bound;
  if (retention_.max_age_ms > 0) {
    int64_t cutoff = now_ms < std::numeric_limits<int64_t>::min() + retention_.max_age_ms
                         ? std::numeric_limits<int64_t>::min()
                         : now_ms - retention_.max_age_ms;
    age_bound = prefix;
    AppendTimeKey(&age_bound, cutoff);
  }
  // Newest first: the first run that is too old or beyond the count limit
  // ends the range to delete; every run after it goes too.
  size_t seen = 0;
  size_t doomed = 0;
  std::string end;
  Status s = store_->Scan(kProbes, ScanRange::Prefix(prefix, /*reverse=*/true),
                          [&](std::string_view key, std::string_view) {
                            if (end.empty()) {
                              bool too_many = retention_.max_per_instance != 0 &&
                                              seen >= retention_.max_per_instance;
                              bool too_old = !age_bound.empty() && key < age_bound;
                              if (too_many || too_old) end = std::string(key) + '\0';
                            }
                            ++seen;
                            if (!end.empty()) ++doomed;
                            return true;
                          });
  if (!s.ok()) return s;
  if (doomed == 0) return Status::Ok();
  StoreBatch batch(store_);
  batch.DeleteRange(kProbes, prefix, end);
  CLUSTERCTL_RETURN_IF_ERROR(store_->Commit(&batch, /*sync=*/false));
  *deleted += doomed;
  return Status::Ok();
}

void StateStore::StartBackgroundCleanup(std::chrono::milliseconds period) {
  std::lock_guard<std::mutex> control(control_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (cleaner_.joinable()) cleaner_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = false;
  }
  cleaner_ = std::thread(&StateStore::CleanupLoop, this, period);
}

void StateStore::Stop() {
  std::lock_guard<std::mutex> control(control_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (cleaner_.joinable()) cleaner_.join();
}

void StateStore::CleanupLoop(std::chrono::milliseconds period) {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    Result<size_t> r = EnforceRetention(clock_.WallMs());
    lock.lock();
    ++stats_.runs;
    if (r.ok()) stats_.deleted += *r;
    stats_.last_status = r.status();
    wake_.wait_for(lock, period, [this] { return stop_; });
  }
}

StateStore::CleanupStats StateStore::cleanup_stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

// --------------------------------------------------------------------- Meta

Status StateStore::PutMeta(const std::string& key, const std::string& value) {
  StoreBatch batch(store_);
  batch.Put(kMeta, key, value);
  return store_->Commit(&batch, /*sync=*/true).Annotate("writing meta " + key);
}

Result<std::optional<std::string>> StateStore::GetMeta(const std::string& key) const {
  return store_->Get(kMeta, key);
}

}  // namespace clusterctl::store

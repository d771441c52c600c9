#include "controller/daemon_memory.h"

#include <algorithm>
#include <cstdio>

namespace clusterctl::controller {

using nlohmann::json;

namespace {
constexpr char kMeta[] = "meta";
constexpr char kStateKey[] = "daemon/state";
constexpr char kSnapshotPrefix[] = "daemon/snapshot/";

// The object member `key` of `j`, or an empty object.
const json& ObjectField(const json& j, const char* key) {
  static const json* const kEmpty = new json(json::object());
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : *kEmpty;
}

std::string SnapshotKey(int64_t time_ms) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%016lld",
                static_cast<long long>(std::max<int64_t>(time_ms, 0)));
  return std::string(kSnapshotPrefix) + digits;
}
}  // namespace

json MemoryToJson(const DaemonMemory& m) {
  json backoff = json::object(), healthy = json::object();
  for (const auto& [k, b] : m.backoff) {
    backoff[k] = {{"failures", b.failures}, {"not_before_ms", b.not_before_ms}};
  }
  for (const auto& [k, t] : m.healthy_since_ms) healthy[k] = t;
  return {{"suspended", m.suspended}, {"suspended_by", m.suspended_by},
          {"backoff", backoff},       {"healthy_since_ms", healthy},
          {"alerts", m.alerts},       {"leases", m.leases},
          {"rollouts", m.rollouts}};
}

DaemonMemory MemoryFromJson(const json& j, bool* ok) {
  DaemonMemory m;
  if (ok != nullptr) *ok = false;
  if (!j.is_object()) return m;
  try {
    m.suspended = j.value("suspended", false);
    m.suspended_by = j.value("suspended_by", "");
    for (const auto& [k, b] : ObjectField(j, "backoff").items()) {
      m.backoff[k] =
          reconcilers::Backoff{b.at("failures").get<int>(), b.at("not_before_ms").get<int64_t>()};
    }
    for (const auto& [k, t] : ObjectField(j, "healthy_since_ms").items()) {
      m.healthy_since_ms[k] = t.get<int64_t>();
    }
    // Checked by AlertBook::Restore (an older clusterd's form is dropped:
    // the next pass raises what still holds).
    m.alerts = j.value("alerts", json());
    m.leases = j.value("leases", json());
    m.rollouts = j.value("rollouts", json());
  } catch (const json::exception&) {
    return DaemonMemory{};
  }
  if (ok != nullptr) *ok = true;
  return m;
}

Status SaveMemory(store::Store* store, const DaemonMemory& m, bool sync) {
  store::StoreBatch batch(store);
  batch.Put(kMeta, kStateKey, MemoryToJson(m).dump());
  return store->Commit(&batch, sync).Annotate("writing the daemon state");
}

Result<DaemonMemory> LoadMemory(const store::Store& store) {
  auto raw = store.Get(kMeta, kStateKey);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return DaemonMemory{};
  return MemoryFromJson(json::parse(**raw, nullptr, false));
}

Status AppendSnapshot(store::Store* store, int64_t time_ms, const json& snapshot, size_t keep,
                      std::deque<std::string>* keys) {
  std::string key = SnapshotKey(time_ms);
  // Two passes in one millisecond: keep both, in order.
  while (!keys->empty() && key <= keys->back()) key = SnapshotKey(++time_ms);
  store::StoreBatch batch(store);
  batch.Put(kMeta, key, snapshot.dump());
  const size_t drop = keys->size() + 1 > keep ? keys->size() + 1 - keep : 0;
  for (size_t i = 0; i < drop; ++i) batch.Delete(kMeta, (*keys)[i]);
  CLUSTERCTL_RETURN_IF_ERROR(store->Commit(&batch, /*sync=*/false));
  keys->erase(keys->begin(), keys->begin() + static_cast<std::ptrdiff_t>(drop));
  keys->push_back(key);
  return Status::Ok();
}

Result<std::deque<json>> LoadSnapshots(const store::Store& store, size_t limit,
                                       std::deque<std::string>* keys) {
  std::deque<json> out;
  keys->clear();
  // Every key (older ones past the bound go with the next append), the
  // newest `limit` documents.
  Status s = store.Scan(kMeta, store::ScanRange::Prefix(kSnapshotPrefix, /*reverse=*/true),
                        [&](std::string_view key, std::string_view value) {
                          keys->push_front(std::string(key));
                          if (out.size() < limit) {
                            json j = json::parse(value, nullptr, false);
                            if (!j.is_discarded()) out.push_back(std::move(j));
                          }
                          return true;
                        });
  if (!s.ok()) return s;
  return out;
}

}  // namespace clusterctl::controller

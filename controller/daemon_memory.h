// What clusterd knows beyond the git revision and the machines themselves,
// kept in the store so that a restart (an upgrade, a crash, a reboot of the
// controller host) does not forget it:
//
//   suspension          suspended or not, by whom
//   crash-loop backoff  per instance: failures, not-before time, and the
//                       start of its healthy period (for the 10-minute reset)
//   alerts              the alert book (alerts/alert_book.h): firing,
//                       acknowledged and recently resolved alerts
//   leases, rollouts    drift leases (leases.h); canary rollouts: wave,
//                       analysis start, failures, rollback (rollout.h)
//   health snapshots    the status documents of /api/v1/history
//
// Keys in the "meta" family: "daemon/state" (JSON of the first three,
// rewritten after every pass that changed them; synced when the suspension
// changes), "daemon/snapshot/<time_ms, 16 digits>" (one status document per
// pass, the oldest deleted past the bound; not synced).
//
// Thread-safety: the functions are safe from any thread; callers serialize
// writes of the same daemon.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "reconcilers/plan.h"
#include "store/store.h"

namespace clusterctl::controller {

struct DaemonMemory {
  bool suspended = false;
  std::string suspended_by;
  std::map<std::string, reconcilers::Backoff> backoff;
  std::map<std::string, int64_t> healthy_since_ms;
  nlohmann::json alerts;    // AlertBook::ToJson(); null when none was saved.
  nlohmann::json leases;    // LeaseBook::ToJson(); null when none was saved.
  nlohmann::json rollouts;  // RolloutBook::ToJson(); null when none was saved.
};

// Pure: to and from the stored JSON. A malformed document gives an empty
// memory (and `*ok` false): clusterd starts as a fresh one would.
nlohmann::json MemoryToJson(const DaemonMemory& m);
DaemonMemory MemoryFromJson(const nlohmann::json& j, bool* ok = nullptr);

Status SaveMemory(store::Store* store, const DaemonMemory& m, bool sync);
// An empty memory when none was saved.
Result<DaemonMemory> LoadMemory(const store::Store& store);

// Appends one snapshot taken at `time_ms` and deletes those past the newest
// `keep`. `keys` is the caller's list of stored snapshot keys, oldest first
// (from LoadSnapshots), kept up to date here.
Status AppendSnapshot(store::Store* store, int64_t time_ms, const nlohmann::json& snapshot,
                      size_t keep, std::deque<std::string>* keys);
// The newest `limit` snapshots, newest first, and their keys oldest first.
Result<std::deque<nlohmann::json>> LoadSnapshots(const store::Store& store, size_t limit,
                                                 std::deque<std::string>* keys);

}  // namespace clusterctl::controller

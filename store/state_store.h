// StateStore: what the controller has observed, kept in a Store
// (store/store.h).
//
// Column families and keys:
//   "observations"  service@machine -> ObservedInstance JSON; the latest only.
//   "facts"         machine         -> MachineFacts JSON; the latest only.
//   "probes"        service@machine/role/<time><seq> -> ProbeResult JSON; a
//                   history, where <time> is the probe's time_ms and <seq> a
//                   per-StateStore counter, both 8 bytes big-endian (time
//                   with its sign bit flipped so that order holds for every
//                   int64). A prefix scan lists one probe's runs in time order.
//   "meta"          free-form key -> value for small controller settings.
// Values are JSON as written by store/observed_json.h.
//
// Durability: observations and probes are written with sync=false (they
// survive a kill of the process, not a power loss, and the next observation
// replaces them anyway); PutMeta() syncs.
//
// Retention: the probe history keeps, per (instance, role), at most
// Retention::max_per_instance runs and none older than Retention::max_age_ms.
// EnforceRetention() applies it once; StartBackgroundCleanup() runs it on a
// thread of its own. Observations and facts are latest-only and need none.
//
// Time: nothing here reads the clock except the background cleanup, which
// calls the clock function given to the constructor; tests inject one.
//
// Thread-safety: all methods are safe to call from many threads at once.
// The Store must outlive the StateStore. The destructor stops the background
// cleanup and joins its thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "reconcilers/observed.h"
#include "store/store.h"

namespace clusterctl::store {

// How much probe history to keep.
struct Retention {
  // Runs older than this (relative to the cleanup's now) are deleted;
  // 0 or less keeps runs of any age. Default: 24 hours.
  int64_t max_age_ms = 24LL * 60 * 60 * 1000;
  // At most this many runs per (service, machine, role); the oldest go first.
  // 0 means no count limit. Default: 1000.
  size_t max_per_instance = 1000;
};

class StateStore {
 public:
  // `store` is not owned and must outlive this object.
  // `clock` (WallMs) dates retention. Default: RealClock().
  explicit StateStore(Store* store, Retention retention = {}, const Clock* clock = nullptr);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  const Retention& retention() const { return retention_; }

  // ---- Observations (latest per instance / machine)

  // Records the facts of the machine and each of its instances, replacing the
  // previous ones, in one atomic batch (sync=false).
  Status RecordObservation(const reconcilers::MachineObservation& observation);

  // Every instance and every machine's facts, ordered by key.
  Result<std::vector<reconcilers::ObservedInstance>> LatestInstances() const;
  Result<std::vector<reconcilers::MachineFacts>> LatestFacts() const;
  // One instance / machine, or nullopt when never observed.
  Result<std::optional<reconcilers::ObservedInstance>> LatestInstance(
      const std::string& service, const std::string& machine) const;
  Result<std::optional<reconcilers::MachineFacts>> LatestFactsFor(const std::string& machine) const;

  // ---- Probe history

  // Appends one probe run (sync=false).
  Status RecordProbe(const reconcilers::ProbeResult& result);

  // The newest `limit` runs of one probe, newest first (by time_ms, then by
  // recording order). limit 0 means all that are kept.
  Result<std::vector<reconcilers::ProbeResult>> ProbeHistory(const std::string& service,
                                                             const std::string& machine,
                                                             reconcilers::ProbeRole role,
                                                             size_t limit) const;
  // The newest run, or nullopt when there is none.
  Result<std::optional<reconcilers::ProbeResult>> LastProbe(const std::string& service,
                                                            const std::string& machine,
                                                            reconcilers::ProbeRole role) const;

  // ---- Retention

  // Deletes the probe runs that retention() no longer keeps at `now_ms`
  // (range deletions, one batch per probe). Returns how many were deleted.
  Result<size_t> EnforceRetention(int64_t now_ms);

  // Runs EnforceRetention(clock()) now and then every `period` on a
  // background thread, until Stop(). Calling it again restarts the thread
  // with the new period. Do not use on a read-only store.
  void StartBackgroundCleanup(std::chrono::milliseconds period);
  // Stops the background cleanup promptly (it does not wait for the period)
  // and joins the thread. Safe to call when nothing runs.
  void Stop();

  // Background cleanup statistics: completed runs, probe runs deleted in
  // total, and the status of the latest run.
  struct CleanupStats {
    uint64_t runs = 0;
    uint64_t deleted = 0;
    Status last_status;
  };
  CleanupStats cleanup_stats() const;

  // ---- Meta (small settings; synced writes)

  Status PutMeta(const std::string& key, const std::string& value);
  // The value, or nullopt when the key was never written.
  Result<std::optional<std::string>> GetMeta(const std::string& key) const;

 private:
  // service@machine/role/
  static std::string ProbePrefix(const std::string& service, const std::string& machine,
                                 reconcilers::ProbeRole role);
  // Applies retention to the runs under one prefix; adds to *deleted.
  Status EnforceOnPrefix(const std::string& prefix, int64_t now_ms, size_t* deleted);
  void CleanupLoop(std::chrono::milliseconds period);

  Store* const store_;
  const Retention retention_;
  const Clock& clock_;
  std::atomic<uint64_t> probe_seq_{0};

  std::mutex control_mu_;  // Serialises StartBackgroundCleanup() and Stop().
  std::thread cleaner_;    // Guarded by control_mu_.

  mutable std::mutex mu_;  // Guards the fields below.
  std::condition_variable wake_;
  bool stop_ = false;
  CleanupStats stats_;
};

}  // namespace clusterctl::store

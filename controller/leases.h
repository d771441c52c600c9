// Drift leases: "I am fixing this by hand, leave it alone for 30 minutes".
//
// A lease names a service (and a machine, or every machine the service is
// placed on), a reason, who asked and until when. While it runs, the
// instances it covers are held (reconcilers::PlanInput::hold): their drift
// (a stopped service, a changed process) is shown with the lease in status,
// diff and why, and not corrected; their dependents wait. When it ends (it
// expires, or `clusterctl lease end`), the next pass reverts the drift.
// clusterd audits the grant, the end and the revert.
//
// LeaseBook is pure (time is an argument) and persisted with the daemon's
// memory (daemon_memory.h), so leases survive restarts. Not thread-safe: the
// daemon guards it with its mutex.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "desired-state/model.h"

namespace clusterctl::controller {

struct DriftLease {
  int64_t id = 0;
  std::string service, machine;  // machine empty: every machine of the service.
  std::string reason, actor;
  int64_t granted_ms = 0, until_ms = 0;

  bool Covers(const std::string& svc, const std::string& m) const {
    return svc == service && (machine.empty() || machine == m);
  }
  // "drift lease 3 by alice@laptop until 2026-12-07T10:30:00Z: fixing the disk"
  std::string Describe() const;
};

nlohmann::json LeaseToJson(const DriftLease& l);

class LeaseBook {
 public:
  // The longest lease: a day. Longer hand work belongs in git.
  static constexpr int64_t kMaxLeaseMs = 24LL * 3600 * 1000;

  // Checks the service (and machine) against `desired`: kNotFound naming
  // what exists, kInvalid for a duration outside (0, kMaxLeaseMs] or an
  // empty reason.
  Result<DriftLease> Grant(const desired_state::DesiredState& desired, const std::string& service,
                           const std::string& machine, int64_t for_ms, const std::string& reason,
                           const std::string& actor, int64_t now_ms);
  // Ends lease `id` now; kNotFound when there is no such active lease.
  Result<DriftLease> End(int64_t id, int64_t now_ms);
  // Removes and returns the leases that ended by `now_ms`.
  std::vector<DriftLease> Expire(int64_t now_ms);

  std::vector<DriftLease> Active() const;
  // The instances of `desired` the leases hold, with why.
  std::map<std::string, std::string> Holds(const desired_state::DesiredState& desired) const;

  nlohmann::json ToJson() const;
  // Malformed: empty (and *ok false).
  void Restore(const nlohmann::json& j, bool* ok = nullptr);

 private:
  int64_t next_id_ = 1;
  std::map<int64_t, DriftLease> leases_;
};

}  // namespace clusterctl::controller

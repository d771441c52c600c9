// ProbeSchedule: when each running instance's readiness and liveness probes
// are next due, as a pure value.
//
// A probe is due when its instance runs and its time has come (a probe never
// run is due at once); taking it schedules its next run periodSeconds later.
// An instance that stops keeps its times (it is simply not taken); one that
// leaves the desired state takes them with it (EraseGone). Times are steady
// milliseconds (Clock::SteadyMs), so a wall-clock step does not stall probes.
//
// Pure; not thread-safe (the daemon guards it with its mutex).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "desired-state/model.h"
#include "reconcilers/probes.h"

namespace clusterctl::controller {

class ProbeSchedule {
 public:
  // The probes of `desired`'s instances in `running` that are due at
  // `now_ms`, in instance order, readiness before liveness; each is
  // scheduled again for now_ms + its period.
  std::vector<reconcilers::ProbeRequest> TakeDue(const desired_state::DesiredState& desired,
                                                 const std::set<std::string>& running,
                                                 int64_t now_ms);
  // Erases the schedules of instances not in `live`.
  void EraseGone(const std::set<std::string>& live);
  // "svc@machine/readiness" -> next due time, for tests and status.
  const std::map<std::string, int64_t>& entries() const { return due_ms_; }

 private:
  std::map<std::string, int64_t> due_ms_;
};

}  // namespace clusterctl::controller

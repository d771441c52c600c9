// ObserveCluster: one observation pass over every machine of a desired state
// (and of the previously applied one, so pruned instances are seen), in
// parallel, followed by readiness probes of the running instances.
//
// A machine that cannot be reached is reported in `unreachable` with the
// reason; its instances are absent (unknown), never guessed.
//
// Thread-safety: reentrant; uses the driver and prober from several threads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "desired-state/model.h"
#include "reconcilers/driver.h"
#include "reconcilers/observed.h"
#include "reconcilers/plan.h"
#include "reconcilers/probes.h"

namespace clusterctl::reconcilers {

struct ClusterObservation {
  std::vector<ObservedInstance> instances;         // Reachable machines only.
  std::vector<MachineFacts> facts;                 // Every machine; reachable=false with error.
  std::map<std::string, std::string> unreachable;  // machine -> reason
  std::vector<ProbeResult> readiness;              // Running instances with a readiness probe.
  // Instance key -> ready: the probe's result, or (clusterd) the verdict
  // under readiness.failureThreshold.
  std::map<std::string, bool> ready;
  int64_t duration_ms = 0;
};

struct ObserveOptions {
  int max_parallel = 32;         // Machines observed at once. Default: 32.
  bool probe_readiness = true;   // Default: true.
  const Clock* clock = nullptr;  // Stamps observations (WallMs). Default: RealClock().
  // Only these machines are observed (clusterd shards: the ones this
  // replica holds); the others are left out of the observation entirely.
  // Null: every machine.
  const std::set<std::string>* only_machines = nullptr;
};

// The plan input of an observation: desired and previous state, what was
// observed, unreachable and ready, at `now_ms`; no backoff and no filters
// (callers add those). Pure.
PlanInput PlanInputOf(const desired_state::DesiredState& desired,
                      const desired_state::DesiredState* previous, const ClusterObservation& obs,
                      int64_t now_ms);

ClusterObservation ObserveCluster(const desired_state::DesiredState& desired,
                                  const desired_state::DesiredState* previous,
                                  ServiceDriver& driver, Prober* prober,
                                  const ObserveOptions& options = {});

}  // namespace clusterctl::reconcilers

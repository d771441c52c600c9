// Cluster health from desired and observed state (SPEC.md sections 3-4).
// Ordered, worst wins: healthy < degraded < unhealthy.
//   unhealthy  a critical service (one that should run) has no ready instance
//   degraded   anything else that should run is not ready, or a machine is
//              unreachable
//   healthy    otherwise
// Pure: no I/O.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "reconcilers/plan.h"

namespace clusterctl::reconcilers {

enum class Health { kHealthy = 0, kDegraded = 1, kUnhealthy = 2 };
const char* HealthName(Health h);  // "healthy", "degraded", "unhealthy"

struct HealthReport {
  Health overall = Health::kHealthy;
  std::vector<std::string> reasons;  // Why not healthy, most severe first.
};

// `diffs` as from Diff(); `unreachable` machines by name.
HealthReport AssessHealth(const desired_state::DesiredState& desired,
                          const std::vector<InstanceDiff>& diffs,
                          const std::map<std::string, std::string>& unreachable);

}  // namespace clusterctl::reconcilers

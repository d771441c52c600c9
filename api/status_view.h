// The cluster status document of SPEC.md section 4 (`GET /api/v1/status`,
// `clusterctl status --json`), built from one observation. Pure.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/time_format.h"
#include "desired-state/model.h"
#include "reconcilers/health.h"
#include "reconcilers/observer.h"
#include "reconcilers/plan.h"

namespace clusterctl::api {

struct StatusView {
  reconcilers::HealthReport health;
  std::vector<reconcilers::InstanceDiff> diffs;
  nlohmann::json json;  // {timestamp, overall_status, revision, machines, services, alerts}
};

// `alerts` are added to the document as they are (clusterd's open alerts).
StatusView BuildStatus(const desired_state::DesiredState& desired,
                       const desired_state::DesiredState* previous,
                       const reconcilers::ClusterObservation& observation, int64_t now_ms,
                       const std::vector<std::string>& alerts = {},
                       const std::map<std::string, std::string>& hold = {});

}  // namespace clusterctl::api

// The answers the dashboard needs beyond the status document (docs/api.md):
//
//   BuildGraph   GET /api/v1/graph: the dependency DAG of the services in
//                force, each node with its instances' health, each edge
//                marked blocking when it is what holds a dependent back
//                (the service-level form of `clusterctl why`)
//   UnifiedDiff  GET /api/v1/revisions/diff: a unified diff of one file
//
// Pure.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "desired-state/model.h"

namespace clusterctl::api {

// `status` is the status document of the same desired state (its
// services.<s>.instances.<m> give state, ready and reason).
nlohmann::json BuildGraph(const desired_state::DesiredState& desired, const nlohmann::json& status);

// The hunks ("@@ -a,b +c,d @@" and " ", "-", "+" lines, 3 lines of
// context) that turn `before` into `after`; "" when they are equal. Files
// over `max_lines` lines are not compared line by line: one line says so.
std::string UnifiedDiff(const std::string& before, const std::string& after,
                        size_t max_lines = 5000);

}  // namespace clusterctl::api

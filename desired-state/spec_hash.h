// The spec hash of a service instance (SPEC.md section 2).
//
// It covers what the running process depends on: the driver block (command,
// env, working directory, user; or unit and sudo). A changed hash means the
// instance is restarted. Probes, metadata, dependencies and rollout settings
// are not part of it, so changing them restarts nothing. The hash is stable
// across key order, whitespace and comments of the YAML.
#pragma once

#include <string>
#include <string_view>

#include "desired-state/model.h"

namespace clusterctl::desired_state {

// Hex SHA-256 of the service's driver block in canonical JSON.
std::string SpecHash(const Service& service);

// Whether `profile` (nullptr: no active profile) selects `service`.
bool ProfileSelects(const Profile* profile, const std::string& service);

}  // namespace clusterctl::desired_state

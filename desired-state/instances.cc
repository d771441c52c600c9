// Expansion of services into desired (service, machine) instances, and the
// spec hash: what the running process depends on, canonically serialised.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/sha256.h"
#include "desired-state/internal.h"
#include "desired-state/spec_hash.h"

namespace clusterctl::desired_state {

std::string SpecHash(const Service& s) {
  // nlohmann::json objects keep keys sorted, and std::map is sorted: the dump
  // is canonical whatever the key order or layout of the YAML.
  nlohmann::json spec;
  if (s.driver == DriverKind::kProcess) {
    spec["driver"] = "process";
    spec["command"] = s.process.command;
    spec["env"] = s.process.env;
    spec["workingDir"] = s.process.working_dir;
    spec["user"] = s.process.user;
  } else {
    spec["driver"] = "systemd";
    spec["unit"] = s.systemd.unit;
    spec["sudo"] = s.systemd.sudo;
  }
  return Sha256Hex(spec.dump());
}

bool ProfileSelects(const Profile* profile, const std::string& service) {
  if (profile == nullptr) return true;
  return std::any_of(profile->services.begin(), profile->services.end(),
                     [&](const std::string& n) { return n == "*" || n == service; });
}

namespace internal {

void ExpandInstances(DesiredState* state) {
  const Profile* active =
      state->cluster.profile ? state->FindProfile(*state->cluster.profile) : nullptr;
  state->instances.clear();
  for (const auto& s : state->services) {
    const std::string hash = SpecHash(s);
    const bool run = state->cluster.state == RunState::kRunning && s.state == RunState::kRunning &&
                     ProfileSelects(active, s.name);
    for (const auto& m : s.machines) {
      const bool stopped_here =
          std::find(s.stopped_on.begin(), s.stopped_on.end(), m) != s.stopped_on.end();
      state->instances.push_back(Instance{
          s.name, m, run && !stopped_here ? RunState::kRunning : RunState::kStopped, hash});
    }
  }
}

}  // namespace internal
}  // namespace clusterctl::desired_state

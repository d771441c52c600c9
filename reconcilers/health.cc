#include "reconcilers/health.h"

#include <algorithm>

namespace clusterctl::reconcilers {

const char* HealthName(Health h) {
  switch (h) {
    case Health::kHealthy:
      return "healthy";
    case Health::kDegraded:
      return "degraded";
    case Health::kUnhealthy:
      return "unhealthy";
  }
  return "unhealthy";
}

HealthReport AssessHealth(const desired_state::DesiredState& desired,
                          const std::vector<InstanceDiff>& diffs,
                          const std::map<std::string, std::string>& unreachable) {
  HealthReport r;
  std::vector<std::string> critical, other;
  std::map<std::string, int> ready_by_service, wanted_by_service;
  for (const auto& d : diffs) {
    if (d.pruned || d.desired != desired_state::RunState::kRunning) continue;
    ++wanted_by_service[d.service];
    if (d.ready) {
      ++ready_by_service[d.service];
    } else {
      other.push_back(d.Key() + " is " +
                      (d.observed == ObservedState::kRunning ? std::string("not ready")
                                                             : ObservedStateName(d.observed)));
    }
  }
  for (const auto& [service, wanted] : wanted_by_service) {
    const auto* s = desired.FindService(service);
    if (s != nullptr && s->critical && wanted > 0 && ready_by_service[service] == 0) {
      critical.push_back("critical service " + service + " has no ready instance");
    }
  }
  for (const auto& [m, why] : unreachable) other.push_back("machine " + m + " unreachable: " + why);
  if (!critical.empty()) {
    r.overall = Health::kUnhealthy;
  } else if (!other.empty()) {
    r.overall = Health::kDegraded;
  }
  r.reasons = critical;
  r.reasons.insert(r.reasons.end(), other.begin(), other.end());
  return r;
}

}  // namespace clusterctl::reconcilers

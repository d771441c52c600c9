#include "controller/probe_schedule.h"

#include "controller/daemon_policy.h"

namespace clusterctl::controller {

std::vector<reconcilers::ProbeRequest> ProbeSchedule::TakeDue(
    const desired_state::DesiredState& desired, const std::set<std::string>& running,
    int64_t now_ms) {
  std::vector<reconcilers::ProbeRequest> due;
  for (const auto& i : desired.instances) {
    if (!running.count(i.Key())) continue;
    const auto* s = desired.FindService(i.service);
    const auto* m = desired.FindMachine(i.machine);
    if (s == nullptr || m == nullptr) continue;
    for (auto role : {reconcilers::ProbeRole::kReadiness, reconcilers::ProbeRole::kLiveness}) {
      const auto& probe = role == reconcilers::ProbeRole::kReadiness ? s->readiness : s->liveness;
      if (!probe) continue;
      const std::string key = i.Key() + "/" + reconcilers::ProbeRoleName(role);
      auto [it, added] = due_ms_.try_emplace(key, now_ms);
      if (!added && it->second > now_ms) continue;
      it->second = now_ms + probe->period_seconds * 1000LL;
      due.push_back({s, m, role});
    }
  }
  return due;
}

void ProbeSchedule::EraseGone(const std::set<std::string>& live) {
  EraseGoneInstances(&due_ms_, live);
}

}  // namespace clusterctl::controller

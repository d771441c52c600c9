#include "desired-state/model.h"

#include "desired-state/internal.h"

namespace clusterctl::desired_state {

const char* RunStateName(RunState s) { return s == RunState::kRunning ? "running" : "stopped"; }

const char* ReconcileModeName(ReconcileMode m) {
  return m == ReconcileMode::kObserve ? "observe" : "enforce";
}

const char* RepairDriftName(RepairDrift r) {
  return r == RepairDrift::kWindow ? "window" : "always";
}

const char* ProbeKindName(ProbeKind k) {
  switch (k) {
    case ProbeKind::kHttp:
      return "http";
    case ProbeKind::kTcp:
      return "tcp";
    case ProbeKind::kExec:
      return "exec";
    case ProbeKind::kRedis:
      return "redis";
  }
  return "unknown";
}

const Machine* DesiredState::FindMachine(const std::string& n) const {
  return internal::FindByName(machines, n);
}
const Service* DesiredState::FindService(const std::string& n) const {
  return internal::FindByName(services, n);
}
const Profile* DesiredState::FindProfile(const std::string& n) const {
  return internal::FindByName(profiles, n);
}

}  // namespace clusterctl::desired_state

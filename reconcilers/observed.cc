#include "reconcilers/observed.h"

namespace clusterctl::reconcilers {

const char* ObservedStateName(ObservedState s) {
  switch (s) {
    case ObservedState::kUnknown:
      return "unknown";
    case ObservedState::kRunning:
      return "running";
    case ObservedState::kStopped:
      return "stopped";
    case ObservedState::kFailed:
      return "failed";
  }
  return "unknown";
}

ObservedState ParseObservedState(const std::string& name) {
  if (name == "running") return ObservedState::kRunning;
  if (name == "stopped") return ObservedState::kStopped;
  if (name == "failed") return ObservedState::kFailed;
  return ObservedState::kUnknown;
}

const char* ProbeRoleName(ProbeRole r) {
  return r == ProbeRole::kReadiness ? "readiness" : "liveness";
}

}  // namespace clusterctl::reconcilers

#include "controller/windows.h"

#include "desired-state/sync_windows.h"

namespace clusterctl::controller {

using reconcilers::Cause;

void AddWindowHolds(const reconcilers::PlanInput& in, int64_t now_s, bool override_windows,
                    std::map<std::string, std::string>* hold) {
  const desired_state::DesiredState& d = *in.desired;
  if (d.cluster.windows.empty()) return;
  std::map<std::string, int64_t> starts;  // Starts clusterctl recorded, by instance.
  for (const auto& o : in.observed) starts[o.Key()] = o.restarts;
  for (const reconcilers::InstanceDiff& x : reconcilers::Diff(in)) {
    if (x.action == reconcilers::Action::kNone || hold->count(x.Key())) continue;
    const bool ran_before = starts.count(x.Key()) && starts.at(x.Key()) > 0;
    const bool drift = x.cause == Cause::kFailed || (x.cause == Cause::kStopped && ran_before);
    if (drift && d.cluster.repair_drift == desired_state::RepairDrift::kAlways) continue;
    const desired_state::WindowVerdict v =
        desired_state::Evaluate(d.cluster.windows, now_s, x.service, x.machine);
    if (v.allowed || (override_windows && v.overridable)) continue;
    (*hold)[x.Key()] = v.reason;
  }
}

}  // namespace clusterctl::controller

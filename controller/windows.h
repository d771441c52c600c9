// Sync windows in the plan: which planned changes wait for a window
// (desired-state/sync_windows.h evaluates the windows; this decides what
// counts as a change).
//
//   - A change that comes from the desired state waits while the windows of
//     its instance block: a new instance never started by clusterctl (it
//     has no recorded start), a spec change, a stop, a prune, a requested
//     restart.
//   - Drift repair (an instance that crashed, or was stopped after it ran)
//     waits only with the Cluster's `repairDrift: window`; with the default
//     `always` it is repaired inside a deny window too.
//   - `override` (clusterctl apply --override-window) lets through what
//     only windows with `manualOverride: true` block.
//
// Held instances get reconcilers::PlanInput::hold entries naming the window
// ("waiting for window nightly (opens 22:00 Europe/Berlin)"), shown in
// status, diff and why. Pure.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "reconcilers/plan.h"

namespace clusterctl::controller {

// Adds a hold for each instance of `in` whose change the windows hold at
// `now_s`; keeps the holds already there (a lease wins).
void AddWindowHolds(const reconcilers::PlanInput& in, int64_t now_s, bool override_windows,
                    std::map<std::string, std::string>* hold);

}  // namespace clusterctl::controller

// Pure rules of the daemon's loops, kept apart from its threads and I/O so
// they can be tested in microseconds. (Issue 11 moves the rest of the
// daemon's policy here: crash-loop backoff, alerts, probe scheduling.)
#pragma once

#include <memory>

#include "desired-state/model.h"

namespace clusterctl::controller {

using DesiredPtr = std::shared_ptr<const desired_state::DesiredState>;

// What is in force after the plan for `planned` was refused (a mass stop):
// the revision before it, but only if `planned` is still the one in force;
// a newer revision that arrived while the pass planned stays in force (it
// is planned next).
DesiredPtr InForceAfterRefusal(const DesiredPtr& in_force, const DesiredPtr& planned,
                               const DesiredPtr& previous);

}  // namespace clusterctl::controller

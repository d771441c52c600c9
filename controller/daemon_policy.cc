#include "controller/daemon_policy.h"

namespace clusterctl::controller {

DesiredPtr InForceAfterRefusal(const DesiredPtr& in_force, const DesiredPtr& planned,
                               const DesiredPtr& previous) {
  return in_force == planned ? previous : in_force;
}

}  // namespace clusterctl::controller

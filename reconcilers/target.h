// Where the reconcilers reach a machine over SSH.
//
// TargetFor turns a desired-state Machine (its address and resolved ssh
// settings) into the SshTarget a CommandRunner takes. The drivers, exec probes
// and observers all go through it, so every SSH connection to a machine uses
// the same address, port, user and key.
//
// Thread-safety: pure function.
#pragma once

#include "desired-state/model.h"
#include "reconcilers/ssh.h"

namespace clusterctl::reconcilers {

// The SSH target of `machine`: machine = its name, address, and the resolved
// ssh port, user and identity file (copied as they are; "~/" is expanded by
// the runner).
SshTarget TargetFor(const desired_state::Machine& machine);

}  // namespace clusterctl::reconcilers

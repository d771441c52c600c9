#include "reconcilers/target.h"

namespace clusterctl::reconcilers {

SshTarget TargetFor(const desired_state::Machine& machine) {
  SshTarget t;
  t.machine = machine.name;
  t.address = machine.address;
  t.port = machine.ssh.port;
  t.user = machine.ssh.user;
  t.identity_file = machine.ssh.identity_file;
  return t;
}

}  // namespace clusterctl::reconcilers

// Session: what the commands that touch machines share (status, probe, diff,
// apply, restart, why): the desired state of a revision, the last applied
// one, the state store, audit log and revision log in --data-dir, and the
// SSH pool, drivers and prober configured from the config file.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "audit/audit_log.h"
#include "cli/context.h"
#include "controller/managed.h"
#include "controller/reconcile.h"
#include "controller/rollout.h"
#include "desired-state/loader.h"
#include "reconcilers/driver.h"
#include "reconcilers/probes.h"
#include "reconcilers/ssh.h"
#include "store/revisions.h"
#include "store/state_store.h"
#include "store/store.h"

namespace clusterctl::cli {

class Session {
 public:
  explicit Session(Globals* g) : g_(g) {}

  // Loads the desired state at `rev` (invalid: every error on stderr, then
  // a failed Status), opens the data directory for writing and sets up SSH.
  // With `read_only_ok`, a data directory held by a running clusterd is
  // opened read-only instead (nothing is recorded): for diff and why.
  Status Open(const std::string& rev, bool read_only_ok = false);
  bool read_only() const { return read_only_; }

  const desired_state::DesiredState& desired() const { return *desired_; }
  // What to prune: the instances earlier runs started that are not desired
  // now, with their definitions (controller/managed.h). Null: nothing.
  const desired_state::DesiredState* previous() const { return prune_.get(); }
  // Records what the pass started and stopped (not in a read-only session).
  Status RecordManaged(const reconcilers::ClusterObservation& observed,
                       const reconcilers::Plan& plan, const reconcilers::ExecutionReport& report);
  std::optional<store::RevisionRecord> last_applied() const { return last_applied_; }
  controller::ReconcileDeps deps();
  audit::AuditLog& audit() { return *audit_; }
  store::RevisionLog& revisions() { return *revisions_; }
  store::StateStore& state() { return *state_; }
  reconcilers::ServiceDriver& driver() { return *driver_; }
  reconcilers::Prober& prober() { return *prober_; }
  const Globals& globals() const { return *g_; }
  // The instances clusterd's active drift leases hold (controller/leases.h),
  // with why: a local diff, why or apply leaves them alone too.
  std::map<std::string, std::string> LeaseHolds() const;
  // clusterd's canary rollouts (controller/rollout.h) as it last saved
  // them: a local why shows their holds and progress.
  controller::RolloutBook Rollouts() const;

 private:
  Status OpenStore(bool read_only_ok);
  Status SetUpSsh();

  Globals* g_;
  bool read_only_ = false;
  std::optional<desired_state::DesiredState> desired_;
  std::shared_ptr<const desired_state::DesiredState> prune_;
  controller::ManagedInstances managed_;
  std::optional<store::RevisionRecord> last_applied_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::StateStore> state_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::unique_ptr<store::RevisionLog> revisions_;
  std::unique_ptr<reconcilers::SshPool> ssh_;
  std::unique_ptr<reconcilers::ShellDriver> driver_;
  std::unique_ptr<reconcilers::RealProber> prober_;
};

// The SSH options of every command that touches machines, from the config:
// known_hosts (default <data_dir>/known_hosts), the host key policy
// (strict unless the config says accept-new), the identity file, the
// secrets rule and the timeouts. Warns on stderr when a strict policy has
// no known_hosts file to check against.
reconcilers::SshOptions SshOptionsOf(const Globals& g);

// Loads the desired state of `rev`, printing every error; nullopt if invalid.
std::optional<desired_state::DesiredState> LoadDesired(const Globals& g, const std::string& rev,
                                                       Status* status);

}  // namespace clusterctl::cli

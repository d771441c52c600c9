// ManagedInstances: every instance the controller (clusterd, or clusterctl
// apply) has started and not seen stopped since, with the commit of the
// revision whose definition it runs. Pruning works from this record, not
// from "the revision before this one": after two quick pushes, a restart of
// clusterd or a rollback, an instance that any earlier revision started and
// that is not desired now is still stopped.
//
//   NextManaged()   pure: the record after a pass (desired instances carry
//                   the commit in force; an instance not desired leaves the
//                   record once it is observed not running or stopped by a
//                   step).
//   PruneBasis()    pure: a DesiredState holding only the instances to prune
//                   (managed, not desired now), with the service and machine
//                   definitions of the revisions that started them. It takes
//                   the place of "previous" for observe, plan and execute.
//   PruneBasisLoader  loads (and caches) the revisions PruneBasis needs.
//   Load/SaveManaged  the record in the store ("meta" managed_instances,
//                   JSON, synced).
//
// Thread-safety: the functions are pure; a PruneBasisLoader is used by one
// thread at a time.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "desired-state/model.h"
#include "reconcilers/executor.h"
#include "reconcilers/observer.h"
#include "reconcilers/plan.h"
#include "store/state_store.h"

namespace clusterctl::controller {

// Instance key ("svc@m") -> full commit of the revision that started it.
using ManagedInstances = std::map<std::string, std::string>;

ManagedInstances NextManaged(ManagedInstances managed, const desired_state::DesiredState& desired,
                             const reconcilers::ClusterObservation& observed,
                             const reconcilers::Plan& plan,
                             const reconcilers::ExecutionReport& report);

// The instances of `managed` that `desired` does not have, with their
// definitions from `revision(commit)` (null when it cannot be read: that
// instance is named in `*unreadable` and not pruned). A service name defined
// by several revisions takes the definition of the newest one (by commit
// time).
desired_state::DesiredState PruneBasis(
    const desired_state::DesiredState& desired, const ManagedInstances& managed,
    const std::function<const desired_state::DesiredState*(const std::string& commit)>& revision,
    std::vector<std::string>* unreadable);

class PruneBasisLoader {
 public:
  using ReadFn = std::function<Result<desired_state::DesiredState>(const std::string& commit)>;
  explicit PruneBasisLoader(ReadFn read) : read_(std::move(read)) {}

  // Null when there is nothing to prune.
  std::shared_ptr<const desired_state::DesiredState> Build(
      const desired_state::DesiredState& desired, const ManagedInstances& managed,
      std::vector<std::string>* unreadable);

 private:
  ReadFn read_;
  // Loaded revisions; those no instance needs any more are dropped.
  std::map<std::string, std::shared_ptr<const desired_state::DesiredState>> cache_;
};

// The record; an empty map when none was written yet (`*found` false).
Result<ManagedInstances> LoadManaged(const store::StateStore& state, bool* found = nullptr);
Status SaveManaged(store::StateStore* state, const ManagedInstances& managed);

// The first record, for a data directory written before this one existed:
// every instance of the last applied revision.
ManagedInstances SeedManaged(const desired_state::DesiredState& last_applied);

}  // namespace clusterctl::controller

// clusterctl stop|start [SERVICE] [--machine M]: the orchestrator scripts'
// verbs, as commits. The decision of what to change is pure (VerbEdit);
// cli/verbs.cc writes it as a one-key text edit of the file that declares
// the service (desired-state/yaml_edit.h), commits it authored by the
// actor, pushes it, and with --wait follows clusterd until it converged.
#pragma once

#include <optional>
#include <string>

#include "base/status.h"
#include "desired-state/model.h"

namespace clusterctl::cli {

struct VerbRequest {
  bool stop = true;     // stop, else start.
  std::string service;  // Empty: the whole cluster (Cluster spec.state).
  std::string machine;  // Empty: every machine of the service.
};

// One key to set in one document; `value` absent = remove the key.
struct VerbEdit {
  std::string file, kind, name, key;
  std::optional<std::string> value;
  std::string summary;  // "Stop model-server on jetson".
};

// What `request` changes in `state`, or nullopt when it is already so
// (stop of a stopped service). Errors: NotFound for an unknown service or a
// machine the service does not run on.
//   stop             -> Cluster spec.state: stopped
//   start            -> Cluster spec.state removed (running is the default)
//   stop S           -> spec.state: stopped
//   start S          -> spec.state and spec.stoppedOn removed
//   stop S -m M      -> M added to spec.stoppedOn
//   start S -m M     -> M taken out of spec.stoppedOn; when S is stopped
//                       everywhere, S runs again but stoppedOn lists every
//                       other machine, so only M starts
// A start needs a second edit when both keys change: call it again on the
// state after the first (StopStartEdits in verbs.cc does).
Result<std::optional<VerbEdit>> NextVerbEdit(const desired_state::DesiredState& state,
                                             const VerbRequest& request);

}  // namespace clusterctl::cli

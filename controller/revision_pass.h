// RevisionPass: how a pass over a revision ended, in one vocabulary for
// `clusterctl apply` and clusterd, and the one place that writes its
// revision record and its `revision_applied` audit event.
//
//   ok       every step ok and nothing blocked (converged)
//   partial  something was done, not everything (a step failed, was skipped
//            or interrupted, or an instance is blocked)
//   failed   nothing was done and something should have been
//
// The audit log's results are ok | failed | interrupted | skipped (SPEC
// section 5): a partial pass is audited `failed` with a detail that starts
// "partial: ". The revision record keeps `partial`.
#pragma once

#include <cstdint>
#include <string>

#include "audit/audit_log.h"
#include "controller/reconcile.h"
#include "desired-state/model.h"
#include "reconcilers/executor.h"
#include "reconcilers/plan.h"
#include "store/revisions.h"

namespace clusterctl::controller {

enum class RevisionResult { kOk, kPartial, kFailed };
const char* RevisionResultName(RevisionResult r);  // "ok" | "partial" | "failed"

RevisionResult ClassifyPass(const reconcilers::Plan& plan,
                            const reconcilers::ExecutionReport& report);
// "2 ok, 1 failed, 0 skipped, 0 interrupted, 1 blocked".
std::string PassSummary(const reconcilers::Plan& plan, const reconcilers::ExecutionReport& report);

struct RevisionPassRecord {
  desired_state::Revision revision;
  RevisionResult result = RevisionResult::kOk;
  std::string actor;
  audit::Trigger trigger = audit::Trigger::kRevision;
  std::string summary;  // PassSummary().
  std::string note;     // E.g. "history rewritten: ...". Optional.
  int64_t now_ms = 0;
  bool audit_event = true;  // Also write revision_applied (a new revision).
  ActGate* gate = nullptr;  // clusterd replicas: the event as the leader's (AppendRecord).
};

// Writes the revision record (sync) and, when asked, the revision_applied
// audit event. An error names what could not be written; the caller keeps
// the pass pending and retries (a lost record would change what `history`,
// rollback and the next start-up consider applied).
Status RecordRevisionPass(store::RevisionLog* revisions, audit::AuditLog* audit,
                          const RevisionPassRecord& pass);

}  // namespace clusterctl::controller

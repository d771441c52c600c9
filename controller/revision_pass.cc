#include "controller/revision_pass.h"

namespace clusterctl::controller {

using reconcilers::StepResult;

const char* RevisionResultName(RevisionResult r) {
  switch (r) {
    case RevisionResult::kOk:
      return "ok";
    case RevisionResult::kPartial:
      return "partial";
    case RevisionResult::kFailed:
      return "failed";
  }
  return "failed";
}

RevisionResult ClassifyPass(const reconcilers::Plan& plan,
                            const reconcilers::ExecutionReport& report) {
  const size_t steps = plan.steps.size();
  const size_t ok = report.Count(StepResult::kOk);
  if (ok == steps && plan.blocked.empty()) return RevisionResult::kOk;
  return ok > 0 ? RevisionResult::kPartial : RevisionResult::kFailed;
}

std::string PassSummary(const reconcilers::Plan& plan, const reconcilers::ExecutionReport& report) {
  return std::to_string(report.Count(StepResult::kOk)) + " ok, " +
         std::to_string(report.Count(StepResult::kFailed)) + " failed, " +
         std::to_string(report.Count(StepResult::kSkipped)) + " skipped, " +
         std::to_string(report.Count(StepResult::kInterrupted)) + " interrupted, " +
         std::to_string(plan.blocked.size()) + " blocked";
}

Status RecordRevisionPass(store::RevisionLog* revisions, audit::AuditLog* audit,
                          const RevisionPassRecord& pass) {
  const desired_state::Revision& rev = pass.revision;
  store::RevisionRecord rec;
  rec.commit = rev.commit;
  rec.author = rev.author;
  rec.message = rev.message;
  rec.commit_time = rev.time;
  rec.applied_at_ms = pass.now_ms;
  rec.result = RevisionResultName(pass.result);
  rec.actor = pass.actor;
  rec.trigger = audit::Name(pass.trigger);
  rec.detail = pass.summary + (pass.note.empty() ? "" : "; " + pass.note);
  auto recorded = revisions->Record(rec);
  if (!recorded.ok()) return recorded.status().Annotate("writing the revision record");
  if (!pass.audit_event) return Status::Ok();

  audit::AuditRecord ar;
  ar.actor = pass.actor;
  ar.trigger = audit::Name(pass.trigger);
  ar.revision = rev.Short();
  ar.action = "revision_applied";
  ar.phase = audit::Name(audit::Phase::kEvent);
  ar.result = audit::Name(pass.result == RevisionResult::kOk ? audit::Outcome::kOk
                                                             : audit::Outcome::kFailed);
  const std::string first_line = rev.message.substr(0, rev.message.find('\n'));
  ar.detail = std::string(pass.result == RevisionResult::kPartial ? "partial: " : "") + rev.author +
              ": " + first_line + " (" + pass.summary + ")" +
              (pass.note.empty() ? "" : " (" + pass.note + ")");
  auto written = AppendRecord(audit, pass.gate, ar);
  if (!written.ok()) return written.status().Annotate("writing the revision_applied audit event");
  return Status::Ok();
}

}  // namespace clusterctl::controller

// Audit filters (audit/filter.h): their validation and the matching of
// records and index entries.
#include "audit/filter.h"

#include <algorithm>
#include <cctype>

#include "audit/codec.h"
#include "base/time_format.h"

namespace clusterctl::audit {

namespace {

bool RevisionMatches(std::string_view prefix, std::string_view revision) {
  if (revision.empty()) return false;
  auto eq = [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  };
  if (prefix.size() <= revision.size()) {
    return std::equal(prefix.begin(), prefix.end(), revision.begin(), eq);
  }
  // A full sha given for a record that keeps a short one.
  return revision.size() >= 4 && std::equal(revision.begin(), revision.end(), prefix.begin(), eq);
}

bool ActorMatches(std::string_view want, std::string_view actor) {
  if (want.find('@') != std::string_view::npos) return want == actor;
  return actor == want || (actor.size() > want.size() && actor.substr(0, want.size()) == want &&
                           actor[want.size()] == '@');
}

Fields FieldsOf(const AuditRecord& r) {
  return {r.result, r.trigger, r.actor, r.revision, r.service, r.machine, r.action, r.phase};
}

}  // namespace

bool FieldsMatch(const AuditFilter& f, const Fields& r) {
  return (f.service.empty() || f.service == r.service) &&
         (f.machine.empty() || f.machine == r.machine) &&
         (f.action.empty() || f.action == r.action) && (f.result.empty() || f.result == r.result) &&
         (f.trigger.empty() || f.trigger == r.trigger) &&
         (f.actor.empty() || ActorMatches(f.actor, r.actor)) &&
         (f.revision_prefix.empty() || RevisionMatches(f.revision_prefix, r.revision));
}

Status ValidateFilter(const AuditFilter& f) {
  if (!f.trigger.empty() && !Contains(AuditTriggers(), f.trigger)) {
    return Status::Invalid("--trigger: \"" + f.trigger + "\" is not a trigger; use one of " +
                           Join(AuditTriggers()) + " (e.g. --trigger drift)");
  }
  if (!f.result.empty() && !Contains(AuditResults(), f.result)) {
    return Status::Invalid("--result: \"" + f.result + "\" is not a result; use one of " +
                           Join(AuditResults()) + " (e.g. --result failed)");
  }
  if (!f.revision_prefix.empty() &&
      !std::all_of(f.revision_prefix.begin(), f.revision_prefix.end(),
                   [](unsigned char c) { return std::isxdigit(c); })) {
    return Status::Invalid("--revision: \"" + f.revision_prefix +
                           "\" is not a commit sha prefix (hex digits, e.g. --revision 3f2c1e9)");
  }
  if (f.since_ms && f.until_ms && *f.since_ms >= *f.until_ms) {
    return Status::Invalid("--since (" + FormatRfc3339Ms(*f.since_ms) +
                           ") must be before --until (" + FormatRfc3339Ms(*f.until_ms) +
                           "), e.g. --since 2h --until 1h");
  }
  for (const std::string* name : {&f.service, &f.machine, &f.action}) {
    if (name->find('\0') != std::string::npos) {
      return Status::Invalid("filter values cannot contain a NUL byte");
    }
  }
  return Status::Ok();
}

bool Matches(const AuditFilter& f, const AuditRecord& r) {
  if (f.since_ms && r.time < *f.since_ms) return false;
  if (f.until_ms && r.time >= *f.until_ms) return false;
  return FieldsMatch(f, FieldsOf(r));
}

}  // namespace clusterctl::audit

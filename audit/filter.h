// What an audit query selects (AuditFilter), the check of its values
// (ValidateFilter) and the matching of records and index entries against it
// (Matches, FieldsMatch). AuditLog::Query (audit/audit_log.h, which includes
// this) picks the index to read; the index values hold the Fields below
// (audit/codec.h).
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "audit/record.h"
#include "base/status.h"

namespace clusterctl::audit {

// What a query selects. Empty strings and unset times do not filter.
struct AuditFilter {
  std::optional<int64_t> since_ms;               // time >= since_ms.
  std::optional<int64_t> until_ms;               // time < until_ms.
  std::string service, machine, action, result;  // Exact matches.
  // A prefix of the commit sha (case-insensitive); a full sha given for a
  // record that stores a short one matches too.
  std::string revision_prefix;
  // "alice@laptop" matches exactly; a name without '@' ("alice",
  // "clusterd") matches that user on any host.
  std::string actor;
  std::string trigger;
  // At most this many records; 0 = all of them. Default: 50.
  size_t limit = 50;
  // Oldest first instead of newest first. Default: false.
  bool oldest_first = false;
  // Cursors for the next page: the seq of the last record of the previous
  // page. after_seq: only records listed after record after_seq in oldest-
  // first order; before_seq: only records listed before record before_seq
  // (i.e. older ones). While the clock never steps back this is simply
  // seq > after_seq / seq < before_seq; with a clock that stepped back it
  // still pages without skipping or repeating a record. When the cursor's
  // record no longer exists (trimmed) the plain seq comparison is used.
  // 0 = no cursor. Default: 0.
  uint64_t after_seq = 0;
  uint64_t before_seq = 0;
};

// Checks a filter's values: trigger and result among the known ones,
// since < until, revision prefix hex. Messages name the field as the CLI
// flag and the HTTP parameter do ("--trigger / trigger: ..."), with an
// example. Does not check actions (see AuditLog::ActionExists).
Status ValidateFilter(const AuditFilter& f);
// Whether `r` passes every filter of `f` (the cursors and limit aside).
bool Matches(const AuditFilter& f, const AuditRecord& r);

// The fields a filter looks at, as views into an index value or a record.
struct Fields {
  std::string_view result, trigger, actor, revision, service, machine, action, phase;
};

// Whether fields `r` pass every filter of `f` but the time range (and the
// cursors and limit): what AuditLog::Query checks on an index entry before it
// fetches the record.
bool FieldsMatch(const AuditFilter& f, const Fields& r);

}  // namespace clusterctl::audit

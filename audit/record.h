// The audit record (SPEC.md section 5): its fields, the values its trigger,
// result and action take, its JSON (ToJson, ToJsonLine, FromJson), and the
// canonical form and SHA-256 hash that chain the records of the log
// (CanonicalForm, ComputeHash). How records are stored is audit/codec.h; the
// log that appends and reads them is audit/audit_log.h, which includes this.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace clusterctl::audit {

// The vocabulary of a record. Code that writes records uses these enums;
// Name() is the one table of their spellings in the log, the API and the CLI.
//
// Why the step exists (SPEC.md section 5).
enum class Trigger { kRevision, kDrift, kRollback, kManual, kRecovery, kAutoRollback };
// kIntent: before a step acts. kResult: after it ended. kEvent: a fact with
// no step around it (revision_applied, revision_rejected, probe_failed,
// machine_unreachable, audit_trimmed, suspend, resume).
enum class Phase { kIntent, kResult, kEvent };
// How a step or event ended; intents have none.
// kFenced: a step this replica did not send because its leader lease had
// ended (clusterd replicas, ha/leader_election.h).
enum class Outcome { kOk, kFailed, kInterrupted, kSkipped, kFenced };

const char* Name(Trigger t);  // "revision" "drift" "rollback" "manual" "recovery" "auto-rollback"
const char* Name(Phase p);    // "intent" "result" "event"
const char* Name(Outcome o);  // "ok" "failed" "interrupted" "skipped" "fenced"
// The inverse of Name(Trigger); nullopt for anything else.
std::optional<Trigger> ParseTrigger(const std::string& name);

// Every Name(Trigger) in enum order: what filters accept.
const std::vector<std::string>& AuditTriggers();
// Every Name(Outcome) in enum order.
const std::vector<std::string>& AuditResults();
// The actions clusterctl writes today: start stop restart revision_applied
// revision_rejected probe_failed machine_unreachable interrupted rollback
// suspend resume audit_trimmed. AuditLog::Append() accepts any lower-case
// identifier; this list is what the CLI offers and accepts without looking
// into the log.
const std::vector<std::string>& AuditKnownActions();

// One audit record: exactly the fields of SPEC.md section 5, plus intent_seq.
struct AuditRecord {
  uint64_t seq = 0;         // Assigned by Append(): 1, 2, 3, ... never reused.
  int64_t time = 0;         // ms since the epoch (UTC); assigned by Append().
  std::string actor;        // "clusterd@cpu-node", "alice@laptop". Required.
  std::string trigger;      // revision | drift | rollback | manual | recovery. Required.
  std::string revision;     // Short commit sha of the desired state; may be empty.
  std::string action;       // start | stop | ... (lower-case identifier). Required.
  std::string machine;      // May be empty (revision events).
  std::string service;      // May be empty (machine events).
  std::string phase;        // intent | result | event. Required.
  std::string result;       // ok | failed | interrupted | skipped; empty on intents.
  int64_t duration_ms = 0;  // How long the step took (results); else 0.
  std::string detail;       // Human text: "ready after 1 probe", the errors, ...
  std::string prev_hash;    // Assigned by Append().
  std::string hash;         // Assigned by Append().
  // On a result: the seq of its intent; 0 otherwise. In JSON only when not 0.
  uint64_t intent_seq = 0;
  // Written by the leader of clusterd replicas (ha/leader_election.h): its
  // replica id and the fencing token of its lease. Empty / 0 for a single
  // controller and for clusterctl; in JSON only when set, so records
  // without them hash as before.
  std::string leader;
  uint64_t fencing_token = 0;

  bool operator==(const AuditRecord&) const = default;
};

// The record as JSON, keys sorted (nlohmann's default): seq, time (RFC 3339
// UTC with milliseconds), actor, trigger, revision, action, machine, service,
// phase, result, duration_ms, detail, prev_hash, hash, and intent_seq when it
// is not 0. Every field is present, empty strings included.
nlohmann::json ToJson(const AuditRecord& r);
// One line (no newline) for `clusterctl audit --json`: the same object, keys
// in the order SPEC.md shows them.
std::string ToJsonLine(const AuditRecord& r);
// The inverse of ToJson. Errors: Code::kInvalid naming the missing or
// mistyped field. Unknown fields are ignored.
Result<AuditRecord> FromJson(const nlohmann::json& j);
// The canonical form the hash covers: ToJson without "hash", dump().
std::string CanonicalForm(const AuditRecord& r);
// Hex SHA-256 of CanonicalForm(r).
std::string ComputeHash(const AuditRecord& r);

}  // namespace clusterctl::audit

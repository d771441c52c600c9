// AuditLog: the append-only, hash-chained record of everything clusterctl
// and clusterd do (SPEC.md section 5), kept in the Store (store/store.h).
//
// What it owns, in the shared database:
//   "audit"        <seq: 8 bytes big-endian> -> the record as compact JSON
//                  with sorted keys (ToJson(record).dump()), hash included.
//   "audit_index"  secondary index entries, written in the same batch as
//                  their record. Every key ends with the record's seq:
//                    t\0<time><seq>                 every record
//                    s\0<service>\0<time><seq>      records with a service
//                    m\0<machine>\0<time><seq>      records with a machine
//                    a\0<action>\0<time><seq>       every record
//                    p\0<intent_seq><seq>           results naming their intent
//                  <time> is 8 bytes big-endian with the sign bit flipped
//                  (byte order = time order), <seq> and <intent_seq> 8 bytes
//                  big-endian. The value of a t/s/m/a entry holds the fields
//                  the filters look at (result, trigger, actor, revision,
//                  service, machine, action, phase), so a filtered query reads
//                  index entries only and fetches just the records it returns.
//   "meta"         keys starting "audit/": "audit/head" (last seq, hash and
//                  time), "audit/open/<seq>" (an intent with no result yet:
//                  its record), "audit/trim" (what retention removed).
//
// The chain: each record's `hash` is the hex SHA-256 of its canonical form:
// ToJson(record) without "hash", keys sorted, dump() with no spaces. That form
// includes `prev_hash`, the hash of the record before it; the first record's
// prev_hash is 64 zeros. Changing, removing, reordering or inserting a record
// breaks the chain at that record, which Verify() reports.
//
// Durability: Append() commits the record, its index entries and the head in
// ONE batch with sync=true (fsync of the WAL), so an intent is on disk before
// the step it announces runs, and a crash never leaves a record without its
// index entries or a seq that could be handed out again.
//
// Order: seq is the order of writing. Listings (Query) are in time order,
// ties by seq: the same order as long as the clock does not step back. Time
// comes from the clock given to Open(), never from the caller.
//
// Retention: none by default. Trim() removes the oldest records explicitly
// and records what it removed in "audit/trim" and as an "audit_trimmed"
// event in the log itself; Verify() then checks the chain from the first
// kept record, whose prev_hash the trim record keeps.
//
// Thread-safety: safe to use from many threads at once. Writes (Append,
// AppendBatch, RecordInterrupted, Trim) are serialised by a mutex around seq
// assignment and commit; reads go straight to the Store. On a read-only Store
// (a secondary) the reads see what the last Store::CatchUp() made visible.
// The Store must outlive the AuditLog.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "store/store.h"

namespace clusterctl::audit {

// Values of AuditRecord::phase.
inline constexpr const char* kPhaseIntent = "intent";  // Before a step acts.
inline constexpr const char* kPhaseResult = "result";  // After it ended.
// Neither: a fact with no step around it (revision_applied,
// revision_rejected, probe_failed, machine_unreachable, audit_trimmed).
inline constexpr const char* kPhaseEvent = "event";

// The triggers of SPEC.md section 5: why the step exists.
const std::vector<std::string>& AuditTriggers();  // revision drift rollback manual recovery
// The results: ok failed interrupted skipped.
const std::vector<std::string>& AuditResults();
// The actions clusterctl writes today: start stop restart revision_applied
// revision_rejected probe_failed machine_unreachable interrupted rollback
// suspend resume audit_trimmed. Append() accepts any lower-case identifier;
// this list is what the CLI offers and accepts without looking into the log.
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

// What retention removed (the "audit/trim" meta record).
struct TrimInfo {
  uint64_t first_kept_seq = 0;       // The chain is verified from this record.
  std::string first_kept_prev_hash;  // Its prev_hash, as it was when trimmed.
  uint64_t trimmed_count = 0;        // Records removed in all trims so far.
  int64_t trimmed_through_time = 0;  // Time of the newest record removed.
  int64_t last_trim_at = 0;          // When the last trim ran (ms since epoch).
};

struct VerifyReport {
  bool ok = true;
  uint64_t records = 0;        // Records checked (the chain from first_seq).
  uint64_t first_bad_seq = 0;  // The first record that fails; 0 when ok.
  // Why it fails: "hash mismatch", "prev_hash does not match record N",
  // "gap in sequence: N missing", "index entry without record",
  // "index entry does not match record", "index entry missing", ...
  // Empty when ok.
  std::string reason;
  uint64_t first_seq = 0, last_seq = 0;  // The range checked; 0 when empty.
  uint64_t index_entries = 0;            // Index entries checked.
  std::optional<TrimInfo> trim;          // Set when retention removed records.
};

// The newest record's seq and hash (seq 0 and 64 zeros for an empty log).
struct AuditHead {
  uint64_t seq = 0;
  std::string hash;
  int64_t time = 0;
};

class AuditLog {
 public:
  // Opens the log in `store` (not owned; must outlive the log) and recovers
  // the newest seq and hash, so seq continues where it stopped, also after
  // a crash. `clock` dates records (WallMs). Default: RealClock().
  // A read-only Store gives a log that can be queried and verified; its
  // writes fail with Code::kPermission.
  static Result<std::unique_ptr<AuditLog>> Open(store::Store* store, const Clock* clock = nullptr);

  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends one record: assigns seq, time, prev_hash and hash, and commits
  // it with its index entries and the new head in one synced batch. An
  // intent is remembered as open until a result names it in intent_seq.
  // Returns the record as stored. Strings that are not valid UTF-8 are
  // stored with U+FFFD in place of the bad bytes.
  // Errors: kInvalid for a record missing actor, action, phase or trigger,
  // an unknown trigger, phase or result, a result on an intent, a NUL in
  // service, machine or action; kPermission on a read-only store; the
  // Store's error (kResourceExhausted on a full disk, ...) when the commit
  // fails, in which case nothing was written and no seq was used.
  Result<AuditRecord> Append(AuditRecord r);
  // Appends many records in one synced batch (group commit): all or none.
  // Records are chained in the order given; a result may name an intent
  // of the same batch.
  Result<std::vector<AuditRecord>> AppendBatch(std::vector<AuditRecord> records);

  // Records matching `f`, newest first (oldest first with f.oldest_first),
  // at most f.limit. Reads the index of the most selective filter given
  // (service, then machine, then action, else the time index) over the time
  // range, filters on the index entries, and fetches only the records
  // returned. Errors: kInvalid from ValidateFilter; Store errors.
  Result<std::vector<AuditRecord>> Query(const AuditFilter& f) const;
  // The same, handing each record to `visit` as it is found, without
  // holding them all (for export); `visit` returns false to stop. f.limit
  // still applies (0 = all).
  Status QueryEach(const AuditFilter& f,
                   const std::function<bool(const AuditRecord&)>& visit) const;
  // Up to `limit` records with seq > `after_seq`, in seq order (0 = all).
  // For --follow: new records always have a higher seq.
  Result<std::vector<AuditRecord>> ReadAfter(uint64_t after_seq, size_t limit = 0) const;

  // The record with this seq, or nullopt.
  Result<std::optional<AuditRecord>> Get(uint64_t seq) const;
  // The result records that name `intent_seq` as their intent, in seq order.
  Result<std::vector<AuditRecord>> ResultsOf(uint64_t intent_seq) const;
  // Whether any record has this action (one index lookup).
  Result<bool> ActionExists(const std::string& action) const;

  // The head as stored (not cached): on a read-only store, what the last
  // CatchUp() made visible.
  Result<AuditHead> Head() const;
  // The trim record, or nullopt when nothing was ever trimmed.
  Result<std::optional<TrimInfo>> Trimmed() const;

  // Intents without a result, oldest first (read from "audit/open/").
  Result<std::vector<AuditRecord>> UnfinishedIntents() const;
  // For each unfinished intent, appends a result with result "interrupted",
  // trigger "recovery", the intent's action, service, machine and revision,
  // intent_seq set, duration since the intent and detail "the controller
  // stopped before the step ended; outcome unknown, re-observing" (one
  // synced batch). Call it when a controller starts, before it plans.
  // Returns the records written (none when nothing was open).
  Result<std::vector<AuditRecord>> RecordInterrupted(const std::string& actor);

  // Walks the chain from the first record (or the first kept after a trim)
  // to the head, and every index entry, and reports the first record that
  // fails (see VerifyReport). Store errors are errors; a broken log is a
  // report with ok = false. Reads the index on a second thread while this
  // one walks the chain; holds about 40 bytes per record meanwhile (40 MB
  // for a million records).
  Result<VerifyReport> Verify() const;

  // Retention: removes the records with seq < before_seq (always keeping the
  // newest record) and their index entries, records the range in
  // "audit/trim", and appends an "audit_trimmed" event by `actor` (trigger
  // "manual") saying what was removed. Works in batches of at most 10,000
  // records, each one a consistent trim point. Returns the number removed.
  // Unfinished intents survive in "audit/open/" (RecordInterrupted still
  // works for them).
  Result<uint64_t> Trim(uint64_t before_seq, const std::string& actor = "retention");

 private:
  AuditLog(store::Store* store, const Clock& clock);
  Status LoadHead();
  Status CheckRecord(const AuditRecord& r) const;
  Result<std::vector<AuditRecord>> AppendLocked(std::vector<AuditRecord> records);

  store::Store* store_;
  const Clock& clock_;

  std::mutex mu_;          // Serialises writes; guards the fields below.
  uint64_t last_seq_ = 0;  // The head as this process knows it.
  std::string last_hash_;
  int64_t last_time_ = 0;
  bool reload_head_ = false;  // After a failed commit: re-read the head first.
};

}  // namespace clusterctl::audit

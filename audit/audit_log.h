// AuditLog: the append-only, hash-chained record of everything clusterctl
// and clusterd do (SPEC.md section 5), kept in the Store (store/store.h).
//
// What it owns, in the shared database: the "audit" (the records) and
// "audit_index" (secondary indexes by time, service, machine and action, and
// results by intent) column families and the "audit/" keys of "meta" (the
// head, the open intents, the trim record). Their layout is audit/codec.h.
//
// Its parts, one file each: the record, its JSON, canonical form and hash
// (audit/record.h, included here); filters and their matching
// (audit/filter.h, included here); the storage format: keys, index entries,
// stored records (audit/codec.h, internal); AuditLog's append, reads, queries
// and recovery (audit_log.cc), Verify (verify.cc) and Trim (trim.cc).
//
// The chain: each record's `hash` is the hex SHA-256 of its canonical form:
// ToJson(record) without "hash", keys sorted, dump() with no spaces. That form
// includes `prev_hash`, the hash of the record before it; the first record's
// prev_hash is 64 zeros. Changing, removing, reordering or inserting a record
// breaks the chain at that record, which Verify() reports. Verify() also
// reports an action (intent or result) whose fencing_token is below one
// written before it: a step sent by a leader that had been deposed.
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

#include "audit/filter.h"
#include "audit/record.h"
#include "base/clock.h"
#include "base/status.h"
#include "store/store.h"

namespace clusterctl::audit {

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
  // Copies of another replica's records (the leader's journal, which a
  // follower keeps): appended like AppendBatch, but their intents are not
  // this process's unfinished steps, so RecordInterrupted() never closes
  // them; the follower closes them itself when it takes over.
  Result<std::vector<AuditRecord>> AppendCopies(std::vector<AuditRecord> records);

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
  Result<std::vector<AuditRecord>> AppendLocked(std::vector<AuditRecord> records,
                                                bool track_open = true);

  store::Store* store_;
  const Clock& clock_;

  std::mutex mu_;          // Serialises writes; guards the fields below.
  uint64_t last_seq_ = 0;  // The head as this process knows it.
  std::string last_hash_;
  int64_t last_time_ = 0;
  bool reload_head_ = false;  // After a failed commit: re-read the head first.
};

}  // namespace clusterctl::audit

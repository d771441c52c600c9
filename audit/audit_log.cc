// AuditLog (audit/audit_log.h): opening and the head, append (the record
// check, seq, time and hash assigned, one synced batch with the index
// entries), the reads and queries, and the recovery of unfinished intents.
// Verify is in verify.cc, Trim in trim.cc; the storage format in codec.cc.
#include "audit/audit_log.h"

#include <algorithm>
#include <cstdint>

#include "audit/codec.h"
#include "base/big_endian.h"
#include "base/sha256.h"
#include "base/time_format.h"
#include "base/utf8.h"

namespace clusterctl::audit {
using nlohmann::json;

namespace {

constexpr char kInterruptedDetail[] =
    "the controller stopped before the step ended; outcome unknown, re-observing";

bool IsIdentifier(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------- AuditLog

AuditLog::AuditLog(store::Store* store, const Clock& clock) : store_(store), clock_(clock) {}

Result<std::unique_ptr<AuditLog>> AuditLog::Open(store::Store* store, const Clock* clock) {
  if (store == nullptr) return Status::Internal("AuditLog::Open: no store");
  std::unique_ptr<AuditLog> log(new AuditLog(store, ClockOr(clock)));
  std::lock_guard<std::mutex> lock(log->mu_);
  CLUSTERCTL_RETURN_IF_ERROR(log->LoadHead());
  return log;
}

Result<AuditHead> AuditLog::Head() const {
  AuditHead head{0, ZeroHash(), 0};
  Result<std::optional<std::string>> v = store_->Get(kMetaCf, kHeadKey);
  if (!v.ok()) return v.status();
  if (v->has_value()) {
    json j = json::parse(**v, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return Status::Internal("audit log: the head record (meta audit/head) is not valid JSON");
    }
    head.seq = j.value("seq", uint64_t{0});
    head.hash = j.value("hash", ZeroHash());
    head.time = j.value("time", int64_t{0});
  }
  // The newest record wins over the head should they ever disagree: a seq
  // must never be handed out twice.
  std::string last;
  uint64_t last_seq = 0;
  Status s =
      store_->Scan(kAuditCf, Whole(true, 1), [&](std::string_view k, std::string_view value) {
        last_seq = DecodeBigEndian64(k);
        last.assign(value);
        return false;
      });
  if (!s.ok()) return s;
  if (last_seq > head.seq) {
    Result<AuditRecord> r = DecodeStored(last, nullptr);
    if (!r.ok()) {
      return r.status().Annotate("audit log: reading the newest record " +
                                 std::to_string(last_seq));
    }
    head = {last_seq, r->hash, r->time};
  }
  return head;
}

Status AuditLog::LoadHead() {
  Result<AuditHead> head = Head();
  if (!head.ok()) return head.status();
  last_seq_ = head->seq;
  last_hash_ = head->hash;
  last_time_ = head->time;
  return Status::Ok();
}

Result<std::optional<TrimInfo>> AuditLog::Trimmed() const { return ReadTrim(store_); }

Status AuditLog::CheckRecord(const AuditRecord& r) const {
  if (r.actor.empty()) return Status::Invalid("audit record without an actor");
  if (!IsIdentifier(r.action)) {
    return Status::Invalid("audit record action \"" + r.action +
                           "\" must be a lower-case identifier (start, revision_applied, ...)");
  }
  if (!Contains(AuditTriggers(), r.trigger)) {
    return Status::Invalid("audit record trigger \"" + r.trigger + "\" is not one of " +
                           Join(AuditTriggers()));
  }
  if (r.phase != Name(Phase::kIntent) && r.phase != Name(Phase::kResult) &&
      r.phase != Name(Phase::kEvent)) {
    return Status::Invalid("audit record phase \"" + r.phase +
                           "\" is not one of intent, result, event");
  }
  if (r.phase == Name(Phase::kIntent) && !r.result.empty()) {
    return Status::Invalid("an audit intent has no result (got \"" + r.result + "\")");
  }
  if (r.phase == Name(Phase::kResult) && r.result.empty()) {
    return Status::Invalid("an audit result record needs a result (ok, failed, ...)");
  }
  if (!r.result.empty() && !Contains(AuditResults(), r.result)) {
    return Status::Invalid("audit record result \"" + r.result + "\" is not one of " +
                           Join(AuditResults()));
  }
  if (r.intent_seq != 0 && r.phase != Name(Phase::kResult)) {
    return Status::Invalid("only a result record names an intent (intent_seq)");
  }
  for (const std::string* name : {&r.service, &r.machine}) {
    if (name->find('\0') != std::string::npos) {
      return Status::Invalid("audit record service and machine cannot contain a NUL byte");
    }
  }
  return Status::Ok();
}

Result<AuditRecord> AuditLog::Append(AuditRecord r) {
  std::vector<AuditRecord> one;
  one.push_back(std::move(r));
  std::lock_guard<std::mutex> lock(mu_);
  Result<std::vector<AuditRecord>> out = AppendLocked(std::move(one));
  if (!out.ok()) return out.status();
  return std::move(out->front());
}

Result<std::vector<AuditRecord>> AuditLog::AppendBatch(std::vector<AuditRecord> records) {
  std::lock_guard<std::mutex> lock(mu_);
  return AppendLocked(std::move(records));
}

Result<std::vector<AuditRecord>> AuditLog::AppendCopies(std::vector<AuditRecord> records) {
  std::lock_guard<std::mutex> lock(mu_);
  return AppendLocked(std::move(records), /*track_open=*/false);
}

Result<std::vector<AuditRecord>> AuditLog::AppendLocked(std::vector<AuditRecord> records,
                                                        bool track_open) {
  if (store_->read_only()) {
    return Status::Permission("the audit log in " + store_->data_dir() +
                              " is open read-only; records are written by the process that owns "
                              "the data directory (clusterd, or clusterctl apply without one)");
  }
  if (records.empty()) return records;
  if (reload_head_) {
    CLUSTERCTL_RETURN_IF_ERROR(LoadHead());
    reload_head_ = false;
  }
  store::StoreBatch batch(store_);
  uint64_t seq = last_seq_;
  std::string prev = last_hash_;
  int64_t time = last_time_;
  for (AuditRecord& r : records) {
    for (std::string* s : {&r.actor, &r.trigger, &r.revision, &r.action, &r.machine, &r.service,
                           &r.phase, &r.result, &r.detail}) {
      SanitizeUtf8(s);
    }
    Status check = CheckRecord(r);
    if (!check.ok()) return check;
    r.seq = ++seq;
    if (r.intent_seq >= r.seq) {
      return Status::Invalid("audit result names intent " + std::to_string(r.intent_seq) +
                             ", which is not an earlier record");
    }
    time = std::clamp(clock_.WallMs(), kMinTimeMs, kMaxTimeMs);
    r.time = time;
    r.prev_hash = prev;
    json j = ToJson(r);
    j.erase("hash");
    r.hash = Sha256Hex(Dump(j));
    j["hash"] = r.hash;
    prev = r.hash;
    const std::string value = Dump(j);
    batch.Put(kAuditCf, SeqKey(r.seq), value);
    for (const IndexEntry& e : IndexEntries(r)) batch.Put(kIndexCf, e.key, e.value);
    if (track_open && r.phase == Name(Phase::kIntent)) batch.Put(kMetaCf, OpenKey(r.seq), value);
    if (r.intent_seq != 0) batch.Delete(kMetaCf, OpenKey(r.intent_seq));
  }
  batch.Put(kMetaCf, kHeadKey, json{{"seq", seq}, {"hash", prev}, {"time", time}}.dump());
  Status s = store_->Commit(&batch, /*sync=*/true);
  if (!s.ok()) {
    reload_head_ = true;  // Whatever happened, ask the store before the next seq.
    return s.Annotate("writing audit record " + std::to_string(last_seq_ + 1));
  }
  last_seq_ = seq;
  last_hash_ = prev;
  last_time_ = time;
  return records;
}

// ------------------------------------------------------------------ reads

Result<std::optional<AuditRecord>> AuditLog::Get(uint64_t seq) const {
  Result<std::optional<std::string>> v = store_->Get(kAuditCf, SeqKey(seq));
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<AuditRecord>();
  Result<AuditRecord> r = DecodeStored(**v, nullptr);
  if (!r.ok()) return r.status().Annotate("audit record " + std::to_string(seq));
  return std::optional<AuditRecord>(std::move(r).value());
}

Result<std::vector<AuditRecord>> AuditLog::ReadAfter(uint64_t after_seq, size_t limit) const {
  std::vector<AuditRecord> out;
  Status bad;
  store::ScanRange range;
  range.begin = SeqKey(after_seq + 1);
  range.limit = limit;
  if (after_seq == UINT64_MAX) return out;
  Status s = store_->Scan(kAuditCf, range, [&](std::string_view k, std::string_view v) {
    Result<AuditRecord> r = DecodeStored(v, nullptr);
    if (!r.ok()) {
      bad = r.status().Annotate("audit record " + std::to_string(DecodeBigEndian64(k)));
      return false;
    }
    out.push_back(std::move(r).value());
    return true;
  });
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  return out;
}

Result<std::vector<AuditRecord>> AuditLog::ResultsOf(uint64_t intent_seq) const {
  std::vector<uint64_t> seqs;
  Status s =
      store_->Scan(kIndexCf, store::ScanRange::Prefix(IndexPrefix('p') + BigEndian64(intent_seq)),
                   [&](std::string_view k, std::string_view) {
                     if (k.size() == 18) seqs.push_back(DecodeBigEndian64(k.substr(10)));
                     return true;
                   });
  if (!s.ok()) return s;
  std::vector<AuditRecord> out;
  for (uint64_t seq : seqs) {
    Result<std::optional<AuditRecord>> r = Get(seq);
    if (!r.ok()) return r.status();
    if (r->has_value() && (*r)->intent_seq == intent_seq) out.push_back(std::move(**r));
  }
  return out;
}

Result<bool> AuditLog::ActionExists(const std::string& action) const {
  bool found = false;
  Status s = store_->Scan(kIndexCf, store::ScanRange::Prefix(IndexPrefix('a', action), false, 1),
                          [&](std::string_view, std::string_view) {
                            found = true;
                            return false;
                          });
  if (!s.ok()) return s;
  return found;
}

Result<std::vector<AuditRecord>> AuditLog::Query(const AuditFilter& f) const {
  std::vector<AuditRecord> out;
  Status s = QueryEach(f, [&](const AuditRecord& r) {
    out.push_back(r);
    return true;
  });
  if (!s.ok()) return s;
  return out;
}

Status AuditLog::QueryEach(const AuditFilter& f,
                           const std::function<bool(const AuditRecord&)>& visit) const {
  CLUSTERCTL_RETURN_IF_ERROR(ValidateFilter(f));
  // The index to read: the most selective filter given.
  std::string prefix;
  if (!f.service.empty()) {
    prefix = IndexPrefix('s', f.service);
  } else if (!f.machine.empty()) {
    prefix = IndexPrefix('m', f.machine);
  } else if (!f.action.empty()) {
    prefix = IndexPrefix('a', f.action);
  } else {
    prefix = IndexPrefix('t');
  }
  store::ScanRange range = store::ScanRange::Prefix(prefix, /*reverse=*/!f.oldest_first);
  if (f.since_ms) range.begin = prefix + TimeKey(*f.since_ms);
  if (f.until_ms) range.end = prefix + TimeKey(*f.until_ms);
  // Cursors: a position in (time, seq) order, from the cursor's record.
  uint64_t seq_above = 0, seq_below = 0;  // Plain seq bounds when it is gone.
  if (f.after_seq != 0) {
    Result<std::optional<AuditRecord>> c = Get(f.after_seq);
    if (!c.ok()) return c.status();
    if (c->has_value()) {
      std::string b =
          prefix + TimeKey((*c)->time) + BigEndian64(f.after_seq) + std::string(1, '\0');
      range.begin = std::max(range.begin, b);
    } else {
      seq_above = f.after_seq;
    }
  }
  if (f.before_seq != 0) {
    Result<std::optional<AuditRecord>> c = Get(f.before_seq);
    if (!c.ok()) return c.status();
    if (c->has_value()) {
      std::string e = prefix + TimeKey((*c)->time) + BigEndian64(f.before_seq);
      range.end = std::min(range.end, e);
    } else {
      seq_below = f.before_seq;
    }
  }
  if (range.begin >= range.end) return Status::Ok();

  size_t returned = 0;
  Status bad;
  Status s = store_->Scan(kIndexCf, range, [&](std::string_view k, std::string_view v) {
    if (k.size() < prefix.size() + 16) return true;
    const uint64_t seq = DecodeBigEndian64(k.substr(k.size() - 8));
    if (seq <= seq_above || (seq_below != 0 && seq >= seq_below)) return true;
    Fields fields;
    if (DecodeFields(v, &fields) && !FieldsMatch(f, fields)) return true;
    // A candidate: fetch the record and check it for real (an index entry
    // that lies does not get a record into the answer; Verify reports it).
    Result<std::optional<AuditRecord>> r = Get(seq);
    if (!r.ok()) {
      bad = r.status();
      return false;
    }
    if (!r->has_value() || !Matches(f, **r)) return true;
    if (!visit(**r)) return false;
    return f.limit == 0 || ++returned < f.limit;
  });
  CLUSTERCTL_RETURN_IF_ERROR(s);
  return bad;
}

// --------------------------------------------------------------- recovery

Result<std::vector<AuditRecord>> AuditLog::UnfinishedIntents() const {
  std::vector<AuditRecord> out;
  Status bad;
  Status s = store_->Scan(kMetaCf, store::ScanRange::Prefix(kOpenPrefix),
                          [&](std::string_view k, std::string_view v) {
                            Result<AuditRecord> r = DecodeStored(v, nullptr);
                            if (!r.ok()) {
                              bad = r.status().Annotate("open audit intent " + std::string(k));
                              return false;
                            }
                            out.push_back(std::move(r).value());
                            return true;
                          });
  CLUSTERCTL_RETURN_IF_ERROR(s);
  if (!bad.ok()) return bad;
  return out;
}

Result<std::vector<AuditRecord>> AuditLog::RecordInterrupted(const std::string& actor) {
  std::lock_guard<std::mutex> lock(mu_);
  Result<std::vector<AuditRecord>> open = UnfinishedIntents();
  if (!open.ok()) return open.status();
  std::vector<AuditRecord> results;
  const int64_t now = clock_.WallMs();
  for (const AuditRecord& intent : *open) {
    AuditRecord r;
    r.actor = actor;
    r.trigger = Name(Trigger::kRecovery);
    r.revision = intent.revision;
    r.action = intent.action;
    r.machine = intent.machine;
    r.service = intent.service;
    r.phase = Name(Phase::kResult);
    r.result = Name(Outcome::kInterrupted);
    r.duration_ms = std::max<int64_t>(0, now - intent.time);
    r.detail = kInterruptedDetail;
    r.intent_seq = intent.seq;
    results.push_back(std::move(r));
  }
  return AppendLocked(std::move(results));
}

}  // namespace clusterctl::audit

// AuditLog::Trim (audit/audit_log.h): retention, which removes the oldest
// records and their index entries in chunks, each a consistent trim point,
// and records what it removed.
#include <algorithm>
#include <cstdint>

#include "audit/audit_log.h"
#include "audit/codec.h"
#include "base/big_endian.h"
#include "base/sha256.h"
#include "base/time_format.h"

namespace clusterctl::audit {
using nlohmann::json;

namespace {

constexpr uint64_t kTrimChunk = 10000;

// The first stored record's seq, 0 when there is none.
Result<uint64_t> FirstSeq(const store::Store* store) {
  uint64_t first = 0;
  Status s = store->Scan(kAuditCf, Whole(false, 1), [&](std::string_view k, std::string_view) {
    first = DecodeBigEndian64(k);
    return false;
  });
  if (!s.ok()) return s;
  return first;
}

}  // namespace

Result<uint64_t> AuditLog::Trim(uint64_t before_seq, const std::string& actor) {
  std::lock_guard<std::mutex> lock(mu_);
  if (store_->read_only()) {
    return Status::Permission("the audit log in " + store_->data_dir() +
                              " is open read-only; it cannot be trimmed");
  }
  if (reload_head_) {
    CLUSTERCTL_RETURN_IF_ERROR(LoadHead());
    reload_head_ = false;
  }
  before_seq = std::min(before_seq, last_seq_);  // The newest record stays.
  Result<std::optional<TrimInfo>> trim = Trimmed();
  if (!trim.ok()) return trim.status();
  TrimInfo info = trim->value_or(TrimInfo{});
  Result<uint64_t> first_r = FirstSeq(store_);
  if (!first_r.ok()) return first_r.status();
  uint64_t first = *first_r;
  if (first == 0 || before_seq <= first) return uint64_t{0};
  std::string expected_prev = *trim ? info.first_kept_prev_hash : ZeroHash();
  if (first != (*trim ? info.first_kept_seq : 1)) {
    return Status::Internal("refusing to trim: the audit log's first record is " +
                            std::to_string(first) +
                            ", not the one the trim record expects; run "
                            "clusterctl audit verify");
  }

  const uint64_t from = first;
  int64_t first_time = 0;
  uint64_t removed = 0;
  while (first < before_seq) {
    const uint64_t chunk_end = std::min(before_seq, first + kTrimChunk);
    store::StoreBatch batch(store_);
    Status bad;
    uint64_t next = first;
    CanonicalBytes canonical;
    store::ScanRange range{SeqKey(first), SeqKey(chunk_end + 1)};  // Includes the new first record.
    Status s = store_->Scan(kAuditCf, range, [&](std::string_view k, std::string_view v) {
      const uint64_t seq = DecodeBigEndian64(k);
      Result<AuditRecord> r = DecodeStored(v, &canonical);
      // Trim never hides a broken chain: what it removes must verify.
      std::string why;
      if (seq != next) {
        why = "gap in sequence: " + std::to_string(next) + " missing";
      } else if (!r.ok()) {
        why = "record unreadable";
      } else if (Sha256Hex(canonical.head, canonical.tail) != r->hash) {
        why = "hash mismatch";
      } else if (r->prev_hash != expected_prev) {
        why = "prev_hash does not match the record before it";
      }
      if (!why.empty()) {
        bad = Status::Internal("refusing to trim: the audit chain is broken at record " +
                               std::to_string(seq != next ? next : seq) + " (" + why +
                               "); run clusterctl audit verify");
        return false;
      }
      expected_prev = r->hash;
      if (seq == chunk_end) return false;  // The new first record: kept.
      if (first_time == 0) first_time = r->time;
      info.trimmed_through_time = r->time;
      batch.Delete(kAuditCf, k);
      for (const IndexEntry& e : IndexEntries(*r)) batch.Delete(kIndexCf, e.key);
      ++next;
      return true;
    });
    CLUSTERCTL_RETURN_IF_ERROR(s);
    CLUSTERCTL_RETURN_IF_ERROR(bad);
    if (next != chunk_end) {
      return Status::Internal("refusing to trim: record " + std::to_string(next) +
                              " is missing; run clusterctl audit verify");
    }
    Result<std::optional<AuditRecord>> kept = Get(chunk_end);
    if (!kept.ok()) return kept.status();
    if (!kept->has_value()) {
      return Status::Internal("refusing to trim: record " + std::to_string(chunk_end) +
                              " is missing; run clusterctl audit verify");
    }
    info.first_kept_seq = chunk_end;
    info.first_kept_prev_hash = (*kept)->prev_hash;
    info.trimmed_count += chunk_end - first;
    info.last_trim_at = clock_.WallMs();
    batch.Put(kMetaCf, kTrimKey,
              json{{"first_kept_seq", info.first_kept_seq},
                   {"first_kept_prev_hash", info.first_kept_prev_hash},
                   {"trimmed_count", info.trimmed_count},
                   {"trimmed_through_time", info.trimmed_through_time},
                   {"last_trim_at", info.last_trim_at}}
                  .dump());
    CLUSTERCTL_RETURN_IF_ERROR(store_->Commit(&batch, /*sync=*/true));
    removed += chunk_end - first;
    expected_prev = (*kept)->prev_hash;
    first = chunk_end;
  }

  AuditRecord event;
  event.actor = actor;
  event.trigger = Name(Trigger::kManual);
  event.action = "audit_trimmed";
  event.phase = Name(Phase::kEvent);
  event.result = Name(Outcome::kOk);
  event.detail = "retention removed records " + std::to_string(from) + ".." +
                 std::to_string(before_seq - 1) + " (" + std::to_string(removed) + " records, " +
                 FormatRfc3339Ms(first_time) + " to " + FormatRfc3339Ms(info.trimmed_through_time) +
                 "); the chain is verified from record " + std::to_string(before_seq);
  Result<std::vector<AuditRecord>> appended = AppendLocked({event});
  if (!appended.ok()) return appended.status().Annotate("recording the trim");
  return removed;
}

}  // namespace clusterctl::audit

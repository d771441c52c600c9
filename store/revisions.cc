#include "store/revisions.h"

#include <nlohmann/json.hpp>

#include "base/big_endian.h"

namespace clusterctl::store {
namespace {

using nlohmann::json;
constexpr const char* kCf = "revisions";

std::string SeqKey(uint64_t seq) { return BigEndian64(seq); }

json ToJson(const RevisionRecord& r) {
  return {{"seq", r.seq},
          {"commit", r.commit},
          {"author", r.author},
          {"message", r.message},
          {"commit_time", r.commit_time},
          {"applied_at_ms", r.applied_at_ms},
          {"result", r.result},
          {"actor", r.actor},
          {"trigger", r.trigger},
          {"detail", r.detail}};
}

RevisionRecord FromJson(const json& j) {
  RevisionRecord r;
  r.seq = j.value("seq", uint64_t{0});
  r.commit = j.value("commit", "");
  r.author = j.value("author", "");
  r.message = j.value("message", "");
  r.commit_time = j.value("commit_time", int64_t{0});
  r.applied_at_ms = j.value("applied_at_ms", int64_t{0});
  r.result = j.value("result", "");
  r.actor = j.value("actor", "");
  r.trigger = j.value("trigger", "");
  r.detail = j.value("detail", "");
  return r;
}

}  // namespace

Result<RevisionRecord> RevisionLog::Record(RevisionRecord record) {
  std::lock_guard<std::mutex> g(mu_);
  uint64_t last = 0;
  Status s = store_->Scan(kCf, ScanRange{"", "", /*reverse=*/true, /*limit=*/1},
                          [&](std::string_view key, std::string_view) {
                            last = DecodeBigEndian64(key);
                            return false;
                          });
  if (!s.ok()) return s;
  record.seq = last + 1;
  size_t nl = record.message.find('\n');
  if (nl != std::string::npos) record.message.resize(nl);
  StoreBatch batch(store_);
  batch.Put(kCf, SeqKey(record.seq), ToJson(record).dump());
  CLUSTERCTL_RETURN_IF_ERROR(store_->Commit(&batch, /*sync=*/true));
  return record;
}

Result<std::vector<RevisionRecord>> RevisionLog::History(size_t limit) const {
  std::vector<RevisionRecord> out;
  Status parse_error;
  Status s = store_->Scan(kCf, ScanRange{"", "", true, limit},
                          [&](std::string_view, std::string_view value) {
                            json j = json::parse(value, nullptr, /*allow_exceptions=*/false);
                            if (j.is_discarded()) {
                              parse_error = Status::Internal("corrupt revision record");
                              return false;
                            }
                            out.push_back(FromJson(j));
                            return true;
                          });
  if (!s.ok()) return s;
  if (!parse_error.ok()) return parse_error;
  return out;
}

Result<std::optional<RevisionRecord>> RevisionLog::LastApplied() const {
  std::optional<RevisionRecord> found;
  Status s =
      store_->Scan(kCf, ScanRange{"", "", true, 0}, [&](std::string_view, std::string_view value) {
        json j = json::parse(value, nullptr, false);
        if (j.is_discarded()) return true;
        RevisionRecord r = FromJson(j);
        if (!r.Applied()) return true;
        found = r;
        return false;
      });
  if (!s.ok()) return s;
  return found;
}

}  // namespace clusterctl::store

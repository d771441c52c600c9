// RevisionLog: the revisions clusterctl/clusterd applied or rejected, in the
// "revisions" column family, newest last. Feeds `clusterctl history`,
// `GET /api/v1/revisions`, pruning (the last applied revision's desired state
// names the instances to stop when they leave git) and rollback.
//
// Thread-safety: safe for concurrent use (appends are serialised).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "desired-state/model.h"
#include "store/store.h"

namespace clusterctl::store {

struct RevisionRecord {
  uint64_t seq = 0;
  std::string commit;  // Full SHA.
  std::string author;
  std::string message;      // First line.
  int64_t commit_time = 0;  // Seconds since the epoch.
  int64_t applied_at_ms = 0;
  std::string result;   // ok | failed | partial | rejected | dry-run
  std::string actor;    // Who applied it.
  std::string trigger;  // revision | rollback | manual | ...
  std::string detail;   // Errors of a rejected revision, summary of an applied one.

  // Whether a pass acted on the revision (ok, partial or failed): it was in
  // force afterwards. Rejected revisions and dry runs were not applied.
  bool Applied() const { return result == "ok" || result == "failed" || result == "partial"; }
};

class RevisionLog {
 public:
  explicit RevisionLog(Store* store) : store_(store) {}

  // Appends one record (sync write).
  Result<RevisionRecord> Record(RevisionRecord record);

  // Newest first, at most `limit` (0 = all).
  Result<std::vector<RevisionRecord>> History(size_t limit) const;

  // The newest record whose result is ok, failed or partial (a revision that
  // was acted on); nullopt when none.
  Result<std::optional<RevisionRecord>> LastApplied() const;

 private:
  Store* store_;
  std::mutex mu_;
};

}  // namespace clusterctl::store

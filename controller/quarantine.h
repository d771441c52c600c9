// Quarantine of rolled-back revisions (clusterctl rollback), kept as a small
// JSON file in the data directory so it can be written while clusterd holds
// the store: <data_dir>/quarantine.json.
//
// While a quarantine is in force, clusterd never applies a quarantined commit
// even if the branch still points at it (the rollback push was refused by a
// protected branch): it keeps the rollback commit in force instead, until a
// commit that is neither quarantined nor the rollback arrives.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "base/status.h"

namespace clusterctl::controller {

struct Quarantine {
  std::string rollback_commit;    // The commit whose tree restores the target.
  std::string target_commit;      // The earlier applied revision restored.
  std::set<std::string> commits;  // Rolled-back commits (full SHAs).
  int64_t created_ms = 0;
};

// The git trailer that marks a rollback commit: the last paragraph of its
// message holds the line "clusterctl-rollback-to: <full sha of the target>".
inline constexpr char kRollbackTrailer[] = "clusterctl-rollback-to";

// The message of a rollback commit: `body`, then the trailer paragraph.
std::string RollbackMessage(const std::string& body, const std::string& target_commit);
// The target of a rollback commit: the value of the rollback trailer in the
// message's trailer block (its last paragraph, every line "Key: value"), or
// nullopt. A message that merely mentions the trailer elsewhere is no rollback.
std::optional<std::string> RollbackTarget(const std::string& message);

// Writes it atomically and durably (temporary file, fsync, rename, fsync of
// the directory): after a crash the file is the old one or the new one.
Status WriteQuarantine(const std::string& data_dir, const Quarantine& q);
// nullopt when there is none (or it cannot be parsed: then it is ignored).
std::optional<Quarantine> ReadQuarantine(const std::string& data_dir);
Status ClearQuarantine(const std::string& data_dir);

}  // namespace clusterctl::controller

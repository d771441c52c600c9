// The leader's journal (clusterd replicas): how a follower keeps a copy of
// what the leader did, so that after a failover every replica's audit log
// answers "what did the old leader do in its last seconds".
//
//   leader    every record it writes (intents before acting, results,
//             events) is published to the Redis stream "<key>:journal"
//             (ha::LeaderElector::Publish, refused to a deposed leader); an
//             intent that cannot be published is not acted on (fenced).
//   follower  FollowJournal copies the entries it has not seen into its own
//             audit log (AppendCopies: its own chain, the leader's fields,
//             `leader` and `fencing_token` kept, the detail prefixed with
//             "[journal of <leader> #<seq> <time>]"), links each result to
//             the copy of its intent, and remembers the intents still open.
//   takeover  a follower that becomes the leader first catches up with the
//             journal, then CloseOrphans records `interrupted` (trigger
//             recovery) for every copied intent whose result never came: the
//             old leader died, froze or lost Redis in the middle of the step.
//
// The follower's position and open intents are one JSON document in the
// store (meta "daemon/journal"), written after every batch.
//
// Thread-safety: none; the daemon calls these from its reconcile loop.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "audit/audit_log.h"
#include "base/status.h"
#include "ha/leader_election.h"
#include "store/store.h"

namespace clusterctl::controller {

struct JournalState {
  std::string last_id = "0";  // The last stream entry copied.
  // "<leader>#<seq>" of a copied intent without a copied result -> the
  // seq of its copy in this replica's log.
  std::map<std::string, uint64_t> open;
};

Result<JournalState> LoadJournalState(const store::Store& store);
Status SaveJournalState(store::Store* store, const JournalState& state);

// Copies every entry after state->last_id that `own_name` did not write.
// Returns how many records were copied; the state is saved.
Result<size_t> FollowJournal(ha::LeaderElector* elector, audit::AuditLog* audit,
                             store::Store* store, JournalState* state, const std::string& own_name);

// Records `interrupted` for every open copied intent (see above), by
// `actor`. Returns how many.
Result<size_t> CloseOrphans(audit::AuditLog* audit, store::Store* store, JournalState* state,
                            const std::string& actor);

}  // namespace clusterctl::controller

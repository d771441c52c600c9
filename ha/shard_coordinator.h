// ShardCoordinator: clusterd replicas split the machines between them
// through one Redis (config `redis.shards: auto`, docs/operations.md 9a).
//
// Membership. Each replica keeps itself in the sorted set "<prefix>:members"
// scored by the Redis time (ms) its heartbeat expires, its name in the hash
// "<prefix>:names". One Lua script per tick adds or refreshes this replica
// (now + lease_ms), removes every member whose score has passed (a replica
// that died: it stopped beating) and returns the live members. The time is
// Redis' own (TIME inside the script), so the replicas' clocks never meet.
//
// Assignment. Every replica computes the owner of each machine from the live
// member ids by rendezvous hashing (rendezvous.h): the same answer
// everywhere, only a dead replica's machines move.
//
// Exclusivity and per-machine fencing. A replica acts on machine M only
// while it holds the lease "<prefix>:shard:<M>", whose value is
// "<replica id>|<fencing token>|<replica name>" like the leader lease
// (leader_election.h). One script per tick, for every machine at once:
//   want     (this replica owns M) acquire when absent: INCR
//            "<prefix>:shard-fence" (raised to the token floor first), SET
//            PX lease; adopt with PEXPIRE when it is already ours; else
//            leave it to its holder (the previous owner releases it on its
//            next tick, or it expires).
//   keep     (M moved away, but a step on M is still in flight here: Pin)
//            renew only if ours, never acquire.
//   release  (M moved away) DEL only if ours. This replica stops acting on
//            M before the script is sent.
//   read     (anything else) only read the holder.
// The reply names the holder of every machine, so the status shows who owns
// what. Tokens come from one counter, so every new lease of a machine has a
// higher token than every earlier lease of it (tokens per machine only
// grow).
//
// The safety rule, per machine, as LeaderElector::MayAct: a lease acquired
// or renewed by a request sent at T (this replica's SteadyMs(), read before
// the round trip) is valid until T + lease - safety_margin by this
// replica's own clock; MayAct(M) is true only until then, with no call. A
// replica cut off from Redis stops acting on all its machines when its
// leases would have expired. When a replica dies, its member entry and its
// leases expire after lease_ms, and the new owners take its machines on
// their next tick: within lease + interval.
//
// Readiness across shards. After each pass, the owner publishes the
// instances of the machines it holds into the hash "<prefix>:ready:<M>"
// (field "svc@M", value "<running 0|1><ready 0|1>|<spec hash>"), written
// only while it holds M's lease, whole (DEL + HSET) and with PEXPIRE
// stale_ms: an owner that stops publishing leaves no entry behind, and an
// instance without an entry is not ready. Other replicas read it to gate
// the dependents of instances they do not own.
//
// Writes asked of any replica (docs/api.md: restart, suspend, resume, sync).
// Every replica accepts them and records them in Redis; each replica applies
// them on its next pass (TakeWrites):
//   "<prefix>:restart:<M>"  hash, field "svc@M", value the actor: a restart
//                           asked for an instance on M, taken (read and
//                           deleted, in one script) by M's lease holder
//                           only; it lives keep_ms when nobody takes it.
//   "<prefix>:suspended"    "1|<actor>" or "0|<actor>": the last suspend or
//                           resume; every replica follows it (absent: each
//                           keeps its own, e.g. after Redis lost its data).
//   "<prefix>:sync"         a counter raised by every sync; a replica that
//                           sees it change fetches the branch.
//
// Every Redis call is bounded by timeout_ms (redis_client.h) and reconnects
// after an I/O error; the password never appears in a message.
//
// Thread-safety: every method may be called from any thread. Redis calls
// are serialised by one mutex; the state has its own mutex, never held
// during I/O, so MayAct() and state() never wait for Redis.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "ha/redis_client.h"
#include "ha/ticker.h"

namespace clusterctl::ha {

struct ShardOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;
  // Keys: <prefix>:members, <prefix>:names, <prefix>:shard:<machine>,
  // <prefix>:shard-fence, <prefix>:ready:<machine>.
  std::string prefix = "clusterctl:leader";
  std::string replica_id;           // Required; no '|'.
  std::string replica_name;         // Required.
  int64_t lease_ms = 15000;         // Member heartbeat and machine leases.
  int64_t interval_ms = 5000;       // Start(): between ticks.
  int64_t safety_margin_ms = 2000;  // MayAct() ends this long before a lease would.
  int64_t timeout_ms = 1000;        // Per Redis call.
  const Clock* clock = nullptr;     // SteadyMs(). Default: RealClock().
};

// kInvalid naming the first bad option (as ValidateLeaderElectionOptions,
// with interval_ms in the place of the renew interval).
Status ValidateShardOptions(const ShardOptions& options);

struct ShardMember {
  std::string id, name;
  bool operator==(const ShardMember&) const = default;
};

struct ShardHolder {
  std::string replica_id, replica_name;
  int64_t token = 0;
};

struct ShardState {
  std::vector<ShardMember> members;  // Live, as the last successful tick saw them; by id.
  // Machine -> the replica id that should own it (rendezvous over members).
  std::map<std::string, std::string> assigned;
  // Machine -> who holds its lease, as the last tick saw it (absent: nobody).
  std::map<std::string, ShardHolder> holders;
  // Machines this replica may act on now (MayAct), with their tokens.
  std::map<std::string, int64_t> held;
  Status last_status;
};

// One instance's readiness as its owner published it.
struct SharedReadiness {
  bool running = false;
  bool ready = false;
  std::string spec_hash;
};

// The shared writes as one TakeWrites() saw them.
struct SharedWrites {
  bool has_suspension = false;  // "<prefix>:suspended" exists.
  bool suspended = false;
  std::string suspension_actor;
  int64_t sync_generation = 0;
  // Instance key -> actor: the restarts taken for machines this replica
  // holds (deleted from Redis: this replica applies them).
  std::map<std::string, std::string> restarts;
};

class ShardCoordinator {
 public:
  static Result<std::unique_ptr<ShardCoordinator>> Create(ShardOptions options);
  // Stop()s the thread. Leases are not released (they expire) unless
  // Leave() was called.
  ~ShardCoordinator();
  ShardCoordinator(const ShardCoordinator&) = delete;
  ShardCoordinator& operator=(const ShardCoordinator&) = delete;

  // The machines to share out (the desired state's, and the previous
  // revision's while they are pruned). Takes effect on the next Tick().
  void SetMachines(std::set<std::string> machines);
  // Machines with a step in flight here: their leases are kept (renewed if
  // still ours, never released) while pinned, even after they moved away, so
  // the new owner cannot act while this one does. Replaces the pinned set.
  void Pin(std::set<std::string> machines);

  // One step: heartbeat and member list, then acquire, renew and release the
  // machine leases. OK when Redis answered both scripts. An error changes no
  // lease (they lapse by the clock).
  Status Tick();

  // True when this replica holds machine's lease and, by its own clock, it
  // is valid; *token: its fencing token then. No Redis call.
  bool MayAct(const std::string& machine, int64_t* token = nullptr) const;
  // Machines MayAct() is true for now.
  std::set<std::string> Held() const;
  ShardState state() const;

  // Publishes the readiness of instances on machines this replica holds
  // (machine -> instance key -> readiness); entries of machines it does not
  // hold are dropped by the script. Each machine's hash lives stale_ms.
  Status PublishReadiness(
      const std::map<std::string, std::map<std::string, SharedReadiness>>& by_machine,
      int64_t stale_ms);
  // What the owners published for `machines`: instance key -> readiness.
  Result<std::map<std::string, SharedReadiness>> ReadReadiness(
      const std::set<std::string>& machines);

  // Records restarts (instance key "svc@M" -> machine M) for M's holder,
  // with `actor`; each request lives keep_ms unless taken.
  Status RequestRestarts(const std::map<std::string, std::string>& key_to_machine,
                         const std::string& actor, int64_t keep_ms);
  // Records the cluster-wide suspension (or resumption) by `actor`.
  Status ShareSuspension(bool suspended, const std::string& actor);
  // Raises the sync counter: every replica fetches the branch.
  Status RequestSync();
  // Reads the suspension and the sync counter, and takes the restart
  // requests of the machines this replica holds (the script checks each
  // lease is still this replica's).
  Result<SharedWrites> TakeWrites();

  // The next token acquired is above `token` (a Redis that lost the counter).
  void RaiseTokenFloor(int64_t token);

  // Leaves: stops acting on every machine, deletes the leases still ours and
  // this replica's member entry, so the others take over at once.
  Status Leave();

  // Runs Tick() every interval_ms on a thread until Stop().
  void Start();
  void Stop();

  const std::string& replica_id() const { return options_.replica_id; }
  const std::string& replica_name() const { return options_.replica_name; }

 private:
  explicit ShardCoordinator(ShardOptions options);
  Status Beat(std::vector<ShardMember>* members);
  std::vector<std::string> HoldArgs() const;
  Status Hold(const std::vector<ShardMember>& members, int64_t sent_ms);
  // Runs a script whose reply is an even array of strings; `what` names it
  // in the error.
  Result<std::vector<std::string>> CallForPairs(const std::vector<std::string>& args,
                                                const char* what);

  const ShardOptions options_;
  const Clock& clock_;

  std::mutex io_mu_;  // Serialises Redis calls; guards redis_.
  RedisClient redis_;

  mutable std::mutex mu_;  // Guards the state below; never held during I/O.
  std::set<std::string> machines_;
  std::set<std::string> pinned_;
  struct Lease {
    int64_t token = 0;
    int64_t valid_until_ms = 0;
  };
  std::map<std::string, Lease> held_;
  std::vector<ShardMember> members_;
  std::map<std::string, ShardHolder> holders_;
  int64_t token_floor_ = 0;
  Status last_status_;

  Ticker ticker_;  // Start(), Stop().
};

}  // namespace clusterctl::ha

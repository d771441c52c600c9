// LeaderElector: leader election between clusterd replicas through one Redis,
// with a fencing token per lease.
//
// The lease is one Redis key (default "clusterctl:leader") whose value names
// its holder: "<replica id>|<fencing token>|<replica name>". The replica id
// is a random 128-bit hex string per LeaderElector (so a restarted process is
// a new owner), the name says where it runs ("host:pid").
//
//   acquire  one Lua script, atomic in Redis: when the key is absent,
//            INCR "<key>:fence" (the fencing token: it only grows, across all
//            acquisitions by all replicas), then SET the key to the owner
//            value with PX <lease>: the same as SET NX PX followed by INCR,
//            with no moment where the key exists without its token. When the
//            key holds this elector's own id (an earlier acquire whose reply
//            was lost) it is adopted with PEXPIRE. Either way the reply names
//            the holder, so a follower learns who leads without another call.
//   renew    compare-and-set script: PEXPIRE only if GET equals our value.
//   release  compare-and-set script: DEL only if GET equals our value.
// So a replica never extends or deletes a lease it does not hold, and a
// leader whose key expired and was taken learns it on its next renew.
//
// Tokens after a Redis restart: a Redis without persistence forgets the fence
// counter. Each elector remembers the highest token it has seen (its own and
// every holder it was told of) and the acquire script first raises the
// counter to that floor, so a surviving replica never gets a token below one
// it knew. A restarted replica can seed the floor from its own records with
// RaiseTokenFloor(); a Redis with appendonly persistence needs none of this.
//
// The safety rule (MayAct): a lease acquired or renewed by a request SENT at
// T (this elector's clock, SteadyMs(), read before the round trip) is valid
// until T + lease - safety_margin by this replica's own clock. MayAct() is
// true only while the lease is held and that time has not come; it makes no
// call, so a leader cut off from Redis stops acting when its lease would have
// expired, whether or not Redis ever answers again. A failed renew (timeout,
// connection lost) extends nothing. The margin covers clock rate differences
// between this host and Redis and the time between a MayAct() check and the
// action it allows. Every action carries the token; the store or machine that
// receives it can refuse a token lower than one it has seen (fencing).
//
// Driving it: the daemon calls Tick() from its own loop (one step: renew when
// leading, else try to acquire), or Start() runs a thread that ticks every
// renew_interval while leading and every retry_interval otherwise; Stop()
// ends it within one Tick (bounded by the command timeout). Every Redis call
// has a deadline of `timeout_ms` for connect, AUTH and the command together
// (redisConnectWithTimeout, then redisSetTimeout with the time left), so a
// frozen or unreachable Redis never blocks a caller longer than that. After
// any I/O error the connection is dropped and the next call reconnects.
//
// Errors: kUnavailable (cannot connect, connection lost), kTimeout (no answer
// in time), kPermission (AUTH refused, or a secured Redis and no password),
// kInternal (an unexpected reply), kInvalid (options, from Create). The
// password never appears in a message.
//
// hiredis writes with write(2): a caller of Tick(), Leader() or Release() on
// its own thread must ignore or block SIGPIPE (clusterd ignores it); the
// Start() thread blocks it itself.
//
// Thread-safety: every method may be called from any thread. Redis calls are
// serialised by one mutex; the lease state has its own mutex that is never
// held during I/O, so MayAct(), state() and role() never wait for Redis.
// Redis Cluster is not supported: the lease and fence keys are one instance's
// (Redis' single-instance lock pattern).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "ha/redis_client.h"
#include "ha/ticker.h"

namespace clusterctl::ha {

struct LeaderElectionOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  // AUTH password, already read by the caller (base/secret_file.h). Default:
  // empty = no AUTH.
  std::string password;
  // The lease key; the fencing counter is "<key>:fence".
  std::string key = "clusterctl:leader";
  // Unique owner id. Default: empty = 32 random hex digits per elector.
  // Must not contain '|'.
  std::string replica_id;
  // What followers call the leader. Default: empty = "<hostname>:<pid>".
  std::string replica_name;
  int64_t lease_ms = 15000;
  int64_t renew_interval_ms = 5000;  // Start(): between renewals while leading.
  int64_t retry_interval_ms = 2000;  // Start(): between tries while following or failing.
  int64_t safety_margin_ms = 2000;   // MayAct() ends this long before the lease would.
  int64_t timeout_ms = 1000;         // Connect + AUTH + command, per call.
  const Clock* clock = nullptr;      // SteadyMs() for the lease. Default: RealClock().
};

// kInvalid naming the first bad option: a non-positive duration, a margin not
// below the lease, a renew interval not below lease - margin, an empty key or
// host, a port outside 1..65535, a '|' in the replica id.
Status ValidateLeaderElectionOptions(const LeaderElectionOptions& options);

enum class Role { kFollower, kLeader };
const char* RoleName(Role role);  // "follower", "leader"

// Who holds a lease, as its value says.
struct LeaderInfo {
  std::string replica_id;
  std::string replica_name;
  int64_t token = 0;
};

// The owner value "<id>|<token>|<name>" and back (nullopt when malformed).
std::string OwnerValue(const LeaderInfo& info);
std::optional<LeaderInfo> ParseOwnerValue(const std::string& value);

// A snapshot of the elector's state.
struct LeaseState {
  Role role = Role::kFollower;  // kLeader exactly when MayAct() is true.
  // The token of the lease held, or of the last one held; 0 before the first.
  int64_t token = 0;
  // SteadyMs() until which this replica may act; 0 when it holds no lease.
  int64_t valid_until_ms = 0;
  // The holder seen by the last successful Tick() or Leader(), if any.
  std::optional<LeaderInfo> leader;
  // The last Tick()'s status.
  Status last_status;
};

class LeaderElector {
 public:
  // An elector that has not talked to Redis yet (a follower), or kInvalid.
  static Result<std::unique_ptr<LeaderElector>> Create(LeaderElectionOptions options);
  // Stop()s the thread. Does NOT release the lease: it expires after
  // lease_ms unless Release() was called (a clean shutdown calls it).
  ~LeaderElector();
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // One step: renew when holding the lease, else (or when the renew finds it
  // lost) try to acquire it. OK when Redis answered, whatever the role; the
  // role and token are in state(). An error changes no lease, except that a
  // lease seen lost is dropped.
  Status Tick();

  // True when this replica holds the lease and, by its own clock, it is
  // valid (see the safety rule above); sets *token to its fencing token
  // then. No Redis call.
  bool MayAct(int64_t* token = nullptr) const;
  LeaseState state() const;
  Role role() const { return MayAct() ? Role::kLeader : Role::kFollower; }

  // The next token this elector acquires is above `token` (see above).
  void RaiseTokenFloor(int64_t token);

  // Who holds the lease now (GET), nullopt when nobody does.
  Result<std::optional<LeaderInfo>> Leader();

  // The leader's journal, a Redis stream "<key>:journal" (capped at about
  // 100,000 entries) that the followers copy (controller/daemon.h):
  // Publish appends `payload` only while the lease key still holds this
  // replica's value and MayAct() is true, in one script, so a deposed
  // leader cannot append. Returns the entry id; kConflict when the lease is
  // not held, kUnavailable/kTimeout when Redis does not answer.
  Result<std::string> Publish(const std::string& payload);
  struct JournalEntry {
    std::string id;  // Redis stream id, "<ms>-<n>".
    std::string payload;
  };
  // At most `count` entries after `after_id` ("0": from the first), oldest
  // first.
  Result<std::vector<JournalEntry>> ReadJournal(const std::string& after_id, size_t count);

  // Gives the lease up: this replica stops acting at once, then the key is
  // deleted if it is still ours. OK when nothing was held.
  Status Release();

  // Runs Tick() on a thread (see above) until Stop(). Start() on a running
  // elector does nothing; Stop() is idempotent.
  void Start();
  void Stop();

  const std::string& replica_id() const { return options_.replica_id; }
  const std::string& replica_name() const { return options_.replica_name; }

 private:
  explicit LeaderElector(LeaderElectionOptions options);

  Status Renew(const std::string& held, int64_t sent_ms, bool* lost);
  Status Acquire(int64_t sent_ms);
  void Hold(const std::string& value, int64_t token, int64_t sent_ms);

  const LeaderElectionOptions options_;
  const Clock& clock_;

  std::mutex io_mu_;  // Serialises Redis calls; guards redis_.
  RedisClient redis_;

  mutable std::mutex mu_;   // Guards the lease state; never held during I/O.
  std::string held_value_;  // Our owner value while we hold (or may hold) the key.
  int64_t token_ = 0;
  int64_t valid_until_ms_ = 0;
  std::optional<LeaderInfo> leader_;
  int64_t token_floor_ = 0;  // The highest token seen.
  Status last_status_;

  Ticker ticker_;  // Start(), Stop().
};

}  // namespace clusterctl::ha

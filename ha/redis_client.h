// RedisClient: one hiredis connection with a deadline on every call, shared
// by the leader election (leader_election.h) and the shards
// (shard_coordinator.h).
//
// Call() connects (and AUTHs) first when there is no connection; connect,
// AUTH and the command together have `timeout_ms` (redisConnectWithTimeout,
// then redisSetTimeout with the time left), so a frozen or unreachable Redis
// never blocks a caller longer than that. After any I/O error the connection
// is dropped and the next call reconnects.
//
// Errors: kUnavailable (cannot connect, connection lost), kTimeout (no answer
// in time), kPermission (AUTH refused, or a secured Redis and no password),
// kInternal (an error reply). The password never appears in a message.
//
// hiredis writes with write(2): the calling thread must ignore or block
// SIGPIPE.
//
// Thread-safety: none; the owner serialises calls.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

struct redisContext;  // hiredis, only in redis_client.cc
struct redisReply;

namespace clusterctl::ha {

struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;  // Empty: no AUTH.
  int64_t timeout_ms = 1000;
};

// One hiredis reply, freed with it.
struct RedisReply {
  explicit RedisReply(redisReply* reply) : r(reply) {}
  ~RedisReply();
  RedisReply(const RedisReply&) = delete;
  RedisReply& operator=(const RedisReply&) = delete;
  std::string text() const;  // The string of a string/status/error reply, else "".
  redisReply* r;
};

class RedisClient {
 public:
  explicit RedisClient(RedisEndpoint endpoint) : endpoint_(std::move(endpoint)) {}
  ~RedisClient() { Disconnect(); }
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Runs one command within timeout_ms (see above). An error reply is
  // kInternal (kPermission for NOAUTH/WRONGPASS), its text redacted.
  Result<std::unique_ptr<RedisReply>> Call(const std::vector<std::string>& args);
  void Disconnect();
  // "redis <host>:<port>", for messages.
  std::string where() const;

 private:
  Status Connect(SteadyTime deadline);
  Status Failure(const std::string& what, SteadyTime deadline);

  const RedisEndpoint endpoint_;
  redisContext* context_ = nullptr;
};

// Blocks SIGPIPE on the calling thread (a thread that only talks to Redis):
// a write to a connection Redis closed then fails instead of ending the
// process.
void BlockSigpipe();

// Helpers for reading replies.
bool IsString(const redisReply* r);
std::string StringOf(const redisReply* r);  // "" unless a string reply.

}  // namespace clusterctl::ha

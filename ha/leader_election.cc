#include "ha/leader_election.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <random>
#include <utility>

#include "base/secret_file.h"

namespace clusterctl::ha {
namespace {

// KEYS[1] lease, KEYS[2] fence; ARGV[1] id, ARGV[2] name, ARGV[3] lease ms,
// ARGV[4] the token floor (the fence counter is raised to it before INCR).
// Returns {1, value} when this id holds the lease now, else {0, holder's value}.
constexpr char kAcquireScript[] = R"lua(
local v = redis.call('GET', KEYS[1])
if v then
  local mine = ARGV[1] .. '|'
  if string.sub(v, 1, #mine) == mine then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return {1, v}
  end
  return {0, v}
end
if tonumber(ARGV[4]) > (tonumber(redis.call('GET', KEYS[2])) or 0) then
  redis.call('SET', KEYS[2], ARGV[4])
end
local token = redis.call('INCR', KEYS[2])
v = ARGV[1] .. '|' .. token .. '|' .. ARGV[2]
redis.call('SET', KEYS[1], v, 'PX', ARGV[3])
return {1, v}
)lua";

// KEYS[1] lease; ARGV[1] our value, ARGV[2] lease ms. 1 when renewed.
constexpr char kRenewScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
)lua";

// KEYS[1] lease, KEYS[2] journal; ARGV[1] our value, ARGV[2] the payload,
// ARGV[3] the cap. The entry id, or an error when the lease is not ours.
constexpr char kPublishScript[] = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED the lease is not held by this replica')
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'r', ARGV[2])
)lua";

// KEYS[1] lease; ARGV[1] our value. 1 when deleted.
constexpr char kReleaseScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
)lua";

std::string RandomHex128() {
  std::random_device rd;
  std::string hex;
  for (int i = 0; i < 4; ++i) {
    char part[9];
    std::snprintf(part, sizeof part, "%08x", static_cast<unsigned>(rd()));
    hex += part;
  }
  return hex;
}

std::string DefaultName() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host[0] ? host : "localhost") + ":" + std::to_string(getpid());
}

bool IsDigits(const std::string& s) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

Status ValidateLeaderElectionOptions(const LeaderElectionOptions& o) {
  auto bad = [](const std::string& m) { return Status::Invalid("leader election: " + m); };
  if (o.host.empty()) return bad("redis host is empty");
  if (o.port < 1 || o.port > 65535) return bad("redis port " + std::to_string(o.port));
  if (o.key.empty()) return bad("lease key is empty");
  if (o.replica_id.find('|') != std::string::npos) return bad("replica id contains '|'");
  if (o.lease_ms <= 0 || o.renew_interval_ms <= 0 || o.retry_interval_ms <= 0 ||
      o.timeout_ms <= 0 || o.safety_margin_ms < 0) {
    return bad("durations must be positive (the safety margin may be 0)");
  }
  if (o.safety_margin_ms >= o.lease_ms) {
    return bad("safety margin " + std::to_string(o.safety_margin_ms) +
               " ms is not below the lease " + std::to_string(o.lease_ms) + " ms");
  }
  if (o.renew_interval_ms >= o.lease_ms - o.safety_margin_ms) {
    return bad("renew interval " + std::to_string(o.renew_interval_ms) +
               " ms is not below lease - safety margin (" +
               std::to_string(o.lease_ms - o.safety_margin_ms) + " ms)");
  }
  return Status::Ok();
}

const char* RoleName(Role role) { return role == Role::kLeader ? "leader" : "follower"; }

std::string OwnerValue(const LeaderInfo& info) {
  return info.replica_id + "|" + std::to_string(info.token) + "|" + info.replica_name;
}

std::optional<LeaderInfo> ParseOwnerValue(const std::string& value) {
  const size_t a = value.find('|');
  if (a == std::string::npos) return std::nullopt;
  const size_t b = value.find('|', a + 1);
  if (b == std::string::npos) return std::nullopt;
  const std::string token = value.substr(a + 1, b - a - 1);
  if (!IsDigits(token)) return std::nullopt;
  return LeaderInfo{value.substr(0, a), value.substr(b + 1), std::stoll(token)};
}

Result<std::unique_ptr<LeaderElector>> LeaderElector::Create(LeaderElectionOptions options) {
  if (options.replica_id.empty()) options.replica_id = RandomHex128();
  if (options.replica_name.empty()) options.replica_name = DefaultName();
  CLUSTERCTL_RETURN_IF_ERROR(ValidateLeaderElectionOptions(options));
  return std::unique_ptr<LeaderElector>(new LeaderElector(std::move(options)));
}

LeaderElector::LeaderElector(LeaderElectionOptions options)
    : options_(std::move(options)),
      clock_(ClockOr(options_.clock)),
      redis_(RedisEndpoint{options_.host, options_.port, options_.password, options_.timeout_ms}) {}

LeaderElector::~LeaderElector() {
  Stop();
  std::lock_guard<std::mutex> io(io_mu_);
  redis_.Disconnect();
}

// ---------------------------------------------------------------- the lease

void LeaderElector::Hold(const std::string& value, int64_t token, int64_t sent_ms) {
  held_value_ = value;
  token_ = token;
  valid_until_ms_ = sent_ms + options_.lease_ms - options_.safety_margin_ms;
}

Status LeaderElector::Renew(const std::string& held, int64_t sent_ms, bool* lost) {
  auto reply = redis_.Call(
      {"EVAL", kRenewScript, "1", options_.key, held, std::to_string(options_.lease_ms)});
  if (!reply.ok()) return reply.status();
  const redisReply* r = (*reply)->r;
  std::lock_guard<std::mutex> l(mu_);
  if (held_value_ != held) return Status::Ok();  // Released meanwhile.
  if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
    Hold(held, token_, sent_ms);
    return Status::Ok();
  }
  held_value_.clear();
  valid_until_ms_ = 0;
  *lost = true;
  return Status::Ok();
}

Status LeaderElector::Acquire(int64_t sent_ms) {
  int64_t token_floor = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    token_floor = token_floor_;
  }
  auto reply = redis_.Call({"EVAL", kAcquireScript, "2", options_.key, options_.key + ":fence",
                            options_.replica_id, options_.replica_name,
                            std::to_string(options_.lease_ms), std::to_string(token_floor)});
  if (!reply.ok()) return reply.status();
  const redisReply* r = (*reply)->r;
  std::optional<LeaderInfo> holder;
  if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
      r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_STRING) {
    holder = ParseOwnerValue(std::string(r->element[1]->str, r->element[1]->len));
  }
  if (!holder) {
    return Status::Internal(redis_.where() + ": unexpected reply to the acquire script (is " +
                            options_.key + " written by something else?)");
  }
  std::lock_guard<std::mutex> l(mu_);
  leader_ = holder;
  token_floor_ = std::max(token_floor_, holder->token);
  if (r->element[0]->integer == 1 && holder->replica_id == options_.replica_id) {
    Hold(OwnerValue(*holder), holder->token, sent_ms);
  }
  return Status::Ok();
}

Status LeaderElector::Tick() {
  std::lock_guard<std::mutex> io(io_mu_);
  std::string held;
  {
    std::lock_guard<std::mutex> l(mu_);
    held = held_value_;
  }
  Status s;
  bool lost = held.empty();
  // The send time of each request: the lease it gets runs from no earlier.
  if (!held.empty()) s = Renew(held, clock_.SteadyMs(), &lost);
  if (s.ok() && lost) s = Acquire(clock_.SteadyMs());
  std::lock_guard<std::mutex> l(mu_);
  last_status_ = s;
  return s;
}

void LeaderElector::RaiseTokenFloor(int64_t token) {
  std::lock_guard<std::mutex> l(mu_);
  token_floor_ = std::max(token_floor_, token);
}

bool LeaderElector::MayAct(int64_t* token) const {
  std::lock_guard<std::mutex> l(mu_);
  const bool may = !held_value_.empty() && clock_.SteadyMs() < valid_until_ms_;
  if (may && token != nullptr) *token = token_;
  return may;
}

LeaseState LeaderElector::state() const {
  std::lock_guard<std::mutex> l(mu_);
  LeaseState s;
  const bool may = !held_value_.empty() && clock_.SteadyMs() < valid_until_ms_;
  s.role = may ? Role::kLeader : Role::kFollower;
  s.token = token_;
  s.valid_until_ms = held_value_.empty() ? 0 : valid_until_ms_;
  s.leader = leader_;
  s.last_status = last_status_;
  return s;
}

Result<std::optional<LeaderInfo>> LeaderElector::Leader() {
  std::lock_guard<std::mutex> io(io_mu_);
  auto reply = redis_.Call({"GET", options_.key});
  if (!reply.ok()) return reply.status();
  std::optional<LeaderInfo> holder;
  if ((*reply)->r->type == REDIS_REPLY_STRING) holder = ParseOwnerValue((*reply)->text());
  std::lock_guard<std::mutex> l(mu_);
  leader_ = holder;
  if (holder) token_floor_ = std::max(token_floor_, holder->token);
  return holder;
}

Status LeaderElector::Release() {
  std::string held;
  {
    std::lock_guard<std::mutex> l(mu_);
    held.swap(held_value_);  // Stop acting first.
    valid_until_ms_ = 0;
  }
  if (held.empty()) return Status::Ok();
  std::lock_guard<std::mutex> io(io_mu_);
  auto reply = redis_.Call({"EVAL", kReleaseScript, "1", options_.key, held});
  return reply.status();
}

// --------------------------------------------------------------- journal

Result<std::string> LeaderElector::Publish(const std::string& payload) {
  std::string held;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!held_value_.empty() && clock_.SteadyMs() < valid_until_ms_) held = held_value_;
  }
  if (held.empty()) return Status::Conflict("this replica does not hold the leader lease");
  std::lock_guard<std::mutex> io(io_mu_);
  auto reply = redis_.Call({"EVAL", kPublishScript, "2", options_.key, options_.key + ":journal",
                            held, payload, "100000"});
  if (!reply.ok()) {
    if (reply.status().message().find("FENCED") != std::string::npos) {
      return Status::Conflict("the leader lease is no longer held by this replica");
    }
    return reply.status();
  }
  if ((*reply)->r->type != REDIS_REPLY_STRING) return Status::Internal("XADD: unexpected reply");
  return (*reply)->text();
}

Result<std::vector<LeaderElector::JournalEntry>> LeaderElector::ReadJournal(
    const std::string& after_id, size_t count) {
  std::lock_guard<std::mutex> io(io_mu_);
  auto reply =
      redis_.Call({"XRANGE", options_.key + ":journal", after_id == "0" ? "-" : "(" + after_id, "+",
                   "COUNT", std::to_string(count)});
  if (!reply.ok()) return reply.status();
  const redisReply* r = (*reply)->r;
  if (r->type != REDIS_REPLY_ARRAY) return Status::Internal("XRANGE: unexpected reply");
  std::vector<JournalEntry> out;
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply* e = r->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY) {
      return Status::Internal("XRANGE: unexpected entry");
    }
    JournalEntry je;
    je.id.assign(e->element[0]->str, e->element[0]->len);
    const redisReply* fields = e->element[1];
    for (size_t f = 0; f + 1 < fields->elements; f += 2) {
      if (fields->element[f + 1]->type == REDIS_REPLY_STRING) {
        je.payload.assign(fields->element[f + 1]->str, fields->element[f + 1]->len);
      }
    }
    out.push_back(std::move(je));
  }
  return out;
}

// ---------------------------------------------------------------- the thread

void LeaderElector::Start() {
  ticker_.Start([this] {
    const bool renewing = Tick().ok() && MayAct();
    return renewing ? options_.renew_interval_ms : options_.retry_interval_ms;
  });
}

void LeaderElector::Stop() { ticker_.Stop(); }

}  // namespace clusterctl::ha

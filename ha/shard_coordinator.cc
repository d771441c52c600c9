#include "ha/shard_coordinator.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <utility>

#include "ha/leader_election.h"
#include "ha/rendezvous.h"

namespace clusterctl::ha {
namespace {

// KEYS[1] members (sorted set), KEYS[2] names (hash); ARGV[1] id, ARGV[2]
// name, ARGV[3] lease ms. Adds or refreshes this replica, drops the expired,
// returns {id1, name1, id2, name2, ...} of the live members.
constexpr char kBeatScript[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
end
return out
)lua";

// KEYS[1] fence; ARGV[1] id, ARGV[2] name, ARGV[3] lease ms, ARGV[4] token
// floor, ARGV[5] prefix, then pairs (machine, mode): w acquire or renew,
// k renew only if ours, r delete if ours. Returns the holder's value of each
// machine after the script ('' when none), in order.
constexpr char kHoldScript[] = R"lua(
local mine = ARGV[1] .. '|'
local floor_done = false
local out = {}
for i = 6, #ARGV, 2 do
  local key = ARGV[5] .. ':shard:' .. ARGV[i]
  local mode = ARGV[i + 1]
  local v = redis.call('GET', key)
  local ours = v and string.sub(v, 1, #mine) == mine
  if mode == 'w' or mode == 'k' then
    if ours then
      redis.call('PEXPIRE', key, ARGV[3])
    elseif (not v) and mode == 'w' then
      if not floor_done then
        if tonumber(ARGV[4]) > (tonumber(redis.call('GET', KEYS[1])) or 0) then
          redis.call('SET', KEYS[1], ARGV[4])
        end
        floor_done = true
      end
      local token = redis.call('INCR', KEYS[1])
      v = ARGV[1] .. '|' .. token .. '|' .. ARGV[2]
      redis.call('SET', key, v, 'PX', ARGV[3])
    end
  elseif mode == 'r' and ours then
    redis.call('DEL', key)
    v = false
  end
  out[#out + 1] = v or ''
end
return out
)lua";

// ARGV[1] id, ARGV[2] prefix, ARGV[3] stale ms, then groups (machine, n,
// field1, value1, ... fieldn, valuen). Rewrites each machine's hash while
// its lease is ours. Returns how many machines were written.
constexpr char kPublishScript[] = R"lua(
local mine = ARGV[1] .. '|'
local written = 0
local i = 4
while i <= #ARGV do
  local m = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  local v = redis.call('GET', ARGV[2] .. ':shard:' .. m)
  if v and string.sub(v, 1, #mine) == mine then
    local key = ARGV[2] .. ':ready:' .. m
    redis.call('DEL', key)
    for j = 0, n - 1 do
      redis.call('HSET', key, ARGV[i + 2 * j], ARGV[i + 2 * j + 1])
    end
    if n > 0 then redis.call('PEXPIRE', key, ARGV[3]) end
    written = written + 1
  end
  i = i + 2 * n
end
return written
)lua";

// ARGV[1] prefix, then machines. {field1, value1, ...} of their hashes.
constexpr char kReadScript[] = R"lua(
local out = {}
for i = 2, #ARGV do
  local h = redis.call('HGETALL', ARGV[1] .. ':ready:' .. ARGV[i])
  for j = 1, #h do out[#out + 1] = h[j] end
end
return out
)lua";

// KEYS[1] members, KEYS[2] names; ARGV[1] id.
constexpr char kLeaveScript[] = R"lua(
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
)lua";

// ARGV[1] prefix, ARGV[2] keep ms, ARGV[3] actor, then pairs (machine,
// instance key): records each restart in "<prefix>:restart:<machine>".
constexpr char kRequestRestartsScript[] = R"lua(
for i = 4, #ARGV, 2 do
  local key = ARGV[1] .. ':restart:' .. ARGV[i]
  redis.call('HSET', key, ARGV[i + 1], ARGV[3])
  redis.call('PEXPIRE', key, ARGV[2])
end
return #ARGV
)lua";

// ARGV[1] id, ARGV[2] prefix, then machines. Returns {suspended value or '',
// sync counter or '0', key1, actor1, ...}: the restart requests of every
// machine whose lease is this replica's, deleted once read.
constexpr char kTakeWritesScript[] = R"lua(
local mine = ARGV[1] .. '|'
local out = {redis.call('GET', ARGV[2] .. ':suspended') or '',
             redis.call('GET', ARGV[2] .. ':sync') or '0'}
for i = 3, #ARGV do
  local lease = redis.call('GET', ARGV[2] .. ':shard:' .. ARGV[i])
  if lease and string.sub(lease, 1, #mine) == mine then
    local key = ARGV[2] .. ':restart:' .. ARGV[i]
    local fields = redis.call('HGETALL', key)
    for _, f in ipairs(fields) do out[#out + 1] = f end
    redis.call('DEL', key)
  end
end
return out
)lua";

Status Unexpected(const RedisClient& redis, const char* what) {
  return Status::Internal(redis.where() + ": unexpected reply to the " + what +
                          " script (are the shard keys written by something else?)");
}

// The strings of an array reply; false when it is not an array of strings.
bool Strings(const redisReply* r, std::vector<std::string>* out) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return false;
  for (size_t i = 0; i < r->elements; ++i) {
    if (!IsString(r->element[i])) return false;
    out->push_back(StringOf(r->element[i]));
  }
  return true;
}

}  // namespace

Status ValidateShardOptions(const ShardOptions& o) {
  auto bad = [](const std::string& m) { return Status::Invalid("shards: " + m); };
  if (o.host.empty()) return bad("redis host is empty");
  if (o.port < 1 || o.port > 65535) return bad("redis port " + std::to_string(o.port));
  if (o.prefix.empty()) return bad("key prefix is empty");
  if (o.replica_id.empty() || o.replica_id.find('|') != std::string::npos) {
    return bad("replica id is empty or contains '|'");
  }
  if (o.replica_name.empty()) return bad("replica name is empty");
  if (o.lease_ms <= 0 || o.interval_ms <= 0 || o.timeout_ms <= 0 || o.safety_margin_ms < 0) {
    return bad("durations must be positive (the safety margin may be 0)");
  }
  if (o.safety_margin_ms >= o.lease_ms) {
    return bad("safety margin " + std::to_string(o.safety_margin_ms) +
               " ms is not below the lease " + std::to_string(o.lease_ms) + " ms");
  }
  if (o.interval_ms >= o.lease_ms - o.safety_margin_ms) {
    return bad("interval " + std::to_string(o.interval_ms) +
               " ms is not below lease - safety margin (" +
               std::to_string(o.lease_ms - o.safety_margin_ms) + " ms)");
  }
  return Status::Ok();
}

Result<std::unique_ptr<ShardCoordinator>> ShardCoordinator::Create(ShardOptions options) {
  CLUSTERCTL_RETURN_IF_ERROR(ValidateShardOptions(options));
  return std::unique_ptr<ShardCoordinator>(new ShardCoordinator(std::move(options)));
}

ShardCoordinator::ShardCoordinator(ShardOptions options)
    : options_(std::move(options)),
      clock_(ClockOr(options_.clock)),
      redis_(RedisEndpoint{options_.host, options_.port, options_.password, options_.timeout_ms}) {}

ShardCoordinator::~ShardCoordinator() {
  Stop();
  std::lock_guard<std::mutex> io(io_mu_);
  redis_.Disconnect();
}

void ShardCoordinator::SetMachines(std::set<std::string> machines) {
  std::lock_guard<std::mutex> l(mu_);
  machines_ = std::move(machines);
}

void ShardCoordinator::Pin(std::set<std::string> machines) {
  std::lock_guard<std::mutex> l(mu_);
  pinned_ = std::move(machines);
}

void ShardCoordinator::RaiseTokenFloor(int64_t token) {
  std::lock_guard<std::mutex> l(mu_);
  token_floor_ = std::max(token_floor_, token);
}

Status ShardCoordinator::Beat(std::vector<ShardMember>* members) {
  auto reply = redis_.Call({"EVAL", kBeatScript, "2", options_.prefix + ":members",
                            options_.prefix + ":names", options_.replica_id, options_.replica_name,
                            std::to_string(options_.lease_ms)});
  if (!reply.ok()) return reply.status();
  std::vector<std::string> flat;
  if (!Strings((*reply)->r, &flat) || flat.size() % 2 != 0) return Unexpected(redis_, "heartbeat");
  for (size_t i = 0; i + 1 < flat.size(); i += 2) members->push_back({flat[i], flat[i + 1]});
  // In id order: Redis lists them by heartbeat expiry, which changes.
  std::sort(members->begin(), members->end(),
            [](const ShardMember& x, const ShardMember& y) { return x.id < y.id; });
  return Status::Ok();
}

// The hold script's arguments before the machines; the token floor is
// filled in under mu_.
std::vector<std::string> ShardCoordinator::HoldArgs() const {
  return {"EVAL",
          kHoldScript,
          "1",
          options_.prefix + ":shard-fence",
          options_.replica_id,
          options_.replica_name,
          std::to_string(options_.lease_ms),
          "0",
          options_.prefix};
}

Status ShardCoordinator::Hold(const std::vector<ShardMember>& members, int64_t sent_ms) {
  std::vector<std::string> ids;
  for (const ShardMember& m : members) ids.push_back(m.id);
  std::vector<std::string> args = HoldArgs();
  std::vector<std::string> order;
  {
    std::lock_guard<std::mutex> l(mu_);
    args[7] = std::to_string(token_floor_);
    std::set<std::string> all = machines_;
    for (const auto& [m, _] : held_) all.insert(m);
    for (const std::string& m : all) {
      const bool want = machines_.count(m) && RendezvousOwner(m, ids) == options_.replica_id;
      const bool pinned = pinned_.count(m) > 0;
      // A machine that moved away: stop acting on it before it is released.
      if (!want && !pinned) held_.erase(m);
      order.push_back(m);
      args.push_back(m);
      args.push_back(want ? "w" : pinned ? "k" : "r");
    }
  }
  auto reply = redis_.Call(args);
  if (!reply.ok()) return reply.status();
  std::vector<std::string> values;
  if (!Strings((*reply)->r, &values) || values.size() != order.size()) {
    return Unexpected(redis_, "shard lease");
  }
  std::lock_guard<std::mutex> l(mu_);
  holders_.clear();
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string& m = order[i];
    std::optional<LeaderInfo> holder = ParseOwnerValue(values[i]);
    if (!holder) {
      held_.erase(m);
      continue;
    }
    holders_[m] = ShardHolder{holder->replica_id, holder->replica_name, holder->token};
    token_floor_ = std::max(token_floor_, holder->token);
    if (holder->replica_id == options_.replica_id && (machines_.count(m) || pinned_.count(m))) {
      held_[m] = Lease{holder->token, sent_ms + options_.lease_ms - options_.safety_margin_ms};
    } else {
      held_.erase(m);
    }
  }
  members_ = members;
  return Status::Ok();
}

Status ShardCoordinator::Tick() {
  std::lock_guard<std::mutex> io(io_mu_);
  // The send time of the first request: the leases it renews run from no
  // earlier than that.
  const int64_t sent_ms = clock_.SteadyMs();
  std::vector<ShardMember> members;
  Status s = Beat(&members);
  if (s.ok()) s = Hold(members, sent_ms);
  std::lock_guard<std::mutex> l(mu_);
  last_status_ = s;
  return s;
}

bool ShardCoordinator::MayAct(const std::string& machine, int64_t* token) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = held_.find(machine);
  if (it == held_.end() || clock_.SteadyMs() >= it->second.valid_until_ms) return false;
  if (token != nullptr) *token = it->second.token;
  return true;
}

std::set<std::string> ShardCoordinator::Held() const {
  std::lock_guard<std::mutex> l(mu_);
  std::set<std::string> out;
  const int64_t now = clock_.SteadyMs();
  for (const auto& [m, lease] : held_) {
    if (now < lease.valid_until_ms) out.insert(m);
  }
  return out;
}

ShardState ShardCoordinator::state() const {
  ShardState s;
  std::lock_guard<std::mutex> l(mu_);
  s.members = members_;
  std::vector<std::string> ids;
  for (const ShardMember& m : members_) ids.push_back(m.id);
  s.assigned = AssignMachines(machines_, ids);
  s.holders = holders_;
  const int64_t now = clock_.SteadyMs();
  for (const auto& [m, lease] : held_) {
    if (now < lease.valid_until_ms) s.held[m] = lease.token;
  }
  s.last_status = last_status_;
  return s;
}

Status ShardCoordinator::PublishReadiness(
    const std::map<std::string, std::map<std::string, SharedReadiness>>& by_machine,
    int64_t stale_ms) {
  std::vector<std::string> args = {
      "EVAL", kPublishScript, "0", options_.replica_id, options_.prefix, std::to_string(stale_ms)};
  for (const auto& [machine, instances] : by_machine) {
    if (!MayAct(machine)) continue;
    args.push_back(machine);
    args.push_back(std::to_string(instances.size()));
    for (const auto& [key, r] : instances) {
      args.push_back(key);
      args.push_back(std::string(r.running ? "1" : "0") + (r.ready ? "1" : "0") + "|" +
                     r.spec_hash);
    }
  }
  if (args.size() == 6) return Status::Ok();
  std::lock_guard<std::mutex> io(io_mu_);
  return redis_.Call(args).status();
}

Result<std::vector<std::string>> ShardCoordinator::CallForPairs(
    const std::vector<std::string>& args, const char* what) {
  std::unique_ptr<RedisReply> reply;
  {
    std::lock_guard<std::mutex> io(io_mu_);
    auto r = redis_.Call(args);
    if (!r.ok()) return r.status();
    reply = std::move(r).value();
  }
  std::vector<std::string> flat;
  if (!Strings(reply->r, &flat) || flat.size() % 2 != 0) return Unexpected(redis_, what);
  return flat;
}

Result<std::map<std::string, SharedReadiness>> ShardCoordinator::ReadReadiness(
    const std::set<std::string>& machines) {
  std::map<std::string, SharedReadiness> out;
  if (machines.empty()) return out;
  std::vector<std::string> args = {"EVAL", kReadScript, "0", options_.prefix};
  args.insert(args.end(), machines.begin(), machines.end());
  auto called = CallForPairs(args, "readiness");
  if (!called.ok()) return called.status();
  const std::vector<std::string>& flat = *called;
  for (size_t i = 0; i + 1 < flat.size(); i += 2) {
    const std::string& v = flat[i + 1];
    if (v.size() < 3 || v[2] != '|') continue;
    out[flat[i]] = SharedReadiness{v[0] == '1', v[1] == '1', v.substr(3)};
  }
  return out;
}

Status ShardCoordinator::RequestRestarts(const std::map<std::string, std::string>& key_to_machine,
                                         const std::string& actor, int64_t keep_ms) {
  if (key_to_machine.empty()) return Status::Ok();
  std::vector<std::string> args = {"EVAL",          kRequestRestartsScript,  "0",
                                   options_.prefix, std::to_string(keep_ms), actor};
  for (const auto& [key, machine] : key_to_machine) {
    args.push_back(machine);
    args.push_back(key);
  }
  std::lock_guard<std::mutex> io(io_mu_);
  return redis_.Call(args).status();
}

Status ShardCoordinator::ShareSuspension(bool suspended, const std::string& actor) {
  std::lock_guard<std::mutex> io(io_mu_);
  return redis_
      .Call({"SET", options_.prefix + ":suspended", std::string(suspended ? "1|" : "0|") + actor})
      .status();
}

Status ShardCoordinator::RequestSync() {
  std::lock_guard<std::mutex> io(io_mu_);
  return redis_.Call({"INCR", options_.prefix + ":sync"}).status();
}

Result<SharedWrites> ShardCoordinator::TakeWrites() {
  std::vector<std::string> args = {"EVAL", kTakeWritesScript, "0", options_.replica_id,
                                   options_.prefix};
  for (const std::string& m : Held()) args.push_back(m);
  auto called = CallForPairs(args, "shared writes");
  if (!called.ok()) return called.status();
  const std::vector<std::string>& flat = *called;
  if (flat.size() < 2) return Unexpected(redis_, "shared writes");
  SharedWrites w;
  const std::string& susp = flat[0];
  if (susp.size() >= 2 && susp[1] == '|' && (susp[0] == '0' || susp[0] == '1')) {
    w.has_suspension = true;
    w.suspended = susp[0] == '1';
    w.suspension_actor = susp.substr(2);
  }
  w.sync_generation = std::strtoll(flat[1].c_str(), nullptr, 10);
  for (size_t i = 2; i + 1 < flat.size(); i += 2) w.restarts[flat[i]] = flat[i + 1];
  return w;
}

Status ShardCoordinator::Leave() {
  std::vector<std::string> args = HoldArgs();
  {
    std::lock_guard<std::mutex> l(mu_);
    std::set<std::string> all = machines_;
    for (const auto& [m, _] : held_) all.insert(m);
    held_.clear();  // Stop acting first.
    for (const std::string& m : all) {
      args.push_back(m);
      args.push_back("r");
    }
  }
  std::lock_guard<std::mutex> io(io_mu_);
  Status s = redis_.Call(args).status();
  Status left = redis_
                    .Call({"EVAL", kLeaveScript, "2", options_.prefix + ":members",
                           options_.prefix + ":names", options_.replica_id})
                    .status();
  return s.ok() ? left : s;
}

void ShardCoordinator::Start() {
  ticker_.Start([this] {
    (void)Tick();  // The status is in state().
    return options_.interval_ms;
  });
}

void ShardCoordinator::Stop() { ticker_.Stop(); }

}  // namespace clusterctl::ha

// LeaderElector against a real redis-server: who leads, fencing tokens,
// compare-and-set renew and release, the own-clock safety rule (FakeClock),
// lease expiry, passwords, and a Redis that is down, frozen or stopped.
#include "ha/leader_election.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "base/clock.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"

namespace clusterctl::ha {
namespace {

using ::clusterctl::testing::PickFreePort;
using ::clusterctl::testing::RedisServer;
using ::clusterctl::testing::RedisServerOptions;
using ::clusterctl::testing::WaitFor;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;

// Real time, for bounds on how long a call may block.
int64_t ElapsedMs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - since).count();
}

class LeaderElectionTest : public ::testing::Test {
 protected:
  // A write to a redis that closed the connection must fail, not end the test
  // (clusterd ignores SIGPIPE the same way).
  void SetUp() override { signal(SIGPIPE, SIG_IGN); }

  // Fast settings: a 300 ms lease keeps expiry tests short.
  static LeaderElectionOptions Fast(int port, const std::string& name,
                                    const Clock* clock = nullptr) {
    LeaderElectionOptions o;
    o.port = port;
    o.replica_name = name;
    o.lease_ms = 300;
    o.safety_margin_ms = 100;
    o.renew_interval_ms = 100;
    o.retry_interval_ms = 50;
    o.timeout_ms = 200;
    o.clock = clock;
    return o;
  }

  static std::unique_ptr<LeaderElector> Make(LeaderElectionOptions o) {
    auto e = LeaderElector::Create(std::move(o));
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? std::move(e).value() : nullptr;
  }

  static int64_t TokenOf(const LeaderElector& e) {
    int64_t token = -1;
    EXPECT_TRUE(e.MayAct(&token));
    return token;
  }
};

// Two replicas with fast settings on one redis.
class TwoReplicasTest : public LeaderElectionTest {
 protected:
  void SetUp() override {
    LeaderElectionTest::SetUp();
    redis_ = std::make_unique<RedisServer>();
    a_ = Make(Fast(redis_->port(), "node-a:1"));
    b_ = Make(Fast(redis_->port(), "node-b:2"));
    ASSERT_TRUE(a_ && b_);
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<LeaderElector> a_;
  std::unique_ptr<LeaderElector> b_;
};

TEST_F(TwoReplicasTest, OneOfTwoLeadsAndTheFollowerNamesIt) {
  ASSERT_TRUE(a_->Tick().ok());
  ASSERT_TRUE(b_->Tick().ok());

  int64_t token = 0;
  EXPECT_TRUE(a_->MayAct(&token));
  EXPECT_EQ(Role::kLeader, a_->role());
  EXPECT_GT(token, 0);
  EXPECT_FALSE(b_->MayAct());
  EXPECT_EQ(Role::kFollower, b_->role());
  EXPECT_STREQ("follower", RoleName(b_->role()));

  // The follower learnt the leader from its acquire attempt, and from GET.
  ASSERT_TRUE(b_->state().leader.has_value());
  EXPECT_EQ("node-a:1", b_->state().leader->replica_name);
  auto leader = b_->Leader();
  ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  ASSERT_TRUE(leader->has_value());
  EXPECT_EQ(a_->replica_id(), (*leader)->replica_id);
  EXPECT_EQ("node-a:1", (*leader)->replica_name);
  EXPECT_EQ(token, (*leader)->token);

  // Renewals keep the same leader and token.
  ASSERT_TRUE(a_->Tick().ok());
  ASSERT_TRUE(b_->Tick().ok());
  EXPECT_EQ(token, TokenOf(*a_));
  EXPECT_FALSE(b_->MayAct());
}

TEST_F(LeaderElectionTest, DefaultIdentityIsRandomHexAndHostColonPid) {
  LeaderElectionOptions o;
  auto a = Make(o);
  auto b = Make(o);
  ASSERT_TRUE(a && b);
  EXPECT_THAT(a->replica_id(), ::testing::MatchesRegex("[0-9a-f]{32}"));
  EXPECT_NE(a->replica_id(), b->replica_id());
  EXPECT_THAT(a->replica_name(), ::testing::EndsWith(":" + std::to_string(getpid())));

  auto parsed = ParseOwnerValue(OwnerValue({"abc", "h:1|x", 42}));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ("abc", parsed->replica_id);
  EXPECT_EQ("h:1|x", parsed->replica_name);
  EXPECT_EQ(42, parsed->token);
  EXPECT_FALSE(ParseOwnerValue("no-separators").has_value());
  EXPECT_FALSE(ParseOwnerValue("id|notanumber|name").has_value());
}

TEST_F(LeaderElectionTest, InvalidOptionsAreRefused) {
  LeaderElectionOptions o;
  o.safety_margin_ms = o.lease_ms;
  auto e = LeaderElector::Create(o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(Code::kInvalid, e.status().code());
  EXPECT_THAT(e.status().message(), HasSubstr("safety margin"));

  o = {};
  o.renew_interval_ms = o.lease_ms - o.safety_margin_ms;
  EXPECT_EQ(Code::kInvalid, LeaderElector::Create(o).status().code());
  o = {};
  o.replica_id = "a|b";
  EXPECT_EQ(Code::kInvalid, LeaderElector::Create(o).status().code());
  o = {};
  o.timeout_ms = 0;
  EXPECT_EQ(Code::kInvalid, LeaderElector::Create(o).status().code());
}

TEST_F(TwoReplicasTest, OnlyTheHolderPublishesToTheJournalAndReadersSeeItInOrder) {
  ASSERT_TRUE(a_->Tick().ok());
  ASSERT_TRUE(b_->Tick().ok());
  auto first = a_->Publish("one");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(a_->Publish("two").ok());
  EXPECT_EQ(Code::kConflict, b_->Publish("from a follower").status().code());

  auto all = b_->ReadJournal("0", 10);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, *first);
  EXPECT_EQ((*all)[0].payload, "one");
  EXPECT_EQ((*all)[1].payload, "two");
  auto after = b_->ReadJournal(*first, 10);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].payload, "two");
  auto none = b_->ReadJournal((*all)[1].id, 10);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(LeaderElectionTest, ALeaderWhoseKeyWasTakenCannotPublishWhateverItsClockSays) {
  RedisServer redis;
  FakeClock frozen;  // a's own clock never moves: by it, its lease never ends.
  auto a = Make(Fast(redis.port(), "a", &frozen));
  auto b = Make(Fast(redis.port(), "b"));
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Tick().ok());
  ASSERT_TRUE(a->MayAct());
  // The key expires in Redis (300 ms) and b takes it.
  ASSERT_TRUE(WaitFor([&] { return b->Tick().ok() && b->MayAct(); }, milliseconds(5000)));
  EXPECT_TRUE(a->MayAct());  // Its clock is wrong; Redis refuses it anyway.
  auto refused = a->Publish("stale");
  EXPECT_EQ(Code::kConflict, refused.status().code()) << refused.status().ToString();
  auto entries = b->ReadJournal("0", 10);
  ASSERT_TRUE(entries.ok());
  EXPECT_TRUE(entries->empty());
}

TEST_F(TwoReplicasTest, TokensStrictlyIncreaseAcrossAcquisitions) {
  ASSERT_TRUE(a_->Tick().ok());
  const int64_t t1 = TokenOf(*a_);
  ASSERT_TRUE(a_->Release().ok());
  EXPECT_FALSE(a_->MayAct());

  ASSERT_TRUE(b_->Tick().ok());
  const int64_t t2 = TokenOf(*b_);
  EXPECT_GT(t2, t1);
  ASSERT_TRUE(b_->Release().ok());

  ASSERT_TRUE(a_->Tick().ok());
  const int64_t t3 = TokenOf(*a_);
  EXPECT_GT(t3, t2);
  EXPECT_EQ(t3, a_->state().token);
  auto leader = b_->Leader();
  ASSERT_TRUE(leader.ok() && leader->has_value());
  EXPECT_EQ(t3, (*leader)->token);
}

TEST_F(TwoReplicasTest, AStaleLeaderCannotRenewOrReleaseTheNewLeadersLease) {
  ASSERT_TRUE(a_->Tick().ok());
  const int64_t old_token = TokenOf(*a_);

  // a stops renewing; its key expires in redis and b takes the lease.
  ASSERT_TRUE(WaitFor([&] { return b_->Tick().ok() && b_->MayAct(); }, milliseconds(3000)));
  const int64_t new_token = TokenOf(*b_);
  EXPECT_GT(new_token, old_token);

  // a still believes it holds a lease: its release must not delete b's key.
  EXPECT_FALSE(a_->MayAct());  // its own clock says the lease is over
  ASSERT_TRUE(a_->Release().ok());
  auto leader = a_->Leader();
  ASSERT_TRUE(leader.ok() && leader->has_value());
  EXPECT_EQ(b_->replica_id(), (*leader)->replica_id);

  // A second stale holder: b's key expires, a takes it, b's renew fails.
  ASSERT_TRUE(WaitFor([&] { return a_->Tick().ok() && a_->MayAct(); }, milliseconds(3000)));
  const int64_t third = TokenOf(*a_);
  EXPECT_GT(third, new_token);
  ASSERT_TRUE(b_->Tick().ok());  // renew by compare-and-set: not ours any more
  EXPECT_FALSE(b_->MayAct());
  EXPECT_EQ(Role::kFollower, b_->role());
  EXPECT_EQ(0, b_->state().valid_until_ms);
  ASSERT_TRUE(b_->state().leader.has_value());
  EXPECT_EQ(a_->replica_id(), b_->state().leader->replica_id);
  // And a is untouched by it.
  ASSERT_TRUE(a_->Tick().ok());
  EXPECT_EQ(third, TokenOf(*a_));
}

// The safety rule: acting ends at T + lease - margin on the replica's own
// clock, with no successful call after T, whether redis is frozen or gone.
void CheckOwnClockRule(RedisServer& redis, bool freeze) {
  FakeClock clock;
  LeaderElectionOptions o;
  o.port = redis.port();
  o.clock = &clock;
  o.lease_ms = 15000;
  o.safety_margin_ms = 2000;
  o.timeout_ms = 200;
  auto e = LeaderElector::Create(o);
  ASSERT_TRUE(e.ok());
  LeaderElector& a = **e;
  const int64_t t0 = clock.SteadyMs();
  ASSERT_TRUE(a.Tick().ok());
  ASSERT_TRUE(a.MayAct());
  EXPECT_EQ(t0 + 13000, a.state().valid_until_ms);

  if (freeze) {
    redis.Kill(SIGSTOP);
  } else {
    redis.Stop();
  }
  clock.Advance(5000);
  const auto start = std::chrono::steady_clock::now();
  const Status renew = a.Tick();
  EXPECT_LT(ElapsedMs(start), 1000) << "a Tick against a frozen redis must end by the timeout";
  EXPECT_FALSE(renew.ok());
  EXPECT_EQ(freeze ? Code::kTimeout : Code::kUnavailable, renew.code()) << renew.ToString();
  EXPECT_FALSE(a.state().last_status.ok());

  // The failed renew extended nothing: the lease still ends at t0 + 13 s.
  EXPECT_EQ(t0 + 13000, a.state().valid_until_ms);
  clock.Advance(12999 - 5000);
  EXPECT_TRUE(a.MayAct());
  EXPECT_EQ(Role::kLeader, a.role());
  clock.Advance(1);
  int64_t token = -1;
  EXPECT_FALSE(a.MayAct(&token));
  EXPECT_EQ(-1, token);
  EXPECT_EQ(Role::kFollower, a.role());

  const auto again = std::chrono::steady_clock::now();
  EXPECT_FALSE(a.Tick().ok());
  EXPECT_LT(ElapsedMs(again), 1000);
  EXPECT_FALSE(a.MayAct());
  if (freeze) redis.Kill(SIGCONT);
}

TEST_F(LeaderElectionTest, MayActEndsByTheOwnClockWhileRedisIsFrozen) {
  RedisServer redis;
  CheckOwnClockRule(redis, /*freeze=*/true);
}

TEST_F(LeaderElectionTest, MayActEndsByTheOwnClockWhenRedisIsStopped) {
  RedisServer redis;
  CheckOwnClockRule(redis, /*freeze=*/false);
}

TEST_F(LeaderElectionTest, AnExpiredLeaseGoesToAFollowerWithAHigherToken) {
  RedisServer redis;
  auto b = Make(Fast(redis.port(), "b"));
  ASSERT_TRUE(b);
  int64_t old_token = 0;
  {
    auto a = Make(Fast(redis.port(), "a"));
    ASSERT_TRUE(a);
    ASSERT_TRUE(a->Tick().ok());
    old_token = TokenOf(*a);
  }  // Destroyed without Release(): the key stays until it expires.
  const auto gone = std::chrono::steady_clock::now();
  ASSERT_TRUE(b->Tick().ok());
  EXPECT_FALSE(b->MayAct()) << "the dead leader's key is still there";
  ASSERT_TRUE(b->state().leader.has_value());
  EXPECT_EQ("a", b->state().leader->replica_name);

  ASSERT_TRUE(WaitFor([&] { return b->Tick().ok() && b->MayAct(); }, milliseconds(3000)));
  EXPECT_GE(ElapsedMs(gone), 150) << "taken over long before the 300 ms lease could expire";
  EXPECT_GT(TokenOf(*b), old_token);
  auto leader = b->Leader();
  ASSERT_TRUE(leader.ok() && leader->has_value());
  EXPECT_EQ("b", (*leader)->replica_name);
}

TEST_F(LeaderElectionTest, PasswordRightLeadsWrongIsRefusedWithoutRevealingIt) {
  const std::string password = "s3cret-Pa55-word";
  RedisServerOptions secured;
  secured.password = password;
  RedisServer redis(secured);

  LeaderElectionOptions good = Fast(redis.port(), "good");
  good.password = password;
  auto a = Make(good);
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->Tick().ok());
  EXPECT_TRUE(a->MayAct());

  for (const std::string& wrong : {std::string("wrong-Pa55-word"), std::string()}) {
    LeaderElectionOptions bad = Fast(redis.port(), "bad");
    bad.password = wrong;
    auto b = Make(bad);
    ASSERT_TRUE(b);
    ASSERT_TRUE(a->Release().ok());  // even with the lease free, b cannot take it
    const Status s = b->Tick();
    EXPECT_EQ(Code::kPermission, s.code()) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("redis 127.0.0.1:" + std::to_string(redis.port())));
    EXPECT_THAT(s.message(), Not(HasSubstr(password)));
    if (!wrong.empty()) {
      EXPECT_THAT(s.message(), Not(HasSubstr(wrong)));
    }
    EXPECT_FALSE(b->MayAct());
    const auto leader = b->Leader();
    EXPECT_EQ(Code::kPermission, leader.status().code());
    EXPECT_THAT(leader.status().message(), Not(HasSubstr(password)));
    ASSERT_TRUE(a->Tick().ok());
    EXPECT_TRUE(a->MayAct());
  }
}

TEST_F(LeaderElectionTest, RedisDownAtStartThenUp) {
  const int port = PickFreePort();
  auto a = Make(Fast(port, "a"));
  ASSERT_TRUE(a);
  const auto start = std::chrono::steady_clock::now();
  const Status s = a->Tick();
  EXPECT_LT(ElapsedMs(start), 1000);
  EXPECT_EQ(Code::kUnavailable, s.code()) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("connect"));
  EXPECT_FALSE(a->MayAct());
  EXPECT_EQ(Code::kUnavailable, a->Leader().status().code());

  RedisServerOptions fixed;
  fixed.port = port;
  RedisServer redis(fixed);
  ASSERT_TRUE(WaitFor([&] { return a->Tick().ok() && a->MayAct(); }, milliseconds(3000)));
  EXPECT_GT(TokenOf(*a), 0);
}

TEST_F(LeaderElectionTest, TokensStayAboveTheFloorAfterRedisForgetsTheCounter) {
  RedisServerOptions fixed;
  fixed.port = PickFreePort();
  auto redis = std::make_unique<RedisServer>(fixed);
  auto a = Make(Fast(fixed.port, "a"));
  auto b = Make(Fast(fixed.port, "b"));
  ASSERT_TRUE(a && b);
  int64_t seen = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(a->Tick().ok());
    seen = TokenOf(*a);
    ASSERT_TRUE(a->Release().ok());
  }
  ASSERT_EQ(3, seen);

  // A redis without persistence restarts with no fence counter.
  redis.reset();
  redis = std::make_unique<RedisServer>(fixed);
  ASSERT_TRUE(WaitFor([&] { return a->Tick().ok() && a->MayAct(); }, milliseconds(3000)));
  const int64_t after = TokenOf(*a);
  EXPECT_GT(after, seen) << "a remembered token " << seen;
  ASSERT_TRUE(a->Release().ok());

  // A replica that knows a higher token from its own records seeds the floor.
  b->RaiseTokenFloor(100);
  ASSERT_TRUE(b->Tick().ok());
  EXPECT_EQ(101, TokenOf(*b));
}

TEST_F(TwoReplicasTest, TheThreadKeepsTheLeaseAndStopsPromptly) {
  a_->Start();
  a_->Start();  // no second thread
  ASSERT_TRUE(WaitFor([&] { return a_->MayAct(); }, milliseconds(3000)));
  const int64_t token = TokenOf(*a_);
  b_->Start();
  // Several lease lengths pass: a renews, b never leads, the token holds.
  const int64_t first_until = a_->state().valid_until_ms;
  ASSERT_TRUE(WaitFor([&] { return a_->state().valid_until_ms > first_until + 3 * 300; },
                      milliseconds(3000)));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = b_->state();
        return s.leader.has_value() && s.leader->replica_id == a_->replica_id();
      },
      milliseconds(3000)));
  EXPECT_FALSE(b_->MayAct());
  EXPECT_EQ(token, TokenOf(*a_));
  redis_->Kill(SIGSTOP);  // a Tick in flight now waits for its timeout
  const auto stop = std::chrono::steady_clock::now();
  a_->Stop();
  b_->Stop();
  EXPECT_LT(ElapsedMs(stop), 1500) << "Stop() waits for at most one Tick per elector";
  redis_->Kill(SIGCONT);
  a_->Stop();  // idempotent
  EXPECT_FALSE(b_->MayAct());
  if (a_->MayAct()) {
    EXPECT_EQ(token, TokenOf(*a_));
  }
  ASSERT_TRUE(a_->Release().ok());
  EXPECT_FALSE(a_->MayAct());
  auto leader = b_->Leader();
  ASSERT_TRUE(leader.ok());
  EXPECT_FALSE(leader->has_value());
}

}  // namespace
}  // namespace clusterctl::ha

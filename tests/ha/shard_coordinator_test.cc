// ShardCoordinator against a real redis-server: replicas register, split
// the machines by rendezvous hashing, hold one lease per machine with
// fencing tokens that only grow, hand a dead replica's machines to the
// others within the lease, keep a pinned machine until its step ends,
// share readiness only from the holder, and share writes (a restart taken
// by the holder only, a suspension and a sync seen by all).
#include "ha/shard_coordinator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "ha/rendezvous.h"
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

std::set<std::string> Machines(int n) {
  std::set<std::string> out;
  for (int i = 0; i < n; ++i) out.insert("m" + std::to_string(i));
  return out;
}

class ShardCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    redis_ = std::make_unique<RedisServer>();
  }

  // A 1 s lease keeps expiry tests short and leaves room for slow CI
  // (sanitizers) between ticks.
  static ShardOptions Fast(int port, const std::string& name, const Clock* clock = nullptr) {
    ShardOptions o;
    o.port = port;
    o.replica_id = "id-" + name;
    o.replica_name = name;
    o.lease_ms = 1000;
    o.safety_margin_ms = 200;
    o.interval_ms = 100;
    o.timeout_ms = 300;
    o.clock = clock;
    return o;
  }

  std::unique_ptr<ShardCoordinator> Make(const std::string& name, const Clock* clock = nullptr) {
    auto c = ShardCoordinator::Create(Fast(redis_->port(), name, clock));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return nullptr;
    (*c)->SetMachines(Machines(30));
    return std::move(c).value();
  }

  // Ticks every coordinator in turn, `rounds` times.
  static void Rounds(const std::vector<ShardCoordinator*>& cs, int rounds) {
    for (int i = 0; i < rounds; ++i) {
      for (ShardCoordinator* c : cs)
        ASSERT_TRUE(c->Tick().ok()) << c->state().last_status.ToString();
    }
  }

  // Machine -> the replicas that may act on it now.
  static std::map<std::string, std::vector<std::string>> Actors(
      const std::vector<ShardCoordinator*>& cs) {
    std::map<std::string, std::vector<std::string>> out;
    for (const std::string& m : Machines(30)) {
      out[m];
      for (ShardCoordinator* c : cs) {
        if (c->MayAct(m)) out[m].push_back(c->replica_id());
      }
    }
    return out;
  }

  std::unique_ptr<RedisServer> redis_;
};

TEST_F(ShardCoordinatorTest, ThreeReplicasSplitTheMachinesOneHolderEach) {
  auto a = Make("a"), b = Make("b"), c = Make("c");
  ASSERT_TRUE(a && b && c);
  // Round 1: each sees the members that beat before it; round 2: a machine
  // a took while alone moves to its owner (released, then acquired); round
  // 3: everyone holds exactly what rendezvous gives it.
  Rounds({a.get(), b.get(), c.get()}, 3);
  const std::vector<std::string> ids = {"id-a", "id-b", "id-c"};
  const auto owners = AssignMachines(Machines(30), ids);
  std::map<std::string, int> count;
  for (const auto& [m, actors] : Actors({a.get(), b.get(), c.get()})) {
    ASSERT_EQ(actors.size(), 1u) << m;
    EXPECT_EQ(actors[0], owners.at(m)) << m;
    ++count[actors[0]];
  }
  EXPECT_EQ(count.size(), 3u) << "every replica holds some of 30 machines";
  // Every replica sees the same members and holders.
  const ShardState sa = a->state(), sc = c->state();
  ASSERT_EQ(sa.members.size(), 3u);
  EXPECT_EQ(sa.members, sc.members);
  for (const auto& [m, owner] : owners) {
    ASSERT_TRUE(sc.holders.count(m)) << m;
    EXPECT_EQ(sc.holders.at(m).replica_id, owner);
    EXPECT_EQ(sa.assigned.at(m), owner);
  }
}

TEST_F(ShardCoordinatorTest, ADeadReplicasMachinesMoveWithinTheLeaseWithHigherTokens) {
  auto a = Make("a"), b = Make("b"), c = Make("c");
  ASSERT_TRUE(a && b && c);
  Rounds({a.get(), b.get(), c.get()}, 3);
  const ShardState before = a->state();
  std::set<std::string> of_c;
  for (const auto& [m, h] : before.holders) {
    if (h.replica_id == "id-c") of_c.insert(m);
  }
  ASSERT_FALSE(of_c.empty());
  // c stops beating (a SIGKILL: no Leave). a and b keep ticking.
  const auto t0 = std::chrono::steady_clock::now();
  a->Start();
  b->Start();
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const std::string& m : of_c) {
          if (!a->MayAct(m) && !b->MayAct(m)) return false;
        }
        return true;
      },
      milliseconds(10000), milliseconds(20)));
  const auto took =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
  a->Stop();
  b->Stop();
  // Lease (1 s) + an interval; generous for sanitizer builds.
  EXPECT_LT(took, 5000);
  // c, by its own clock, stopped acting when its leases would have expired.
  for (const std::string& m : of_c) EXPECT_FALSE(c->MayAct(m)) << m;
  Rounds({a.get(), b.get()}, 1);  // a sees what b took after a's last tick.
  const ShardState after = b->state();
  EXPECT_EQ(after.members.size(), 2u);
  for (const std::string& m : of_c) {
    ASSERT_TRUE(after.holders.count(m));
    EXPECT_NE(after.holders.at(m).replica_id, "id-c");
    EXPECT_GT(after.holders.at(m).token, before.holders.at(m).token) << m;
  }
  // Nobody else moved.
  for (const auto& [m, h] : before.holders) {
    if (!of_c.count(m)) {
      EXPECT_EQ(after.holders.at(m).token, h.token) << m;
    }
  }
  for (const auto& [m, actors] : Actors({a.get(), b.get()})) EXPECT_EQ(actors.size(), 1u) << m;
}

TEST_F(ShardCoordinatorTest, AMachineWithAStepInFlightIsKeptUntilUnpinned) {
  auto a = Make("a");
  ASSERT_TRUE(a);
  Rounds({a.get()}, 1);
  ASSERT_EQ(a->Held().size(), 30u);
  // b joins: some machines should move to it, but a pins them all.
  a->Pin(Machines(30));
  auto b = Make("b");
  ASSERT_TRUE(b);
  Rounds({b.get(), a.get(), b.get()}, 2);
  EXPECT_EQ(a->Held().size(), 30u);
  EXPECT_TRUE(b->Held().empty());
  const ShardState pinned = b->state();
  // Unpinned: a releases b's machines on its next tick, b takes them.
  a->Pin({});
  Rounds({a.get(), b.get()}, 1);
  const ShardState after = b->state();
  EXPECT_FALSE(b->Held().empty());
  EXPECT_EQ(a->Held().size() + b->Held().size(), 30u);
  for (const std::string& m : b->Held()) {
    EXPECT_FALSE(a->MayAct(m)) << m;
    EXPECT_GT(after.holders.at(m).token, pinned.holders.at(m).token) << m;
  }
}

TEST_F(ShardCoordinatorTest, ReadinessIsSharedByTheHolderOnlyAndExpires) {
  auto a = Make("a"), b = Make("b");
  ASSERT_TRUE(a && b);
  Rounds({a.get(), b.get()}, 3);
  const std::set<std::string> held_a = a->Held(), held_b = b->Held();
  ASSERT_FALSE(held_a.empty());
  ASSERT_FALSE(held_b.empty());
  const std::string ma = *held_a.begin(), mb = *held_b.begin();
  // a publishes one instance of its machine, and tries one of b's.
  std::map<std::string, std::map<std::string, SharedReadiness>> mine = {
      {ma, {{"api@" + ma, {true, true, "h1"}}}}, {mb, {{"api@" + mb, {true, true, "forged"}}}}};
  ASSERT_TRUE(a->PublishReadiness(mine, 2000).ok());
  auto seen = b->ReadReadiness({ma, mb});
  ASSERT_TRUE(seen.ok()) << seen.status().ToString();
  ASSERT_EQ(seen->count("api@" + ma), 1u);
  EXPECT_TRUE(seen->at("api@" + ma).ready);
  EXPECT_EQ(seen->at("api@" + ma).spec_hash, "h1");
  EXPECT_EQ(seen->count("api@" + mb), 0u) << "only the holder of a machine publishes for it";
  // An owner that stops publishing leaves nothing behind.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto r = b->ReadReadiness({ma});
        return r.ok() && r->empty();
      },
      milliseconds(5000), milliseconds(50)));
}

TEST_F(ShardCoordinatorTest, WritesAskedOfAnyReplicaReachTheHolderAndEveryReplica) {
  auto a = Make("a"), b = Make("b");
  ASSERT_TRUE(a && b);
  Rounds({a.get(), b.get()}, 3);
  ASSERT_FALSE(b->Held().empty());
  const std::string mb = *b->Held().begin();
  // a is asked to restart an instance on b's machine: only b takes it, once.
  ASSERT_TRUE(a->RequestRestarts({{"api@" + mb, mb}}, "alice@laptop", 60000).ok());
  Rounds({a.get(), b.get()}, 1);  // Fresh leases, whatever the test's speed.
  auto at_a = a->TakeWrites();
  ASSERT_TRUE(at_a.ok()) << at_a.status().ToString();
  EXPECT_TRUE(at_a->restarts.empty()) << "a does not hold " << mb;
  auto at_b = b->TakeWrites();
  ASSERT_TRUE(at_b.ok()) << at_b.status().ToString();
  EXPECT_EQ(at_b->restarts, (std::map<std::string, std::string>{{"api@" + mb, "alice@laptop"}}));
  at_b = b->TakeWrites();
  ASSERT_TRUE(at_b.ok());
  EXPECT_TRUE(at_b->restarts.empty()) << "taken once";
  // No suspension word yet; a suspend and a sync asked of a reach b.
  EXPECT_FALSE(at_b->has_suspension);
  const int64_t sync_before = at_b->sync_generation;
  ASSERT_TRUE(a->ShareSuspension(true, "bob@host|x").ok());
  ASSERT_TRUE(a->RequestSync().ok());
  at_b = b->TakeWrites();
  ASSERT_TRUE(at_b.ok());
  EXPECT_TRUE(at_b->has_suspension);
  EXPECT_TRUE(at_b->suspended);
  EXPECT_EQ(at_b->suspension_actor, "bob@host|x");
  EXPECT_EQ(at_b->sync_generation, sync_before + 1);
  ASSERT_TRUE(b->ShareSuspension(false, "carol@host").ok());
  at_a = a->TakeWrites();
  ASSERT_TRUE(at_a.ok());
  EXPECT_FALSE(at_a->suspended);
  EXPECT_EQ(at_a->suspension_actor, "carol@host");
}

TEST_F(ShardCoordinatorTest, LeaveHandsTheMachinesOverAtOnce) {
  auto a = Make("a"), b = Make("b");
  ASSERT_TRUE(a && b);
  Rounds({a.get(), b.get()}, 3);
  ASSERT_TRUE(a->Leave().ok());
  EXPECT_TRUE(a->Held().empty());
  Rounds({b.get()}, 1);  // No wait for an expiry.
  EXPECT_EQ(b->Held().size(), 30u);
  EXPECT_EQ(b->state().members.size(), 1u);
}

TEST_F(ShardCoordinatorTest, AReplicaCutOffFromRedisStopsActingByItsOwnClock) {
  FakeClock clock;
  auto a = Make("a", &clock);
  ASSERT_TRUE(a);
  Rounds({a.get()}, 1);
  ASSERT_TRUE(a->MayAct("m1"));
  redis_->Stop();
  const auto t0 = std::chrono::steady_clock::now();
  Status s = a->Tick();
  EXPECT_FALSE(s.ok());
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count(),
            2000);
  clock.Advance(1000 - 200 - 1);  // Just before lease - margin.
  EXPECT_TRUE(a->MayAct("m1"));
  clock.Advance(1);
  EXPECT_FALSE(a->MayAct("m1"));
  EXPECT_TRUE(a->Held().empty());
}

TEST_F(ShardCoordinatorTest, AWrongPasswordIsRefusedWithoutShowingIt) {
  RedisServer secured(RedisServerOptions{.password = "s3cret-pw"});
  ShardOptions o = Fast(secured.port(), "a");
  o.password = "wrong-pw-123";
  auto c = ShardCoordinator::Create(o);
  ASSERT_TRUE(c.ok());
  Status s = (*c)->Tick();
  EXPECT_EQ(s.code(), Code::kPermission) << s.ToString();
  EXPECT_THAT(s.message(), Not(HasSubstr("wrong-pw-123")));
  o.password = "s3cret-pw";
  auto ok = ShardCoordinator::Create(o);
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE((*ok)->Tick().ok());
}

TEST(ShardOptionsTest, BadOptionsAreRefused) {
  ShardOptions o;
  o.replica_id = "x";
  o.replica_name = "n";
  EXPECT_TRUE(ValidateShardOptions(o).ok());
  ShardOptions bar = o;
  bar.replica_id = "a|b";
  EXPECT_FALSE(ValidateShardOptions(bar).ok());
  ShardOptions slow = o;
  slow.interval_ms = slow.lease_ms;
  EXPECT_THAT(ValidateShardOptions(slow).message(), HasSubstr("interval"));
}

}  // namespace
}  // namespace clusterctl::ha

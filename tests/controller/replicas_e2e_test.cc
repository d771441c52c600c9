// End to end: two built clusterd replicas over the same five sshd hosts and
// git origin, electing a leader through a real redis-server. Exactly one
// acts; the follower refuses writes naming it; after a kill -9 of the leader
// the other takes over within lease + retry and repairs a service killed
// meanwhile, with a higher fencing token. Judged from each replica's API and
// from the audit logs in their data directories.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/clock.h"
#include "tests/harness/audit_records.h"
#include "tests/harness/demo_cluster.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/tcp_proxy.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::WaitFor;

struct Replica {
  std::string name, data_dir, listen, config;
  std::unique_ptr<testing::Process> process;
};

class ReplicasTest : public ::testing::Test {
 protected:
  // lease 3 s, renew 1 s, retry 1 s, margin 1 s: a failover within 4 s.
  // `redis_port`: where this replica finds Redis (0: the real one). A
  // replica started again keeps its data directory and config.
  void Start(Replica* r, const std::string& name, int redis_port = 0) {
    r->name = name;
    r->data_dir = demo_.dir() + "/data-" + name;
    r->listen = "127.0.0.1:" + std::to_string(testing::PickFreePort());
    r->config = demo_.dir() + "/" + name + ".yaml";
    std::string text = testing::ReadFile(demo_.config_path());
    auto replace_line = [&](const std::string& key, const std::string& value) {
      const size_t at = text.find("\n" + key + ": ");
      ASSERT_NE(at, std::string::npos) << key;
      const size_t end = text.find('\n', at + 1);
      text.replace(at + 1, end - at - 1, key + ": " + value);
    };
    replace_line("dataDir", r->data_dir);
    replace_line("listen", r->listen);
    text += "secretsDir: " + demo_.data_dir() + "/secrets\n";
    text += "redis: {host: 127.0.0.1, port: " +
            std::to_string(redis_port != 0 ? redis_port : redis_->port()) +
            ", leaseSeconds: 3, renewSeconds: 1, retrySeconds: 1, marginSeconds: 1, "
            "replicaName: " +
            name + "}\n";
    testing::WriteFile(r->config, text);
    r->process = std::make_unique<testing::Process>(
        std::vector<std::string>{testing::ClusterdBin(), "--config", r->config},
        testing::OutputTo(demo_.dir() + "/" + name + ".log"));
  }

  std::string Log(const Replica& r) const {
    return testing::ReadFile(demo_.dir() + "/" + r.name + ".log");
  }

  std::string Token() const {
    std::string t = testing::ReadFile(demo_.token_file());
    while (!t.empty() && t.back() == '\n') t.pop_back();
    return t;
  }

  json Status(const Replica& r) {
    httplib::Client c("http://" + r.listen);
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(5, 0);
    auto res = c.Get("/api/v1/status", {{"Authorization", "Bearer " + Token()}});
    if (!res || res->status != 200) return json();
    return json::parse(res->body, nullptr, false);
  }

  // The status answer of a request to POST `path` on `r`, and its body.
  int Post(const Replica& r, const std::string& path, std::string* body) {
    httplib::Client c("http://" + r.listen);
    c.set_connection_timeout(1, 0);
    auto res =
        c.Post(path.c_str(), {{"Authorization", "Bearer " + Token()}}, "{}", "application/json");
    if (body != nullptr && res) *body = res->body;
    return res ? res->status : -1;
  }

  static std::string Role(const json& status) {
    return status.is_object() ? status.value("role", "") : "";
  }

  static json Instance(const json& status, const std::string& svc, const std::string& m) {
    if (!status.is_object() || !status.contains("services") || !status["services"].contains(svc)) {
      return json::object();
    }
    const json& instances = status["services"][svc]["instances"];
    return instances.contains(m) ? instances[m] : json::object();
  }

  // The greatest fencing token among the actions of `by` in `data_dir`'s
  // audit log (its own, or the copies of its journal); *actions: how many.
  static uint64_t MaxToken(const std::string& data_dir, size_t* actions, const std::string& by) {
    uint64_t max = 0;
    *actions = 0;
    for (const auto& r : testing::AuditRecordsOf(data_dir)) {
      if (r.phase == "event" || r.fencing_token == 0 || r.leader != by) continue;
      ++*actions;
      max = std::max(max, r.fencing_token);
    }
    return max;
  }

  // The replica that says it leads while every other says it follows;
  // null while that is not so.
  Replica* SoleLeader(const std::vector<Replica*>& replicas) {
    Replica* leader = nullptr;
    for (Replica* r : replicas) {
      const std::string role = Role(Status(*r));
      if (role == "leader") {
        if (leader != nullptr) return nullptr;
        leader = r;
      } else if (role != "follower") {
        return nullptr;
      }
    }
    return leader;
  }

  // Intents of `r`'s own (not copies of another leader's journal) written
  // at or after `since_ms`.
  static size_t IntentsSince(const Replica& r, int64_t since_ms) {
    size_t n = 0;
    for (const auto& rec : testing::AuditRecordsOf(r.data_dir)) {
      if (rec.phase == "intent" && rec.time >= since_ms && rec.leader == r.name) ++n;
    }
    return n;
  }

  static int64_t NowMs() { return WallClockMs(); }

  testing::DemoCluster demo_;
  std::unique_ptr<testing::RedisServer> redis_ = std::make_unique<testing::RedisServer>();
  Replica a_, b_, c_;
};

TEST_F(ReplicasTest, OneLeaderActsTheFollowerRefusesWritesAndTakesOverAfterKill9) {
  Start(&a_, "node-a");
  Start(&b_, "node-b");
  Replica *leader = nullptr, *follower = nullptr;
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string ra = Role(Status(a_)), rb = Role(Status(b_));
        if (ra == "leader" && rb == "follower") leader = &a_, follower = &b_;
        if (rb == "leader" && ra == "follower") leader = &b_, follower = &a_;
        return leader != nullptr;
      },
      seconds(60), milliseconds(200)))
      << Log(a_) << Log(b_);
  ASSERT_TRUE(WaitFor([&] { return Status(*leader).value("overall_status", "") == "healthy"; },
                      seconds(90), milliseconds(300)))
      << Log(*leader);
  EXPECT_EQ(Status(*follower)["leader"], leader->name);

  // Only the leader acted, every action under its name and token; the
  // follower acted on nothing and holds copies of the leader's actions.
  size_t leader_actions = 0, follower_actions = 0;
  const uint64_t first_token = MaxToken(leader->data_dir, &leader_actions, leader->name);
  MaxToken(follower->data_dir, &follower_actions, follower->name);
  EXPECT_GT(first_token, 0u);
  EXPECT_GT(leader_actions, 0u);
  EXPECT_EQ(follower_actions, 0u);
  ASSERT_TRUE(WaitFor(
      [&] {
        size_t copies = 0;
        MaxToken(follower->data_dir, &copies, leader->name);
        return copies >= leader_actions;
      },
      seconds(15), milliseconds(200)));

  std::string body;
  EXPECT_EQ(409, Post(*follower, "/api/v1/sync", &body));
  EXPECT_NE(body.find("the leader is " + leader->name), std::string::npos) << body;
  EXPECT_EQ(200, Post(*leader, "/api/v1/sync", nullptr));

  // kill -9 of the leader, then a service dies: the follower takes over and
  // repairs it.
  const int64_t pid = Instance(Status(*leader), "tools-server", "worker-tools")["pid"];
  ASSERT_GT(pid, 0);
  leader->process->Kill(SIGKILL);
  ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGKILL), 0);
  ASSERT_TRUE(
      WaitFor([&] { return Role(Status(*follower)) == "leader"; }, seconds(30), milliseconds(200)))
      << Log(*follower);
  ASSERT_TRUE(WaitFor(
      [&] {
        json i = Instance(Status(*follower), "tools-server", "worker-tools");
        return i.value("pid", int64_t{0}) != pid && i.value("ready", false);
      },
      seconds(60), milliseconds(300)))
      << Log(*follower);
  size_t new_actions = 0;
  const uint64_t new_token = MaxToken(follower->data_dir, &new_actions, follower->name);
  EXPECT_GT(new_actions, 0u);
  EXPECT_GT(new_token, first_token);
  std::string verify;
  EXPECT_EQ(
      0, testing::RunShell(testing::CliBin() + " --config '" + follower->config + "' audit verify",
                           &verify))
      << verify;
}

// Three replicas, exactly one leader. The leader is frozen (SIGSTOP) past
// its lease: another takes over and repairs a killed service; woken
// (SIGCONT), the old leader sends nothing and steps down.
TEST_F(ReplicasTest, AFrozenLeaderSendsNothingAfterWakingAndStepsDown) {
  Start(&a_, "node-a");
  Start(&b_, "node-b");
  Start(&c_, "node-c");
  const std::vector<Replica*> all = {&a_, &b_, &c_};
  Replica* leader = nullptr;
  ASSERT_TRUE(WaitFor([&] { return (leader = SoleLeader(all)) != nullptr; }, seconds(60),
                      milliseconds(200)))
      << Log(a_) << Log(b_) << Log(c_);
  ASSERT_TRUE(WaitFor([&] { return Status(*leader).value("overall_status", "") == "healthy"; },
                      seconds(90), milliseconds(300)))
      << Log(*leader);
  const int64_t pid = Instance(Status(*leader), "tools-server", "worker-tools")["pid"];
  ASSERT_GT(pid, 0);

  leader->process->Kill(SIGSTOP);
  const int64_t frozen_at = NowMs();
  std::vector<Replica*> others;
  for (Replica* r : all) {
    if (r != leader) others.push_back(r);
  }
  Replica* next = nullptr;
  ASSERT_TRUE(WaitFor([&] { return (next = SoleLeader(others)) != nullptr; }, seconds(30),
                      milliseconds(200)));
  ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGKILL), 0);
  int64_t repaired = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        json i = Instance(Status(*next), "tools-server", "worker-tools");
        repaired = i.value("pid", int64_t{0});
        return repaired != pid && repaired > 0 && i.value("ready", false);
      },
      seconds(60), milliseconds(300)))
      << Log(*next);

  leader->process->Kill(SIGCONT);
  ASSERT_TRUE(
      WaitFor([&] { return Role(Status(*leader)) == "follower"; }, seconds(30), milliseconds(200)))
      << Log(*leader);
  // Its reconcile loop ran at least once since it woke (a follower looks
  // every retrySeconds): it planned the repair already made, and sent
  // nothing.
  ASSERT_TRUE(WaitFor(
      [&] {
        json st = Status(*leader);
        return st.is_object() && st.value("timestamp", "") != "" &&
               Instance(st, "tools-server", "worker-tools").value("pid", int64_t{0}) == repaired;
      },
      seconds(30), milliseconds(200)));
  EXPECT_EQ(IntentsSince(*leader, frozen_at), 0u);
  // It holds a copy of what the new leader did meanwhile.
  size_t copies = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        MaxToken(leader->data_dir, &copies, next->name);
        return copies > 0;
      },
      seconds(15), milliseconds(200)));
  EXPECT_EQ(Instance(Status(*next), "tools-server", "worker-tools").value("pid", int64_t{0}),
            repaired);
  EXPECT_EQ(SoleLeader(all), next);
}

// Redis goes away: the leader stops acting when its lease ends by its own
// clock and nobody repairs anything; Redis back, one leader resumes.
TEST_F(ReplicasTest, WithoutRedisNobodyActsAndALeaderResumesWhenItReturns) {
  Start(&a_, "node-a");
  Start(&b_, "node-b");
  Replica* leader = nullptr;
  ASSERT_TRUE(WaitFor(
      [&] {
        return (leader = SoleLeader({&a_, &b_})) != nullptr;
      },
      seconds(60), milliseconds(200)))
      << Log(a_) << Log(b_);
  ASSERT_TRUE(WaitFor([&] { return Status(*leader).value("overall_status", "") == "healthy"; },
                      seconds(90), milliseconds(300)))
      << Log(*leader);
  const int port = redis_->port();
  redis_->Stop();
  // Lease 3 s, margin 1 s: no leader 2 s after the last renewal.
  ASSERT_TRUE(
      WaitFor([&] { return Role(Status(a_)) == "follower" && Role(Status(b_)) == "follower"; },
              seconds(10), milliseconds(100)));
  const int64_t down_at = NowMs();
  const int64_t pid = Instance(Status(*leader), "tools-server", "worker-tools")["pid"];
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGKILL), 0);
  // Both replicas see it stopped, and neither starts it: a window of a few
  // reconcile passes (every retrySeconds on a follower) with no action.
  ASSERT_TRUE(WaitFor(
      [&] {
        return Instance(Status(a_), "tools-server", "worker-tools").value("state", "") !=
                   "running" &&
               Instance(Status(b_), "tools-server", "worker-tools").value("state", "") != "running";
      },
      seconds(30), milliseconds(200)));
  EXPECT_FALSE(WaitFor([&] { return IntentsSince(a_, down_at) + IntentsSince(b_, down_at) > 0; },
                       seconds(4), milliseconds(200)));

  testing::RedisServerOptions again;
  again.port = port;
  redis_ = std::make_unique<testing::RedisServer>(again);
  ASSERT_TRUE(WaitFor(
      [&] {
        return (leader = SoleLeader({&a_, &b_})) != nullptr;
      },
      seconds(30), milliseconds(200)));
  ASSERT_TRUE(WaitFor(
      [&] {
        json i = Instance(Status(*leader), "tools-server", "worker-tools");
        return i.value("pid", int64_t{0}) != pid && i.value("ready", false);
      },
      seconds(60), milliseconds(300)))
      << Log(*leader);
}

// The leader is cut off from Redis (a partition: its connections go silent,
// no RST): it stops acting when its lease ends by its own clock, the other
// replica takes over and repairs, and after healing the old leader follows.
TEST_F(ReplicasTest, ALeaderPartitionedFromRedisStopsActingAndTheOtherTakesOver) {
  testing::TcpProxy proxy(redis_->port());
  Start(&a_, "node-a", proxy.port());
  Replica* leader = nullptr;
  ASSERT_TRUE(WaitFor([&] { return (leader = SoleLeader({&a_})) != nullptr; }, seconds(60),
                      milliseconds(200)))
      << Log(a_);
  ASSERT_TRUE(WaitFor([&] { return Status(a_).value("overall_status", "") == "healthy"; },
                      seconds(90), milliseconds(300)))
      << Log(a_);
  Start(&b_, "node-b");
  ASSERT_TRUE(
      WaitFor([&] { return Role(Status(b_)) == "follower"; }, seconds(60), milliseconds(200)))
      << Log(b_);

  proxy.set_partitioned(true);
  const int64_t cut_at = NowMs();
  ASSERT_TRUE(WaitFor(
      [&] {
        return SoleLeader({&a_, &b_}) == &b_;
      },
      seconds(30), milliseconds(200)))
      << Log(a_) << Log(b_);
  const int64_t pid = Instance(Status(b_), "tools-server", "worker-tools")["pid"];
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGKILL), 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        json i = Instance(Status(b_), "tools-server", "worker-tools");
        return i.value("pid", int64_t{0}) != pid && i.value("ready", false);
      },
      seconds(60), milliseconds(300)))
      << Log(b_);
  EXPECT_EQ(Role(Status(a_)), "follower");
  EXPECT_EQ(IntentsSince(a_, cut_at), 0u);  // a saw the kill too, and sent nothing.

  proxy.set_partitioned(false);
  size_t copies = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        MaxToken(a_.data_dir, &copies, "node-b");
        return copies > 0;
      },
      seconds(30), milliseconds(200)))
      << Log(a_);
  EXPECT_EQ(SoleLeader({&a_, &b_}), &b_);
}

// 100 failovers (kill -9 of the leader, which is started again as a
// follower); after each, the new leader is asked to restart a service (an
// action under its token; a service killed every round would instead run
// into its crash-loop backoff). Never two leaders acting at once: in the
// merged own actions of both replicas, ordered by time, the fencing token
// never goes back. Long (about 10 minutes): run with
// CLUSTERCTL_LONG_TESTS=1; figures in docs/benchmarks.md.
TEST_F(ReplicasTest, HundredFailoversNeverHaveTwoLeadersActing) {
  if (std::getenv("CLUSTERCTL_LONG_TESTS") == nullptr) {
    GTEST_SKIP() << "long loop: set CLUSTERCTL_LONG_TESTS=1";
  }
  const char* n_env = std::getenv("CLUSTERCTL_FAILOVERS");
  const int rounds = n_env != nullptr ? std::max(1, std::atoi(n_env)) : 100;
  Start(&a_, "node-a");
  Start(&b_, "node-b");
  Replica* leader = nullptr;
  ASSERT_TRUE(WaitFor(
      [&] {
        return (leader = SoleLeader({&a_, &b_})) != nullptr;
      },
      seconds(60), milliseconds(100)));
  ASSERT_TRUE(WaitFor([&] { return Status(*leader).value("overall_status", "") == "healthy"; },
                      seconds(90), milliseconds(300)));
  std::vector<int64_t> failover_ms, repair_ms;
  for (int round = 0; round < rounds; ++round) {
    Replica* next = leader == &a_ ? &b_ : &a_;
    const int64_t pid = Instance(Status(*leader), "tools-server", "worker-tools")["pid"];
    ASSERT_GT(pid, 0) << "round " << round;
    const int64_t t0 = NowMs();
    leader->process->Kill(SIGKILL);
    (void)leader->process->WaitForExit(seconds(10));
    ASSERT_TRUE(
        WaitFor([&] { return Role(Status(*next)) == "leader"; }, seconds(30), milliseconds(50)))
        << "round " << round << "\n"
        << Log(*next);
    failover_ms.push_back(NowMs() - t0);
    std::string answer;
    ASSERT_TRUE(WaitFor(
        [&] {
          httplib::Client c("http://" + next->listen);
          c.set_connection_timeout(1, 0);
          auto res = c.Post("/api/v1/restart", {{"Authorization", "Bearer " + Token()}},
                            R"({"service": "tools-server"})", "application/json");
          answer = res ? res->body : "no answer";
          return res && res->status == 200;
        },
        seconds(30), milliseconds(100)))
        << "round " << round << ": " << answer;
    ASSERT_TRUE(WaitFor(
        [&] {
          json i = Instance(Status(*next), "tools-server", "worker-tools");
          return i.value("pid", int64_t{0}) != pid && i.value("ready", false);
        },
        seconds(60), milliseconds(100)))
        << "round " << round << "\n"
        << Log(*next);
    repair_ms.push_back(NowMs() - t0);
    Start(leader, leader->name);  // Back as a follower.
    ASSERT_TRUE(WaitFor([&] { return Role(Status(*leader)) == "follower"; }, seconds(60),
                        milliseconds(100)))
        << "round " << round;
    leader = next;
  }
  // Merged own actions of both replicas, in time order: tokens never go back.
  std::vector<audit::AuditRecord> actions;
  for (const Replica* r : {&a_, &b_}) {
    for (auto& rec : testing::AuditRecordsOf(r->data_dir)) {
      if (rec.phase != "event" && rec.fencing_token != 0 && rec.leader == r->name) {
        actions.push_back(std::move(rec));
      }
    }
  }
  std::stable_sort(
      actions.begin(), actions.end(),
      [](const audit::AuditRecord& x, const audit::AuditRecord& y) { return x.time < y.time; });
  for (size_t i = 1; i < actions.size(); ++i) {
    EXPECT_LE(actions[i - 1].fencing_token, actions[i].fencing_token)
        << actions[i - 1].leader << " token " << actions[i - 1].fencing_token << " at "
        << actions[i - 1].time << " before " << actions[i].leader << " token "
        << actions[i].fencing_token << " at " << actions[i].time;
  }
  EXPECT_GE(actions.size(), static_cast<size_t>(2 * rounds));
  std::sort(failover_ms.begin(), failover_ms.end());
  std::sort(repair_ms.begin(), repair_ms.end());
  std::printf(
      "failovers: %d; leader after kill -9: median %lld ms, max %lld ms; restarted: "
      "median %lld ms, max %lld ms (lease 3 s, retry 1 s, margin 1 s)\n",
      rounds, static_cast<long long>(failover_ms[failover_ms.size() / 2]),
      static_cast<long long>(failover_ms.back()),
      static_cast<long long>(repair_ms[repair_ms.size() / 2]),
      static_cast<long long>(repair_ms.back()));
}

}  // namespace
}  // namespace clusterctl

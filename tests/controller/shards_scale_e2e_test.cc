// End to end at the scale of issue 17: three built clusterd replicas with
// `redis.shards: auto` split 30 machines (real sshd: an SshFleet, 15
// machines per sshd on 127.77.X.Y) through one real redis-server.
//
// Asserted: every machine is owned by exactly one replica, and all three own
// some; writes reach every replica (docs/api.md): a sync sent to one replica
// makes all three fetch (the replicas poll the origin every 300 s only), a
// restart sent to a replica that does not own the instance's machine is
// done and audited (trigger manual) by the owner, and a suspend sent to one
// replica holds on all three until a resume sent to another; a dependent on one replica's machine
// is not attempted before its dependency on another replica's machine is ready (an HTTP readiness
// probe with a delay); after a kill -9 of one replica its machines move to the other two within the
// lease plus a stated margin, the others' machines stay put; a change then restarts an instance on
// every moved machine, by the heir under a higher fencing token; and, from the audit records of all
// three data dirs, no two replicas ever act on a machine at the same moment
// (per machine the fencing tokens only grow, and one replica's actions never
// overlap another's).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/paths.h"
#include "tests/harness/git_repo.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/shard_replicas.h"
#include "tests/harness/ssh_fleet.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::Replica;
using testing::ShardAction;
using testing::ShardReplicas;
using testing::SshFleet;
using testing::WaitFor;

constexpr int kMachines = 30;
// Instances desired running once the services are in: one `sleep` per
// machine, the dependency and its dependent.
constexpr size_t kInstances = kMachines + 2;

testing::SshFleetOptions FleetOptions(const std::string& dir) {
  testing::SshFleetOptions o;
  o.dir = dir;
  o.machines = kMachines;
  o.per_sshd = 15;
  // Apart from the fleets of test binaries running in parallel (and of
  // scale_bench, which starts at 0).
  std::random_device rd;
  o.first_address = 1000 + static_cast<int>(rd() % 600) * 100;
  o.first_port = 20000 + static_cast<int>(rd() % 2000);
  return o;
}

std::vector<std::string> MachineNames() {
  std::vector<std::string> names;
  for (int i = 0; i < kMachines; ++i) names.push_back(SshFleet::MachineName(i));
  return names;
}

class ShardsScaleTest : public ::testing::Test {
 protected:
  ShardsScaleTest() {
    testing::GitRepo bare(origin_, /*bare=*/true);
    repo_.Write("cluster.yaml", ClusterYaml());
    std::string machines;
    for (int i = 0; i < kMachines; ++i) {
      machines += "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: " +
                  SshFleet::MachineName(i) + "}\nspec:\n  address: " + fleet_.address(i) +
                  "\n  ssh: {port: " + std::to_string(fleet_.port()) +
                  "}\n  stateDir: " + fleet_.state_dir(i) + "\n";
    }
    repo_.Write("machines.yaml", machines);
    repo_.CommitAll("30 machines, no services");
    repo_.Git("remote add origin '" + origin_ + "'");
    repo_.Git("push -q origin main");
  }

  std::string ClusterYaml() const {
    const PasswdEntry me = PasswdEntry::Of(geteuid());
    return "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: shards-scale}\n"
           "spec:\n  defaults:\n    ssh: {user: " +
           (me.found ? me.name : std::string("root")) + ", identityFile: " + fleet_.client_key() +
           "}\n  reconcile: {intervalSeconds: 2, maxParallel: 8}\n";
  }

  std::string Config() const {
    return "repo: {url: " + origin_ + ", branch: main, pollSeconds: 300}\ndataDir: unset\n" +
           "listen: unset\ntokenFile: " + token_file_ +
           "\nssh:\n  knownHosts: " + fleet_.known_hosts() +
           "\n  hostKeyPolicy: strict\nsecretsDir: " + fleet_.secrets_dir() +
           "\nalerts: {diskPercent: 99}\n";
  }

  std::string Token() {
    testing::WriteFile(token_file_,
                       "shards-scale-" + std::to_string(testing::PickFreePort()) + "\n");
    return testing::ReadFile(token_file_);
  }

  // One `sleep` per machine (its env GEN = gen on the machines in
  // `bumped`), `base` on `dep_machine` (ready 1.5 s after its start, by an
  // HTTP probe) and `app` on `app_machine`, which depends on base being ready.
  void PushServices(const std::string& dep_machine, const std::string& app_machine,
                    const std::set<std::string>& bumped, int gen) {
    std::string text;
    for (int i = 0; i < kMachines; ++i) {
      const std::string m = SshFleet::MachineName(i);
      text += "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: idle-" + m +
              "}\nspec:\n  machines: [" + m +
              "]\n  process:\n    command: [/bin/sleep, infinity]\n" +
              (bumped.count(m) ? "    env: {GEN: \"" + std::to_string(gen) + "\"}\n" : "") +
              "  stopTimeoutSeconds: 2\n";
    }
    auto test_service = [&](const std::string& name, const std::string& machine, int port,
                            const std::string& deps) {
      const std::string addr = fleet_.address(machine_index(machine));
      const std::string p = std::to_string(port);
      return "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: " + name +
             "}\nspec:\n  machines: [" + machine + "]\n  process:\n    command: [\"" +
             testing::TestServiceBin() + "\", --host, " + addr + ", --port, \"" + p +
             "\", --ready-delay-ms, \"1500\"]\n    env: {SERVICE_NAME: " + name + "}\n" + deps +
             "  readiness:\n    http: {port: " + p +
             ", path: /health}\n    periodSeconds: 1\n    startTimeoutSeconds: 30\n"
             "  stopTimeoutSeconds: 5\n";
    };
    text += test_service("base", dep_machine, base_port_, "");
    text += test_service("app", app_machine, app_port_, "  dependsOn:\n    - {service: base}\n");
    repo_.Write("services.yaml", text);
    repo_.CommitAll("services, generation " + std::to_string(gen));
    repo_.Git("push -q origin main");
  }

  // The commit every replica in `rs` reports in force.
  bool AllAtHead(const std::vector<Replica*>& rs) {
    const std::string head = repo_.Rev();
    for (Replica* r : rs) {
      const json st = replicas_.Status(*r);
      const std::string rev = st.is_object() ? st.value("revision", "") : "";
      if (rev.size() < 7 || head.rfind(rev, 0) != 0) return false;
    }
    return true;
  }

  static int machine_index(const std::string& m) { return std::stoi(m.substr(1)); }

  testing::TempDir tmp_;
  SshFleet fleet_{FleetOptions(tmp_.Sub("fleet"))};
  std::string origin_ = tmp_.Sub("origin.git");
  testing::GitRepo repo_{tmp_.Sub("repo")};
  std::string token_file_ = tmp_.Sub("token");
  int base_port_ = testing::PickFreePort(fleet_.address(0));
  int app_port_ = testing::PickFreePort(fleet_.address(0));
  testing::RedisServer redis_;
  ShardReplicas replicas_{tmp_.path(), Config(), Token(), redis_.port(), MachineNames()};
};

TEST_F(ShardsScaleTest, ThreeReplicasSplitThirtyMachinesGateAcrossShardsAndTakeOverAfterKill9) {
  Replica& node_a = replicas_.Start("node-a");
  Replica& node_b = replicas_.Start("node-b");
  Replica& node_c = replicas_.Start("node-c");
  const std::vector<Replica*> all = {&node_a, &node_b, &node_c};
  std::map<std::string, std::string> owners;
  ASSERT_TRUE(WaitFor(
      [&] {
        owners = replicas_.AgreedOwners(all);
        return !owners.empty();
      },
      seconds(60), milliseconds(200)))
      << replicas_.Logs();
  // Every machine has exactly one owner (a map), and all three own some.
  ASSERT_EQ(owners.size(), static_cast<size_t>(kMachines));
  std::map<std::string, int> counts;
  for (const auto& [m, o] : owners) ++counts[o];
  EXPECT_EQ(counts.size(), 3u) << "a replica owns no machine";
  for (const auto& [o, n] : counts) RecordProperty("machines_" + o, n);

  // The dependency on one replica's machine, its dependent on another's.
  const std::string dep_machine = owners.begin()->first;
  std::string app_machine;
  for (const auto& [m, o] : owners) {
    if (o != owners.at(dep_machine)) {
      app_machine = m;
      break;
    }
  }
  ASSERT_FALSE(app_machine.empty());
  // Pushed, and a sync sent to one replica only: all three fetch it.
  PushServices(dep_machine, app_machine, {}, 0);
  ASSERT_EQ(replicas_.Post(node_a, "/api/v1/sync"), 200);
  ASSERT_TRUE(WaitFor([&] { return AllAtHead(all); }, seconds(30), milliseconds(200)))
      << replicas_.Logs();
  ASSERT_TRUE(WaitFor(
      [&] {
        for (Replica* r : all) {
          if (!replicas_.AllReady(*r, kInstances)) return false;
        }
        return true;
      },
      seconds(90), milliseconds(300)))
      << replicas_.Logs();
  // (A status poll may time out on a slow build: asked again, bounded.)
  EXPECT_TRUE(WaitFor([&] { return replicas_.AgreedOwners(all) == owners; }, seconds(10),
                      milliseconds(200)))
      << "machines moved while all replicas lived";

  std::vector<ShardAction> actions = replicas_.Actions();
  for (const ShardAction& a : actions) {
    if (a.action == "start") {
      EXPECT_EQ(a.replica, owners.at(a.machine)) << a.key;
    }
  }
  const auto started = ShardReplicas::FirstStarts(actions);
  EXPECT_EQ(started.size(), kInstances);
  ShardReplicas::ExpectExclusive(actions);
  // Across shards: app is not even attempted (no intent) before base, on
  // another replica's machine, was started and ready (its start waits for
  // readiness, so its ok result says ready).
  ASSERT_TRUE(started.count("base@" + dep_machine));
  const ShardAction& base = *started.at("base@" + dep_machine);
  bool app_attempted = false;
  for (const ShardAction& a : actions) {
    if (a.key != "app@" + app_machine) continue;
    app_attempted = true;
    EXPECT_NE(a.replica, base.replica);
    EXPECT_LE(base.to_ms, a.from_ms) << "app started at " << a.from_ms << " by " << a.replica
                                     << ", base ready at " << base.to_ms << " by " << base.replica;
  }
  EXPECT_TRUE(app_attempted);

  // A restart sent to a replica that does not own app's machine: the owner
  // restarts app, audited as manual.
  Replica* receiver = nullptr;
  Replica* app_owner = nullptr;
  for (Replica* r : all) {
    if (r->name == owners.at(app_machine)) app_owner = r;
    if (r->name != owners.at(app_machine) && receiver == nullptr) receiver = r;
  }
  ASSERT_NE(receiver, nullptr);
  ASSERT_NE(app_owner, nullptr);
  const int64_t asked_ms = WallClockMs();
  ASSERT_EQ(replicas_.Post(*receiver, "/api/v1/restart",
                           json{{"service", "app"}, {"machine", app_machine}}.dump()),
            200);
  auto manual_restart = [&] {
    for (const auto& rec : testing::AuditRecordsOf(app_owner->data_dir)) {
      if (rec.service == "app" && rec.machine == app_machine && rec.phase == "result" &&
          rec.trigger == "manual" && rec.result == "ok" && rec.time >= asked_ms &&
          rec.leader == app_owner->name) {
        return true;
      }
    }
    return false;
  };
  ASSERT_TRUE(WaitFor(manual_restart, seconds(30), milliseconds(300))) << replicas_.Logs();
  ASSERT_TRUE(WaitFor([&] { return replicas_.AllReady(*app_owner, kInstances); }, seconds(30),
                      milliseconds(300)));

  // A suspend sent to one replica holds on all three; a resume sent to
  // another lifts it on all three.
  auto all_suspended = [&](const std::vector<Replica*>& rs, bool want) {
    for (Replica* r : rs) {
      const json st = replicas_.Status(*r);
      if (!st.is_object() || st.value("suspended", !want) != want) return false;
    }
    return true;
  };
  ASSERT_EQ(replicas_.Post(node_b, "/api/v1/suspend"), 200);
  EXPECT_TRUE(WaitFor([&] { return all_suspended(all, true); }, seconds(20), milliseconds(200)))
      << replicas_.Logs();
  ASSERT_EQ(replicas_.Post(node_c, "/api/v1/resume"), 200);
  EXPECT_TRUE(WaitFor([&] { return all_suspended(all, false); }, seconds(20), milliseconds(200)))
      << replicas_.Logs();

  // kill -9 of the replica that owns the dependency: the other two take its
  // machines within the lease, plus a renew interval for the tick that sees
  // it, plus 5 s for the status poll and a slow (sanitised) build.
  Replica* victim = nullptr;
  for (Replica* r : all) {
    if (r->name == owners.at(dep_machine)) victim = r;
  }
  ASSERT_NE(victim, nullptr);
  const ShardReplicas::Takeover t = replicas_.Kill9AndTakeOver(victim, owners);
  ASSERT_FALSE(t.after.empty());
  const std::vector<Replica*>& alive = t.alive;
  const std::set<std::string>& moved = t.moved;
  const std::map<std::string, std::string>& after = t.after;
  const int64_t killed_ms = t.killed_ms;

  // A change of every moved machine's `sleep` (synced through one of the
  // two): its heir restarts it.
  PushServices(dep_machine, app_machine, moved, 1);
  ASSERT_EQ(replicas_.Post(*alive[0], "/api/v1/sync"), 200);
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::vector<ShardAction> now = replicas_.Actions(victim->name, killed_ms);
        size_t restarted = 0;
        for (const ShardAction& a : now) {
          restarted += a.ok && a.action != "start" && a.from_ms > killed_ms &&
                       a.key == "idle-" + a.machine + "@" + a.machine && moved.count(a.machine);
        }
        return restarted >= moved.size() && replicas_.AllReady(*alive[0], kInstances) &&
               replicas_.AllReady(*alive[1], kInstances);
      },
      seconds(60), milliseconds(300)))
      << replicas_.Logs();

  actions = replicas_.Actions(victim->name, killed_ms);
  ShardReplicas::ExpectExclusive(actions);
  for (const std::string& m : moved) {
    uint64_t victim_token = 0, heir_token = 0;
    for (const ShardAction& a : actions) {
      if (a.machine != m) continue;
      if (a.replica == victim->name) victim_token = std::max(victim_token, a.token);
      if (a.replica == after.at(m)) heir_token = std::max(heir_token, a.token);
      if (a.from_ms > killed_ms) {
        EXPECT_EQ(a.replica, after.at(m)) << a.key;
      }
    }
    EXPECT_GT(victim_token, 0u) << m;
    EXPECT_GT(heir_token, victim_token) << m;
  }

  // The drift watch follows the machines: a `sleep` killed on a moved
  // machine is seen by its heir's watch only. Suspended meanwhile (through
  // one replica), so that no pass repairs it before the watch sees it; once
  // resumed (through the other), the heir repairs it.
  const std::string watched = *moved.begin();
  Replica* heir = alive[0]->name == after.at(watched) ? alive[0] : alive[1];
  Replica* other = heir == alive[0] ? alive[1] : alive[0];
  const std::string idle = "idle-" + watched;
  const std::string seen = "watch: " + idle + "@" + watched + " is ";
  ASSERT_EQ(replicas_.Post(*other, "/api/v1/suspend"), 200);
  ASSERT_TRUE(WaitFor([&] { return all_suspended(alive, true); }, seconds(20), milliseconds(200)));
  const int64_t pid =
      ShardReplicas::Instance(replicas_.Status(*heir), idle, watched).value("pid", int64_t{0});
  ASSERT_GT(pid, 0) << replicas_.Status(*heir).dump();
  ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGKILL), 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        return testing::ReadFile(tmp_.path() + "/" + heir->name + ".log").find(seen) !=
               std::string::npos;
      },
      seconds(20), milliseconds(100)))
      << replicas_.Logs();
  EXPECT_EQ(testing::ReadFile(tmp_.path() + "/" + other->name + ".log").find(seen),
            std::string::npos)
      << other->name << " watches a machine it does not hold";
  ASSERT_EQ(replicas_.Post(*heir, "/api/v1/resume"), 200);
  ASSERT_TRUE(WaitFor(
      [&] {
        const json i = ShardReplicas::Instance(replicas_.Status(*heir), idle, watched);
        return i.value("pid", int64_t{0}) > 0 && i.value("pid", int64_t{0}) != pid &&
               i.value("state", "") == "running";
      },
      seconds(30), milliseconds(200)))
      << replicas_.Logs();
  ShardReplicas::ExpectExclusive(replicas_.Actions(victim->name, killed_ms));

  for (Replica* r : alive) {
    std::string reason;
    EXPECT_TRUE(testing::AuditVerifies(r->data_dir, &reason)) << r->name << ": " << reason;
  }
}

}  // namespace
}  // namespace clusterctl

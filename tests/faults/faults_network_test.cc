// The fault-injection suite's network faults (issue 18): a machine cut off
// by an nftables rule in the middle of an apply, a slow and lossy link to
// one machine (tests/harness/tcp_proxy's delay and loss modes), and a git
// remote that hangs and then vanishes (git daemon behind the proxy). Each is
// followed by the invariants of fault_suite.h; docs/reliability.md has the
// table of a real run (scripts/faults.sh).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>

#include "tests/faults/fault_suite.h"
#include "tests/harness/audit_records.h"
#include "tests/harness/git_daemon.h"
#include "tests/harness/nft_partition.h"

namespace clusterctl::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// The first audit record after `after` that `match` accepts; 0 when none.
template <typename Match>
uint64_t FirstRecord(const std::string& data_dir, uint64_t after, Match match) {
  for (const auto& r : AuditRecordsOf(data_dir)) {
    if (r.seq > after && match(r)) return r.seq;
  }
  return 0;
}

class NetworkFaults : public FaultSuite {
 protected:
  explicit NetworkFaults(DemoOptions options = {}) : FaultSuite(std::move(options)) {}

  int64_t Pid(const std::string& service, const std::string& machine) const {
    return demo_.Instance(service, machine).value("pid", int64_t{0});
  }
  // Kills the services of `machine` and waits until clusterd started
  // `service` there again and it is ready.
  bool RepairsAKilledService(const std::string& service, const std::string& machine) {
    const int64_t pid = Pid(service, machine);
    demo_.host(machine).KillServices();
    return WaitFor(
        [&] {
          json i = demo_.Instance(service, machine);
          return i.value("pid", int64_t{0}) != pid && i.value("ready", false);
        },
        seconds(40), milliseconds(200));
  }
  // Whether an alert of `kind` on `machine` was ever raised (firing or not).
  bool EverAlerted(const std::string& kind, const std::string& machine) const {
    json alerts = demo_.Api("/api/v1/alerts?state=all");
    if (alerts.contains("alerts")) alerts = alerts["alerts"];
    for (const json& a : alerts) {
      if (a.value("kind", "") == kind && a.value("machine", "") == machine) return true;
    }
    return false;
  }
  // Changes monitoring-server's environment (a restart) and pushes it.
  std::string PushAChangeOf(const std::string& service, const std::string& file,
                            const std::string& value) {
    EditService(file, "{SERVICE_NAME: " + service + "}",
                "{SERVICE_NAME: " + service + ", V: \"" + value + "\"}");
    return CommitAndPush(service + " V=" + value);
  }
};

// 1. A machine partitioned in the middle of an apply: the step in flight
// ends (its command or readiness times out) with a result, the machine is
// alerted unreachable, nothing more is sent to it while it is cut off, the
// rest of the cluster is still repaired, and once it is back the change is
// applied.
class Partition : public NetworkFaults {
 protected:
  static DemoOptions Options() {
    DemoOptions o;
    o.ssh_command_timeout_seconds = 5;  // A hung command ends in 5 s, not 30.
    return o;
  }
  Partition() : NetworkFaults(Options()) {}
  void SetUp() override {
    std::string why;
    if (!NftPartition::Available(&why)) GTEST_SKIP() << why;
    NetworkFaults::SetUp();
  }
};

TEST_F(Partition, MachinePartitionedMidApply) {
  const std::string m = "worker-monitor";
  const uint64_t before = LastSeq();
  PushAChangeOf("monitoring-server", "edge", "partitioned");
  // Cut as soon as the first step for the machine is announced.
  ASSERT_TRUE(WaitFor(
      [&] {
        return FirstRecord(demo_.data_dir(), before, [&](const audit::AuditRecord& r) {
                 return r.machine == m && r.phase == "intent";
               }) != 0;
      },
      seconds(40), milliseconds(20)))
      << demo_.ClusterdLog();
  NftPartition cut(demo_.address_of(m));
  const uint64_t cut_at = LastSeq();
  const auto t_cut = Clock::now();
  // The step in flight ends with a result while the machine is still cut.
  std::string unanswered;
  EXPECT_TRUE(WaitFor([&] { return (unanswered = OpenIntents(m, before)).empty(); }, seconds(40),
                      milliseconds(200)))
      << "still open while partitioned: " << unanswered << "\n"
      << demo_.ClusterdLog();
  EXPECT_TRUE(WaitAlert("machine_unreachable", m))
      << demo_.Api("/api/v1/alerts?state=all").dump() << "\n"
      << demo_.ClusterdLog();
  // From the pass that saw it unreachable on, nothing is sent to it.
  const uint64_t seen = FirstRecord(demo_.data_dir(), cut_at, [&](const audit::AuditRecord& r) {
    return r.machine == m && r.action == "machine_unreachable";
  });
  EXPECT_NE(0u, seen) << "no machine_unreachable record for " << m;
  RecordProperty("steps_in_flight_pass", static_cast<int>(IntentsOn(m, cut_at, seen)));
  std::string cut_steps;  // The steps the partition cut, as the audit log ends them.
  for (const auto& r : AuditRecordsOf(demo_.data_dir())) {
    if (r.phase == "result" && r.machine == m && r.intent_seq > before && r.intent_seq <= cut_at)
      cut_steps += r.action + ": " + r.result + " (" + r.detail + "); ";
  }
  RecordProperty("cut_steps", cut_steps);
  RecordProperty(
      "seconds_to_unreachable",
      static_cast<int>(std::chrono::duration_cast<seconds>(Clock::now() - t_cut).count()));
  // The rest of the cluster is still reconciled.
  EXPECT_TRUE(RepairsAKilledService("embeddings-server", "rp-embeddings")) << demo_.ClusterdLog();
  const uint64_t during = LastSeq();
  cut.Heal();
  CheckInvariants("machine partitioned mid-apply", Clock::now(), m, seen, during);
}

// 2. 300 ms of latency each way and 5 % "loss" (stalls of 200-1000 ms) on
// the SSH link of one machine, from clusterd's first connection on: a pushed
// change still converges, the slow machine is never reported unreachable,
// and nothing runs twice. The
// convergence time is the recovery time of the report (from the push).
class SlowLink : public NetworkFaults {
 protected:
  static DemoOptions Options() {
    DemoOptions o;
    o.proxied_machine = "worker-tools";
    return o;
  }
  SlowLink() : NetworkFaults(Options()) {}
  // Slow from the start: clusterd's first connection (the SSH handshake's
  // round trips, within ssh.connectTimeoutSeconds) goes over it too.
  void BeforeClusterd() override {
    demo_.proxy()->set_delay(milliseconds(300));
    demo_.proxy()->set_loss(0.05, /*seed=*/18);
  }
};

TEST_F(SlowLink, LatencyAndLossOnOneMachine) {
  const std::string m = "worker-tools";
  const auto pushed = Clock::now();
  PushAChangeOf("tools-server", "tools-server", "slow");
  // The invariants run with the link still slow: convergence is timed from
  // the push.
  CheckInvariants("300 ms latency and 5% loss on one machine", pushed);
  RecordProperty("chunks_held_as_lost", static_cast<int>(demo_.proxy()->lost()));
  EXPECT_FALSE(EverAlerted("machine_unreachable", m))
      << demo_.Api("/api/v1/alerts?state=all").dump();
}

// 3. The git remote hangs (connections accepted, never answered), then is
// cut off (established connections stall too): clusterd keeps answering its
// API, keeps repairing drift with the revision in force, alerts
// source_fetch; once the remote is back, the commit pushed meanwhile is
// applied.
class GitRemote : public NetworkFaults {
 protected:
  void BeforeClusterd() override {
    remote_ = std::make_unique<GitDaemon>(demo_.dir(), demo_.dir() + "/git-daemon.log");
    demo_.UseRemote(remote_->Url("origin.git"), /*fetch_timeout_seconds=*/2);
  }
  // The API answers /api/v1/status within `bound`.
  bool AnswersWithin(milliseconds bound) {
    const auto t0 = Clock::now();
    const bool answered = demo_.Api("/api/v1/status").contains("revision");
    return answered && Clock::now() - t0 < bound;
  }
  std::unique_ptr<GitDaemon> remote_;
};

TEST_F(GitRemote, GitRemoteUnreachableAndHanging) {
  const std::string in_force = demo_.Api("/api/v1/status").value("revision", "");
  ASSERT_FALSE(in_force.empty());
  remote_->proxy().set_silent(true);
  const std::string pushed = PushAChangeOf("monitoring-server", "edge", "while-hung");
  EXPECT_TRUE(WaitAlert("source_fetch", "", seconds(30)))
      << demo_.Api("/api/v1/alerts?state=all").dump() << "\n"
      << demo_.ClusterdLog();
  EXPECT_TRUE(AnswersWithin(milliseconds(1000)));
  EXPECT_TRUE(RepairsAKilledService("tools-server", "worker-tools")) << demo_.ClusterdLog();
  // Cut off: fetches in flight stall as well.
  remote_->proxy().set_partitioned(true);
  EXPECT_TRUE(RepairsAKilledService("monitoring-server", "worker-monitor")) << demo_.ClusterdLog();
  EXPECT_TRUE(AnswersWithin(milliseconds(1000)));
  EXPECT_TRUE(WaitAlert("source_fetch", "", seconds(5)));
  EXPECT_EQ(in_force, demo_.Api("/api/v1/status").value("revision", ""));
  remote_->proxy().set_partitioned(false);
  remote_->proxy().set_silent(false);
  CheckInvariants("git remote hanging, then unreachable", Clock::now());
  EXPECT_EQ(pushed, demo_.Api("/api/v1/status").value("revision", ""));
}

}  // namespace
}  // namespace clusterctl::testing

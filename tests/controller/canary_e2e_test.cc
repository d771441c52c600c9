// Canary rollouts end to end (issue 16): the built clusterd on six real sshd
// hosts (the demo's five and one more) and a service `web` on all six with
// rollout.canary {machines: [worker-six]}, waves [3, 6].
//
//   - A good change goes to 1, then 3, then 6 instances; each wave starts
//     only after the previous one was ready for analysisSeconds (process
//     start times and the order of the audit records say so).
//   - A bad change (the new command never gets ready) touches only the
//     canary, which is put back to the old spec; the revision is
//     quarantined, a rollback commit with the old tree is on the remote,
//     auto-sync does not apply the bad revision again, and a fix pushed
//     after that rolls out.
//   - The same with a branch that refuses the rollback push: the commit
//     waits on a local branch, and is in force meanwhile.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "controller/quarantine.h"
#include "tests/harness/audit_records.h"
#include "tests/harness/demo_cluster.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::WaitFor;

constexpr int kAnalysisSeconds = 3;

class CanaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::SshHostOptions o;
    o.dir = demo_.dir() + "/machines/worker-six";
    o.client_key_path = demo_.dir() + "/data/secrets/id_ed25519";
    six_ = std::make_unique<testing::SshHost>(o);
    testing::WriteFile(
        demo_.dir() + "/known_hosts",
        testing::ReadFile(demo_.dir() + "/known_hosts") + six_->known_hosts_line() + "\n");
    demo_.repo().Write("machines/worker-six.yaml",
                       "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: worker-six}\n"
                       "spec:\n  address: " +
                           six_->address() + "\n  ssh: {port: " + std::to_string(six_->port()) +
                           "}\n  stateDir: " + six_->state_dir() + "\n");
    port_ = testing::PickFreePort(six_->address());
    WriteWeb("1", "");
    demo_.repo().CommitAll("web on six machines");
    demo_.repo().Git("push -q origin main");
    if (ProtectedBranch()) {
      // clusterd clones origin as a URL and pushes to it (a local path
      // would be written directly).
      std::string config = testing::ReadFile(demo_.config_path());
      const std::string url = "url: " + demo_.origin();
      config.replace(config.find(url), url.size(), "url: file://" + demo_.origin());
      testing::WriteFile(demo_.config_path(), config);
    }
    clusterd_ = demo_.StartClusterd();
    ASSERT_TRUE(WaitFor(
        [&] {
          return demo_.Api("/api/v1/status").value("overall_status", "") == "healthy" && AllReady();
        },
        seconds(120), milliseconds(300)))
        << Log();
  }
  void TearDown() override {
    if (clusterd_) clusterd_->Stop();
  }
  virtual bool ProtectedBranch() const { return false; }

  // The web service at RELEASE `release`; `extra` is added to its command.
  // Each machine's instance listens on the machine's own address, which the
  // SSH session names in $SSH_CONNECTION.
  void WriteWeb(const std::string& release, const std::string& extra) {
    const std::string port = std::to_string(port_);
    demo_.repo().Write(
        "services/web.yaml",
        "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
        "  machines: [cpu-coordinator, jetson, rp-embeddings, worker-monitor, worker-tools,"
        " worker-six]\n"
        "  process:\n"
        "    command: [/bin/sh, -c, 'set -- $SSH_CONNECTION; exec \"" +
            testing::TestServiceBin() + "\" --host \"$3\" --port " + port +
            " --ready-delay-ms 300" + extra +
            "']\n"
            "    env: {RELEASE: \"" +
            release +
            "\"}\n"
            "  readiness:\n    http: {port: " +
            port +
            ", path: /health}\n    periodSeconds: 1\n    startTimeoutSeconds: 6\n"
            "  stopTimeoutSeconds: 5\n  restart: {backoffSeconds: 1, maxBackoffSeconds: 10}\n"
            "  rollout:\n    canary: {machines: [worker-six], analysisSeconds: " +
            std::to_string(kAnalysisSeconds) + "}\n    waves: [3, 6]\n");
  }
  std::string Push(const std::string& message) {
    demo_.repo().CommitAll(message);
    demo_.repo().Git("push -q origin main");
    return demo_.repo().Rev();
  }

  json Web() {
    json st = demo_.Api("/api/v1/status");
    if (!st.contains("services") || !st["services"].contains("web")) return json::object();
    return st["services"]["web"];
  }
  std::map<std::string, int> Pids() {
    std::map<std::string, int> out;
    json w = Web();
    if (!w.contains("instances")) return out;
    for (const auto& [m, i] : w["instances"].items()) out[m] = i.value("pid", 0);
    return out;
  }
  bool AllReady() {
    json w = Web();
    if (!w.contains("instances") || w["instances"].size() != 6) return false;
    for (const auto& [m, i] : w["instances"].items()) {
      if (!i.value("ready", false) || i.value("pid", 0) == 0) return false;
    }
    return true;
  }
  // Every instance runs a process other than the one in `before`, ready.
  bool AllReplaced(const std::map<std::string, int>& before) {
    if (!AllReady()) return false;
    for (const auto& [m, pid] : Pids()) {
      if (before.count(m) && before.at(m) == pid) return false;
    }
    return true;
  }
  std::string Log() const { return demo_.ClusterdLog(); }
  std::string Origin(const std::string& args) const {
    std::string out;
    testing::RunShell("git --git-dir='" + demo_.origin() + "' " + args, &out);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  std::vector<audit::AuditRecord> WebRecords() {
    std::vector<audit::AuditRecord> out;
    for (auto& r : testing::AuditRecordsOf(demo_.data_dir())) {
      if (r.service == "web") out.push_back(std::move(r));
    }
    return out;
  }

  testing::DemoCluster demo_;
  std::unique_ptr<testing::SshHost> six_;
  int port_ = 0;
  std::unique_ptr<testing::Process> clusterd_;
};

TEST_F(CanaryTest, AGoodChangeRollsOutInWavesOfOneThreeAndSix) {
  const std::map<std::string, int> before = Pids();
  WriteWeb("2", "");
  const std::string head = Push("web release 2");
  ASSERT_TRUE(WaitFor([&] { return AllReplaced(before); }, seconds(120), milliseconds(300)))
      << Web().dump(2) << Log();
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const json& r : demo_.Api("/api/v1/rollouts")) {
          if (r.value("service", "") == "web" && r.value("phase", "") == "succeeded") return true;
        }
        return false;
      },
      seconds(30), milliseconds(300)))
      << demo_.Api("/api/v1/rollouts").dump(2);

  // The audit order: each restart result, and the wave events between them.
  const std::vector<std::string> wave2 = {"cpu-coordinator", "jetson"};
  const std::vector<std::string> wave3 = {"rp-embeddings", "worker-monitor", "worker-tools"};
  std::vector<std::string> order;
  std::map<std::string, int64_t> restarted_ms, intent_ms;
  std::vector<int64_t> wave_ms;
  for (const auto& r : WebRecords()) {
    if (r.revision != head.substr(0, 7)) continue;
    if (r.action == "restart" && r.phase == "intent") intent_ms[r.machine] = r.time;
    if (r.action == "restart" && r.phase == "result") {
      EXPECT_EQ(r.result, "ok") << r.machine << ": " << r.detail;
      order.push_back(r.machine);
      restarted_ms[r.machine] = r.time;
    }
    if (r.action == "rollout_wave") {
      order.push_back("wave");
      wave_ms.push_back(r.time);
    }
  }
  ASSERT_EQ(order.size(), 8u) << ::testing::PrintToString(order);
  EXPECT_EQ(order[0], "worker-six");
  EXPECT_EQ(order[1], "wave");
  EXPECT_EQ(std::set<std::string>(order.begin() + 2, order.begin() + 4),
            std::set<std::string>(wave2.begin(), wave2.end()));
  EXPECT_EQ(order[4], "wave");
  EXPECT_EQ(std::set<std::string>(order.begin() + 5, order.end()),
            std::set<std::string>(wave3.begin(), wave3.end()));
  ASSERT_EQ(wave_ms.size(), 2u);
  // A wave opens no sooner than analysisSeconds after the last restart of
  // the one before, and its restarts come after it opened.
  EXPECT_GE(wave_ms[0] - restarted_ms["worker-six"], kAnalysisSeconds * 1000);
  for (const auto& m : wave2) {
    EXPECT_GE(intent_ms[m], wave_ms[0]) << m;
    EXPECT_GE(wave_ms[1] - restarted_ms[m], kAnalysisSeconds * 1000) << m;
  }
  for (const auto& m : wave3) EXPECT_GE(intent_ms[m], wave_ms[1]) << m;

  // The processes' start times agree: each wave started after the last.
  const std::map<std::string, int> after = Pids();
  auto started = [&](const std::string& m) { return testing::ProcessStartTicks(after.at(m)); };
  for (const auto& m : wave2) EXPECT_GT(started(m), started("worker-six")) << m;
  for (const auto& m3 : wave3) {
    for (const auto& m2 : wave2) EXPECT_GT(started(m3), started(m2)) << m3 << " vs " << m2;
  }
  // The revision was recorded, and the progress was audited.
  std::string out;
  ASSERT_EQ(0, demo_.Cli("rollout", &out)) << out;
  EXPECT_NE(out.find("rollout of web to " + head.substr(0, 7) + ": succeeded"), std::string::npos)
      << out;
}

TEST_F(CanaryTest, ABadChangeIsRolledBackFromTheCanaryAndQuarantined) {
  const std::map<std::string, int> before = Pids();
  const std::string good = demo_.repo().Rev();
  const std::string good_tree = demo_.repo().Git("rev-parse HEAD^{tree}");
  WriteWeb("2", " --fail-readiness");
  const std::string bad = Push("web release 2: never ready");

  // The budget (0) is spent by the canary: rolled back automatically.
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& r : WebRecords()) {
          if (r.action == "auto_rollback") return true;
        }
        return false;
      },
      seconds(60), milliseconds(300)))
      << Log();
  // The canary runs the old spec again, ready; nothing else was touched.
  ASSERT_TRUE(WaitFor(
      [&] {
        return AllReady() && Pids().at("worker-six") != before.at("worker-six") &&
               demo_.Api("/api/v1/status").value("revision", "") != bad;
      },
      seconds(60), milliseconds(300)))
      << Web().dump(2) << Log();
  std::map<std::string, int> now = Pids();
  for (const auto& [m, pid] : before) {
    if (m != "worker-six") {
      EXPECT_EQ(now.at(m), pid) << m << " was touched";
    }
  }
  // A rollback commit with the old tree is on the remote, the bad revision
  // is quarantined, and the audit says auto-rollback.
  const std::string rollback = Origin("rev-parse main");
  EXPECT_NE(rollback, bad);
  EXPECT_EQ(Origin("rev-parse main^{tree}"), good_tree);
  EXPECT_NE(Origin("log -1 --format=%B main").find("clusterctl-rollback-to: " + good),
            std::string::npos);
  auto q = controller::ReadQuarantine(demo_.data_dir());
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->commits, std::set<std::string>{bad});
  EXPECT_EQ(q->rollback_commit, rollback);
  std::set<std::string> auto_actions;
  for (const auto& r : WebRecords()) {
    if (r.trigger == "auto-rollback") auto_actions.insert(r.action + "@" + r.machine);
    // The canary's restart waited for readiness and failed: the old
    // process's readiness did not answer for the new one.
    if (r.action == "rollout_failed") {
      EXPECT_NE(r.detail.find("worker-six: restart failed"), std::string::npos) << r.detail;
    }
  }
  EXPECT_TRUE(auto_actions.count("rollout_failed@")) << ::testing::PrintToString(auto_actions);
  EXPECT_TRUE(auto_actions.count("auto_rollback@")) << ::testing::PrintToString(auto_actions);
  EXPECT_TRUE(auto_actions.count("restart@worker-six")) << ::testing::PrintToString(auto_actions);
  bool alerted = false;
  for (const json& a : demo_.Api("/api/v1/alerts?state=all")) {
    alerted |= a.value("kind", "") == "rollout_failed";
  }
  EXPECT_TRUE(alerted) << demo_.Api("/api/v1/alerts?state=all").dump(2);

  // Auto-sync keeps the rollback: two more polls later the canary is the same.
  const int canary = Pids().at("worker-six");
  const std::string stamp = demo_.Api("/api/v1/status").value("timestamp", "");
  int passes = 0;
  std::string last = stamp;
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string t = demo_.Api("/api/v1/status").value("timestamp", "");
        if (!t.empty() && t != last) {
          last = t;
          ++passes;
        }
        return passes >= 3;
      },
      seconds(30), milliseconds(300)));
  EXPECT_EQ(Pids().at("worker-six"), canary);
  EXPECT_EQ(demo_.Api("/api/v1/status").value("revision", ""), rollback);

  // A fix after the rollback rolls out to every instance.
  demo_.repo().Git("pull -q --ff-only origin main");
  WriteWeb("3", "");
  const std::string fix = Push("web release 3: fixed");
  ASSERT_TRUE(WaitFor([&] { return AllReplaced(now); }, seconds(120), milliseconds(300)))
      << Web().dump(2) << Log();
  EXPECT_TRUE(WaitFor(
      [&] { return Web().value("rollout", json::object()).value("phase", "") == "succeeded"; },
      seconds(30), milliseconds(300)))
      << Web().dump(2);
  EXPECT_EQ(Web()["rollout"].value("revision", ""), fix);
  EXPECT_FALSE(controller::ReadQuarantine(demo_.data_dir()).has_value());
}

class CanaryProtectedTest : public CanaryTest {
 protected:
  bool ProtectedBranch() const override { return true; }
};

TEST_F(CanaryProtectedTest, ARefusedRollbackPushWaitsOnABranchAndTheBadRevisionStaysOut) {
  const std::map<std::string, int> before = Pids();
  WriteWeb("2", " --fail-readiness");
  const std::string bad = Push("web release 2: never ready");
  // A lock on the branch makes origin refuse clusterd's push, as a
  // protected branch would (hooks do not run for a local transport).
  testing::WriteFile(demo_.origin() + "/refs/heads/main.lock", "");
  std::string detail;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& r : WebRecords()) {
          if (r.action == "auto_rollback") detail = r.detail;
        }
        return !detail.empty();
      },
      seconds(60), milliseconds(300)))
      << Log();
  EXPECT_NE(detail.find("push refused"), std::string::npos) << detail;
  EXPECT_NE(detail.find("it waits on branch clusterctl/rollback-"), std::string::npos) << detail;
  auto q = controller::ReadQuarantine(demo_.data_dir());
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->commits, std::set<std::string>{bad});
  // The branch still points at the bad revision; the rollback commit is in
  // force all the same, and the canary runs the old spec again.
  EXPECT_EQ(Origin("rev-parse main"), bad);
  ASSERT_TRUE(WaitFor(
      [&] {
        return AllReady() && Pids().at("worker-six") != before.at("worker-six") &&
               demo_.Api("/api/v1/status").value("revision", "") == q->rollback_commit;
      },
      seconds(60), milliseconds(300)))
      << Web().dump(2) << Log();
  for (const auto& [m, pid] : Pids()) {
    if (m != "worker-six") {
      EXPECT_EQ(before.at(m), pid) << m << " was touched";
    }
  }
  // A fix on top of the bad revision ends the quarantine and rolls out.
  std::filesystem::remove(demo_.origin() + "/refs/heads/main.lock");
  const std::map<std::string, int> now = Pids();
  WriteWeb("3", "");
  const std::string fix = Push("web release 3: fixed");
  ASSERT_TRUE(WaitFor([&] { return AllReplaced(now); }, seconds(120), milliseconds(300)))
      << Web().dump(2) << Log();
  EXPECT_EQ(demo_.Api("/api/v1/status").value("revision", ""), fix);
  EXPECT_FALSE(controller::ReadQuarantine(demo_.data_dir()).has_value());
}

}  // namespace
}  // namespace clusterctl

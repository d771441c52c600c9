// Monitoring end to end (issue 13): the built clusterd on five real sshd
// hosts raises, escalates and resolves alerts, and delivers them to a real
// HTTP receiver on loopback, signed, in order, once each; an outbox that
// survives a restart; acknowledgements through the clusterctl binary,
// audited; /api/v1/health against `clusterctl status`; /api/v1/stats.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "base/sha256.h"
#include "tests/harness/audit_records.h"
#include "tests/harness/demo_cluster.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"
#include "tests/harness/webhook_receiver.h"

namespace clusterctl {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::WaitFor;

constexpr char kHmacKey[] = "monitoring-e2e-hmac-key";

class MonitoringTest : public ::testing::Test {
 protected:
  MonitoringTest() {
    // Short escalation and resolution, every event sent (no cooldown), quick retries.
    testing::WriteFile(demo_.dir() + "/hook.url", receiver_.Url("/hook?token=t0ps3cret") + "\n");
    testing::WriteFile(demo_.dir() + "/hook.key", std::string(kHmacKey) + "\n");
    // The demo's `alerts: {diskPercent: 99}`, the file's last line, is
    // replaced by a block that keeps it.
    std::string config = testing::ReadFile(demo_.config_path());
    const size_t alerts = config.rfind("alerts: {");
    EXPECT_NE(std::string::npos, alerts);
    if (alerts != std::string::npos) config.erase(alerts);
    config +=
        "alerts:\n  diskPercent: 99\n  escalateAfterSeconds: [3]\n  resolveAfterSeconds: 4\n"
        "notify:\n  retryInitialSeconds: 1\n  retryMaxSeconds: 1\n  sinks:\n"
        "    - name: hook\n      type: webhook\n      urlFile: " +
        demo_.dir() + "/hook.url\n      secretFile: " + demo_.dir() +
        "/hook.key\n      cooldownSeconds: 0\n      kinds: [crash_loop, suspended]\n";
    testing::WriteFile(demo_.config_path(), config);
  }
  ~MonitoringTest() override { StopClusterd(); }

  void StartClusterd() {
    clusterd_ = std::make_unique<testing::Process>(
        std::vector<std::string>{testing::ClusterdBin(), "--config", demo_.config_path()},
        testing::OutputTo(demo_.dir() + "/clusterd-" + std::to_string(++starts_) + ".log"));
  }
  void StopClusterd() {
    if (!clusterd_) return;
    clusterd_->Stop(milliseconds(30000));
    clusterd_.reset();
  }
  // Every run's log.
  std::string Log() const {
    std::string all;
    for (int i = 1; i <= starts_; ++i) {
      all += testing::ReadFile(demo_.dir() + "/clusterd-" + std::to_string(i) + ".log");
    }
    return all;
  }
  json Call(const std::string& method, const std::string& path, const std::string& body = "{}") {
    httplib::Client c("http://" + demo_.listen());
    c.set_connection_timeout(1, 0);
    httplib::Headers h = {{"Authorization", "Bearer " + demo_.Token()}};
    auto res = method == "GET" ? c.Get(path.c_str(), h)
                               : c.Post(path.c_str(), h, body, "application/json");
    if (!res || res->status != 200) return json();
    return json::parse(res->body, nullptr, false);
  }
  // The events the receiver got, as "<event> <kind>", and each checked for
  // its signature and delivery id.
  std::vector<std::string> Received() {
    std::vector<std::string> out;
    for (const auto& d : receiver_.Deliveries()) {
      const Sha256Digest mac = HmacSha256(kHmacKey, d.body);
      EXPECT_EQ("sha256=" + HexEncode(mac.data(), mac.size()),
                d.headers.at("X-Clusterctl-Signature-256"));
      const json n = json::parse(d.body);
      EXPECT_EQ(n["id"], d.headers.at("X-Clusterctl-Delivery"));
      out.push_back(n["event"].get<std::string>() + " " + n["alert"]["kind"].get<std::string>());
    }
    return out;
  }

  testing::WebhookReceiver receiver_;
  testing::DemoCluster demo_;
  std::unique_ptr<testing::Process> clusterd_;
  int starts_ = 0;
};

TEST_F(MonitoringTest, AServiceKilledThreeTimesIsOneAlertFiredEscalatedResolvedEachSentOnce) {
  StartClusterd();
  ASSERT_TRUE(demo_.WaitHealthy()) << Log();
  // tools-server on worker-tools: restart.backoffSeconds 1 in the demo.
  auto pid_of = [&] {
    json st = Call("GET", "/api/v1/status");
    const json& i = st["services"]["tools-server"]["instances"]["worker-tools"];
    return i.value("state", "") == "running" && i.value("ready", false) ? i.value("pid", 0) : 0;
  };
  for (int kill_no = 0; kill_no < 3; ++kill_no) {
    int pid = 0;
    ASSERT_TRUE(WaitFor([&] { return (pid = pid_of()) > 0; }, seconds(60), milliseconds(100)))
        << Log();
    ASSERT_EQ(0, ::kill(pid, SIGKILL));
    ASSERT_TRUE(WaitFor(
        [&] {
          const int p = pid_of();
          return p > 0 && p != pid;
        },
        seconds(60), milliseconds(100)))
        << Log();
  }
  // Escalated after 3 s; resolved once it ran 4 s since its last start.
  ASSERT_TRUE(receiver_.WaitFor(3, 60000)) << Log();
  EXPECT_EQ((std::vector<std::string>{"firing crash_loop", "escalated crash_loop",
                                      "resolved crash_loop"}),
            Received());
  json history = Call("GET", "/api/v1/alerts?state=all");
  int crash_loops = 0;
  for (const json& a : history) {
    if (a["kind"] != "crash_loop") continue;
    ++crash_loops;
    EXPECT_EQ("resolved", a["state"]);
    EXPECT_EQ("crash_loop/worker-tools/tools-server", a["key"]);
    EXPECT_EQ(1, a["level"]);
  }
  EXPECT_EQ(1, crash_loops) << history.dump();
  // The availability figures saw the three episodes.
  json stats = Call("GET", "/api/v1/stats");
  const json& w = stats["availability"]["tools-server"]["windows"]["1h"];
  EXPECT_GE(w.value("failures", 0), 3) << stats.dump();
  EXPECT_LT(w["availability"].get<double>(), 1.0) << stats.dump();
  EXPECT_GT(w["mttr_ms"].get<int64_t>(), 0) << stats.dump();
  // The webhook URL's token never reaches the log or the API.
  EXPECT_EQ(std::string::npos, Log().find("t0ps3cret"));
  EXPECT_EQ(std::string::npos, stats.dump().find("t0ps3cret"));
}

TEST_F(MonitoringTest, TheBacklogOfADownReceiverSurvivesARestartAndArrivesInOrder) {
  receiver_.FailNext(1000000);
  StartClusterd();
  ASSERT_TRUE(demo_.WaitHealthy()) << Log();
  ASSERT_FALSE(Call("POST", "/api/v1/suspend").is_null());
  ASSERT_FALSE(Call("POST", "/api/v1/resume").is_null());
  ASSERT_FALSE(Call("POST", "/api/v1/suspend").is_null());
  ASSERT_TRUE(WaitFor(
      [&] {
        json s = Call("GET", "/api/v1/stats");
        return s.is_object() && s["notify"]["sinks"][0].value("queued", 0) == 3 &&
               s["notify"]["sinks"][0].value("failed_attempts", 0) >= 2;
      },
      seconds(30), milliseconds(200)))
      << Call("GET", "/api/v1/stats").dump() << Log();
  StopClusterd();
  receiver_.FailNext(0);
  StartClusterd();
  ASSERT_TRUE(receiver_.WaitFor(3, 30000)) << Log();
  EXPECT_EQ(
      (std::vector<std::string>{"firing suspended", "resolved suspended", "firing suspended"}),
      Received());
  std::vector<std::string> ids;
  for (const auto& d : receiver_.Deliveries()) ids.push_back(json::parse(d.body)["id"]);
  EXPECT_EQ((std::vector<std::string>{"1-firing", "1-resolved", "2-firing"}), ids);
}

TEST_F(MonitoringTest, AnAckHoldsNotificationsUntilItExpiresAndIsAudited) {
  StartClusterd();
  ASSERT_TRUE(demo_.WaitHealthy()) << Log();
  ASSERT_FALSE(Call("POST", "/api/v1/suspend").is_null());
  ASSERT_TRUE(receiver_.WaitFor(1, 10000)) << Log();
  std::string out;
  ASSERT_EQ(0, demo_.Cli("alerts ack suspended// --for 6s --note \"planned maintenance\"", &out))
      << out;
  EXPECT_NE(std::string::npos, out.find("acknowledged until")) << out;
  ASSERT_EQ(0, demo_.Cli("alerts", &out)) << out;
  EXPECT_NE(std::string::npos, out.find("planned maintenance")) << out;
  // The escalation at 3 s falls inside the ack: held. At 6 s the ack ends.
  ASSERT_TRUE(receiver_.WaitFor(2, 20000)) << Log();
  EXPECT_EQ((std::vector<std::string>{"firing suspended", "ack_expired suspended"}), Received());
  bool audited = false;
  for (const auto& r : testing::AuditRecordsOf(demo_.data_dir())) {
    if (r.action == "alert_acknowledged") {
      audited = true;
      EXPECT_NE(std::string::npos, r.detail.find("planned maintenance")) << r.detail;
      EXPECT_NE(std::string::npos, r.actor.find('@')) << r.actor;
    }
  }
  EXPECT_TRUE(audited);
}

TEST_F(MonitoringTest, HealthCountsMatchStatusAndStatsArePlausible) {
  StartClusterd();
  ASSERT_TRUE(demo_.WaitHealthy()) << Log();
  std::string out;
  ASSERT_EQ(0, demo_.Cli("status --json", &out)) << out;
  const json status = json::parse(out);
  const json health = Call("GET", "/api/v1/health");
  ASSERT_TRUE(health.is_object());
  int total = 0, running = 0, ready = 0;
  for (const auto& [name, svc] : status["services"].items()) {
    for (const auto& [m, i] : svc["instances"].items()) {
      ++total;
      running += i["state"] == "running";
      ready += i["ready"] == true;
    }
  }
  EXPECT_EQ("healthy", health["status"]);
  EXPECT_EQ(total, health["instances"]["total"]);
  EXPECT_EQ(running, health["instances"]["running"]);
  EXPECT_EQ(ready, health["instances"]["ready"]);
  EXPECT_EQ(status["machines"].size(), health["machines"]["total"].get<size_t>());
  EXPECT_EQ(health["machines"]["total"], health["machines"]["reachable"]);
  EXPECT_TRUE(health["critical_services_down"].empty());
  const json s1 = Call("GET", "/api/v1/stats");
  ASSERT_TRUE(WaitFor(
      [&] {
        return Call("GET", "/api/v1/stats")["process"]["uptime_seconds"] >
               s1["process"]["uptime_seconds"];
      },
      seconds(5), milliseconds(100)));
  EXPECT_GT(s1["process"]["rss_bytes"].get<int64_t>(), 1 << 20);
  EXPECT_GT(s1["process"]["open_files"].get<int64_t>(), 3);
  EXPECT_GT(s1["process"]["data_dir_bytes"].get<int64_t>(), 0);
  EXPECT_GT(s1["reconcile"]["passes"].get<int64_t>(), 0);
  // Up since it was first seen up: availability 1 once two passes covered time.
  EXPECT_TRUE(WaitFor(
      [&] {
        const json s = Call("GET", "/api/v1/stats");
        return s.is_object() &&
               s["availability"]["tools-server"]["windows"]["1h"]["availability"] == 1.0;
      },
      seconds(10), milliseconds(200)))
      << Call("GET", "/api/v1/stats").dump();
  // The same figures on /metrics.
  httplib::Client c("http://" + demo_.listen());
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics && metrics->status == 200);
  EXPECT_NE(std::string::npos,
            metrics->body.find(
                "clusterctl_service_availability{service=\"tools-server\",window=\"1h\"} 1"))
      << metrics->body;
  EXPECT_NE(std::string::npos, metrics->body.find("\nprocess_resident_memory_bytes "));
  EXPECT_NE(std::string::npos,
            metrics->body.find("clusterctl_alerts_firing{severity=\"critical\"} 0"));
}

}  // namespace
}  // namespace clusterctl

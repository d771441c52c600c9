// Drift leases end to end (issue 15): the built clusterd on five real sshd
// hosts leaves a hand-stopped service down while its lease runs, shows the
// lease in status and `clusterctl why`, starts it again within seconds of
// the lease's end, and audits the grant, the end and the revert.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

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

class LeaseTest : public ::testing::Test {
 protected:
  json Status() { return demo_.Api("/api/v1/status"); }
  json Instance() { return demo_.Instance("tools-server", "worker-tools"); }
  bool Up() {
    json i = Instance();
    return i.value("state", "") == "running" && i.value("ready", false);
  }
  std::string Log() const { return demo_.ClusterdLog(); }
  void StartHealthy() {
    clusterd_ = demo_.StartClusterd();
    ASSERT_TRUE(demo_.WaitHealthy()) << Log();
  }
  size_t StartsOfToolsServer() {
    size_t n = 0;
    for (const auto& r : testing::AuditRecordsOf(demo_.data_dir())) {
      n += r.service == "tools-server" && r.phase == "intent" ? 1 : 0;
    }
    return n;
  }

  testing::DemoCluster demo_;
  std::unique_ptr<testing::Process> clusterd_;
};

TEST_F(LeaseTest, AHandStoppedServiceStaysDownForTheLeaseAndComesBackAfterIt) {
  ASSERT_NO_FATAL_FAILURE(StartHealthy());
  std::string out;
  ASSERT_EQ(0, demo_.Cli("lease tools-server --machine worker-tools --for 6s "
                         "--reason \"swapping the model cache\"",
                         &out))
      << out;
  EXPECT_NE(std::string::npos, out.find("tolerated until")) << out;
  // Stopped by hand.
  const int pid = Instance().value("pid", 0);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(0, ::kill(pid, SIGTERM));
  ASSERT_TRUE(WaitFor([&] { return Instance().value("state", "running") != "running"; }, seconds(5),
                      milliseconds(100)))
      << Log();
  // Shown with the lease, by the API and by a local why.
  EXPECT_NE(std::string::npos, Instance().value("reason", "").find("drift lease 1 by"))
      << Instance().dump();
  ASSERT_EQ(0, demo_.Cli("why tools-server", &out)) << out;
  EXPECT_NE(std::string::npos, out.find("swapping the model cache")) << out;
  ASSERT_EQ(0, demo_.Cli("lease list", &out)) << out;
  EXPECT_NE(std::string::npos, out.find("tools-server@worker-tools")) << out;
  // It stays down while the lease runs (about 6 s from the grant)...
  EXPECT_FALSE(WaitFor([&] { return Up(); }, seconds(3), milliseconds(200)));
  // ...and is started again within seconds of its end.
  ASSERT_TRUE(WaitFor([&] { return Up(); }, seconds(20), milliseconds(200))) << Log();

  const auto records = testing::AuditRecordsOf(demo_.data_dir());
  int64_t granted = 0, expired = 0, restarted = 0;
  for (const auto& r : records) {
    if (r.service != "tools-server") continue;
    if (r.action == "lease_granted") granted = static_cast<int64_t>(r.seq);
    if (r.action == "lease_expired") expired = static_cast<int64_t>(r.seq);
    if (r.action == "start" && r.phase == "result" && r.result == "ok" && expired > 0) {
      restarted = static_cast<int64_t>(r.seq);
    }
  }
  EXPECT_GT(granted, 0);
  EXPECT_GT(expired, granted);
  EXPECT_GT(restarted, expired);
}

// Detect-only (reconcile: {mode: observe}): a killed service is reported
// and alerted, and stays dead.
TEST_F(LeaseTest, AnObserveModeServiceKilledIsReportedAlertedAndStaysDead) {
  ASSERT_NO_FATAL_FAILURE(StartHealthy());
  std::string yaml = demo_.ServiceFile("tools-server");
  const size_t spec = yaml.find("spec:\n");
  ASSERT_NE(std::string::npos, spec);
  yaml.insert(spec + 6, "  reconcile: {mode: observe}\n");
  demo_.repo().Write("services/tools-server.yaml", yaml);
  demo_.repo().CommitAll("tools-server: detect only");
  demo_.repo().Git("push -q -f origin main");
  const std::string head = demo_.repo().Rev();
  ASSERT_TRUE(WaitFor([&] { return Status().value("revision", "") == head; }, seconds(30),
                      milliseconds(200)))
      << Log();
  const int pid = Instance().value("pid", 0);
  ASSERT_GT(pid, 0);
  const size_t starts_before = StartsOfToolsServer();
  ASSERT_EQ(0, ::kill(pid, SIGKILL));
  auto alerted = [&] {
    for (const auto& a : demo_.Api("/api/v1/alerts")) {
      if (a.value("key", "") == "drift_observed/worker-tools/tools-server") return true;
    }
    return false;
  };
  ASSERT_TRUE(WaitFor(alerted, seconds(15), milliseconds(200))) << Log();
  EXPECT_NE(std::string::npos, Instance().value("reason", "").find("reconcile mode observe"))
      << Instance().dump();
  // Not repaired: it stays dead.
  EXPECT_FALSE(WaitFor([&] { return Instance().value("state", "") == "running"; }, seconds(4),
                       milliseconds(200)));
  EXPECT_EQ(starts_before, StartsOfToolsServer());
}

}  // namespace
}  // namespace clusterctl

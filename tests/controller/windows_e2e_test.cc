// Sync windows end to end (issue 15): the built clusterd on five real sshd
// hosts holds a new revision's change inside a deny window (the status says
// why), still repairs a crash inside it (repairDrift: always), and makes the
// change when the window closes, recording the revision then.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "base/clock.h"
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

class WindowsTest : public ::testing::Test {
 protected:
  json Instance(const std::string& svc, const std::string& m) { return demo_.Instance(svc, m); }
  std::string Log() const { return demo_.ClusterdLog(); }

  testing::DemoCluster demo_;
  std::unique_ptr<testing::Process> clusterd_;
};

TEST_F(WindowsTest, ADenyWindowHoldsTheChangeButNotTheRepairThenItIsApplied) {
  clusterd_ = demo_.StartClusterd();
  ASSERT_TRUE(demo_.WaitHealthy()) << Log();
  // A freeze from the start of this UTC minute, for two minutes: it has 60
  // to 120 s left.
  const int64_t now_s = WallClockMs() / 1000;
  const std::string schedule =
      std::to_string(now_s / 60 % 60) + " " + std::to_string(now_s / 3600 % 24) + " * * *";
  std::string cluster = testing::ReadFile(demo_.repo().path() + "/cluster.yaml");
  cluster += "  windows:\n    - {name: freeze, kind: deny, schedule: \"" + schedule +
             "\", duration: 2m}\n";
  demo_.repo().Write("cluster.yaml", cluster);
  std::string tools = demo_.ServiceFile("tools-server");
  tools.replace(tools.find("{SERVICE_NAME: tools-server}"), 28,
                "{SERVICE_NAME: tools-server, RELEASE: \"2\"}");
  demo_.repo().Write("services/tools-server.yaml", tools);
  demo_.repo().CommitAll("release 2 of tools-server, in a freeze");
  demo_.repo().Git("push -q -f origin main");
  const std::string head = demo_.repo().Rev();
  const int tools_pid = Instance("tools-server", "worker-tools").value("pid", 0);
  ASSERT_GT(tools_pid, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        return Instance("tools-server", "worker-tools")
                   .value("reason", "")
                   .find("in deny window freeze") != std::string::npos;
      },
      seconds(30), milliseconds(200)))
      << Instance("tools-server", "worker-tools").dump() << Log();
  EXPECT_EQ(tools_pid, Instance("tools-server", "worker-tools").value("pid", 0));
  // A crash inside the freeze is repaired.
  const int llama = Instance("llama-server", "jetson").value("pid", 0);
  ASSERT_GT(llama, 0);
  ASSERT_EQ(0, ::kill(llama, SIGKILL));
  EXPECT_TRUE(WaitFor(
      [&] {
        json i = Instance("llama-server", "jetson");
        return i.value("pid", 0) != llama && i.value("ready", false);
      },
      seconds(30), milliseconds(200)))
      << Log();
  EXPECT_EQ(tools_pid, Instance("tools-server", "worker-tools").value("pid", 0));
  // The freeze ends: the change is made and the revision recorded.
  EXPECT_TRUE(WaitFor(
      [&] {
        json i = Instance("tools-server", "worker-tools");
        return i.value("pid", 0) != tools_pid && i.value("ready", false);
      },
      seconds(150), milliseconds(500)))
      << Log();
  bool applied = false;
  for (const auto& r : testing::AuditRecordsOf(demo_.data_dir())) {
    applied |= r.action == "revision_applied" && r.revision == head.substr(0, 7);
  }
  EXPECT_TRUE(applied);
  std::string out;
  ASSERT_EQ(0, demo_.Cli("windows", &out)) << out;
  EXPECT_NE(std::string::npos, out.find("freeze (deny, " + schedule)) << out;
}

}  // namespace
}  // namespace clusterctl

// clusterctl stop|start as commits (issue 16), end to end: the built
// clusterd on five real sshd hosts and a real bare origin. `stop --wait`
// leaves a reviewable commit (one line, the actor as author, a trailer
// naming the command) and the service stopped; a clusterd restart does not
// start it again; `start --wait` reverses it; --no-push only prints.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "tests/harness/audit_records.h"
#include "tests/harness/demo_cluster.h"
#include "tests/harness/git_repo.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"

namespace clusterctl {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::WaitFor;

class VerbsTest : public ::testing::Test {
 protected:
  json Instance(const std::string& service, const std::string& machine) {
    return demo_.Instance(service, machine);
  }
  std::string Log() const { return demo_.ClusterdLog(); }
  void StartClusterd() { clusterd_ = demo_.StartClusterd(); }
  bool Healthy() { return demo_.WaitHealthy(); }
  size_t StartsOf(const std::string& service) {
    size_t n = 0;
    for (const auto& r : testing::AuditRecordsOf(demo_.data_dir())) {
      n += r.service == service && r.action == "start" && r.phase == "intent" ? 1 : 0;
    }
    return n;
  }

  testing::DemoCluster demo_;
  std::unique_ptr<testing::Process> clusterd_;
};

TEST_F(VerbsTest, StopAndStartAreCommitsThatClusterdConvergesAndKeeps) {
  StartClusterd();
  ASSERT_TRUE(Healthy()) << Log();
  testing::GitRepo origin(demo_.origin(), /*bare=*/true);
  const std::string before = origin.Rev("main");

  // --no-push prints the change and writes nothing.
  std::string out;
  ASSERT_EQ(0, demo_.Cli("stop monitoring-server --no-push", &out)) << out;
  EXPECT_NE(std::string::npos, out.find("+  state: stopped")) << out;
  EXPECT_NE(std::string::npos, out.find("services/edge.yaml")) << out;
  EXPECT_EQ(before, origin.Rev("main"));

  // A machine the service does not run on is refused; so is a stop that
  // leaves a running dependent (haproxy needs llama-server): nothing written.
  EXPECT_NE(0, demo_.Cli("stop monitoring-server --machine worker-tools", &out));
  EXPECT_NE(std::string::npos, out.find("does not run on worker-tools")) << out;
  EXPECT_NE(0, demo_.Cli("stop llama-server", &out));
  EXPECT_NE(std::string::npos, out.find("\"haproxy\" is to run but its dependency")) << out;
  EXPECT_EQ(before, origin.Rev("main"));

  ASSERT_EQ(0, demo_.Cli("stop monitoring-server --reason 'disk swap' --wait --timeout 60", &out))
      << out << Log();
  const std::string stop = origin.Rev("main");
  ASSERT_NE(before, stop);
  EXPECT_EQ(before, origin.Rev(stop + "^"));
  const std::string body = origin.Git("log -1 --format=%B " + stop);
  EXPECT_NE(std::string::npos, body.find("Stop monitoring-server")) << body;
  EXPECT_NE(std::string::npos, body.find("disk swap")) << body;
  EXPECT_NE(std::string::npos, body.find("Clusterctl-Command: clusterctl stop monitoring-server"))
      << body;
  const std::string stat = origin.Git("diff --numstat " + before + " " + stop);
  EXPECT_EQ("1\t0\tservices/edge.yaml", stat);
  EXPECT_EQ("stopped", Instance("monitoring-server", "worker-monitor").value("state", "")) << Log();
  EXPECT_EQ("running", Instance("tools-server", "worker-tools").value("state", ""));

  // A restarted clusterd keeps it stopped: git says so.
  const size_t starts = StartsOf("monitoring-server");
  EXPECT_EQ(0, clusterd_->Stop(seconds(20)));  // SIGTERM: exits 0.
  StartClusterd();
  ASSERT_TRUE(WaitFor(
      [&] {
        json st = demo_.Api("/api/v1/status");
        return st.value("revision", "") == stop &&
               Instance("tools-server", "worker-tools").value("ready", false);
      },
      seconds(60), milliseconds(300)))
      << Log();
  // Two more published passes of the new clusterd, then nothing started it.
  for (int pass = 0; pass < 2; ++pass) {
    const std::string ts = demo_.Api("/api/v1/status").value("timestamp", "");
    ASSERT_TRUE(WaitFor([&] { return demo_.Api("/api/v1/status").value("timestamp", "") != ts; },
                        seconds(30), milliseconds(200)));
  }
  ASSERT_EQ(0, demo_.Cli("stop monitoring-server", &out)) << out;  // Nothing to do.
  EXPECT_NE(std::string::npos, out.find("already stopped")) << out;
  EXPECT_EQ(stop, origin.Rev("main"));
  EXPECT_EQ("stopped", Instance("monitoring-server", "worker-monitor").value("state", "")) << Log();
  EXPECT_EQ(starts, StartsOf("monitoring-server"));

  // start reverses it: the file is as it was.
  ASSERT_EQ(0, demo_.Cli("start monitoring-server --wait --timeout 60 --json", &out))
      << out << Log();
  const json answer = json::parse(out.substr(0, out.find('\n')), nullptr, false);
  const std::string start = origin.Rev("main");
  EXPECT_EQ(start, answer.value("commit", "")) << out;
  EXPECT_EQ(origin.Rev(before + ":services/edge.yaml"), origin.Rev(start + ":services/edge.yaml"));
  json inst = Instance("monitoring-server", "worker-monitor");
  EXPECT_EQ("running", inst.value("state", "")) << inst.dump();
  EXPECT_TRUE(inst.value("ready", false)) << inst.dump();
  EXPECT_EQ(starts + 1, StartsOf("monitoring-server"));
}

// The per-machine form writes spec.stoppedOn, and the whole-cluster stop
// spec.state of the Cluster (which stops everything, allowed as a mass stop).
TEST_F(VerbsTest, PerMachineAndWholeClusterForms) {
  StartClusterd();
  ASSERT_TRUE(Healthy()) << Log();
  testing::GitRepo origin(demo_.origin(), /*bare=*/true);
  std::string out;
  ASSERT_EQ(0,
            demo_.Cli("stop monitoring-server --machine worker-monitor --wait --timeout 60", &out))
      << out << Log();
  EXPECT_NE(std::string::npos,
            origin.Git("show main:services/edge.yaml").find("stoppedOn: [worker-monitor]"));
  EXPECT_EQ("stopped", Instance("monitoring-server", "worker-monitor").value("state", ""));

  ASSERT_EQ(0, demo_.Cli("stop --wait --timeout 90", &out)) << out << Log();
  EXPECT_NE(std::string::npos, origin.Git("show main:cluster.yaml").find("state: stopped"));
  json st = demo_.Api("/api/v1/status");
  for (const auto& [name, service] : st["services"].items()) {
    for (const auto& [machine, inst] : service["instances"].items()) {
      EXPECT_EQ("stopped", inst.value("state", "")) << name << "@" << machine;
    }
  }
  ASSERT_EQ(0, demo_.Cli("start --wait --timeout 120", &out)) << out << Log();
  EXPECT_EQ("running", Instance("redis-server", "cpu-coordinator").value("state", ""));
  EXPECT_EQ("stopped", Instance("monitoring-server", "worker-monitor").value("state", ""));
}

}  // namespace
}  // namespace clusterctl

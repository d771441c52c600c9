// End to end: clusterd and a git remote that stops answering (issue 10 item
// 4). The remote is a real `git daemon` on loopback behind a small TCP proxy
// the test controls: it forwards, or accepts connections and never answers.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/harness/demo_cluster.h"
#include "tests/harness/git_daemon.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/tcp_proxy.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::TcpProxy;
using testing::WaitFor;

class ClusterdSourceTest : public ::testing::Test {
 protected:
  ClusterdSourceTest()
      : remote_(demo_.dir(), demo_.dir() + "/git-daemon.log"), proxy_(&remote_.proxy()) {}

  // Points the config at the proxy, with this fetch deadline.
  void UseRemote(int fetch_timeout_seconds) {
    demo_.UseRemote(remote_.Url("origin.git"), fetch_timeout_seconds);
  }

  void StartClusterd() {
    clusterd_ = std::make_unique<testing::Process>(
        std::vector<std::string>{testing::ClusterdBin(), "--config", demo_.config_path()},
        testing::OutputTo(demo_.dir() + "/clusterd.log"));
  }

  std::string Log() const { return testing::ReadFile(demo_.dir() + "/clusterd.log"); }

  std::string Token() const {
    std::string t = testing::ReadFile(demo_.token_file());
    while (!t.empty() && t.back() == '\n') t.pop_back();
    return t;
  }

  // The answer's status (-1: none) and body.
  int Get(const std::string& path, json* body = nullptr) {
    httplib::Client c("http://" + demo_.listen());
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(2, 0);
    auto res = c.Get(path.c_str(), {{"Authorization", "Bearer " + Token()}});
    if (!res) return -1;
    if (body != nullptr) *body = json::parse(res->body, nullptr, false);
    return res->status;
  }

  json StatusJson() {
    json st;
    return Get("/api/v1/status", &st) == 200 ? st : json();
  }

  std::string SourceAlert() {
    json alerts;
    if (Get("/api/v1/alerts", &alerts) != 200 || !alerts.is_array()) return "";
    for (const auto& a : alerts) {
      if (a.value("key", "") == "source_fetch//") return a.value("message", "");
    }
    return "";
  }

  int64_t Pid(const std::string& svc, const std::string& m) {
    json st = StatusJson();
    if (!st.is_object() || !st["services"].contains(svc)) return 0;
    return st["services"][svc]["instances"][m].value("pid", int64_t{0});
  }

  // Kills tools-server and waits until clusterd has started it again.
  bool RepairsAKilledService() {
    int64_t pid = 0;
    // A clusterd just started reports pids after its first pass.
    if (!WaitFor([&] { return (pid = Pid("tools-server", "worker-tools")) > 0; }, seconds(30),
                 milliseconds(200))) {
      return false;
    }
    if (kill(static_cast<pid_t>(pid), SIGKILL) != 0) return false;
    return WaitFor(
        [&] {
          const int64_t now = Pid("tools-server", "worker-tools");
          return now > 0 && now != pid;
        },
        seconds(60), milliseconds(200));
  }

  // SIGTERM, then the exit code if it exits within `limit`.
  std::optional<int> Stop(seconds limit) {
    clusterd_->Kill(SIGTERM);
    return clusterd_->WaitForExit(limit);
  }

  bool Converged() {
    json st = StatusJson();
    return st.is_object() && st.value("revision", "") == demo_.repo().Rev() &&
           st.value("overall_status", "") == "healthy";
  }

  testing::DemoCluster demo_;
  testing::GitDaemon remote_;
  TcpProxy* proxy_;
  std::unique_ptr<testing::Process> clusterd_;
};

TEST_F(ClusterdSourceTest, ARemoteThatHangsAfterStartUpIsAlertedAndTheLastRevisionKeepsRunning) {
  UseRemote(2);
  StartClusterd();
  ASSERT_TRUE(WaitFor([&] { return Converged(); }, seconds(90), milliseconds(300))) << Log();
  const std::string before = demo_.repo().Rev();
  proxy_->set_silent(true);
  demo_.repo().Write("README.md", "a change the hung remote does not deliver\n");
  demo_.repo().CommitAll("not fetched while the remote hangs");
  demo_.repo().Git("push -q origin main");
  ASSERT_TRUE(WaitFor([&] { return SourceAlert().find("timed out") != std::string::npos; },
                      seconds(30), milliseconds(200)))
      << Log();
  EXPECT_EQ(Get("/healthz"), 200) << Log();
  EXPECT_EQ(StatusJson().value("revision", ""), before);
  // The revision in force is still reconciled.
  EXPECT_TRUE(RepairsAKilledService()) << Log();
  // The remote answers again: the new revision comes in, the alert goes.
  proxy_->set_silent(false);
  EXPECT_TRUE(
      WaitFor([&] { return Converged() && SourceAlert().empty(); }, seconds(60), milliseconds(300)))
      << Log();
  EXPECT_EQ(Stop(seconds(20)), std::optional<int>(0));
}

TEST_F(ClusterdSourceTest, StartedWhileTheRemoteHangsItServesReconcilesItsCacheAndStopsAtOnce) {
  UseRemote(2);
  StartClusterd();
  ASSERT_TRUE(WaitFor([&] { return Converged(); }, seconds(90), milliseconds(300))) << Log();
  const std::string cached = demo_.repo().Rev();
  ASSERT_EQ(Stop(seconds(20)), std::optional<int>(0));
  // Now every fetch hangs, for as long as the deadline allows: 10 minutes.
  UseRemote(600);
  proxy_->set_silent(true);
  StartClusterd();
  ASSERT_TRUE(WaitFor([&] { return Get("/healthz") == 200; }, seconds(10), milliseconds(100)))
      << Log();
  EXPECT_EQ(StatusJson().value("revision", ""), cached);
  EXPECT_TRUE(RepairsAKilledService()) << Log();
  // SIGTERM ends the hung fetch: clusterd exits 0 at once.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Stop(seconds(10)), std::optional<int>(0)) << Log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(5));
}

TEST_F(ClusterdSourceTest, StartedWithoutACloneWhileTheRemoteHangsItKeepsRunningAndAlerts) {
  UseRemote(1);
  proxy_->set_silent(true);
  StartClusterd();
  ASSERT_TRUE(WaitFor([&] { return Get("/healthz") != -1; }, seconds(10), milliseconds(100)))
      << Log();
  ASSERT_TRUE(WaitFor([&] { return SourceAlert().find("timed out") != std::string::npos; },
                      seconds(30), milliseconds(200)))
      << Log();
  EXPECT_TRUE(clusterd_->Running());
  EXPECT_NE(SourceAlert().find("nothing is reconciled until a first fetch succeeds"),
            std::string::npos);
  // The remote answers: the first clone happens and the cluster converges.
  proxy_->set_silent(false);
  EXPECT_TRUE(WaitFor([&] { return Converged(); }, seconds(90), milliseconds(300))) << Log();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Stop(seconds(20)), std::optional<int>(0));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(10));
}

}  // namespace
}  // namespace clusterctl

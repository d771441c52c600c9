// The dashboard in a real browser (issue 14): the built clusterd serves it
// on a real 5-machine loopback cluster; tests/dashboard/dashboard.test.mjs
// drives Debian's chromium through playwright-core: a wrong token, the
// grid, a killed service turning failed and back without a reload, the
// blocking edge of a never-ready service, the audit filter and verify, a
// revision diff, alerts, sync, a phone-sized viewport. Screenshots go to
// <build>/dashboard-screenshots (docs/dashboard.md shows them).
//
// Needs node, /usr/bin/chromium and `npm ci` in tests/dashboard
// (scripts/test.sh does both); without them the test is skipped, unless
// CLUSTERCTL_REQUIRE_BROWSER=1 (CI) makes that a failure.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

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

// What is missing to run a browser here, or "".
std::string MissingBrowser() {
  namespace fs = std::filesystem;
  if (!fs::exists("/usr/bin/chromium")) return "/usr/bin/chromium (apt-get install chromium)";
  if (std::system("command -v node >/dev/null 2>&1") != 0) return "node";
  if (!fs::exists(testing::SourceDir() + "/tests/dashboard/node_modules/playwright-core")) {
    return "tests/dashboard/node_modules (cd tests/dashboard && npm ci)";
  }
  return "";
}

testing::DemoOptions SlowReadiness() {
  testing::DemoOptions o;
  // A repaired instance is failed until its readiness passes: long enough
  // for the page's 2 s poll to see it.
  o.ready_delay_ms = 2500;
  return o;
}

class DashboardTest : public ::testing::Test {
 protected:
  DashboardTest() : demo_(SlowReadiness()) {}

  std::string Token() const { return demo_.Token(); }
  json Status() { return demo_.Api("/api/v1/status"); }
  std::string Log() const { return testing::ReadFile(demo_.dir() + "/clusterd.log"); }

  testing::DemoCluster demo_;
  std::unique_ptr<testing::Process> clusterd_;
};

TEST_F(DashboardTest, AnOperatorSeesAndDrivesTheClusterInARealBrowser) {
  const std::string missing = MissingBrowser();
  if (!missing.empty()) {
    const char* require = std::getenv("CLUSTERCTL_REQUIRE_BROWSER");
    if (require != nullptr && std::string(require) == "1") FAIL() << "missing " << missing;
    GTEST_SKIP() << "no browser here: missing " << missing;
  }
  clusterd_ = std::make_unique<testing::Process>(
      std::vector<std::string>{testing::ClusterdBin(), "--config", demo_.config_path()},
      testing::OutputTo(demo_.dir() + "/clusterd.log"));
  auto healthy = [&] { return Status().value("overall_status", "") == "healthy"; };
  ASSERT_TRUE(WaitFor(healthy, seconds(120), milliseconds(300))) << Log();

  // A service whose readiness never passes, and one that waits for it.
  const std::string host = demo_.address_of("worker-monitor");
  const int port = testing::PickFreePort(host), port2 = testing::PickFreePort(host);
  auto service = [&](const std::string& name, int p, const std::string& extra,
                     const std::string& deps) {
    return "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: " + name +
           "}\nspec:\n  machines: [worker-monitor]\n  process:\n    command: [\"" +
           testing::TestServiceBin() + "\", --host, " + host + ", --port, \"" + std::to_string(p) +
           "\"" + extra + "]\n" + deps + "  readiness:\n    http: {port: " + std::to_string(p) +
           ", path: /health}\n    periodSeconds: 1\n    startTimeoutSeconds: 3\n"
           "  restart: {backoffSeconds: 5, maxBackoffSeconds: 30}\n  stopTimeoutSeconds: 2\n";
  };
  demo_.repo().Write(
      "services/stuck.yaml",
      service("stuck", port, ", --ready-delay-ms, \"100000000\"", "") + "---\n" +
          service("stuck-client", port2, "", "  dependsOn:\n    - {service: stuck}\n"));
  demo_.repo().CommitAll("a service that never gets ready");
  demo_.repo().Git("push -q -f origin main");
  const std::string head = demo_.repo().Rev();
  ASSERT_TRUE(WaitFor([&] { return Status().value("revision", "") == head; }, seconds(60),
                      milliseconds(300)))
      << Log();

  const std::string shots = testing::BinaryDir() + "/dashboard-screenshots";
  std::filesystem::create_directories(shots);
  const std::string out = demo_.dir() + "/browser.log";
  testing::SpawnOptions o = testing::OutputTo(out);
  o.env = {"CLUSTERD_URL=http://" + demo_.listen() + "/",
           "CLUSTERD_TOKEN=" + Token(),
           "SCREENSHOT_DIR=" + shots,
           "NEVER_READY_SERVICE=stuck",
           "NEVER_READY_DEPENDENT=stuck-client",
           "KILL_SERVICE=tools-server",
           "KILL_MACHINE=worker-tools",
           "AUDIT_SERVICE=tools-server"};
  testing::Process browser({"node", testing::SourceDir() + "/tests/dashboard/dashboard.test.mjs"},
                           o);
  const std::optional<int> code = browser.WaitForExit(milliseconds(330000));
  const std::string log = testing::ReadFile(out);
  std::cout << log;  // One line per step.
  ASSERT_TRUE(code.has_value()) << "the browser test did not finish in 330 s:\n" << log;
  EXPECT_EQ(0, *code) << log << "\nclusterd:\n" << Log();
  for (const char* shot : {"login-error.png", "cluster.png", "graph.png", "revisions.png",
                           "audit.png", "alerts.png", "phone.png"}) {
    EXPECT_TRUE(std::filesystem::exists(shots + "/" + shot)) << shot;
  }
  // The token never reached the browser's output.
  EXPECT_EQ(std::string::npos, log.find(Token()));
}

}  // namespace
}  // namespace clusterctl

// CallServer() against a small loopback server that answers what each test
// wants: clusterd's 5xx answers keep their meaning (unavailable, internal)
// instead of turning into "invalid", and the bearer token is read from
// tokenFile or the call fails naming the file, never sending an empty token.
#include "cli/remote.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::cli {
namespace {

using json = nlohmann::json;

constexpr char kToken[] = "tok-remote-9b1e-secret";

class RemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Get(".*",
                [this](const httplib::Request& req, httplib::Response& res) { Serve(req, res); });
    server_.Post(".*",
                 [this](const httplib::Request& req, httplib::Response& res) { Serve(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    ASSERT_TRUE(
        testing::WaitFor([this] { return server_.is_running(); }, std::chrono::milliseconds(5000)));
    testing::WriteFile(dir_.Sub("token"), std::string(kToken) + "\n");
    g_.server_flag = "http://127.0.0.1:" + std::to_string(port_);
    g_.config.token_file = dir_.Sub("token");
    g_.config.source_path = dir_.Sub("clusterctl.yaml");
  }

  void TearDown() override {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  void Serve(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_;
    authorization_ = req.get_header_value("Authorization");
    res.status = status_;
    res.set_content(body_, "application/json");
  }

  void Answer(int status, const std::string& body) {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    body_ = body;
  }
  int requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::string authorization() {
    std::lock_guard<std::mutex> lock(mu_);
    return authorization_;
  }

  testing::TempDir dir_;
  Globals g_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  int status_ = 200;
  std::string body_ = "{}";
  int requests_ = 0;
  std::string authorization_;
};

TEST_F(RemoteTest, SendsTheTokenFromTokenFile) {
  Answer(200, R"({"overall_status":"healthy"})");
  auto r = CallServer(g_, "GET", "/api/v1/status");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ("healthy", (*r)["overall_status"]);
  EXPECT_EQ(std::string("Bearer ") + kToken, authorization());
}

TEST_F(RemoteTest, ServiceUnavailableIsUnavailableNotInvalid) {
  Answer(503, R"({"error":"audit query failed: store closed"})");
  auto r = CallServer(g_, "GET", "/api/v1/status");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Code::kUnavailable, r.status().code()) << r.status().ToString();
  const std::string& m = r.status().message();
  EXPECT_NE(std::string::npos, m.find("answered 503")) << m;
  EXPECT_NE(std::string::npos, m.find("store closed")) << m;
  EXPECT_NE(std::string::npos, m.find("retry")) << m;
  // The error text is quoted as text, not as a JSON string.
  EXPECT_EQ(std::string::npos, m.find("\"audit")) << m;
}

TEST_F(RemoteTest, InternalServerErrorIsInternal) {
  Answer(500, R"({"error":"internal error while serving /api/v1/restart"})");
  auto r = CallServer(g_, "POST", "/api/v1/restart", json{{"service", "x"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Code::kInternal, r.status().code()) << r.status().ToString();
  EXPECT_NE(std::string::npos, r.status().message().find("answered 500")) << r.status().message();
  EXPECT_NE(std::string::npos, r.status().message().find("clusterd")) << r.status().message();
  // A body that is not JSON is shown (bounded) as it is.
  Answer(502, "<html>bad gateway</html>");
  r = CallServer(g_, "GET", "/api/v1/status");
  EXPECT_EQ(Code::kInternal, r.status().code());
  EXPECT_NE(std::string::npos, r.status().message().find("bad gateway"));
}

TEST_F(RemoteTest, ClientErrorsKeepTheirMeaning) {
  Answer(400, R"({"error":"limit: expected a whole number"})");
  EXPECT_EQ(Code::kInvalid, CallServer(g_, "GET", "/api/v1/history").status().code());
  Answer(401, R"({"error":"invalid token"})");
  auto r = CallServer(g_, "GET", "/api/v1/status");
  EXPECT_EQ(Code::kPermission, r.status().code());
  EXPECT_NE(std::string::npos, r.status().message().find("tokenFile")) << r.status().message();
  Answer(404, R"({"error":"no service \"x\""})");
  EXPECT_EQ(Code::kNotFound, CallServer(g_, "POST", "/api/v1/restart").status().code());
  Answer(409, R"({"error":"busy"})");
  EXPECT_EQ(Code::kConflict, CallServer(g_, "POST", "/api/v1/restart").status().code());
}

TEST_F(RemoteTest, AMissingTokenFileIsAnErrorNamingItAndSendsNothing) {
  g_.config.token_file = dir_.Sub("no-such-token");
  auto r = CallServer(g_, "GET", "/api/v1/status");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Code::kPermission, r.status().code());
  const std::string& m = r.status().message();
  EXPECT_NE(std::string::npos, m.find(dir_.Sub("no-such-token"))) << m;
  EXPECT_NE(std::string::npos, m.find("tokenFile")) << m;
  EXPECT_NE(std::string::npos, m.find("No such file")) << m;
  EXPECT_EQ(0, requests());
}

TEST_F(RemoteTest, AnUnreadableOrEmptyTokenFileIsAnError) {
  // A directory cannot be read as a file (root reads any mode, so a chmod
  // would not do here).
  g_.config.token_file = dir_.path();
  auto r = CallServer(g_, "GET", "/api/v1/status");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Code::kPermission, r.status().code());
  EXPECT_NE(std::string::npos, r.status().message().find(dir_.path())) << r.status().message();

  testing::WriteFile(dir_.Sub("empty"), "\n");
  g_.config.token_file = dir_.Sub("empty");
  r = CallServer(g_, "GET", "/api/v1/status");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string::npos, r.status().message().find("is empty")) << r.status().message();

  g_.config.token_file = "";
  r = CallServer(g_, "GET", "/api/v1/status");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string::npos, r.status().message().find("no tokenFile")) << r.status().message();
  EXPECT_EQ(0, requests());
}

TEST_F(RemoteTest, TheCliReportsBothFaultsWithExitCode1) {
  const std::string config = dir_.Sub("clusterctl.yaml");
  testing::WriteFile(config, "tokenFile: " + dir_.Sub("missing-token") + "\n");
  std::string out;
  int rc = testing::RunShell(std::string(CLUSTERCTL_CLI_BIN) + " --config " + config +
                                 " --server " + g_.server_flag + " status 2>&1",
                             &out);
  EXPECT_EQ(1, rc) << out;
  EXPECT_NE(std::string::npos, out.find(dir_.Sub("missing-token"))) << out;
  EXPECT_EQ(0, requests());

  testing::WriteFile(config, "tokenFile: " + dir_.Sub("token") + "\n");
  Answer(503, R"({"error":"daemon shutting down"})");
  rc = testing::RunShell(std::string(CLUSTERCTL_CLI_BIN) + " --json --config " + config +
                             " --server " + g_.server_flag + " status 2>&1",
                         &out);
  EXPECT_EQ(1, rc) << out;
  EXPECT_NE(std::string::npos, out.find("\"code\":\"unavailable\"")) << out;
  EXPECT_NE(std::string::npos, out.find("daemon shutting down")) << out;
}

}  // namespace
}  // namespace clusterctl::cli

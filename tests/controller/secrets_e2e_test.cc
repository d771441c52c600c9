// End to end (issue 10, items 1 and 2): no secret leaves the controller host.
//  - A pushed revision whose redis probe names a file outside secretsDir (the
//    API token, or a symlink to it planted in secretsDir) is rejected, and no
//    AUTH ever reaches the host the revision names: a loopback listener in
//    the test records every byte it receives.
//  - Credentials in the repository URL never appear in clusterd's log, its
//    alerts, its status, its audit log, or its exit message.
// Real processes: clusterd, sshd hosts, git; traffic only to 127.0.0.0/8.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/harness/audit_records.h"
#include "tests/harness/demo_cluster.h"
#include "tests/harness/git_repo.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::WaitFor;

// A TCP listener on 127.0.0.1 that accepts every connection and records
// what it receives (it never answers).
class RecordingListener {
 public:
  RecordingListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 16) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~RecordingListener() {
    stop_ = true;
    thread_.join();
    for (int c : clients_) ::close(c);
    ::close(fd_);
  }

  int port() const { return port_; }
  int connections() const { return connections_; }
  std::string received() const {
    std::lock_guard<std::mutex> g(mu_);
    return received_;
  }

 private:
  void Loop() {
    while (!stop_) {
      std::vector<pollfd> fds = {{fd_, POLLIN, 0}};
      for (int c : clients_) fds.push_back({c, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          clients_.push_back(c);
          ++connections_;
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[4096];
        ssize_t n = ::recv(fds[i].fd, buf, sizeof buf, 0);
        if (n > 0) {
          std::lock_guard<std::mutex> g(mu_);
          received_.append(buf, static_cast<size_t>(n));
        }
      }
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::vector<int> clients_;  // Only the loop thread touches it until the join.
  mutable std::mutex mu_;
  std::string received_;
  std::thread thread_;
};

std::string Get(const std::string& listen, const std::string& path, const std::string& token) {
  httplib::Client c("http://" + listen);
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(2, 0);
  auto res = c.Get(path.c_str(), {{"Authorization", "Bearer " + token}});
  return res && res->status == 200 ? res->body : std::string();
}

std::string FirstLineOf(const std::string& path) {
  std::string t = testing::ReadFile(path);
  return t.substr(0, t.find('\n'));
}

// ---------------------------------------------------------------- item 1

class SecretsE2eTest : public ::testing::Test {
 protected:
  void StartClusterd() {
    clusterd_ = std::make_unique<testing::Process>(
        std::vector<std::string>{testing::ClusterdBin(), "--config", demo_.config_path()},
        testing::OutputTo(demo_.dir() + "/clusterd.log"));
  }
  std::string Log() const { return testing::ReadFile(demo_.dir() + "/clusterd.log"); }
  std::string Token() const { return FirstLineOf(demo_.token_file()); }
  std::string Api(const std::string& path) const { return Get(demo_.listen(), path, Token()); }
  bool Healthy() const {
    json st = json::parse(Api("/api/v1/status"), nullptr, false);
    return st.is_object() && st.value("overall_status", "") == "healthy";
  }

  // A service on worker-monitor whose readiness is a redis probe of
  // 127.0.0.1:`port` with `password_file`.
  std::string LeakyService(const std::string& name, int port, const std::string& password_file) {
    const std::string own =
        std::to_string(testing::PickFreePort(demo_.address_of("worker-monitor")));
    return "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: " + name +
           "}\nspec:\n  machines: [worker-monitor]\n  process:\n    command: [\"" +
           testing::TestServiceBin() + "\", --host, " + demo_.address_of("worker-monitor") +
           ", --port, \"" + own +
           "\"]\n  readiness:\n    redis: {host: 127.0.0.1, port: " + std::to_string(port) +
           ", passwordFile: \"" + password_file + "\"}\n    periodSeconds: 1\n";
  }

  testing::DemoCluster demo_;
  std::unique_ptr<testing::Process> clusterd_;
};

TEST_F(SecretsE2eTest, ARevisionNamingTheTokenFileIsRejectedAndNoAuthReachesTheHost) {
  StartClusterd();
  ASSERT_TRUE(WaitFor([&] { return Healthy(); }, seconds(60), milliseconds(300))) << Log();
  const std::string good = demo_.repo().Rev();
  const std::string token = Token();
  ASSERT_FALSE(token.empty());
  // A symlink in secretsDir to the token: not followed either.
  ASSERT_EQ(
      ::symlink(demo_.token_file().c_str(), (demo_.data_dir() + "/secrets/token-link").c_str()), 0);
  RecordingListener listener;
  demo_.repo().Write("services/leak.yaml",
                     LeakyService("leak", listener.port(), demo_.token_file()));
  demo_.repo().Write("services/leak-link.yaml",
                     LeakyService("leak-link", listener.port(), "token-link"));
  demo_.repo().CommitAll("exfiltrate the API token");
  demo_.repo().Git("push -q origin main");
  const std::string bad = demo_.repo().Rev().substr(0, 7);

  std::string detail;
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const auto& r : testing::AuditRecordsOf(demo_.data_dir())) {
          if (r.action == "revision_rejected" && r.revision == bad) {
            detail = r.detail;
            return true;
          }
        }
        return false;
      },
      seconds(30), milliseconds(200)))
      << Log();
  EXPECT_NE(detail.find("services/leak.yaml:9:"), std::string::npos) << detail;
  EXPECT_NE(detail.find("passwordFile \"" + demo_.token_file() + "\" is outside secretsDir " +
                        demo_.data_dir() + "/secrets"),
            std::string::npos)
      << detail;
  EXPECT_NE(detail.find("services/leak-link.yaml:9:"), std::string::npos) << detail;
  EXPECT_NE(detail.find("goes through the symlink \"token-link\""), std::string::npos) << detail;

  const std::string status = Api("/api/v1/status");
  json st = json::parse(status, nullptr, false);
  ASSERT_TRUE(st.is_object()) << status;
  EXPECT_EQ(st["revision"], good);  // The last valid revision stays in force.
  EXPECT_NE(st["alerts"].dump().find("rejected"), std::string::npos) << st["alerts"].dump();

  // Nothing reaches the named host, not even a connection; watch it for a
  // few probe periods (the leaky probes would run every second).
  EXPECT_FALSE(WaitFor([&] { return listener.connections() > 0; }, seconds(3), milliseconds(50)))
      << listener.received().size() << " bytes received";
  EXPECT_EQ(listener.received().find("AUTH"), std::string::npos) << "an AUTH was sent";
  EXPECT_EQ(listener.received().find(token), std::string::npos) << "the API token was sent";
  // The token itself appears nowhere.
  EXPECT_EQ(Log().find(token), std::string::npos);
  EXPECT_EQ(status.find(token), std::string::npos);
  EXPECT_EQ(Api("/api/v1/alerts").find(token), std::string::npos);
  for (const auto& r : testing::AuditRecordsOf(demo_.data_dir())) {
    EXPECT_EQ(r.detail.find(token), std::string::npos) << r.action;
  }
  // clusterctl validate applies the same rule, naming the file and line.
  std::string out;
  EXPECT_EQ(demo_.Cli("--repo '" + demo_.repo().path() + "' validate", &out), 1) << out;
  EXPECT_NE(out.find("services/leak.yaml:9:"), std::string::npos) << out;
  EXPECT_NE(out.find("is outside secretsDir"), std::string::npos) << out;
  EXPECT_EQ(out.find(token), std::string::npos);
}

// ---------------------------------------------------------------- item 2

// clusterd following a repository whose URL carries a password, on a port
// where nothing listens.
class UrlCredentialsE2eTest : public ::testing::Test {
 protected:
  static constexpr const char* kPassword = "s3cret";

  UrlCredentialsE2eTest()
      : url_("http://user:" + std::string(kPassword) +
             "@127.0.0.1:" + std::to_string(testing::PickFreePort()) + "/repo.git"),
        listen_("127.0.0.1:" + std::to_string(testing::PickFreePort())) {
    testing::WriteFile(tmp_.Sub("token"), "url-test-token\n");
    testing::WriteFile(tmp_.Sub("clusterd.yaml"),
                       "repo: {url: \"" + url_ + "\", branch: main, pollSeconds: 1}\ndataDir: " +
                           tmp_.Sub("data") + "\nlisten: " + listen_ +
                           "\ntokenFile: " + tmp_.Sub("token") + "\nwatch: {enabled: false}\n");
  }

  // Seeds the repository cache as an earlier successful clone of url_ would
  // have, so clusterd starts and then fails to fetch.
  void SeedCache() {
    testing::GitRepo origin(tmp_.Sub("origin.git"), /*bare=*/true);
    testing::GitRepo work(tmp_.Sub("work"));
    work.Write("cluster.yaml",
               "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: lab}\nspec: {}\n");
    work.CommitAll("a cluster");
    work.Git("push -q '" + origin.path() + "' main");
    std::string sha;
    ASSERT_EQ(testing::RunShell("printf %s '" + url_ + "' | sha256sum | cut -c1-64", &sha), 0);
    while (!sha.empty() && sha.back() == '\n') sha.pop_back();
    ASSERT_EQ(sha.size(), 64u) << sha;
    std::string out;
    ASSERT_EQ(testing::RunShell(testing::GitRepo::Env() + " git clone -q --bare '" + origin.path() +
                                    "' '" + tmp_.Sub("data/repos/repo-" + sha) + "' 2>&1",
                                &out),
              0)
        << out;
  }

  void Start() {
    clusterd_ = std::make_unique<testing::Process>(
        std::vector<std::string>{testing::ClusterdBin(), "--config", tmp_.Sub("clusterd.yaml")},
        testing::OutputTo(tmp_.Sub("clusterd.log")));
  }
  std::string Log() const { return testing::ReadFile(tmp_.Sub("clusterd.log")); }
  std::string Api(const std::string& path) const { return Get(listen_, path, "url-test-token"); }
  std::string AuditJson() const {
    std::string out;
    testing::RunShell(
        testing::CliBin() + " --config '" + tmp_.Sub("clusterd.yaml") + "' audit --json 2>&1",
        &out);
    return out;
  }

  testing::TempDir tmp_;
  const std::string url_;
  const std::string listen_;
  std::unique_ptr<testing::Process> clusterd_;
};

TEST_F(UrlCredentialsE2eTest, AFailingFetchIsAlertedWithoutThePassword) {
  SeedCache();
  Start();
  std::string alerts;
  ASSERT_TRUE(WaitFor(
      [&] {
        alerts = Api("/api/v1/alerts");
        return alerts.find("cannot fetch") != std::string::npos;
      },
      seconds(30), milliseconds(200)))
      << Log();
  EXPECT_EQ(alerts.find(kPassword), std::string::npos) << alerts;
  EXPECT_NE(alerts.find("http://user:***@127.0.0.1:"), std::string::npos) << alerts;
  const std::string status = Api("/api/v1/status");
  ASSERT_FALSE(status.empty());
  EXPECT_EQ(status.find(kPassword), std::string::npos) << status;
  EXPECT_EQ(AuditJson().find(kPassword), std::string::npos);
  ASSERT_EQ(clusterd_->Stop(seconds(10)), 0) << Log();
  const std::string log = Log();
  EXPECT_EQ(log.find(kPassword), std::string::npos) << log;
  EXPECT_NE(log.find("repository http://user:***@127.0.0.1:"), std::string::npos) << log;
}

TEST_F(UrlCredentialsE2eTest, AFailedFirstCloneNeverShowsThePassword) {
  Start();
  // Today clusterd exits when the first clone fails; once it keeps running
  // (issue 10 item 4) it alerts instead. Either way: no password.
  bool exited = false;
  ASSERT_TRUE(WaitFor(
      [&] {
        exited = !clusterd_->Running();
        return exited || Api("/api/v1/alerts").find("127.0.0.1") != std::string::npos;
      },
      seconds(60), milliseconds(200)))
      << Log();
  if (!exited) {
    EXPECT_EQ(Api("/api/v1/alerts").find(kPassword), std::string::npos);
    EXPECT_EQ(Api("/api/v1/status").find(kPassword), std::string::npos);
    EXPECT_EQ(AuditJson().find(kPassword), std::string::npos);
    clusterd_->Stop(seconds(10));
  }
  const std::string log = Log();
  EXPECT_NE(log.find("user:***@127.0.0.1:"), std::string::npos) << log;
  EXPECT_EQ(log.find(kPassword), std::string::npos) << log;
}

TEST_F(UrlCredentialsE2eTest, ClusterctlErrorsNeverShowThePassword) {
  for (const std::string& flags : {std::string(""), std::string("--json ")}) {
    std::string out;
    EXPECT_EQ(testing::RunShell(testing::CliBin() + " --config '" + tmp_.Sub("clusterd.yaml") +
                                    "' " + flags + "validate",
                                &out),
              1)
        << out;
    EXPECT_NE(out.find("user:***@127.0.0.1:"), std::string::npos) << out;
    EXPECT_EQ(out.find(kPassword), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace clusterctl

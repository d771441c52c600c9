// The test harness itself: the test service's flags, RedisServer, SshHost.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

struct HttpReply {
  int status = 0;  // 0: no answer (connect failed or timed out)
  std::string body;
};

// A minimal HTTP/1.0 GET, bounded by `timeout`.
HttpReply HttpGet(int port, const std::string& path, milliseconds timeout = milliseconds(2000)) {
  HttpReply reply;
  const auto deadline = Clock::now() + timeout;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return reply;
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string raw;
  char buf[1024];
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) != 1) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (raw.rfind("HTTP/1.0 ", 0) != 0) return reply;
  reply.status = std::stoi(raw.substr(9, 3));
  size_t body = raw.find("\r\n\r\n");
  if (body != std::string::npos) reply.body = raw.substr(body + 4);
  return reply;
}

class TestServiceTest : public ::testing::Test {
 protected:
  // Starts the test service on a free port with `flags`.
  std::unique_ptr<Process> Start(std::vector<std::string> flags,
                                 std::vector<std::string> env = {}) {
    port_ = PickFreePort();
    std::vector<std::string> argv = {TestServiceBin(), "--port", std::to_string(port_)};
    argv.insert(argv.end(), flags.begin(), flags.end());
    SpawnOptions options = OutputTo(log_);
    options.env = env;
    auto p = std::make_unique<Process>(argv, options);
    EXPECT_TRUE(WaitFor([&] { return CanConnect("127.0.0.1", port_); }, milliseconds(5000)))
        << ReadFile(log_);
    return p;
  }

  TempDir tmp_;
  std::string log_ = tmp_.Sub("service.log");
  int port_ = 0;
};

TEST_F(TestServiceTest, HealthIsUnavailableUntilTheReadyDelayHasPassed) {
  auto svc = Start({"--ready-delay-ms", "1500"});
  EXPECT_EQ(HttpGet(port_, "/health").status, 503);
  EXPECT_EQ(HttpGet(port_, "/").status, 200);
  EXPECT_TRUE(WaitFor([&] { return HttpGet(port_, "/health").status == 200; }, milliseconds(5000)));
  EXPECT_EQ(HttpGet(port_, "/health").body, "ok");
  EXPECT_EQ(HttpGet(port_, "/nope").status, 404);
}

TEST_F(TestServiceTest, FailReadinessKeepsHealthFailing) {
  auto svc = Start({"--fail-readiness"});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(HttpGet(port_, "/health").status, 503);
  EXPECT_EQ(HttpGet(port_, "/").status, 200);
}

TEST_F(TestServiceTest, ExitsWithCode3AfterExitAfterSeconds) {
  auto start = Clock::now();
  auto svc = Start({"--exit-after-s", "1"});
  EXPECT_EQ(svc->WaitForExit(milliseconds(5000)), 3);
  EXPECT_GE(Clock::now() - start, milliseconds(900));
}

TEST_F(TestServiceTest, ExitsZeroOnSigterm) {
  auto svc = Start({});
  svc->Kill(SIGTERM);
  EXPECT_EQ(svc->WaitForExit(milliseconds(5000)), 0);
}

TEST_F(TestServiceTest, IgnoreSigtermSurvivesSigtermUntilKilled) {
  auto svc = Start({"--ignore-sigterm"});
  svc->Kill(SIGTERM);
  // Still serving after the SIGTERM was delivered and handled.
  EXPECT_EQ(HttpGet(port_, "/").status, 200);
  EXPECT_FALSE(svc->WaitForExit(milliseconds(300)).has_value());
  EXPECT_TRUE(svc->Running());
  svc->Kill(SIGKILL);
  EXPECT_EQ(svc->WaitForExit(milliseconds(5000)), 128 + SIGKILL);
}

TEST_F(TestServiceTest, HangAcceptsConnectionsButNeverAnswers) {
  auto svc = Start({"--hang"});
  auto start = Clock::now();
  EXPECT_EQ(HttpGet(port_, "/health", milliseconds(300)).status, 0);
  EXPECT_GE(Clock::now() - start, milliseconds(250));
}

TEST_F(TestServiceTest, LogsItsPidAndEnvAndWritesItsPidFile) {
  const std::string pid_file = tmp_.Sub("svc.pid");
  auto svc =
      Start({"--print-env", "GREETING", "--print-env", "ABSENT_VAR", "--write-file", pid_file},
            {"GREETING=hello world"});
  EXPECT_TRUE(WaitFor([&] { return !ReadFile(pid_file).empty(); }, milliseconds(2000)));
  EXPECT_EQ(ReadFile(pid_file), std::to_string(svc->pid()) + "\n");
  const std::string log = ReadFile(log_);
  EXPECT_NE(log.find("clusterctl-test-service pid=" + std::to_string(svc->pid()) + " argv=["),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("GREETING=hello world\n"), std::string::npos) << log;
  EXPECT_NE(log.find("ABSENT_VAR unset\n"), std::string::npos) << log;
}

TEST(ProcessTest, DestructorKillsAndReapsTheChild) {
  pid_t pid;
  {
    Process p({"sleep", "1000"});
    pid = p.pid();
    EXPECT_TRUE(ProcessAlive(pid));
  }
  EXPECT_FALSE(ProcessAlive(pid));
}

TEST(ProcessTest, WaitForGivesUpAtItsBound) {
  auto start = Clock::now();
  EXPECT_FALSE(WaitFor([] { return false; }, milliseconds(100)));
  EXPECT_LT(Clock::now() - start, milliseconds(1000));
  EXPECT_TRUE(WaitFor([] { return true; }, milliseconds(0)));
}

TEST(RedisServerTest, StartsAndAnswersPing) {
  RedisServer redis;
  EXPECT_GT(redis.pid(), 0);
  EXPECT_TRUE(redis.Ping());
  const pid_t pid = redis.pid();
  redis.Stop();
  EXPECT_FALSE(ProcessAlive(pid));
  EXPECT_FALSE(redis.Ping(milliseconds(200)));
}

TEST(RedisServerTest, RequirepassRefusesPingWithoutThePassword) {
  RedisServerOptions options;
  options.password = "s3cret word";
  RedisServer redis(options);
  EXPECT_TRUE(redis.Ping());
  EXPECT_FALSE(redis.Ping(milliseconds(500), /*use_password=*/false));
  EXPECT_EQ(ReadFile(redis.WritePasswordFile()), "s3cret word");
}

TEST(RedisServerTest, StoppedServerDoesNotAnswer) {
  RedisServer redis;
  redis.Kill(SIGSTOP);
  EXPECT_FALSE(redis.Ping(milliseconds(300)));
  redis.Kill(SIGCONT);
  EXPECT_TRUE(redis.Ping());
}

TEST(SshHostTest, ServesCommandsWithItsOwnHomeAndKnownHostsLine) {
  SshHost host;
  EXPECT_TRUE(ProcessAlive(host.pid()));
  EXPECT_EQ(host.address().rfind("127.0.0.", 0), 0u);
  std::string out;
  ASSERT_EQ(host.RunWithOpenSsh("echo hi; echo $HOME", &out), 0)
      << out << ReadFile(host.log_path());
  EXPECT_EQ(out, "hi\n" + host.home_dir() + "\n");
  EXPECT_EQ(ReadFile(host.known_hosts_path()), host.known_hosts_line() + "\n");
  EXPECT_EQ(host.known_hosts_line().rfind(
                "[" + host.address() + "]:" + std::to_string(host.port()) + " ssh-ed25519 ", 0),
            0u);
}

TEST(SshHostTest, RestartKeepsAddressAndPortAndRegeneratedKeyChangesTheLine) {
  SshHost host;
  const std::string line = host.known_hosts_line();
  const int port = host.port();
  host.RegenerateHostKey();
  host.Restart();
  EXPECT_EQ(host.port(), port);
  EXPECT_NE(host.known_hosts_line(), line);
  EXPECT_EQ(host.RunWithOpenSsh("true"), 0);
}

TEST(SshHostTest, KillSigkillEndsSshdAndItsSessions) {
  SshHost host;
  // A session that lasts: its processes are descendants of sshd.
  Process client({"ssh", "-F", "/dev/null", "-q", "-i", host.client_key_path(), "-o",
                  "BatchMode=yes", "-o", "UserKnownHostsFile=" + host.known_hosts_path(), "-p",
                  std::to_string(host.port()), host.user() + "@" + host.address(), "sleep 1000"});
  const pid_t sshd = host.pid();
  ASSERT_TRUE(WaitFor([&] { return Descendants(sshd).size() >= 2; }, milliseconds(10000)));
  std::vector<pid_t> sessions = Descendants(sshd);
  host.Kill(SIGKILL);
  EXPECT_FALSE(host.running());
  EXPECT_FALSE(ProcessAlive(sshd));
  for (pid_t p : sessions) EXPECT_FALSE(ProcessAlive(p)) << p;
  EXPECT_TRUE(client.WaitForExit(milliseconds(5000)).has_value());
  host.Restart();
  EXPECT_EQ(host.RunWithOpenSsh("true"), 0);
}

TEST(SshHostTest, TeardownKillsServicesFromPidFilesAndSessions) {
  pid_t service_pid = -1, detached_pid = -1;
  {
    SshHost host;
    // A service started through sshd with setsid, as the process driver does.
    const std::string pid_file = host.state_dir() + "/web/service.pid";
    std::string out;
    ASSERT_EQ(host.RunWithOpenSsh("mkdir -p " + host.state_dir() + "/web; setsid " +
                                      TestServiceBin() + " --write-file " + pid_file +
                                      " >/dev/null 2>&1 < /dev/null & echo started",
                                  &out),
              0)
        << out;
    ASSERT_TRUE(WaitFor([&] { return !ReadFile(pid_file).empty(); }, milliseconds(5000)));
    service_pid = std::stoi(ReadFile(pid_file));
    EXPECT_TRUE(ProcessAlive(service_pid));
    // A process that left the session and wrote no pid file: found by the
    // host's environment marker.
    const std::string marker_file = host.dir() + "/detached.pid";
    ASSERT_EQ(host.RunWithOpenSsh("setsid sleep 1000 >/dev/null 2>&1 < /dev/null & echo $! > " +
                                  marker_file),
              0);
    ASSERT_TRUE(WaitFor([&] { return !ReadFile(marker_file).empty(); }, milliseconds(5000)));
    detached_pid = std::stoi(ReadFile(marker_file));
    EXPECT_TRUE(ProcessAlive(detached_pid));
  }
  EXPECT_FALSE(ProcessAlive(service_pid));
  EXPECT_FALSE(ProcessAlive(detached_pid));
}

TEST(TestClusterTest, HostsShareOneClientKeyAndKnownHostsFile) {
  TestCluster cluster(2);
  ASSERT_EQ(cluster.size(), 2u);
  EXPECT_NE(cluster.host(0).address(), cluster.host(1).address());
  EXPECT_EQ(cluster.host(0).client_key_path(), cluster.client_key_path());
  const std::string known = ReadFile(cluster.known_hosts_path());
  EXPECT_NE(known.find(cluster.host(0).known_hosts_line()), std::string::npos);
  EXPECT_NE(known.find(cluster.host(1).known_hosts_line()), std::string::npos);
  EXPECT_EQ(cluster.host(1).RunWithOpenSsh("true"), 0);
}

}  // namespace
}  // namespace clusterctl::testing

// Health probes against real processes: the test service (HTTP, TCP, a
// listener that never answers), redis-server, and sshd for exec probes.
#include "reconcilers/probes.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "reconcilers/async_prober.h"
#include "reconcilers/shell.h"
#include "reconcilers/ssh.h"
#include "reconcilers/target.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::reconcilers {
namespace {

using ::clusterctl::testing::CanConnect;
using ::clusterctl::testing::OutputTo;
using ::clusterctl::testing::PickFreePort;
using ::clusterctl::testing::Process;
using ::clusterctl::testing::ReadFile;
using ::clusterctl::testing::RedisServer;
using ::clusterctl::testing::RedisServerOptions;
using ::clusterctl::testing::SshHost;
using ::clusterctl::testing::TempDir;
using ::clusterctl::testing::TestServiceBin;
using ::clusterctl::testing::WaitFor;
using ::clusterctl::testing::WriteFile;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;
using desired_state::Machine;
using desired_state::Probe;
using desired_state::ProbeKind;
using desired_state::Service;
using std::chrono::milliseconds;

constexpr int64_t kFakeNow = 1700000000123;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
}

Machine LocalMachine(const std::string& address = "127.0.0.1") {
  Machine m;
  m.name = "m1";
  m.address = address;
  return m;
}

Probe MakeProbe(ProbeKind kind, int port, int timeout_seconds = 2) {
  Probe p;
  p.kind = kind;
  p.port = port;
  p.timeout_seconds = timeout_seconds;
  return p;
}

Probe HttpProbe(int port, const std::string& path = "/health", int timeout_seconds = 2) {
  Probe p = MakeProbe(ProbeKind::kHttp, port, timeout_seconds);
  p.path = path;
  return p;
}

Service ServiceWith(const std::string& name, const Probe& readiness) {
  Service s;
  s.name = name;
  s.readiness = readiness;
  return s;
}

// The test service on a free port of 127.0.0.1, accepting connections.
class TestService {
 public:
  explicit TestService(std::vector<std::string> flags = {}) {
    port_ = PickFreePort();
    std::vector<std::string> argv = {TestServiceBin(), "--port", std::to_string(port_)};
    argv.insert(argv.end(), flags.begin(), flags.end());
    process_ = std::make_unique<Process>(argv, OutputTo(tmp_.Sub("service.log")));
    EXPECT_TRUE(WaitFor([&] { return CanConnect("127.0.0.1", port_); }, milliseconds(5000)))
        << ReadFile(tmp_.Sub("service.log"));
  }
  int port() const { return port_; }

 private:
  TempDir tmp_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

// A listening socket on 127.0.0.1 that the test never accepts from.
class RawListener {
 public:
  explicit RawListener(int backlog) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    EXPECT_EQ(::listen(fd_, backlog), 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
  }
  ~RawListener() {
    for (int fd : clients_) ::close(fd);
    ::close(fd_);
  }
  int port() const { return port_; }
  int fd() const { return fd_; }

  // Opens a non-blocking client connection that stays open until the end.
  void Fill() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port_));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    clients_.push_back(fd);
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::vector<int> clients_;
};

// Accepts one HTTP request on a RawListener, keeps its head and answers 200.
// With whole_head=false it answers after the first bytes, whatever they are.
std::string ServeOneRequest(int listen_fd, const std::string& body, bool whole_head = true) {
  pollfd p{listen_fd, POLLIN, 0};
  if (::poll(&p, 1, 10000) != 1) return "";
  int fd = ::accept(listen_fd, nullptr, nullptr);
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos) {
    pollfd q{fd, POLLIN, 0};
    if (::poll(&q, 1, 5000) != 1) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    head.append(buf, static_cast<size_t>(n));
    if (!whole_head) break;
  }
  std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\nConnection: close\r\n\r\n" + body;
  ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
  ::close(fd);
  return head;
}

class ProbeTest : public ::testing::Test {
 protected:
  ProbeResult Check(const Probe& probe, const Machine& machine = LocalMachine()) {
    return prober_.Check(probe, machine);
  }

  // Repository-named password files come from here only.
  TempDir secrets_;
  clusterctl::FakeClock clock_{kFakeNow};
  RealProber prober_{nullptr, &clock_, SecretsPolicy{secrets_.path(), {}}};
};

// ---------------------------------------------------------------- http

TEST_F(ProbeTest, HttpPassesOnTheExpectedStatusAndFillsEveryField) {
  TestService svc;
  Service s = ServiceWith("web", HttpProbe(svc.port()));
  ProbeResult r = prober_.Run(s, LocalMachine(), ProbeRole::kReadiness);
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.detail, "HTTP 200");
  EXPECT_EQ(r.kind, "http");
  EXPECT_EQ(r.service, "web");
  EXPECT_EQ(r.machine, "m1");
  EXPECT_EQ(r.role, ProbeRole::kReadiness);
  EXPECT_EQ(r.time_ms, kFakeNow);
  EXPECT_GE(r.latency_ms, 0);
  EXPECT_LT(r.latency_ms, 2000);
}

TEST_F(ProbeTest, HttpFailsWhenTheServiceAnswers503) {
  TestService svc({"--fail-readiness"});
  ProbeResult r = Check(HttpProbe(svc.port()));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "HTTP 503, expected 200");
}

TEST_F(ProbeTest, HttpFailsOnTimeWhenTheServiceTricklesItsHeaders) {
  // One header byte every 200 ms: no single read waits as long as the
  // timeout, but the headers never end. The whole request has one deadline.
  TestService svc({"--trickle", "200"});
  const auto start = Clock::now();
  auto probe = std::async(std::launch::async, [&] {
    return Check(HttpProbe(svc.port(), "/health", /*timeout_seconds=*/1));
  });
  ASSERT_EQ(probe.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "the probe outlived its 1 s timeout by far";
  ProbeResult r = probe.get();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "timeout after 1000 ms");
  EXPECT_LT(MsSince(start), 1000 + 1000);
  EXPECT_GE(MsSince(start), 900);
}

TEST_F(ProbeTest, RedisFailsOnTimeWhenTheReplyTrickles) {
  TestService svc({"--trickle-resp", "200"});
  const auto start = Clock::now();
  auto probe = std::async(std::launch::async, [&] {
    return Check(MakeProbe(ProbeKind::kRedis, svc.port(), /*timeout_seconds=*/1));
  });
  ASSERT_EQ(probe.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "the probe outlived its 1 s timeout by far";
  ProbeResult r = probe.get();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "timeout after 1000 ms");
  EXPECT_LT(MsSince(start), 1000 + 1000);
}

TEST_F(ProbeTest, ATricklingServiceDoesNotStallTheProbesOfOthers) {
  // clusterd's probe loop with a single worker: the trickler's probe ends at
  // its deadline, so the healthy service's probe queued behind it runs soon.
  TestService trickler({"--trickle", "200"});
  TestService healthy;
  Service slow = ServiceWith("slow", HttpProbe(trickler.port(), "/health", 1));
  Service web = ServiceWith("web", HttpProbe(healthy.port(), "/health", 1));
  const Machine m = LocalMachine();
  std::mutex mu;
  std::map<std::string, ProbeResult> results;
  std::map<std::string, int64_t> at_ms;
  const auto start = Clock::now();
  AsyncProber probes(&prober_, 1, [&](const ProbeResult& r) {
    std::lock_guard<std::mutex> g(mu);
    results[r.service] = r;
    at_ms[r.service] = MsSince(start);
  });
  ASSERT_TRUE(probes.Submit(nullptr, {&slow, &m, ProbeRole::kReadiness}));
  ASSERT_TRUE(probes.Submit(nullptr, {&web, &m, ProbeRole::kReadiness}));
  const bool both = WaitFor(
      [&] {
        std::lock_guard<std::mutex> g(mu);
        return results.size() == 2;
      },
      milliseconds(10000));
  std::lock_guard<std::mutex> g(mu);
  ASSERT_TRUE(both) << "the healthy service's probe was held back by the trickler";
  EXPECT_FALSE(results["slow"].ok);
  EXPECT_EQ(results["slow"].detail, "timeout after 1000 ms");
  EXPECT_TRUE(results["web"].ok) << results["web"].detail;
  EXPECT_LT(at_ms["web"], 1000 + 1500);
}

TEST_F(ProbeTest, HttpExpectStatusCanBeAnythingElse) {
  TestService svc;
  Probe p = HttpProbe(svc.port(), "/missing");
  p.expect_status = 404;
  ProbeResult r = Check(p);
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.detail, "HTTP 404");
}

TEST_F(ProbeTest, HttpChecksTheBody) {
  TestService svc;
  Probe p = HttpProbe(svc.port());
  p.body_contains = "ok";
  EXPECT_TRUE(Check(p).ok);
  p.body_contains = "all systems go";
  ProbeResult r = Check(p);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "HTTP 200, body lacks \"all systems go\"");
}

TEST_F(ProbeTest, HttpReportsConnectionRefused) {
  ProbeResult r = Check(HttpProbe(PickFreePort()));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "connection refused");
  EXPECT_EQ(r.kind, "http");
}

TEST_F(ProbeTest, HttpTimesOutOnAListenerThatNeverAnswers) {
  TestService svc({"--hang"});
  const auto start = Clock::now();
  ProbeResult r = Check(HttpProbe(svc.port(), "/health", /*timeout_seconds=*/1));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "timeout after 1000 ms");
  EXPECT_LT(MsSince(start), 1000 + 1500);
  EXPECT_GE(r.latency_ms, 900);
}

TEST_F(ProbeTest, HttpSendsTheProbeHeadersAndPath) {
  RawListener server(16);
  std::string head;
  std::thread t([&] { head = ServeOneRequest(server.fd(), "fine"); });
  Probe p = HttpProbe(server.port(), "status?verbose=1");
  p.headers = {{"X-Probe", "clusterctl"}, {"Host", "api.internal"}};
  p.body_contains = "fine";
  ProbeResult r = Check(p);
  t.join();
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_THAT(head, HasSubstr("GET /status?verbose=1 HTTP/1.1\r\n"));
  EXPECT_THAT(head, HasSubstr("X-Probe: clusterctl\r\n"));
  EXPECT_THAT(head, HasSubstr("Host: api.internal\r\n"));
}

TEST_F(ProbeTest, HostDefaultsToTheMachineAddressAndCanBeOverridden) {
  TestService svc;  // listens on 127.0.0.1 only
  Probe p = HttpProbe(svc.port());
  EXPECT_TRUE(Check(p, LocalMachine("127.0.0.1")).ok);
  ProbeResult other = Check(p, LocalMachine("127.0.0.254"));
  EXPECT_FALSE(other.ok);
  EXPECT_EQ(other.detail, "connection refused");
  p.host = "127.0.0.1";
  EXPECT_TRUE(Check(p, LocalMachine("127.0.0.254")).ok);
}

TEST_F(ProbeTest, HttpsAgainstAPlainHttpPortFailsClearly) {
  RawListener silent(16);  // connects, but nothing ever answers the TLS hello
  Probe p = HttpProbe(silent.port(), "/health", /*timeout_seconds=*/1);
  p.scheme = "https";
  ProbeResult r = Check(p);
  EXPECT_FALSE(r.ok);
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
  EXPECT_EQ(r.detail, "timeout after 1000 ms in the TLS handshake");
  RawListener closer(16);  // accepts, reads the hello, answers plain HTTP
  std::thread t([&] { ServeOneRequest(closer.fd(), "plain", /*whole_head=*/false); });
  p.port = closer.port();
  r = Check(p);
  t.join();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "TLS handshake failed");
#else
  EXPECT_THAT(r.detail, HasSubstr("built without OpenSSL"));
#endif
}

TEST_F(ProbeTest, HttpRejectsAnUnknownScheme) {
  Probe p = HttpProbe(80);
  p.scheme = "gopher";
  ProbeResult r = Check(p);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "unsupported scheme \"gopher\"");
}

// ---------------------------------------------------------------- tcp

TEST_F(ProbeTest, TcpPassesWhenSomethingListens) {
  TestService svc;
  ProbeResult r = Check(MakeProbe(ProbeKind::kTcp, svc.port()));
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.detail, "connected");
  EXPECT_EQ(r.kind, "tcp");
}

TEST_F(ProbeTest, TcpReportsConnectionRefused) {
  ProbeResult r = Check(MakeProbe(ProbeKind::kTcp, PickFreePort()));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "connection refused");
}

TEST_F(ProbeTest, TcpTimesOutWhenTheListenerDropsConnects) {
  // A listener with a full accept queue drops further SYNs: connect hangs.
  RawListener server(0);
  server.Fill();
  server.Fill();
  const auto start = Clock::now();
  ProbeResult r = Check(MakeProbe(ProbeKind::kTcp, server.port(), /*timeout_seconds=*/1));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "timeout after 1000 ms");
  EXPECT_LT(MsSince(start), 1000 + 1500);
  EXPECT_GE(r.latency_ms, 900);
}

TEST_F(ProbeTest, HttpAndRedisTimeOutWhenTheConnectHangs) {
  RawListener server(0);
  server.Fill();
  server.Fill();
  for (ProbeKind kind : {ProbeKind::kHttp, ProbeKind::kRedis}) {
    const auto start = Clock::now();
    ProbeResult r = Check(MakeProbe(kind, server.port(), /*timeout_seconds=*/1));
    EXPECT_FALSE(r.ok) << r.kind;
    EXPECT_EQ(r.detail, "timeout after 1000 ms") << r.kind;
    EXPECT_LT(MsSince(start), 1000 + 1500) << r.kind;
  }
}

TEST_F(ProbeTest, TcpReportsAnUnresolvableHost) {
  Probe p = MakeProbe(ProbeKind::kTcp, 80);
  p.host = "no-such-host.invalid";
  ProbeResult r = Check(p);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.detail, HasSubstr("cannot resolve host no-such-host.invalid"));
}

// ---------------------------------------------------------------- redis

TEST_F(ProbeTest, RedisPassesOnPongAndRecordsInfo) {
  RedisServer redis;
  ProbeResult r = Check(MakeProbe(ProbeKind::kRedis, redis.port()));
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.detail, "PONG");
  EXPECT_EQ(r.kind, "redis");
  ASSERT_EQ(r.info.count("connected_clients"), 1u);
  EXPECT_GE(std::stoi(r.info["connected_clients"]), 1);
  EXPECT_FALSE(r.info["used_memory_human"].empty());
  ASSERT_EQ(r.info.count("uptime_in_seconds"), 1u);
  EXPECT_GE(std::stoi(r.info["uptime_in_seconds"]), 0);
  EXPECT_EQ(r.info["role"], "master");
}

TEST_F(ProbeTest, RedisAuthenticatesWithThePasswordFile) {
  RedisServerOptions options;
  options.password = "correct horse-battery";
  RedisServer redis(options);
  Probe p = MakeProbe(ProbeKind::kRedis, redis.port());
  p.password_file = "redis/pw";                                  // relative to secretsDir
  WriteFile(secrets_.Sub("redis/pw"), options.password + "\n");  // a trailing newline is trimmed
  ProbeResult r = Check(p);
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.detail, "PONG");
  EXPECT_FALSE(r.info["used_memory_human"].empty());
  p.password_file = secrets_.Sub("redis/pw");  // absolute, inside secretsDir
  EXPECT_TRUE(Check(p).ok);
}

TEST_F(ProbeTest, RedisRefusesAPasswordFileOutsideSecretsDir) {
  RedisServerOptions options;
  options.password = "correct horse-battery";
  RedisServer redis(options);
  Probe p = MakeProbe(ProbeKind::kRedis, redis.port());
  p.password_file = redis.WritePasswordFile();  // outside secretsDir
  ProbeResult r = Check(p);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.detail, HasSubstr("is outside secretsDir"));
  EXPECT_THAT(r.detail, Not(HasSubstr(options.password)));
}

TEST_F(ProbeTest, RedisWrongPasswordFailsWithoutRevealingIt) {
  RedisServerOptions options;
  options.password = "the-right-one";
  RedisServer redis(options);
  const std::string wrong = "hunter2-wrong-Secret";
  Probe p = MakeProbe(ProbeKind::kRedis, redis.port());
  p.password_file = "pw";
  WriteFile(secrets_.Sub("pw"), wrong);
  ProbeResult r = Check(p);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.detail, HasSubstr("AUTH failed"));
  EXPECT_THAT(r.detail, Not(HasSubstr(wrong)));
  EXPECT_THAT(r.detail, Not(HasSubstr("hunter2")));
  EXPECT_THAT(r.detail, Not(HasSubstr(options.password)));
  for (const auto& [k, v] : r.info) EXPECT_THAT(v, Not(HasSubstr(wrong))) << k;
}

TEST_F(ProbeTest, RedisWithoutThePasswordFailsOnPing) {
  RedisServerOptions options;
  options.password = "needed";
  RedisServer redis(options);
  ProbeResult r = Check(MakeProbe(ProbeKind::kRedis, redis.port()));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.detail, HasSubstr("PING: NOAUTH"));
}

TEST_F(ProbeTest, RedisUnreadablePasswordFileNamesTheFile) {
  RedisServer redis;
  Probe p = MakeProbe(ProbeKind::kRedis, redis.port());
  p.password_file = "nonexistent/redis.pw";
  ProbeResult r = Check(p);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.detail,
              HasSubstr("cannot read passwordFile " + secrets_.Sub("nonexistent/redis.pw")));
}

TEST_F(ProbeTest, RedisReportsConnectionRefused) {
  ProbeResult r = Check(MakeProbe(ProbeKind::kRedis, PickFreePort()));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "connection refused");
}

TEST_F(ProbeTest, RedisTimesOutOnAListenerThatNeverAnswers) {
  TestService svc({"--hang"});
  const auto start = Clock::now();
  ProbeResult r = Check(MakeProbe(ProbeKind::kRedis, svc.port(), /*timeout_seconds=*/1));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "timeout after 1000 ms");
  EXPECT_LT(MsSince(start), 1000 + 1500);
}

TEST_F(ProbeTest, RedisTimesOutOnAFrozenServer) {
  RedisServer redis;
  redis.Kill(SIGSTOP);
  const auto start = Clock::now();
  ProbeResult r = Check(MakeProbe(ProbeKind::kRedis, redis.port(), /*timeout_seconds=*/1));
  redis.Kill(SIGCONT);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "timeout after 1000 ms");
  EXPECT_LT(MsSince(start), 1000 + 1500);
}

// ---------------------------------------------------------------- exec

Probe ExecProbe(std::vector<std::string> command, int timeout_seconds = 10) {
  Probe p = MakeProbe(ProbeKind::kExec, 0, timeout_seconds);
  p.command = std::move(command);
  return p;
}

// Records scripts and answers with a canned result.
class FakeRunner : public CommandRunner {
 public:
  explicit FakeRunner(Result<CommandResult> answer) : answer_(std::move(answer)) {}
  Result<CommandResult> Run(const SshTarget& target, const Command& command,
                            milliseconds timeout) override {
    std::lock_guard<std::mutex> lock(mu_);
    targets.push_back(target);
    scripts.push_back(command.script);
    purposes.push_back(command.purpose);
    timeouts.push_back(timeout);
    return answer_;
  }
  std::vector<SshTarget> targets;
  std::vector<std::string> scripts;
  std::vector<Purpose> purposes;
  std::vector<milliseconds> timeouts;

 private:
  std::mutex mu_;
  Result<CommandResult> answer_;
};

TEST(TargetTest, TargetForCopiesTheMachineSshSettings) {
  Machine m = LocalMachine("10.0.0.7");
  m.ssh.user = "ops";
  m.ssh.port = 2222;
  m.ssh.identity_file = "~/.ssh/id_ed25519";
  SshTarget t = TargetFor(m);
  EXPECT_EQ(t.machine, "m1");
  EXPECT_EQ(t.address, "10.0.0.7");
  EXPECT_EQ(t.port, 2222);
  EXPECT_EQ(t.user, "ops");
  EXPECT_EQ(t.identity_file, "~/.ssh/id_ed25519");
}

TEST(ExecProbeTest, QuotesTheCommandAndUsesTheProbeTimeout) {
  CommandResult ok;
  ok.exit_code = 0;
  FakeRunner runner(ok);
  RealProber prober(&runner);
  Machine m = LocalMachine("10.0.0.7");
  m.ssh.user = "ops";
  ProbeResult r = prober.Check(ExecProbe({"check", "a b", "$(reboot)"}, 3), m);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.detail, "exit 0");
  EXPECT_EQ(r.kind, "exec");
  EXPECT_EQ(runner.scripts, std::vector<std::string>({"check 'a b' '$(reboot)'"}));
  ASSERT_EQ(runner.targets.size(), 1u);
  EXPECT_EQ(runner.targets[0].address, "10.0.0.7");
  EXPECT_EQ(runner.targets[0].user, "ops");
  EXPECT_EQ(runner.timeouts, std::vector<milliseconds>({milliseconds(3000)}));
  EXPECT_EQ(runner.purposes, std::vector<Purpose>({Purpose::kProbe}));
}

TEST(ExecProbeTest, BusyProbeShellsMakeAnInconclusiveResultNotAFailure) {
  FakeRunner runner(Status::Exhausted("busy: all 3 probe shells on this machine stayed busy"));
  RealProber prober(&runner);
  ProbeResult r = prober.Check(ExecProbe({"true"}), LocalMachine());
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.inconclusive);
  EXPECT_THAT(r.detail, ::testing::HasSubstr("busy"));

  FakeRunner failing(Status::Unavailable("m1: connection refused"));
  RealProber failing_prober(&failing);
  EXPECT_FALSE(failing_prober.Check(ExecProbe({"true"}), LocalMachine()).inconclusive);
}

TEST(ExecProbeTest, DetailHoldsTheFirstStderrLineClippedTo200Chars) {
  CommandResult bad;
  bad.exit_code = 1;
  bad.err = "\n  " + std::string(300, 'x') + "\nsecond line\n";
  FakeRunner runner(bad);
  RealProber prober(&runner);
  ProbeResult r = prober.Check(ExecProbe({"false"}), LocalMachine());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "exit 1: " + std::string(200, 'x') + "...");
}

TEST(ExecProbeTest, RunnerTimeoutBecomesATimeoutDetail) {
  FakeRunner runner(Status::Timeout("command did not finish"));
  RealProber prober(&runner);
  ProbeResult r = prober.Check(ExecProbe({"sleep", "100"}, 2), LocalMachine());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "timeout after 2000 ms");
}

TEST(ExecProbeTest, RunnerErrorIsReported) {
  FakeRunner runner(Status::Unavailable("m1: connection refused"));
  RealProber prober(&runner);
  ProbeResult r = prober.Check(ExecProbe({"true"}), LocalMachine());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "unavailable: m1: connection refused");
}

TEST(ExecProbeTest, WithoutARunnerFailsClearly) {
  RealProber prober;
  ProbeResult r = prober.Check(ExecProbe({"true"}), LocalMachine());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "exec probe needs an SSH runner, none is configured");
  EXPECT_GT(r.time_ms, 0);
}

class ExecOverSshTest : public ::testing::Test {
 protected:
  ExecOverSshTest() : pool_(Options()), prober_(&pool_) {
    machine_.name = "m1";
    machine_.address = host_.address();
    machine_.ssh.port = host_.port();
    machine_.ssh.user = host_.user();
    machine_.ssh.identity_file = host_.client_key_path();
  }
  SshOptions Options() {
    SshOptions o;
    o.known_hosts = host_.known_hosts_path();
    o.connect_timeout_ms = 15000;  // session set-up is slow on a loaded 2-core machine
    return o;
  }

  SshHost host_;
  SshPool pool_;
  RealProber prober_;
  Machine machine_;
};

TEST_F(ExecOverSshTest, PassesOnExitZero) {
  ProbeResult r = prober_.Check(ExecProbe({"sh", "-c", "test -d \"$HOME\""}), machine_);
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.detail, "exit 0");
}

TEST_F(ExecOverSshTest, FailsWithTheExitCodeAndStderr) {
  ProbeResult r = prober_.Check(
      ExecProbe({"sh", "-c", "echo 'db not ready' >&2; echo more >&2; exit 3"}), machine_);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "exit 3: db not ready");
}

// ---------------------------------------------------------------- RunProbes

TEST(RunProbesTest, AHangingProbeDoesNotDelayTheOthers) {
  TestService fast;
  TestService hung({"--hang"});
  Service ok_svc = ServiceWith("fast", HttpProbe(fast.port()));
  std::vector<Service> slow;
  for (int i = 0; i < 3; ++i) {
    Service s;
    s.name = "slow" + std::to_string(i);
    s.liveness = HttpProbe(hung.port(), "/health", /*timeout_seconds=*/1);
    slow.push_back(s);
  }
  Machine m = LocalMachine();
  std::vector<ProbeRequest> requests;
  for (const Service& s : slow) requests.push_back({&s, &m, ProbeRole::kLiveness});
  requests.push_back({&ok_svc, &m, ProbeRole::kReadiness});

  RealProber prober;
  std::mutex mu;
  std::vector<std::pair<size_t, int64_t>> arrivals;  // (index, ms since start)
  const auto start = Clock::now();
  std::vector<ProbeResult> results =
      RunProbes(prober, requests, /*max_parallel=*/8, [&](size_t i, const ProbeResult&) {
        std::lock_guard<std::mutex> lock(mu);
        arrivals.emplace_back(i, MsSince(start));
      });
  const int64_t total = MsSince(start);

  ASSERT_EQ(results.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(results[i].ok);
    EXPECT_EQ(results[i].service, "slow" + std::to_string(i));
    EXPECT_EQ(results[i].role, ProbeRole::kLiveness);
    EXPECT_EQ(results[i].detail, "timeout after 1000 ms");
  }
  EXPECT_TRUE(results[3].ok) << results[3].detail;
  EXPECT_EQ(results[3].service, "fast");
  ASSERT_EQ(arrivals.size(), 4u);
  EXPECT_EQ(arrivals[0].first, 3u);    // the fast result came first,
  EXPECT_LT(arrivals[0].second, 900);  // long before the slow timeout
  EXPECT_LT(total, 1000 + 1500);       // the slow ones ran side by side
}

TEST(RunProbesTest, ResultsKeepRequestOrderWithFewerThreadsThanProbes) {
  TestService svc;
  Machine m = LocalMachine();
  std::vector<Service> services;
  for (int i = 0; i < 6; ++i) {
    services.push_back(
        ServiceWith("s" + std::to_string(i),
                    i % 2 ? HttpProbe(svc.port()) : MakeProbe(ProbeKind::kTcp, svc.port())));
  }
  Service bare;
  bare.name = "bare";
  std::vector<ProbeRequest> requests;
  for (const Service& s : services) requests.push_back({&s, &m, ProbeRole::kReadiness});
  requests.push_back({&bare, &m, ProbeRole::kReadiness});
  requests.push_back({&bare, nullptr, ProbeRole::kReadiness});

  RealProber prober;
  std::vector<ProbeResult> results = RunProbes(prober, requests, /*max_parallel=*/2);
  ASSERT_EQ(results.size(), 8u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(results[i].service, "s" + std::to_string(i));
    EXPECT_TRUE(results[i].ok) << results[i].detail;
    EXPECT_EQ(results[i].kind, i % 2 ? "http" : "tcp");
  }
  EXPECT_TRUE(results[6].ok);  // no readiness probe: ready once running
  EXPECT_EQ(results[6].kind, "none");
  EXPECT_EQ(results[6].detail, "no readiness probe");
  EXPECT_FALSE(results[7].ok);
  EXPECT_EQ(results[7].service, "bare");
  EXPECT_THAT(results[7].detail, HasSubstr("without a service or machine"));
}

TEST(RunProbesTest, EmptyRequestListGivesNoResults) {
  RealProber prober;
  EXPECT_TRUE(RunProbes(prober, {}, 4).empty());
}

}  // namespace
}  // namespace clusterctl::reconcilers

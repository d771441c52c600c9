// ApiServer under hostile clients, over real sockets on 127.0.0.1: slow
// (slowloris) connections, an endless header stream, a flood of idle
// connections, too many or too large header fields. /healthz and an
// authenticated /api/v1/status must keep answering on time, memory and file
// descriptors must stay bounded, and the offenders get 408/431/503.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/api.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::api {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kToken[] = "tok-limits-4c1d9e0a-secret";

// Answers every call at once, except Status() while `block_status` is set:
// then it waits (bounded) until released, to occupy the worker threads.
class QuietView : public DaemonView {
 public:
  json Status() override {
    std::unique_lock<std::mutex> lock(mu_);
    ++status_calls_;
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::seconds(20), [this] { return !block_status_; });
    return {{"overall_status", "healthy"}};
  }
  std::vector<alerts::Alert> Alerts(const AlertQuery&) override { return {}; }
  json History(size_t) override { return json::array(); }
  std::vector<store::RevisionRecord> Revisions(size_t) override { return {}; }
  Result<std::vector<audit::AuditRecord>> Audit(const audit::AuditFilter&) override {
    return std::vector<audit::AuditRecord>{};
  }
  std::string Metrics() override { return ""; }
  bool Healthy(std::string*) override { return true; }
  void Sync(const std::string&) override {}
  ::clusterctl::Status Restart(const std::string&, const std::string&,
                               const std::string&) override {
    return ::clusterctl::Status::Ok();
  }
  void Suspend(const std::string&) override {}
  void Resume(const std::string&) override {}
  bool suspended() override { return false; }

  void BlockStatus(bool block) {
    std::lock_guard<std::mutex> lock(mu_);
    block_status_ = block;
    cv_.notify_all();
  }
  // Waits (bounded) until Status() was called `n` times in all.
  bool WaitForStatusCalls(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return status_calls_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool block_status_ = false;
  int status_calls_ = 0;
};

// This process's resident memory in KiB (/proc/self/status VmRSS).
long RssKib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Open file descriptors of this process.
int OpenFds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n - 3;  // ".", ".." and the directory's own descriptor.
}

// Waits (bounded by `limit`) until `done` holds; returns whether it did.
template <typename F>
bool WaitUntil(F done, milliseconds limit = milliseconds(10000)) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

// A raw client socket on 127.0.0.1:port with a receive timeout; -1 on failure.
int Connect(int port, milliseconds receive_timeout = milliseconds(5000)) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  timeval tv{static_cast<time_t>(receive_timeout.count() / 1000),
             static_cast<suseconds_t>((receive_timeout.count() % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  return send(fd, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
}

// Everything the server sends until it closes (or the receive timeout).
std::string ReadToEnd(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

class ApiLimitsTest : public ::testing::Test {
 protected:
  ApiServer::Options Options() {
    ApiServer::Options o;
    o.listen = "127.0.0.1:0";
    o.token = kToken;
    o.threads = 2;
    o.max_connections = 400;
    o.max_header_bytes = 8192;
    o.max_headers = 50;
    o.request_timeout = milliseconds(2000);
    return o;
  }

  void Start(ApiServer::Options o) {
    server_ = std::make_unique<ApiServer>(&view_, std::move(o));
    ASSERT_TRUE(server_->Start().ok());
  }

  // GET `path` on a new connection; the status (0: no answer) and how long
  // it took.
  std::pair<int, milliseconds> TimedGet(const std::string& path, bool auth) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_connection_timeout(3);
    c.set_read_timeout(3);
    httplib::Headers h;
    if (auth) h.emplace("Authorization", std::string("Bearer ") + kToken);
    const auto start = Clock::now();
    auto r = c.Get(path, h);
    return {r ? r->status : 0, std::chrono::duration_cast<milliseconds>(Clock::now() - start)};
  }

  QuietView view_;
  std::unique_ptr<ApiServer> server_;  // Last: stopped first.
};

TEST_F(ApiLimitsTest, SlowClientsAndAnEndlessHeaderDoNotStopHealthzOrStatus) {
  Start(Options());
  const int port = server_->port();
  // Warm up (first-use allocations) before measuring memory.
  ASSERT_EQ(200, TimedGet("/healthz", false).first);
  ASSERT_EQ(200, TimedGet("/api/v1/status", true).first);
  const long rss_before = RssKib();
  ASSERT_GT(rss_before, 0);
  const auto attack_start = Clock::now();

  // 200 slowloris connections: a request line, then one header line every
  // 300 ms, never the blank line that ends the header.
  std::vector<int> slow;
  for (int i = 0; i < 200; ++i) {
    int fd = Connect(port);
    ASSERT_GE(fd, 0) << i;
    ASSERT_TRUE(SendAll(fd, "GET /api/v1/status HTTP/1.1\r\nHost: x\r\n"));
    slow.push_back(fd);
  }
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    while (!stop.load()) {
      for (int fd : slow) SendAll(fd, "X-Slow: 1\r\n");
      for (int i = 0; i < 30 && !stop.load(); ++i) std::this_thread::sleep_for(milliseconds(10));
    }
  });

  // One client sends header lines as fast as it can, forever.
  std::string endless_answer;
  milliseconds endless_took{0};
  std::thread endless([&] {
    int fd = Connect(port);
    if (fd < 0) return;
    const auto start = Clock::now();
    SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    const std::string line = "X-Pad: " + std::string(1000, 'p') + "\r\n";
    char buf[4096];
    while (Clock::now() - start < std::chrono::seconds(20)) {
      ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) endless_answer.append(buf, static_cast<size_t>(n));
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) break;
      if (!SendAll(fd, line)) {
        endless_answer += ReadToEnd(fd);
        break;
      }
    }
    endless_took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    close(fd);
  });

  // Meanwhile /healthz and an authenticated /api/v1/status answer, each
  // within 1 s, for longer than the request deadline.
  int probes = 0;
  milliseconds slowest{0};
  while (Clock::now() - attack_start < milliseconds(3000)) {
    for (auto [path, auth] : {std::pair<const char*, bool>{"/healthz", false},
                              std::pair<const char*, bool>{"/api/v1/status", true}}) {
      auto [status, took] = TimedGet(path, auth);
      EXPECT_EQ(200, status) << path;
      EXPECT_LT(took, milliseconds(1000)) << path;
      slowest = std::max(slowest, took);
      ++probes;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_GT(probes, 10);
  endless.join();

  // The endless header got 431 (or was cut off) long before its 20 s.
  EXPECT_LT(endless_took, milliseconds(5000));
  if (!endless_answer.empty()) {
    EXPECT_EQ(0u, endless_answer.rfind("HTTP/1.1 431", 0)) << endless_answer.substr(0, 200);
  }

  // Every slow connection got 408 (or was closed) after the 2 s deadline.
  stop.store(true);
  trickle.join();
  int got_408 = 0;
  for (int fd : slow) {
    std::string answer = ReadToEnd(fd);
    if (answer.rfind("HTTP/1.1 408", 0) == 0) ++got_408;
    EXPECT_TRUE(answer.empty() || answer.rfind("HTTP/1.1 408", 0) == 0) << answer.substr(0, 200);
    close(fd);
  }
  EXPECT_LT(Clock::now() - attack_start, milliseconds(9000));
  EXPECT_GT(got_408, 150);

  const long rss_after = RssKib();
  EXPECT_LT(rss_after - rss_before, 40 * 1024)
      << "RSS grew from " << rss_before << " KiB to " << rss_after << " KiB";
  RecordProperty("slowest_probe_ms", static_cast<int>(slowest.count()));
  // Served normally again afterwards.
  EXPECT_EQ(200, TimedGet("/api/v1/status", true).first);
}

TEST_F(ApiLimitsTest, ConnectionsOverTheLimitGet503AndDescriptorsStayBounded) {
  ApiServer::Options o = Options();
  o.max_connections = 20;
  o.request_timeout = milliseconds(20000);  // The idle ones stay for the test.
  Start(o);
  const int port = server_->port();
  const int fds_before = OpenFds();

  std::vector<int> idle;
  for (int i = 0; i < 20; ++i) {
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  // Both ends of the 20 are open once the server has accepted them all.
  ASSERT_TRUE(WaitUntil([&] { return OpenFds() >= fds_before + 40; })) << OpenFds();

  // 100 more: each is answered 503 and closed; the server keeps none.
  for (int i = 0; i < 100; ++i) {
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    std::string answer = ReadToEnd(fd);
    close(fd);
    ASSERT_EQ(0u, answer.rfind("HTTP/1.1 503", 0)) << i << ": " << answer;
    if (i == 0) {
      json body = json::parse(answer.substr(answer.find("\r\n\r\n") + 4), nullptr, false);
      ASSERT_TRUE(body.is_object()) << answer;
      EXPECT_NE(std::string::npos, body.value("error", "").find("too many connections"));
    }
    EXPECT_LE(OpenFds(), fds_before + 42) << i;
  }
  EXPECT_EQ(503, TimedGet("/healthz", false).first);

  // Once the idle ones go, new clients are served again.
  for (int fd : idle) close(fd);
  EXPECT_TRUE(WaitUntil([&] { return TimedGet("/healthz", false).first == 200; }));
  EXPECT_TRUE(WaitUntil([&] { return OpenFds() <= fds_before + 2; })) << OpenFds();
}

TEST_F(ApiLimitsTest, HeaderLimitsAre431) {
  Start(Options());
  const int port = server_->port();
  // More fields than max_headers (50), each small.
  std::string many = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 60; ++i) many += "X-F" + std::to_string(i) + ": v\r\n";
  many += "\r\n";
  int fd = Connect(port);
  ASSERT_TRUE(SendAll(fd, many));
  std::string answer = ReadToEnd(fd);
  close(fd);
  EXPECT_EQ(0u, answer.rfind("HTTP/1.1 431", 0)) << answer;
  EXPECT_NE(std::string::npos, answer.find("too many header fields")) << answer;

  // One field larger than max_header_bytes (8 KiB).
  fd = Connect(port);
  ASSERT_TRUE(SendAll(
      fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'b') + "\r\n\r\n"));
  answer = ReadToEnd(fd);
  close(fd);
  EXPECT_EQ(0u, answer.rfind("HTTP/1.1 431", 0)) << answer;
  EXPECT_NE(std::string::npos, answer.find("application/json")) << answer;

  // Just under both limits is served.
  std::string fits = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
  for (int i = 0; i < 40; ++i) fits += "X-F" + std::to_string(i) + ": v\r\n";
  fits += "X-Pad: " + std::string(6000, 'p') + "\r\n\r\n";
  fd = Connect(port);
  ASSERT_TRUE(SendAll(fd, fits));
  answer = ReadToEnd(fd);
  close(fd);
  EXPECT_EQ(0u, answer.rfind("HTTP/1.1 200", 0)) << answer;
}

TEST_F(ApiLimitsTest, ASlowRequestIs408AndAnIdleConnectionIsClosedSilently) {
  ApiServer::Options o = Options();
  o.request_timeout = milliseconds(500);
  Start(o);
  const int port = server_->port();
  // A request that started but never finished: 408, JSON, closed.
  int fd = Connect(port);
  ASSERT_TRUE(SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n"));
  auto start = Clock::now();
  std::string answer = ReadToEnd(fd);
  close(fd);
  EXPECT_EQ(0u, answer.rfind("HTTP/1.1 408", 0)) << answer;
  EXPECT_NE(std::string::npos, answer.find("\"error\"")) << answer;
  EXPECT_LT(Clock::now() - start, milliseconds(3000));
  // A connection that never sent a byte: closed without an answer.
  fd = Connect(port);
  start = Clock::now();
  answer = ReadToEnd(fd);
  close(fd);
  EXPECT_EQ("", answer);
  EXPECT_LT(Clock::now() - start, milliseconds(3000));
  // A body that never arrives in full: 408 too.
  fd = Connect(port);
  ASSERT_TRUE(SendAll(fd, std::string("POST /api/v1/sync HTTP/1.1\r\nHost: x\r\nAuthorization: "
                                      "Bearer ") +
                              kToken + "\r\nContent-Length: 10\r\n\r\n{}"));
  answer = ReadToEnd(fd);
  close(fd);
  EXPECT_EQ(0u, answer.rfind("HTTP/1.1 408", 0)) << answer;
}

TEST_F(ApiLimitsTest, KeptAliveConnectionServesSeveralRequests) {
  Start(Options());
  int fd = Connect(server_->port());
  const std::string request = std::string("GET /api/v1/status HTTP/1.1\r\nHost: x\r\n") +
                              "Authorization: Bearer " + kToken + "\r\n\r\n";
  std::string answers;
  char buf[4096];
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(SendAll(fd, request));
    // Each answer is whole before the next request is sent.
    const auto deadline = Clock::now() + milliseconds(5000);
    const size_t before = answers.size();
    while (answers.find("healthy", before) == std::string::npos && Clock::now() < deadline) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      answers.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  size_t count = 0;
  for (size_t at = answers.find("HTTP/1.1 200"); at != std::string::npos;
       at = answers.find("HTTP/1.1 200", at + 1)) {
    ++count;
  }
  EXPECT_EQ(3u, count) << answers;
}

TEST_F(ApiLimitsTest, HealthzAnswersWhileEveryWorkerIsBusy) {
  Start(Options());  // Two worker threads.
  view_.BlockStatus(true);
  std::vector<std::thread> busy;
  for (int i = 0; i < 2; ++i) {
    busy.emplace_back([this] { TimedGet("/api/v1/status", true); });
  }
  ASSERT_TRUE(view_.WaitForStatusCalls(2));
  auto [status, took] = TimedGet("/healthz", false);
  EXPECT_EQ(200, status);
  EXPECT_LT(took, milliseconds(1000));
  view_.BlockStatus(false);
  for (auto& t : busy) t.join();
}

TEST_F(ApiLimitsTest, StopClosesIdleAndSlowConnections) {
  Start(Options());
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {
    int fd = Connect(server_->port());
    ASSERT_GE(fd, 0);
    if (i % 2 == 0) SendAll(fd, "GET /healthz HTTP/1.1\r\n");
    fds.push_back(fd);
  }
  const auto start = Clock::now();
  server_->Stop();
  EXPECT_LT(Clock::now() - start, milliseconds(1500));
  for (int fd : fds) {
    EXPECT_EQ("", ReadToEnd(fd));
    close(fd);
  }
}

TEST_F(ApiLimitsTest, ExpectContinueGetsA100BeforeTheBody) {
  Start(Options());
  int fd = Connect(server_->port());
  const std::string body = R"({"service":"ollama"})";
  ASSERT_TRUE(SendAll(fd, std::string("POST /api/v1/restart HTTP/1.1\r\nHost: x\r\n") +
                              "Authorization: Bearer " + kToken +
                              "\r\nExpect: 100-continue\r\nConnection: close\r\n"
                              "Content-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n"));
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ("HTTP/1.1 100 Continue\r\n\r\n", std::string(buf, static_cast<size_t>(n)));
  ASSERT_TRUE(SendAll(fd, body));
  std::string answer = ReadToEnd(fd);
  close(fd);
  EXPECT_EQ(0u, answer.rfind("HTTP/1.1 200", 0)) << answer;
}

}  // namespace
}  // namespace clusterctl::api

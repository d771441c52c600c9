#include "tests/harness/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>

namespace clusterctl::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string Bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

}  // namespace

RedisServer::RedisServer(RedisServerOptions options) : options_(std::move(options)) { Start(); }

RedisServer::~RedisServer() { Stop(); }

void RedisServer::Start() {
  std::string problem;
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = options_.port != 0 ? options_.port : PickFreePort("127.0.0.1");
    std::vector<std::string> argv = {
        "redis-server", "--bind", "127.0.0.1",    "--port", std::to_string(port_),
        "--save",       "",       "--appendonly", "no",     "--daemonize",
        "no",           "--dir",  dir_.path()};
    if (!options_.password.empty()) {
      argv.push_back("--requirepass");
      argv.push_back(options_.password);
    }
    auto p = std::make_unique<Process>(argv, OutputTo(log_path()));
    process_ = std::move(p);
    bool settled = WaitFor([&] { return !process_->Running() || Ping(milliseconds(200)); },
                           options_.start_timeout, milliseconds(20));
    if (settled && process_->Running()) return;
    problem = settled ? "redis-server exited" : "redis-server did not answer PING in time";
    process_.reset();
    if (options_.port != 0) break;  // a fixed port: retrying will not help
  }
  throw std::runtime_error(problem + " (port " + std::to_string(port_) + "); log:\n" +
                           ReadFile(log_path()));
}

void RedisServer::Stop() {
  if (!process_) return;
  process_->Stop(milliseconds(5000));
  process_.reset();
}

void RedisServer::Kill(int sig) {
  if (process_) process_->Kill(sig);
}

std::string RedisServer::WritePasswordFile() const {
  std::string path = dir_.Sub("redis.password");
  WriteFile(path, options_.password);
  ::chmod(path.c_str(), 0600);
  return path;
}

bool RedisServer::Ping(std::chrono::milliseconds timeout, bool use_password) const {
  const auto deadline = Clock::now() + timeout;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port_));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  auto wait = [&](short events) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    return ::poll(&p, 1, static_cast<int>(left)) == 1;
  };
  bool ok = false;
  do {
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      if (errno != EINPROGRESS || !wait(POLLOUT)) break;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) break;
    }
    std::string request;
    const bool auth = use_password && !options_.password.empty();
    if (auth) request += "*2\r\n" + Bulk("AUTH") + Bulk(options_.password);
    request += "*1\r\n" + Bulk("PING");
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      break;
    }
    // Expect "+OK\r\n" (after AUTH) then "+PONG\r\n".
    const std::string expected = std::string(auth ? "+OK\r\n" : "") + "+PONG\r\n";
    std::string reply;
    char buf[256];
    while (reply.size() < expected.size() && wait(POLLIN)) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      reply.append(buf, static_cast<size_t>(n));
    }
    ok = reply.compare(0, expected.size(), expected) == 0;
  } while (false);
  ::close(fd);
  return ok;
}

}  // namespace clusterctl::testing

#include "tests/harness/tcp_proxy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tuple>

namespace clusterctl::testing {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

}  // namespace

TcpProxy::TcpProxy(int target_port) : target_port_(target_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = Loopback(0);
  socklen_t len = sizeof a;
  EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(listen(listen_fd_, 64), 0);
  EXPECT_EQ(getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { Run(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  thread_.join();
  for (const auto& [a, b] : pairs_) {
    close(a);
    if (b >= 0) close(b);
  }
  close(listen_fd_);
}

void TcpProxy::Run() {
  while (!stop_) {
    const bool partitioned = partitioned_;
    std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}};
    for (const auto& [a, b] : pairs_) {
      // Partitioned: nothing is read, so nothing moves.
      const short events = partitioned ? 0 : POLLIN;
      fds.push_back({a, events, 0});
      fds.push_back({b, static_cast<short>(b >= 0 ? events : 0), 0});
    }
    if (poll(fds.data(), fds.size(), 100) <= 0) continue;
    std::vector<size_t> closed;
    for (size_t i = 0; i < pairs_.size() && !partitioned; ++i) {
      auto [a, b] = pairs_[i];
      if (b < 0) continue;  // Held silently.
      bool done = false;
      for (auto [from, to, revents] :
           {std::tuple{a, b, fds[1 + 2 * i].revents}, std::tuple{b, a, fds[2 + 2 * i].revents}}) {
        if ((revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        char buf[16384];
        const ssize_t n = read(from, buf, sizeof buf);
        if (n <= 0 || write(to, buf, static_cast<size_t>(n)) != n) done = true;
      }
      if (done) closed.push_back(i);
    }
    for (auto it = closed.rbegin(); it != closed.rend(); ++it) {
      close(pairs_[*it].first);
      close(pairs_[*it].second);
      pairs_.erase(pairs_.begin() + static_cast<long>(*it));
    }
    if ((fds[0].revents & POLLIN) != 0) {
      const int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      int up = -1;
      if (!silent_ && !partitioned) {
        up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in t = Loopback(target_port_);
        if (connect(up, reinterpret_cast<sockaddr*>(&t), sizeof t) != 0) {
          close(up);
          close(c);
          continue;
        }
      }
      pairs_.emplace_back(c, up);
    }
  }
}

}  // namespace clusterctl::testing

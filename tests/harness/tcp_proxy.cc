#include "tests/harness/tcp_proxy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace clusterctl::testing {
namespace {

sockaddr_in At(const std::string& address, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  return a;
}

}  // namespace

TcpProxy::TcpProxy(int target_port, const std::string& address)
    : address_(address), target_port_(target_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = At(address_, 0);
  socklen_t len = sizeof a;
  EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << address_;
  EXPECT_EQ(listen(listen_fd_, 64), 0);
  EXPECT_EQ(getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { Run(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  thread_.join();
  for (const Pair& p : pairs_) {
    close(p.client);
    if (p.upstream >= 0) close(p.upstream);
  }
  close(listen_fd_);
}

void TcpProxy::set_loss(double fraction, unsigned seed) {
  std::lock_guard<std::mutex> g(loss_mu_);
  loss_ = fraction;
  rng_.seed(seed);
}

TcpProxy::TimePoint TcpProxy::DueOf(const Flow& f) {
  TimePoint due = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms_.load());
  {
    std::lock_guard<std::mutex> g(loss_mu_);
    if (loss_ > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < loss_) {
      due += std::chrono::milliseconds(std::uniform_int_distribution<int>(200, 1000)(rng_));
      ++lost_;
    }
  }
  // Order kept: never before the chunk ahead of it.
  return f.queue.empty() ? due : std::max(due, f.queue.back().due);
}

void TcpProxy::Run() {
  using std::chrono::steady_clock;
  while (!stop_) {
    const bool partitioned = partitioned_;
    // Wake for the next chunk due, or at least every 100 ms.
    int timeout_ms = 100;
    const auto now = steady_clock::now();
    std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}};
    for (const Pair& p : pairs_) {
      for (const Flow& f : p.flows) {
        // Partitioned: nothing is read, so nothing moves. (A negative fd
        // is not polled: a held or ended side cannot wake the loop.)
        const bool read = !partitioned && p.upstream >= 0 && !f.eof;
        fds.push_back({read ? f.from : -1, POLLIN, 0});
        if (!partitioned && !f.queue.empty()) {
          const auto wait =
              std::chrono::duration_cast<std::chrono::milliseconds>(f.queue.front().due - now)
                  .count();
          timeout_ms = std::clamp(static_cast<int>(wait), 0, timeout_ms);
        }
      }
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0) continue;
    std::vector<size_t> closed;
    for (size_t i = 0; i < pairs_.size() && !partitioned; ++i) {
      Pair& p = pairs_[i];
      if (p.upstream < 0) continue;  // Held silently.
      bool done = false;
      for (size_t d = 0; d < 2; ++d) {
        Flow& f = p.flows[d];
        if ((fds[1 + 2 * i + d].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
          char buf[16384];
          const ssize_t n = read(f.from, buf, sizeof buf);
          f.queue.push_back({DueOf(f), n > 0 ? std::string(buf, static_cast<size_t>(n)) : ""});
          f.eof = n <= 0;
        }
        const auto t = steady_clock::now();
        while (!done && !f.queue.empty() && f.queue.front().due <= t) {
          const std::string& bytes = f.queue.front().bytes;
          // MSG_NOSIGNAL: a peer that went away must not SIGPIPE the test.
          done = bytes.empty() || send(f.to, bytes.data(), bytes.size(), MSG_NOSIGNAL) !=
                                      static_cast<ssize_t>(bytes.size());
          f.queue.pop_front();
        }
      }
      if (done) closed.push_back(i);
    }
    for (auto it = closed.rbegin(); it != closed.rend(); ++it) {
      close(pairs_[*it].client);
      close(pairs_[*it].upstream);
      pairs_.erase(pairs_.begin() + static_cast<long>(*it));
    }
    if ((fds[0].revents & POLLIN) != 0) {
      const int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      int up = -1;
      if (!silent_ && !partitioned) {
        up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in t = At(address_, target_port_);
        if (connect(up, reinterpret_cast<sockaddr*>(&t), sizeof t) != 0) {
          close(up);
          close(c);
          continue;
        }
      }
      Pair p{c, up, {Flow{c, up, {}, false}, Flow{up, c, {}, false}}};
      pairs_.push_back(std::move(p));
    }
  }
}

}  // namespace clusterctl::testing

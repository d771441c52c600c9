// TcpProxy: a TCP proxy on 127.0.0.1 to a target port on 127.0.0.1, for
// tests of what clusterd does when the network between it and a peer (a
// git remote, Redis) breaks. This kernel has no netem qdisc; the proxy is
// how tests make a peer hang or vanish.
//
//   silent       new connections are accepted and held, never answered and
//                never forwarded (a remote that hangs); existing ones go on.
//   partitioned  nothing is forwarded in either direction, on existing
//                connections too, and new ones are held (a partition: no
//                RST, no FIN, just silence). Healing resumes forwarding;
//                peers that gave up meanwhile have closed their side.
//
// One thread polls every socket (100 ms at most between checks of the
// mode); the destructor stops it and closes everything.
//
// Thread-safety: the setters may be called from any thread.
#pragma once

#include <atomic>
#include <thread>
#include <utility>
#include <vector>

namespace clusterctl::testing {

class TcpProxy {
 public:
  explicit TcpProxy(int target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  void set_silent(bool silent) { silent_ = silent; }
  void set_partitioned(bool partitioned) { partitioned_ = partitioned; }

 private:
  void Run();

  int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> silent_{false};
  std::atomic<bool> partitioned_{false};
  std::vector<std::pair<int, int>> pairs_;  // Client, upstream (-1: held silently).
  std::thread thread_;
};

}  // namespace clusterctl::testing

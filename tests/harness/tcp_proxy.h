// TcpProxy: a TCP proxy on a loopback address to a target port on the same
// address, for tests of what clusterd does when the network between it and
// a peer (a git remote, Redis, a machine's sshd) breaks or slows down. This
// kernel has no netem qdisc; the proxy is how tests make a peer hang, vanish
// or lag.
//
//   silent       new connections are accepted and held, never answered and
//                never forwarded (a remote that hangs); existing ones go on.
//   partitioned  nothing is forwarded in either direction, on existing
//                connections too, and new ones are held (a partition: no
//                RST, no FIN, just silence). Healing resumes forwarding;
//                peers that gave up meanwhile have closed their side.
//   delay        every chunk read from one side is written to the other
//                `ms` later (each direction on its own, order kept): a link
//                with that much one-way latency.
//   loss         a user-space proxy cannot drop bytes from a TCP stream (the
//                kernels at both ends would never see them again), so a
//                "lost" chunk (each with probability `fraction`, drawn from
//                a generator seeded with `seed`) is held back 200 to 1000 ms
//                more, as TCP's retransmission of a lost segment would, and
//                every chunk after it in that direction waits behind it
//                (head-of-line blocking). What the peers see is what a lossy
//                link does to TCP: stalls, never corruption.
//
// A chunk is what one read() returned (at most 16 KiB): for SSH, about one
// packet. One thread polls every socket (100 ms at most between checks of
// the mode); the destructor stops it and closes everything.
//
// Thread-safety: the setters may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace clusterctl::testing {

class TcpProxy {
 public:
  // Listens on `address`, a free port, and forwards to `target_port` on the
  // same address. Default address: 127.0.0.1.
  explicit TcpProxy(int target_port, const std::string& address = "127.0.0.1");
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  const std::string& address() const { return address_; }
  void set_silent(bool silent) { silent_ = silent; }
  void set_partitioned(bool partitioned) { partitioned_ = partitioned; }
  // One-way delay of every chunk, each direction. Default: 0.
  void set_delay(std::chrono::milliseconds delay) { delay_ms_ = delay.count(); }
  // Probability that a chunk is "lost" (held back 200-1000 ms more, see
  // above), and the seed of the draws. Default: 0.
  void set_loss(double fraction, unsigned seed);
  // Chunks held back as lost so far.
  int64_t lost() const { return lost_; }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  struct Chunk {
    TimePoint due;
    std::string bytes;  // Empty: the sender's end of stream.
  };
  // One direction of a connection: read from `from`, written to `to`.
  struct Flow {
    int from, to;
    std::deque<Chunk> queue;
    bool eof = false;  // `from` said end of stream (queued as an empty chunk).
  };
  struct Pair {
    int client, upstream;  // upstream -1: held silently.
    Flow flows[2];
  };

  void Run();
  // When a chunk read now must be written (later than the one before it).
  TimePoint DueOf(const Flow& f);

  std::string address_;
  int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> silent_{false};
  std::atomic<bool> partitioned_{false};
  std::atomic<int64_t> delay_ms_{0};
  std::atomic<int64_t> lost_{0};
  std::mutex loss_mu_;
  double loss_ = 0;  // Guarded by loss_mu_, with rng_.
  std::mt19937 rng_;
  std::vector<Pair> pairs_;  // Only the proxy's thread.
  std::thread thread_;
};

}  // namespace clusterctl::testing

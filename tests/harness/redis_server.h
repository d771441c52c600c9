// A real redis-server for tests.
//
//   clusterctl::testing::RedisServer redis;                 // answers PING
//   clusterctl::testing::RedisServer secured({.password = "s3cret"});
//
// Runs `redis-server --bind 127.0.0.1 --port P --save '' --appendonly no
// --daemonize no` (plus --requirepass when a password is given) in the
// foreground, so the test owns its PID, with its working directory and log
// in a TempDir. The constructor returns once it answers PING; the destructor
// stops it by PID.
//
// Errors (redis does not start) throw std::runtime_error with its log.
//
// Thread-safety: not thread-safe; Ping() may be called from any one thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::testing {

struct RedisServerOptions {
  // requirepass. Default: empty = no password.
  std::string password;
  // TCP port on 127.0.0.1. Default: 0 = a free port.
  int port = 0;
  // How long redis may take to answer PING. Default: 10 s.
  std::chrono::milliseconds start_timeout{10000};
};

class RedisServer {
 public:
  explicit RedisServer(RedisServerOptions options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::string host() const { return "127.0.0.1"; }
  int port() const { return port_; }
  const std::string& password() const { return options_.password; }
  // PID of the running server, or -1 when stopped.
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  std::string log_path() const { return dir_.Sub("redis.log"); }
  // Writes password() to a file (mode 0600) and returns its path, for
  // `redis.passwordFile` probes.
  std::string WritePasswordFile() const;

  // True when the server answers "+PONG" within `timeout`. With
  // use_password (the default) it first authenticates with password() when
  // one is set; use_password=false checks that a secured server refuses.
  bool Ping(std::chrono::milliseconds timeout = std::chrono::milliseconds(1000),
            bool use_password = true) const;

  // Sends `sig` to the server (SIGSTOP makes a listener that never answers).
  void Kill(int sig);
  // Stops the server (SIGTERM, then SIGKILL) and waits for it. Idempotent.
  void Stop();

 private:
  void Start();

  TempDir dir_;  // first: outlives the process
  RedisServerOptions options_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace clusterctl::testing

// GitDaemon: a real `git daemon` on 127.0.0.1 serving every repository
// under a directory, behind a TcpProxy the test controls, for tests of what
// clusterd does when its git remote hangs or vanishes (proxy().set_silent(),
// set_partitioned()).
//
//   GitDaemon remote(demo.dir(), demo.dir() + "/git-daemon.log");
//   demo.UseRemote(remote.Url("origin.git"), /*fetch_timeout_seconds=*/2);
//   remote.proxy().set_silent(true);    // every new fetch hangs
//
// The daemon is stopped by PID when the object goes.
//
// Thread-safety: as TcpProxy (its setters from any thread); otherwise not
// thread-safe.
#pragma once

#include <memory>
#include <string>

#include "tests/harness/process.h"
#include "tests/harness/tcp_proxy.h"

namespace clusterctl::testing {

class GitDaemon {
 public:
  // Starts `git daemon --export-all --base-path=<base_dir>` on a free port,
  // its output in `log_path`, and waits (bounded) until it accepts.
  GitDaemon(const std::string& base_dir, const std::string& log_path);

  TcpProxy& proxy() { return *proxy_; }
  // "git://127.0.0.1:<proxy port>/<path under base_dir>".
  std::string Url(const std::string& path) const;

 private:
  std::unique_ptr<Process> daemon_;
  std::unique_ptr<TcpProxy> proxy_;
};

}  // namespace clusterctl::testing

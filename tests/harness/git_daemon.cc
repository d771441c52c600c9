#include "tests/harness/git_daemon.h"

#include <gtest/gtest.h>

namespace clusterctl::testing {

GitDaemon::GitDaemon(const std::string& base_dir, const std::string& log_path) {
  const int port = PickFreePort("127.0.0.1");
  daemon_ = std::make_unique<Process>(
      std::vector<std::string>{"git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1",
                               "--port=" + std::to_string(port), "--base-path=" + base_dir,
                               base_dir},
      OutputTo(log_path));
  EXPECT_TRUE(WaitFor([&] { return CanConnect("127.0.0.1", port); }, std::chrono::seconds(10),
                      std::chrono::milliseconds(50)))
      << "git daemon did not listen on 127.0.0.1:" << port;
  proxy_ = std::make_unique<TcpProxy>(port);
}

std::string GitDaemon::Url(const std::string& path) const {
  return "git://127.0.0.1:" + std::to_string(proxy_->port()) + "/" + path;
}

}  // namespace clusterctl::testing

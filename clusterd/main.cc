// clusterd --config FILE: the continuous controller (see controller/daemon.h).
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "api/api.h"
#include "base/malloc_tuning.h"
#include "controller/config.h"
#include "controller/daemon.h"
#include "desired-state/redact_url.h"

namespace {

using clusterctl::Result;
using clusterctl::Status;

int Run(const std::string& config_path) {
  auto config = clusterctl::controller::LoadConfig(config_path);
  if (!config.ok()) {
    std::cerr << "clusterd: " << clusterctl::desired_state::RedactUrls(config.status().message())
              << "\n";
    return 1;
  }
  auto token = clusterctl::controller::ReadControllerSecret(config->token_file, "token");
  auto webhook =
      clusterctl::controller::ReadControllerSecret(config->webhook_secret_file, "webhook secret");
  for (const auto* r : {&token, &webhook}) {
    if (!r->ok()) {
      std::cerr << "clusterd: " << clusterctl::desired_state::RedactUrls(r->status().message())
                << "\n";
      return 1;
    }
  }
  if (token->empty()) {
    spdlog::warn("no tokenFile in the config: every authenticated API call will be refused");
  }
  // Signals go to one thread that asks the daemon to stop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto daemon = clusterctl::controller::Daemon::Create(*config);
  if (!daemon.ok()) {
    std::cerr << "clusterd: " << clusterctl::desired_state::RedactUrls(daemon.status().message())
              << "\n";
    return 1;
  }
  clusterctl::api::ApiServer::Options ao;
  ao.listen = config->listen;
  ao.token = *token;
  ao.webhook_secret = *webhook;
  ao.max_connections = config->api_max_connections;
  ao.max_header_bytes = static_cast<size_t>(config->api_max_header_bytes);
  ao.max_headers = config->api_max_headers;
  ao.request_timeout = std::chrono::seconds(config->api_request_timeout_seconds);
  ao.metrics = (*daemon)->metrics();
  ao.log = [](const std::string& line) { spdlog::info("{}", line); };
  clusterctl::api::ApiServer api(daemon->get(), ao);
  if (Status s = api.Start(); !s.ok()) {
    std::cerr << "clusterd: " << clusterctl::desired_state::RedactUrls(s.message()) << "\n";
    return 1;
  }
  spdlog::info("API listening on {}", config->listen);
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("signal {}: finishing the step in flight, then stopping", sig);
    (*daemon)->Shutdown();
  });
  Status s = (*daemon)->Run();
  api.Stop();
  // Wake the signal thread if the daemon stopped by itself.
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  return s.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena and a top pad (base/malloc_tuning.h). Before any
  // thread starts.
  clusterctl::TuneMallocForDaemon();
  CLI::App app{
      "clusterd: the clusterctl controller. Follows a git branch, observes every machine,\n"
      "and converges them to the desired state; serves the HTTP API (docs/api.md).",
      "clusterd"};
  std::string config = "/etc/clusterd/config.yaml";
  app.add_option("--config", config, "Config file (docs/configuration.md)")
      ->type_name("FILE")
      ->capture_default_str();
  app.footer(
      "Only one clusterd may use a data directory. SIGTERM finishes the step in flight\n"
      "and exits 0. Example:\n  clusterd --config /etc/clusterd/config.yaml");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  return Run(config);
}

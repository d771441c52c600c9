#include "tests/harness/demo_cluster.h"

#include <httplib.h>

#include <filesystem>
#include <stdexcept>

#include "tests/harness/paths.h"
#include "tests/harness/process.h"

namespace clusterctl::testing {
namespace {

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

const std::vector<std::string>& DemoCluster::MachineNames() {
  static const std::vector<std::string> kNames = {"jetson", "cpu-coordinator", "rp-embeddings",
                                                  "worker-tools", "worker-monitor"};
  return kNames;
}

DemoCluster::DemoCluster(DemoOptions options) : options_(std::move(options)) {
  if (options_.dir.empty()) {
    owned_ = std::make_unique<TempDir>();
    dir_ = owned_->path();
  } else {
    dir_ = options_.dir;
    std::filesystem::create_directories(dir_);
  }
  // The machines' key is a secret the repository names: it lives in the
  // controller's secrets directory (<dataDir>/secrets, the default).
  client_key_ = dir_ + "/data/secrets/id_ed25519";
  GenerateEd25519Key(client_key_, "clusterctl-demo");
  known_hosts_ = dir_ + "/known_hosts";
  std::string known;
  for (const auto& name : MachineNames()) {
    SshHostOptions o;
    o.dir = dir_ + "/machines/" + name;
    o.client_key_path = client_key_;
    auto host = std::make_unique<SshHost>(o);
    if (name == options_.proxied_machine) {
      proxy_ = std::make_unique<TcpProxy>(host->port(), host->address());
      known += "[" + host->address() + "]:" + std::to_string(proxy_->port()) + " " +
               host->host_key_pub() + "\n";
    } else {
      known += host->known_hosts_line() + "\n";
    }
    hosts_[name] = std::move(host);
  }
  WriteFile(known_hosts_, known);
  const std::string address = hosts_.at("cpu-coordinator")->address();
  for (const char* s : {"redis-server", "ollama", "llama-server", "embeddings-server",
                        "tools-server", "haproxy", "monitoring-server"}) {
    ports_[s] = PickFreePort(address);
  }
  data_dir_ = dir_ + "/data";
  token_file_ = dir_ + "/token";
  WriteFile(token_file_, "demo-token-" + std::to_string(PickFreePort()) + "\n");
  listen_ = "127.0.0.1:" + std::to_string(PickFreePort());
  origin_ = dir_ + "/origin.git";
  remote_url_ = origin_;
  GitRepo bare(origin_, /*bare=*/true);
  repo_ = std::make_unique<GitRepo>(dir_ + "/repo");
  WriteRepository();
  repo_->CommitAll("The LangGraph lab on loopback hosts");
  repo_->Git("remote add origin '" + origin_ + "'");
  repo_->Git("push -q origin main");
  WriteConfig();
}

DemoCluster::~DemoCluster() = default;

const std::string& DemoCluster::address_of(const std::string& machine) const {
  return hosts_.at(machine)->address();
}

std::string DemoCluster::ServiceFile(const std::string& file) const {
  return ReadFile(repo_->path() + "/services/" + file + ".yaml");
}

void DemoCluster::WriteRepository() {
  const GitRepo& r = *repo_;
  r.Write("cluster.yaml",
          "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: langgraph}\n"
          "spec:\n  profile: " +
              options_.profile +
              "\n  defaults:\n    ssh: {user: " + hosts_.begin()->second->user() +
              ", identityFile: id_ed25519}\n  reconcile: {intervalSeconds: 2, maxParallel: 8}\n");
  for (const auto& [name, host] : hosts_) {
    std::string labels = name == "jetson"          ? "{gpu: \"true\"}"
                         : name == "rp-embeddings" ? "{role: embeddings}"
                                                   : "{}";
    r.Write("machines/" + name + ".yaml",
            "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: " + name + ", labels: " +
                labels + "}\nspec:\n  address: " + host->address() + "\n  ssh: {port: " +
                std::to_string(name == options_.proxied_machine ? proxy_->port() : host->port()) +
                "}\n  stateDir: " + host->state_dir() + "\n");
  }
  auto test_service = [&](const std::string& name, const std::string& machine,
                          const std::string& deps, bool critical, const std::string& extra = "") {
    const std::string addr = hosts_.at(machine)->address();
    const std::string port = std::to_string(ports_.at(name));
    return "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: " + name +
           "}\nspec:\n  machines: [" + machine + "]\n  critical: " + (critical ? "true" : "false") +
           "\n  process:\n    command: [" + Quoted(TestServiceBin()) + ", --host, " + addr +
           ", --port, \"" + port + "\", --ready-delay-ms, \"" +
           std::to_string(options_.ready_delay_ms) + "\"" + extra +
           "]\n    env: {SERVICE_NAME: " + name + "}\n" + deps +
           "  readiness:\n    http: {port: " + port +
           ", path: /health}\n    periodSeconds: 1\n    startTimeoutSeconds: 20\n"
           "  liveness:\n    tcp: {port: " +
           port +
           "}\n    periodSeconds: 2\n"
           "  stopTimeoutSeconds: 5\n  restart: {backoffSeconds: 1, maxBackoffSeconds: 30}\n";
  };
  const std::string redis_port = std::to_string(ports_.at("redis-server"));
  r.Write("services/redis-server.yaml",
          "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: redis-server}\nspec:\n"
          "  machines: [cpu-coordinator]\n  critical: true\n  process:\n"
          "    command: [redis-server, --bind, " +
              hosts_.at("cpu-coordinator")->address() + ", --port, \"" + redis_port +
              "\", --save, \"3600 1\", --appendonly, \"no\", --daemonize, \"no\"]\n"
              "  readiness:\n    redis: {port: " +
              redis_port +
              "}\n    periodSeconds: 1\n    startTimeoutSeconds: 20\n"
              "  stopTimeoutSeconds: 5\n");
  const std::string on_redis = "  dependsOn:\n    - {service: redis-server}\n";
  r.Write("services/model-servers.yaml",
          test_service("ollama", "jetson", on_redis, true) + "---\n" +
              test_service("llama-server", "jetson", on_redis, false) + "---\n" +
              test_service("embeddings-server", "rp-embeddings", on_redis, true));
  r.Write("services/tools-server.yaml",
          test_service("tools-server", "worker-tools",
                       "  dependsOn:\n    - {service: redis-server}\n    - {service: ollama}\n"
                       "    - {service: embeddings-server}\n",
                       true));
  r.Write("services/edge.yaml",
          test_service("haproxy", "cpu-coordinator",
                       "  dependsOn:\n    - {service: ollama}\n    - {service: llama-server}\n"
                       "    - {service: embeddings-server}\n    - {service: tools-server}\n",
                       true) +
              "---\n" +
              test_service("monitoring-server", "worker-monitor",
                           "  dependsOn:\n    - {service: redis-server}\n"
                           "    - {service: tools-server, condition: started}\n",
                           false));
  r.Write("profiles/profiles.yaml",
          "apiVersion: clusterctl/v1\nkind: Profile\nmetadata: {name: development}\nspec:\n"
          "  services: [redis-server, ollama, embeddings-server, tools-server]\n---\n"
          "apiVersion: clusterctl/v1\nkind: Profile\nmetadata: {name: production}\nspec:\n"
          "  services: [\"*\"]\n---\n"
          "apiVersion: clusterctl/v1\nkind: Profile\nmetadata: {name: testing}\nspec:\n"
          "  services: [redis-server, ollama, llama-server, embeddings-server, tools-server, "
          "monitoring-server]\n");
}

void DemoCluster::UseRemote(const std::string& url, int fetch_timeout_seconds) {
  remote_url_ = url;
  fetch_timeout_seconds_ = fetch_timeout_seconds;
  WriteConfig();
}

void DemoCluster::WriteConfig() {
  config_path_ = dir_ + "/clusterctl.yaml";
  const std::string fetch_timeout =
      fetch_timeout_seconds_ > 0
          ? ", fetchTimeoutSeconds: " + std::to_string(fetch_timeout_seconds_)
          : "";
  const std::string command_timeout =
      options_.ssh_command_timeout_seconds > 0
          ? "  commandTimeoutSeconds: " + std::to_string(options_.ssh_command_timeout_seconds) +
                "\n"
          : "";
  WriteFile(config_path_,
            "repo: {url: " + remote_url_ +
                ", branch: main, pollSeconds: " + std::to_string(options_.poll_seconds) +
                fetch_timeout + "}\ndataDir: " + data_dir_ + "\nlisten: " + listen_ +
                "\ntokenFile: " + token_file_ + "\nssh:\n  knownHosts: " + known_hosts_ +
                "\n  hostKeyPolicy: strict\n" + command_timeout +
                "alerts: {diskPercent: " + std::to_string(options_.disk_percent) + "}\n");
}

int DemoCluster::Cli(const std::string& args, std::string* output) const {
  return RunShell(CliBin() + " --config '" + config_path_ + "' " + args, output);
}

std::string DemoCluster::Token() const {
  std::string t = ReadFile(token_file());
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  return t;
}

nlohmann::json DemoCluster::Api(const std::string& path) const {
  httplib::Client c("http://" + listen());
  c.set_connection_timeout(1, 0);
  auto res = c.Get(path.c_str(), {{"Authorization", "Bearer " + Token()}});
  if (!res || res->status != 200) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  return j.is_object() || j.is_array() ? j : nlohmann::json::object();
}

std::unique_ptr<Process> DemoCluster::StartClusterd() const {
  return std::make_unique<Process>(
      std::vector<std::string>{ClusterdBin(), "--config", config_path_},
      OutputTo(dir_ + "/clusterd.log"));
}

std::string DemoCluster::ClusterdLog() const { return ReadFile(dir_ + "/clusterd.log"); }

nlohmann::json DemoCluster::Instance(const std::string& service, const std::string& machine) const {
  nlohmann::json st = Api("/api/v1/status");
  if (!st.contains("services") || !st["services"].contains(service)) {
    return nlohmann::json::object();
  }
  return st["services"][service]["instances"].value(machine, nlohmann::json::object());
}

bool DemoCluster::WaitHealthy(std::chrono::seconds timeout) const {
  return WaitFor([&] { return Api("/api/v1/status").value("overall_status", "") == "healthy"; },
                 timeout, std::chrono::milliseconds(300));
}

}  // namespace clusterctl::testing

#include "controller/config.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "base/paths.h"
#include "desired-state/git_source.h"
#include "desired-state/schema.h"
#include "desired-state/yaml_reader.h"
#include "notify/sinks.h"

namespace clusterctl::controller {
namespace fs = std::filesystem;
using desired_state::Diagnostics;
using nlohmann::json;

std::string DefaultDataDir() {
  const char* xdg = std::getenv("XDG_STATE_HOME");
  if (xdg && *xdg) return std::string(xdg) + "/clusterctl";
  return ExpandHome("~/.local/state/clusterctl");
}

Result<std::string> FindConfig(const std::string& explicit_path) {
  std::error_code ec;
  if (!explicit_path.empty()) {
    if (!fs::is_regular_file(explicit_path, ec)) {
      return Status::NotFound("config file \"" + explicit_path + "\" does not exist");
    }
    return explicit_path;
  }
  const char* env = std::getenv("CLUSTERCTL_CONFIG");
  if (env && *env) {
    if (!fs::is_regular_file(env, ec)) {
      return Status::NotFound("config file \"" + std::string(env) +
                              "\" (from $CLUSTERCTL_CONFIG) does not exist");
    }
    return std::string(env);
  }
  for (const std::string& candidate :
       {std::string("clusterctl.yaml"), ExpandHome("~/.config/clusterctl/config.yaml")}) {
    if (fs::is_regular_file(candidate, ec)) return candidate;
  }
  return std::string();
}

SecretsPolicy SecretsPolicyOf(const Config& c, const std::string& data_dir) {
  SecretsPolicy p;
  std::string dir = !c.secrets_dir.empty() ? c.secrets_dir : data_dir + "/secrets";
  p.dir = fs::absolute(ExpandHome(dir)).lexically_normal().string();
  while (p.dir.size() > 1 && p.dir.back() == '/') p.dir.pop_back();
  p.reserved = {{"tokenFile", ExpandHome(c.token_file)},
                {"webhookSecretFile", ExpandHome(c.webhook_secret_file)},
                {"ssh.identityFile", ExpandHome(c.identity_file)},
                {"redis.passwordFile", ExpandHome(c.redis_password_file)}};
  for (const notify::SinkConfig& sink : c.notify.sinks) {
    p.reserved.push_back({"notify " + sink.name + " urlFile", ExpandHome(sink.url_file)});
    p.reserved.push_back({"notify " + sink.name + " secretFile", ExpandHome(sink.secret_file)});
  }
  return p;
}

desired_state::LoadOptions LoadOptionsOf(const Config& c, const std::string& data_dir) {
  desired_state::LoadOptions o;
  o.secrets = SecretsPolicyOf(c, data_dir);
  return o;
}

Result<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read config file \"" + path + "\"");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  Diagnostics diags;
  std::vector<desired_state::YamlDocument> docs;
  desired_state::ReadYaml(path, text, {}, &docs, &diags);
  if (diags.empty() && docs.size() != 1) {
    diags.Add({path}, "a config file holds exactly one YAML document", "");
  }
  if (diags.empty()) {
    desired_state::Schemas::Get().ValidateAndDefault("config", &docs[0], &diags);
  }
  if (!diags.empty()) {
    std::string msg = diags.ToString();
    if (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return Status::Invalid("invalid config file:\n" + msg);
  }
  const json& v = docs[0].value;
  const fs::path base = fs::absolute(path).parent_path();
  auto abs = [&](const std::string& p) -> std::string {
    if (p.empty()) return p;
    std::string e = ExpandHome(p);
    if (desired_state::IsRemoteUrl(e) || fs::path(e).is_absolute()) return e;
    return (base / e).lexically_normal().string();
  };
  Config c;
  c.source_path = path;
  const json& repo = v["repo"];
  c.repo_url = abs(repo.value("url", ""));
  c.branch = repo.value("branch", c.branch);
  c.poll_seconds = repo.value("pollSeconds", c.poll_seconds);
  c.fetch_timeout_seconds = repo.value("fetchTimeoutSeconds", c.fetch_timeout_seconds);
  c.signing_key = abs(repo.value("signingKey", ""));
  if (repo.contains("verify")) {
    c.verify_mode = repo["verify"].value("mode", c.verify_mode);
    c.allowed_signers_file = abs(repo["verify"].value("allowedSignersFile", ""));
    if (c.verify_mode != "off" && c.allowed_signers_file.empty()) {
      return Status::Invalid(path + ": repo.verify: mode " + c.verify_mode +
                             " needs allowedSignersFile (an ssh allowed_signers file)");
    }
  }
  c.data_dir = abs(v.value("dataDir", ""));
  c.listen = v.value("listen", c.listen);
  c.token_file = abs(v.value("tokenFile", ""));
  c.webhook_secret_file = abs(v.value("webhookSecretFile", ""));
  c.secrets_dir = abs(v.value("secretsDir", ""));
  const json& api = v["api"];
  c.api_max_connections = api.value("maxConnections", c.api_max_connections);
  c.api_max_header_bytes = api.value("maxHeaderBytes", c.api_max_header_bytes);
  c.api_max_headers = api.value("maxHeaders", c.api_max_headers);
  c.api_request_timeout_seconds = api.value("requestTimeoutSeconds", c.api_request_timeout_seconds);
  const json& ssh = v["ssh"];
  c.known_hosts = abs(ssh.value("knownHosts", ""));
  c.host_key_policy = ssh.value("hostKeyPolicy", c.host_key_policy);
  c.identity_file = abs(ssh.value("identityFile", ""));
  c.connect_timeout_seconds = ssh.value("connectTimeoutSeconds", c.connect_timeout_seconds);
  c.command_timeout_seconds = ssh.value("commandTimeoutSeconds", c.command_timeout_seconds);
  const json& watch = v["watch"];
  c.watch_enabled = watch.value("enabled", c.watch_enabled);
  c.watch_interval_ms = watch.value("intervalMs", c.watch_interval_ms);
  if (v.contains("redis")) {
    c.redis_host = v["redis"].value("host", "127.0.0.1");
    c.redis_port = v["redis"].value("port", 6379);
    c.redis_password_file = abs(v["redis"].value("passwordFile", ""));
    c.redis_key = v["redis"].value("key", c.redis_key);
    c.redis_lease_ms = v["redis"].value("leaseSeconds", 15) * 1000;
    c.redis_renew_ms = v["redis"].value("renewSeconds", 5) * 1000;
    c.redis_retry_ms = v["redis"].value("retrySeconds", 2) * 1000;
    c.redis_margin_ms = v["redis"].value("marginSeconds", 2) * 1000;
    c.replica_name = v["redis"].value("replicaName", "");
    c.redis_shards = v["redis"].value("shards", "off") == "auto";
    if (c.redis_margin_ms >= c.redis_lease_ms ||
        c.redis_renew_ms >= c.redis_lease_ms - c.redis_margin_ms) {
      return Status::Invalid(path + ": redis: renewSeconds (" +
                             std::to_string(c.redis_renew_ms / 1000) +
                             ") must be below leaseSeconds - marginSeconds (" +
                             std::to_string((c.redis_lease_ms - c.redis_margin_ms) / 1000) +
                             "), or a leader would lose its lease between renewals");
    }
  }
  if (v.contains("alerts")) {
    const json& a = v["alerts"];
    if (a.contains("escalateAfterSeconds")) {
      c.escalate_after_ms.clear();
      for (const auto& x : a["escalateAfterSeconds"])
        c.escalate_after_ms.push_back(x.get<int64_t>() * 1000);
    }
    c.alert_resolve_after_ms = a.value("resolveAfterSeconds", 120) * 1000;
    c.disk_percent = a.value("diskPercent", c.disk_percent);
    c.memory_percent = a.value("memoryPercent", c.memory_percent);
    c.alerts_keep_resolved = a.value("keepResolved", c.alerts_keep_resolved);
  }
  if (v.contains("notify")) {
    const json& n = v["notify"];
    c.notify.outbox_max = n.value("outboxMax", c.notify.outbox_max);
    c.notify.retry_initial_ms = n.value("retryInitialSeconds", 1) * 1000;
    c.notify.retry_max_ms = n.value("retryMaxSeconds", 300) * 1000;
    std::set<std::string> names;
    for (const json& k : n.value("sinks", json::array())) {
      notify::SinkConfig sink;
      sink.name = k["name"].get<std::string>();
      const std::string type = k["type"].get<std::string>();
      sink.type = type == "slack"     ? notify::SinkType::kSlack
                  : type == "command" ? notify::SinkType::kCommand
                                      : notify::SinkType::kWebhook;
      sink.url_file = abs(k.value("urlFile", ""));
      sink.secret_file = abs(k.value("secretFile", ""));
      if (k.contains("command")) sink.command = k["command"].get<std::vector<std::string>>();
      for (const auto& x : k.value("severities", json::array()))
        sink.severities.insert(x.get<std::string>());
      for (const auto& x : k.value("kinds", json::array())) sink.kinds.insert(x.get<std::string>());
      sink.cooldown_seconds = k.value("cooldownSeconds", sink.cooldown_seconds);
      sink.timeout_seconds = k.value("timeoutSeconds", sink.timeout_seconds);
      const std::string where = path + ": notify sink " + sink.name + ": ";
      if (!names.insert(sink.name).second) return Status::Invalid(where + "the name is used twice");
      if (sink.type == notify::SinkType::kCommand && sink.command.empty()) {
        return Status::Invalid(where + "a command sink needs `command: [program, args...]`");
      }
      if (sink.type != notify::SinkType::kCommand && sink.url_file.empty()) {
        return Status::Invalid(where + "a " + type +
                               " sink needs `urlFile` (a file holding its URL)");
      }
      if (sink.type != notify::SinkType::kWebhook && !sink.secret_file.empty()) {
        return Status::Invalid(where + "secretFile signs webhook requests only");
      }
      for (const std::string& kind : sink.kinds) {
        const auto& known = alerts::Kinds();
        if (std::find(known.begin(), known.end(), kind) == known.end()) {
          std::string list;
          for (const auto& k2 : known) list += (list.empty() ? "" : ", ") + k2;
          return Status::Invalid(where + "unknown alert kind \"" + kind + "\"; kinds are " + list);
        }
      }
      c.notify.sinks.push_back(std::move(sink));
    }
    if (c.notify.retry_max_ms < c.notify.retry_initial_ms) {
      return Status::Invalid(path + ": notify: retryMaxSeconds is below retryInitialSeconds");
    }
  }
  return c;
}

Status ReadNotifySecrets(notify::NotifyConfig* n) {
  for (notify::SinkConfig& sink : n->sinks) {
    const std::string what = "notify sink " + sink.name;
    if (!sink.url_file.empty()) {
      auto url = ReadControllerSecret(sink.url_file, "notify urlFile");
      if (!url.ok()) return url.status().Annotate(what + " urlFile");
      std::string origin, rest;
      if (!notify::SplitUrl(*url, &origin, &rest)) {
        return Status::Invalid(what + ": the first line of urlFile " + sink.url_file +
                               " is not an http:// or https:// URL");
      }
      sink.url = *url;
    }
    if (!sink.secret_file.empty()) {
      auto secret = ReadControllerSecret(sink.secret_file, "notify secretFile");
      if (!secret.ok()) return secret.status().Annotate(what + " secretFile");
      if (secret->empty())
        return Status::Invalid(what + ": secretFile " + sink.secret_file + " is empty");
      sink.secret = *secret;
    }
  }
  return Status::Ok();
}

Result<std::string> ReadControllerSecret(const std::string& path, const char* what) {
  if (path.empty()) return std::string();
  std::ifstream in(path);
  if (!in) return Status::NotFound(std::string("cannot read ") + what + " file " + path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

Status CommitSignerOf(const Config& c, desired_state::CommitSigner* signer) {
  *signer = nullptr;
  if (!c.signing_key.empty()) {
    *signer = desired_state::SshCommitSigner(c.signing_key);
    return Status::Ok();
  }
  if (c.verify_mode != "off") {
    return Status::Permission(
        "repo.verify is " + c.verify_mode +
        ": clusterd refuses unsigned commits, and no repo.signingKey is set to sign this one; "
        "set repo.signingKey to a key of the allowed signers file (docs/operations.md, signed "
        "commits)");
  }
  return Status::Ok();
}

}  // namespace clusterctl::controller

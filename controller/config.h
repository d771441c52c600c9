// The configuration file shared by clusterd and clusterctl (SPEC.md section 4),
// checked against schemas/config.schema.json.
//
// Lookup order for clusterctl: --config FILE, $CLUSTERCTL_CONFIG,
// ./clusterctl.yaml, ~/.config/clusterctl/config.yaml; none is fine (all
// defaults). Command-line flags override the file.
#pragma once

#include <optional>
#include <string>

#include "base/secret_file.h"
#include "base/status.h"
#include "desired-state/commit_signer.h"
#include "desired-state/diagnostics.h"
#include "desired-state/loader.h"
#include "notify/notification.h"

namespace clusterctl::controller {

struct Config {
  std::string source_path;  // The file this came from; empty when none.

  std::string repo_url;            // Local path or URL. Default: none (the CLI uses ".").
  std::string branch = "main";     // Default: main.
  int poll_seconds = 15;           // Default: 15.
  int fetch_timeout_seconds = 60;  // A fetch or clone is killed after it. Default: 60.
  // repo.verify: commit signatures (off | head | all) against an ssh
  // allowed_signers file. Default: off.
  std::string verify_mode = "off";
  std::string allowed_signers_file;
  // repo.signingKey: the ssh key that signs the commits clusterctl and
  // clusterd write (rollback, stop/start). Default: none (unsigned).
  std::string signing_key;
  std::string data_dir;  // Default: $XDG_STATE_HOME/clusterctl or ~/.local/state/clusterctl.
  std::string listen = "127.0.0.1:7480";  // Default: 127.0.0.1:7480.
  std::string token_file;
  std::string webhook_secret_file;
  // Where the secret files named by the desired-state repository live
  // (base/secret_file.h). Default: empty = <data_dir>/secrets.
  std::string secrets_dir;
  // api: limits of the HTTP API (ApiServer::Options has their meaning).
  int api_max_connections = 256;           // Default: 256.
  int api_max_header_bytes = 16384;        // Default: 16 KiB.
  int api_max_headers = 100;               // Default: 100.
  int api_request_timeout_seconds = 10;    // Default: 10.
  std::string known_hosts;                 // Default: <data_dir>/known_hosts.
  std::string host_key_policy = "strict";  // strict | accept-new.
  std::string identity_file;
  int connect_timeout_seconds = 5;
  int command_timeout_seconds = 30;
  bool watch_enabled = true;    // Default: true (the drift watch runs).
  int watch_interval_ms = 200;  // Default: 200.
  // redis: leader election between clusterd replicas (ha/leader_election.h).
  // Unset host: no election; this clusterd acts alone, as always.
  std::optional<std::string> redis_host;
  int redis_port = 6379;
  std::string redis_password_file;
  std::string redis_key = "clusterctl:leader";  // Default: clusterctl:leader.
  int redis_lease_ms = 15000;                   // leaseSeconds. Default: 15 s.
  int redis_renew_ms = 5000;                    // renewSeconds. Default: 5 s.
  int redis_retry_ms = 2000;                    // retrySeconds. Default: 2 s.
  int redis_margin_ms = 2000;                   // marginSeconds. Default: 2 s.
  std::string replica_name;                     // Default: <hostname>:<pid>.
  // shards: auto: the replicas split the machines (ha/shard_coordinator.h);
  // off: one leader acts on all of them. Default: off.
  bool redis_shards = false;
  // alerts: escalation, resolution, machine thresholds (docs/monitoring.md).
  std::vector<int64_t> escalate_after_ms = {300000, 900000};  // Default: 5 and 15 min.
  int alert_resolve_after_ms = 120000;                        // Default: 120 s.
  int disk_percent = 90, memory_percent = 90;                 // Default: 90 each.
  size_t alerts_keep_resolved = 500;                          // Default: 500.
  // notify: the sinks, their urlFile/secretFile not read yet (ReadNotifySecrets).
  notify::NotifyConfig notify;
};

// Reads each sink's urlFile and secretFile into it; an unreadable or empty
// file is an error naming the sink and the key (never the content).
Status ReadNotifySecrets(notify::NotifyConfig* n);

// Reads and checks a config file. Relative paths in it are made absolute
// against the file's directory. Errors name file:line:col.
Result<Config> LoadConfig(const std::string& path);

// The first config file of the lookup order that exists, or "" when none.
// `explicit_path` (from --config) wins and must exist.
Result<std::string> FindConfig(const std::string& explicit_path);

// A secret of the controller's own (tokenFile, webhookSecretFile,
// redis.passwordFile): the first line of `path`, without its newline. An
// empty path is an empty secret. The content is never logged.
Result<std::string> ReadControllerSecret(const std::string& path, const char* what);

// Data directory default: $XDG_STATE_HOME/clusterctl, else ~/.local/state/clusterctl.
std::string DefaultDataDir();

// The secrets rule of a controller with config `c` and data directory
// `data_dir` (flags applied): secretsDir (default <data_dir>/secrets), and the
// controller's own secrets (tokenFile, webhookSecretFile, ssh.identityFile,
// redis.passwordFile) as reserved files the repository can never name.
SecretsPolicy SecretsPolicyOf(const Config& c, const std::string& data_dir);

// The options every load of a revision by clusterd or clusterctl uses: the
// defaults plus SecretsPolicyOf(c, data_dir).
desired_state::LoadOptions LoadOptionsOf(const Config& c, const std::string& data_dir);

// How the commits clusterctl and clusterd write are signed: with
// repo.signingKey when set (*signer gets an ssh-keygen signer), else
// unsigned (*signer empty). Permission error when repo.verify is on and no
// key is set: clusterd would refuse the unsigned commit.
Status CommitSignerOf(const Config& c, desired_state::CommitSigner* signer);

}  // namespace clusterctl::controller

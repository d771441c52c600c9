// clusterd's config: the API limits of the `api` block and the leader
// election of the `redis` block, whose defaults must match the API server's
// and the elector's own.
#include "controller/config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "api/api.h"
#include "ha/leader_election.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::controller {
namespace {

TEST(ApiConfigTest, LimitsComeFromTheApiBlockWithDefaults) {
  testing::TempDir dir;
  testing::WriteFile(dir.Sub("none.yaml"), "listen: 127.0.0.1:7480\n");
  Result<Config> defaults = LoadConfig(dir.Sub("none.yaml"));
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  api::ApiServer::Options o;
  EXPECT_EQ(o.max_connections, defaults->api_max_connections);
  EXPECT_EQ(o.max_header_bytes, static_cast<size_t>(defaults->api_max_header_bytes));
  EXPECT_EQ(o.max_headers, defaults->api_max_headers);
  EXPECT_EQ(o.request_timeout, std::chrono::seconds(defaults->api_request_timeout_seconds));

  testing::WriteFile(dir.Sub("set.yaml"),
                     "api: {maxConnections: 64, maxHeaderBytes: 4096, maxHeaders: 20, "
                     "requestTimeoutSeconds: 3}\n");
  Result<Config> set = LoadConfig(dir.Sub("set.yaml"));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(64, set->api_max_connections);
  EXPECT_EQ(4096, set->api_max_header_bytes);
  EXPECT_EQ(20, set->api_max_headers);
  EXPECT_EQ(3, set->api_request_timeout_seconds);

  testing::WriteFile(dir.Sub("bad.yaml"), "api: {maxConections: 64}\n");
  Result<Config> bad = LoadConfig(dir.Sub("bad.yaml"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string::npos, bad.status().message().find("maxConections"))
      << bad.status().message();
}

// repo.signingKey: commits clusterctl writes are signed with it; with
// repo.verify on and no key, writing one is refused before anything happens.
TEST(SigningConfigTest, TheSigningKeyIsRelativeToTheFileAndRequiredWhenVerifyIsOn) {
  testing::TempDir dir;
  testing::WriteFile(dir.Sub("off.yaml"), "repo: {url: /srv/git/c.git}\n");
  Result<Config> off = LoadConfig(dir.Sub("off.yaml"));
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  desired_state::CommitSigner signer;
  EXPECT_TRUE(CommitSignerOf(*off, &signer).ok());
  EXPECT_FALSE(signer);

  testing::WriteFile(dir.Sub("verify.yaml"),
                     "repo: {url: /srv/git/c.git, verify: {mode: head, allowedSignersFile: a}}\n");
  Result<Config> verify = LoadConfig(dir.Sub("verify.yaml"));
  ASSERT_TRUE(verify.ok()) << verify.status().ToString();
  Status refused = CommitSignerOf(*verify, &signer);
  EXPECT_EQ(refused.code(), Code::kPermission);
  EXPECT_NE(refused.message().find("repo.signingKey"), std::string::npos) << refused.message();

  testing::WriteFile(dir.Sub("key.yaml"),
                     "repo: {url: /srv/git/c.git, signingKey: keys/id.pub,\n"
                     "       verify: {mode: head, allowedSignersFile: a}}\n");
  Result<Config> key = LoadConfig(dir.Sub("key.yaml"));
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->signing_key, dir.Sub("keys/id.pub"));
  EXPECT_TRUE(CommitSignerOf(*key, &signer).ok());
  EXPECT_TRUE(signer);
}

TEST(RedisConfigTest, ElectionDurationsComeFromTheRedisBlockWithTheElectorsDefaults) {
  testing::TempDir dir;
  testing::WriteFile(dir.Sub("none.yaml"), "listen: 127.0.0.1:7480\n");
  Result<Config> none = LoadConfig(dir.Sub("none.yaml"));
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->redis_host.has_value());  // No election: a single clusterd.

  testing::WriteFile(dir.Sub("defaults.yaml"), "redis: {host: 127.0.0.1}\n");
  Result<Config> d = LoadConfig(dir.Sub("defaults.yaml"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ha::LeaderElectionOptions o;
  EXPECT_EQ(o.lease_ms, d->redis_lease_ms);
  EXPECT_EQ(o.renew_interval_ms, d->redis_renew_ms);
  EXPECT_EQ(o.retry_interval_ms, d->redis_retry_ms);
  EXPECT_EQ(o.safety_margin_ms, d->redis_margin_ms);
  EXPECT_EQ(o.key, d->redis_key);

  testing::WriteFile(dir.Sub("set.yaml"),
                     "redis: {host: 127.0.0.1, port: 6380, key: 'lab:leader', leaseSeconds: 5, "
                     "renewSeconds: 1, retrySeconds: 1, marginSeconds: 1, replicaName: node-a}\n");
  Result<Config> set = LoadConfig(dir.Sub("set.yaml"));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(6380, set->redis_port);
  EXPECT_EQ("lab:leader", set->redis_key);
  EXPECT_EQ(5000, set->redis_lease_ms);
  EXPECT_EQ(1000, set->redis_renew_ms);
  EXPECT_EQ(1000, set->redis_retry_ms);
  EXPECT_EQ(1000, set->redis_margin_ms);
  EXPECT_EQ("node-a", set->replica_name);
  EXPECT_FALSE(set->redis_shards);  // Default: one leader.

  testing::WriteFile(dir.Sub("shards.yaml"), "redis: {host: 127.0.0.1, shards: auto}\n");
  Result<Config> shards = LoadConfig(dir.Sub("shards.yaml"));
  ASSERT_TRUE(shards.ok()) << shards.status().ToString();
  EXPECT_TRUE(shards->redis_shards);
  testing::WriteFile(dir.Sub("shards-bad.yaml"), "redis: {host: 127.0.0.1, shards: sometimes}\n");
  Result<Config> shards_bad = LoadConfig(dir.Sub("shards-bad.yaml"));
  ASSERT_FALSE(shards_bad.ok());
  EXPECT_NE(std::string::npos, shards_bad.status().message().find("shards"))
      << shards_bad.status().message();

  // A renewal that cannot come before the lease would end is refused.
  testing::WriteFile(dir.Sub("bad.yaml"),
                     "redis: {host: 127.0.0.1, leaseSeconds: 5, renewSeconds: 4}\n");
  Result<Config> bad = LoadConfig(dir.Sub("bad.yaml"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string::npos, bad.status().message().find("renewSeconds (4) must be below"))
      << bad.status().message();
}

TEST(NotifyConfigTest, AlertsAndSinksComeFromTheirBlocksAndSecretsFromFiles) {
  testing::TempDir dir;
  testing::WriteFile(dir.Sub("none.yaml"), "listen: 127.0.0.1:7480\n");
  Result<Config> defaults = LoadConfig(dir.Sub("none.yaml"));
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ((std::vector<int64_t>{300000, 900000}), defaults->escalate_after_ms);
  EXPECT_EQ(120000, defaults->alert_resolve_after_ms);
  EXPECT_TRUE(defaults->notify.sinks.empty());

  testing::WriteFile(dir.Sub("hook.url"), "https://hooks.example/T0/B0/s3cret\n");
  testing::WriteFile(dir.Sub("hook.key"), "k3y\n");
  testing::WriteFile(dir.Sub("set.yaml"),
                     "alerts: {escalateAfterSeconds: [60, 600], resolveAfterSeconds: 30, "
                     "diskPercent: 80}\n"
                     "notify:\n  retryMaxSeconds: 60\n  sinks:\n"
                     "    - {name: ops, type: webhook, urlFile: hook.url, secretFile: hook.key,\n"
                     "       severities: [critical], kinds: [crash_loop], cooldownSeconds: 5}\n"
                     "    - {name: mail, type: command, command: [/usr/bin/mailer, ops]}\n");
  Result<Config> set = LoadConfig(dir.Sub("set.yaml"));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ((std::vector<int64_t>{60000, 600000}), set->escalate_after_ms);
  EXPECT_EQ(30000, set->alert_resolve_after_ms);
  EXPECT_EQ(80, set->disk_percent);
  EXPECT_EQ(60000, set->notify.retry_max_ms);
  ASSERT_EQ(2u, set->notify.sinks.size());
  const notify::SinkConfig& ops = set->notify.sinks[0];
  EXPECT_EQ(dir.Sub("hook.url"), ops.url_file);  // Relative to the config file.
  EXPECT_EQ(std::set<std::string>{"critical"}, ops.severities);
  EXPECT_EQ(5, ops.cooldown_seconds);
  EXPECT_TRUE(ops.url.empty());  // Not read until ReadNotifySecrets.
  notify::NotifyConfig n = set->notify;
  ASSERT_TRUE(ReadNotifySecrets(&n).ok());
  EXPECT_EQ("https://hooks.example/T0/B0/s3cret", n.sinks[0].url);
  EXPECT_EQ("k3y", n.sinks[0].secret);
  // The secret files are reserved: a repository cannot name them.
  bool reserved = false;
  for (const auto& [what, path] : SecretsPolicyOf(*set, dir.Sub("data")).reserved) {
    reserved |= path == dir.Sub("hook.url");
  }
  EXPECT_TRUE(reserved);

  // Mistakes are named.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"notify: {sinks: [{name: a, type: webhook}]}", "needs `urlFile`"},
      {"notify: {sinks: [{name: a, type: command}]}", "needs `command"},
      {"notify: {sinks: [{name: a, type: command, command: [x]}, "
       "{name: a, type: command, command: [y]}]}",
       "used twice"},
      {"notify: {sinks: [{name: a, type: command, command: [x], kinds: [crashloop]}]}",
       "unknown alert kind \"crashloop\""},
      {"notify: {sinks: [{name: a, type: slack, urlFile: u, secretFile: k}]}",
       "signs webhook requests only"},
      {"notify: {sinks: [{name: A!, type: command, command: [x]}]}", "name"},
      {"alerts: {escalateAfterSeconds: [0]}", "escalateAfterSeconds"},
  };
  for (const auto& [yaml, expect] : bad) {
    SCOPED_TRACE(yaml);
    testing::WriteFile(dir.Sub("bad.yaml"), yaml + "\n");
    Result<Config> c = LoadConfig(dir.Sub("bad.yaml"));
    ASSERT_FALSE(c.ok());
    EXPECT_NE(std::string::npos, c.status().message().find(expect)) << c.status().message();
  }
  // An empty key, a URL that is not http(s), a missing file: named, never quoted.
  testing::WriteFile(dir.Sub("empty.key"), "\n");
  testing::WriteFile(dir.Sub("ftp.url"), "ftp://files.example/s3cret\n");
  for (const auto& [url_file, secret_file] :
       std::vector<std::pair<std::string, std::string>>{{dir.Sub("hook.url"), dir.Sub("empty.key")},
                                                        {dir.Sub("ftp.url"), ""},
                                                        {dir.Sub("missing.url"), ""}}) {
    notify::NotifyConfig m;
    notify::SinkConfig sink;
    sink.name = "ops";
    sink.url_file = url_file;
    sink.secret_file = secret_file;
    m.sinks.push_back(sink);
    Status s = ReadNotifySecrets(&m);
    EXPECT_FALSE(s.ok()) << url_file;
    EXPECT_NE(std::string::npos, s.message().find("ops")) << s.message();
    EXPECT_EQ(std::string::npos, s.message().find("s3cret")) << s.message();
  }
}

TEST(VerifyConfigTest, SignatureModesNeedAnAllowedSignersFile) {
  testing::TempDir dir;
  testing::WriteFile(
      dir.Sub("ok.yaml"),
      "repo: {url: /srv/x.git, verify: {mode: head, allowedSignersFile: signers}}\n");
  Result<Config> ok = LoadConfig(dir.Sub("ok.yaml"));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ("head", ok->verify_mode);
  EXPECT_EQ(dir.Sub("signers"), ok->allowed_signers_file);
  testing::WriteFile(dir.Sub("bad.yaml"), "repo: {url: /srv/x.git, verify: {mode: all}}\n");
  Result<Config> bad = LoadConfig(dir.Sub("bad.yaml"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string::npos, bad.status().message().find("needs allowedSignersFile"));
  testing::WriteFile(dir.Sub("typo.yaml"), "repo: {url: /srv/x.git, verify: {mode: always}}\n");
  EXPECT_FALSE(LoadConfig(dir.Sub("typo.yaml")).ok());
}

}  // namespace
}  // namespace clusterctl::controller

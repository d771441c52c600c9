// clusterd's config: the API limits of the `api` block and the leader
// election of the `redis` block, whose defaults must match the API server's
// and the elector's own.
#include "controller/config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

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

  // A renewal that cannot come before the lease would end is refused.
  testing::WriteFile(dir.Sub("bad.yaml"),
                     "redis: {host: 127.0.0.1, leaseSeconds: 5, renewSeconds: 4}\n");
  Result<Config> bad = LoadConfig(dir.Sub("bad.yaml"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string::npos, bad.status().message().find("renewSeconds (4) must be below"))
      << bad.status().message();
}

}  // namespace
}  // namespace clusterctl::controller

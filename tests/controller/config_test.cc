// The API limits of clusterd's config: the `api` block and its defaults,
// which must match the API server's own defaults.
#include "controller/config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "api/api.h"
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

}  // namespace
}  // namespace clusterctl::controller

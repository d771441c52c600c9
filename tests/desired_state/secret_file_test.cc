// The secrets rule: files named by the repository come from secretsDir only,
// with no "..", no symlink below it, and never the controller's own secrets.
#include "base/secret_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "desired-state/loader.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::desired_state {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::TempDir;
using testing::WriteFile;

class SecretFileTest : public ::testing::Test {
 protected:
  SecretFileTest() {
    WriteFile(tmp_.Sub("secrets/redis/password"), "hunter2\n");
    WriteFile(tmp_.Sub("etc/token"), "the-api-token\n");
    WriteFile(tmp_.Sub("outside"), "not for the repository\n");
    policy_.dir = tmp_.Sub("secrets");
    policy_.reserved = {{"tokenFile", tmp_.Sub("etc/token")}};
  }

  TempDir tmp_;
  SecretsPolicy policy_;
};

TEST_F(SecretFileTest, AcceptsAPathRelativeToSecretsDir) {
  auto r = ResolveSecretFile(policy_, "redis/password");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, tmp_.Sub("secrets/redis/password"));
  auto content = ReadSecretFile(policy_, "redis/password");
  ASSERT_TRUE(content.ok()) << content.status().ToString();
  EXPECT_EQ(*content, "hunter2\n");
}

TEST_F(SecretFileTest, AcceptsAnAbsolutePathInsideSecretsDir) {
  auto r = ResolveSecretFile(policy_, tmp_.Sub("secrets/redis/password"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, tmp_.Sub("secrets/redis/password"));
}

TEST_F(SecretFileTest, AcceptsAFileNotYetProvisionedButCannotReadIt) {
  auto r = ResolveSecretFile(policy_, "later/key");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto content = ReadSecretFile(policy_, "later/key");
  ASSERT_FALSE(content.ok());
  EXPECT_EQ(content.status().code(), Code::kNotFound);
}

TEST_F(SecretFileTest, RefusesAnAbsolutePathOutsideSecretsDir) {
  auto r = ResolveSecretFile(policy_, tmp_.Sub("outside"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_EQ(r.status().message(),
            "\"" + tmp_.Sub("outside") + "\" is outside secretsDir " + tmp_.Sub("secrets"));
  EXPECT_FALSE(ReadSecretFile(policy_, tmp_.Sub("outside")).ok());
  // A sibling whose name starts like the directory is outside too.
  WriteFile(tmp_.Sub("secrets-old/x"), "x");
  EXPECT_FALSE(ResolveSecretFile(policy_, tmp_.Sub("secrets-old/x")).ok());
}

TEST_F(SecretFileTest, RefusesDotDotEvenWhenItStaysInside) {
  for (const std::string& path :
       std::vector<std::string>{"../outside", "redis/../../outside", "redis/../redis/password",
                                tmp_.Sub("secrets/../outside")}) {
    auto r = ResolveSecretFile(policy_, path);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_THAT(r.status().message(), HasSubstr("\"..\"")) << path;
    auto content = ReadSecretFile(policy_, path);
    ASSERT_FALSE(content.ok()) << path;
    EXPECT_THAT(content.status().message(), Not(HasSubstr("not for the repository")));
  }
}

TEST_F(SecretFileTest, RefusesHomeRelativePaths) {
  EXPECT_FALSE(ResolveSecretFile(policy_, "~/.ssh/id_ed25519").ok());
}

TEST_F(SecretFileTest, RefusesASymlinkInsideSecretsDirPointingOutside) {
  ASSERT_EQ(::symlink(tmp_.Sub("outside").c_str(), tmp_.Sub("secrets/link").c_str()), 0);
  auto r = ResolveSecretFile(policy_, "link");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("goes through the symlink \"link\""));
  auto content = ReadSecretFile(policy_, "link");
  ASSERT_FALSE(content.ok());
  EXPECT_EQ(content.status().code(), Code::kInvalid);
  EXPECT_THAT(content.status().message(), Not(HasSubstr("not for the repository")));
}

TEST_F(SecretFileTest, RefusesADirectorySymlinkInsideSecretsDir) {
  ASSERT_EQ(::symlink(tmp_.path().c_str(), tmp_.Sub("secrets/up").c_str()), 0);
  auto r = ResolveSecretFile(policy_, "up/outside");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("goes through the symlink \"up\""));
  EXPECT_FALSE(ReadSecretFile(policy_, "up/outside").ok());
  EXPECT_FALSE(ReadSecretFile(policy_, "up/etc/token").ok());
}

TEST_F(SecretFileTest, RefusesTheControllersOwnSecretsEvenInsideSecretsDir) {
  // The token lies inside secretsDir: still refused, by path and by inode.
  WriteFile(tmp_.Sub("secrets/token"), "the-api-token\n");
  policy_.reserved.push_back({"webhookSecretFile", tmp_.Sub("secrets/token")});
  auto r = ResolveSecretFile(policy_, "token");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("is the controller's own webhookSecretFile"));
  EXPECT_FALSE(ReadSecretFile(policy_, "token").ok());
  // A hard link to the token inside secretsDir is the same file.
  ASSERT_EQ(::link(tmp_.Sub("etc/token").c_str(), tmp_.Sub("secrets/hard").c_str()), 0);
  auto hard = ResolveSecretFile(policy_, "hard");
  ASSERT_FALSE(hard.ok());
  EXPECT_THAT(hard.status().message(), HasSubstr("is the controller's own tokenFile"));
  auto content = ReadSecretFile(policy_, "hard");
  ASSERT_FALSE(content.ok());
  EXPECT_THAT(content.status().message(), Not(HasSubstr("the-api-token")));
}

TEST_F(SecretFileTest, NoSecretsDirAcceptsNothing) {
  SecretsPolicy none;
  EXPECT_FALSE(ResolveSecretFile(none, "redis/password").ok());
  EXPECT_FALSE(ReadSecretFile(none, tmp_.Sub("secrets/redis/password")).ok());
}

// The loader reports a refused path at its file and line.
class LoaderSecretsTest : public SecretFileTest {
 protected:
  LoadResult LoadWith(const std::string& password_file, const std::string& identity_file) {
    std::vector<SourceFile> files = {
        {"cluster.yaml",
         "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: lab}\n"
         "spec: {}\n"},
        {"machines/m1.yaml",
         "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m1}\n"
         "spec:\n  address: 127.0.0.1\n  ssh: {identityFile: \"" +
             identity_file + "\"}\n"},
        {"services/cache.yaml",
         "apiVersion: clusterctl/v1\nkind: Service\n"
         "metadata: {name: cache}\nspec:\n  machines: [m1]\n"
         "  process: {command: [redis-server]}\n  readiness:\n"
         "    redis: {port: 6379, passwordFile: \"" +
             password_file + "\"}\n"}};
    LoadOptions options;
    options.secrets = policy_;
    Revision rev;
    rev.commit = "0123456789abcdef0123456789abcdef01234567";
    return LoadFiles(files, rev, options);
  }
};

TEST_F(LoaderSecretsTest, AcceptsPathsInsideSecretsDir) {
  LoadResult r = LoadWith("redis/password", "ssh/id_ed25519");
  ASSERT_TRUE(r.ok()) << r.errors.ToString();
}

TEST_F(LoaderSecretsTest, NamesFileAndLineOfAPasswordFileOutsideSecretsDir) {
  LoadResult r = LoadWith(tmp_.Sub("outside"), "ssh/id_ed25519");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors.ToString(),
            "services/cache.yaml:8:25: error: passwordFile \"" + tmp_.Sub("outside") +
                "\" is outside secretsDir " + tmp_.Sub("secrets") +
                "; put the file in secretsDir (" + tmp_.Sub("secrets") +
                ") and name it relative to it (docs/desired-state.md, Secrets)\n");
}

TEST_F(LoaderSecretsTest, RefusesTheTokenFileDotDotAndSymlinks) {
  ASSERT_EQ(::symlink(tmp_.Sub("outside").c_str(), tmp_.Sub("secrets/link").c_str()), 0);
  LoadResult token = LoadWith(tmp_.Sub("etc/token"), "ssh/id");
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.errors.ToString(), HasSubstr("services/cache.yaml:8:"));
  LoadResult dotdot = LoadWith("redis/password", "../etc/token");
  ASSERT_FALSE(dotdot.ok());
  EXPECT_THAT(dotdot.errors.ToString(),
              HasSubstr("machines/m1.yaml:6:9: error: identityFile \"../etc/token\" contains"));
  LoadResult link = LoadWith("link", "ssh/id");
  ASSERT_FALSE(link.ok());
  EXPECT_THAT(link.errors.ToString(), HasSubstr("goes through the symlink \"link\""));
}

TEST_F(LoaderSecretsTest, RefusesTheTokenFileInsideSecretsDir) {
  WriteFile(tmp_.Sub("secrets/token"), "the-api-token\n");
  policy_.reserved = {{"tokenFile", tmp_.Sub("secrets/token")}};
  LoadResult r = LoadWith("token", "ssh/id");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.errors.ToString(),
              HasSubstr("passwordFile \"token\" is the controller's own tokenFile"));
}

}  // namespace
}  // namespace clusterctl::desired_state

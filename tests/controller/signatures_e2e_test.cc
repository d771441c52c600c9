// Signed commits only (issue 15), end to end: the built clusterd with
// repo.verify mode all follows a repository whose commits real git signs
// with real ssh-keygen keys. An unknown signer and an unsigned commit
// inside a pushed range are refused (audited, alerted, in the history) while
// the revision in force keeps running; a signed history is applied.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>

#include "tests/harness/audit_records.h"
#include "tests/harness/demo_cluster.h"
#include "tests/harness/git_repo.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::WaitFor;

// Keys made before the demo repository, and git told (through GIT_CONFIG_*
// in the environment) to sign every commit the harness makes with `allowed`.
struct SigningKeys {
  SigningKeys() {
    for (const char* name : {"allowed", "stranger"}) {
      std::string out;
      EXPECT_EQ(0, testing::RunShell("ssh-keygen -q -t ed25519 -N '' -C " + std::string(name) +
                                         " -f " + keys.Sub(name),
                                     &out))
          << out;
    }
    testing::WriteFile(keys.Sub("allowed_signers"), "deploy@example.com namespaces=\"git\" " +
                                                        testing::ReadFile(keys.Sub("allowed.pub")));
    setenv("GIT_CONFIG_COUNT", "3", 1);
    setenv("GIT_CONFIG_KEY_0", "gpg.format", 1);
    setenv("GIT_CONFIG_VALUE_0", "ssh", 1);
    setenv("GIT_CONFIG_KEY_1", "user.signingkey", 1);
    setenv("GIT_CONFIG_VALUE_1", keys.Sub("allowed").c_str(), 1);
    setenv("GIT_CONFIG_KEY_2", "commit.gpgsign", 1);
    setenv("GIT_CONFIG_VALUE_2", "true", 1);
  }
  ~SigningKeys() { unsetenv("GIT_CONFIG_COUNT"); }
  testing::TempDir keys;
};

class SignaturesTest : public ::testing::Test {
 protected:
  SignaturesTest() { AddVerify(); }
  void AddVerify() {
    // The demo writes `repo: {url: ..., branch: main, pollSeconds: 2}`.
    std::string config = testing::ReadFile(demo_.config_path());
    const size_t at = config.find("pollSeconds");
    ASSERT_NE(std::string::npos, at) << config;
    config.insert(at, "verify: {mode: all, allowedSignersFile: " +
                          signing_.keys.Sub("allowed_signers") + "}, ");
    testing::WriteFile(demo_.config_path(), config);
  }
  std::string Log() const { return demo_.ClusterdLog(); }
  std::string InForce() { return demo_.Api("/api/v1/status").value("revision", ""); }
  // Waits until clusterd refused `commit`, and returns its refusal.
  std::string RefusalOf(const std::string& commit) {
    std::string detail;
    WaitFor(
        [&] {
          for (const auto& r : testing::AuditRecordsOf(demo_.data_dir())) {
            if (r.action == "revision_rejected" && r.revision == commit.substr(0, 7)) {
              detail = r.detail;
              return true;
            }
          }
          return false;
        },
        seconds(30), milliseconds(200));
    return detail;
  }
  void Push() { demo_.repo().Git("push -q -f origin main"); }

  SigningKeys signing_;  // Before demo_: its commits are signed.
  testing::DemoCluster demo_;
  std::unique_ptr<testing::Process> clusterd_;
};

TEST_F(SignaturesTest, OnlyCommitsSignedByAnAllowedSignerAreApplied) {
  clusterd_ = demo_.StartClusterd();
  const std::string signed_head = demo_.repo().Rev();
  ASSERT_TRUE(WaitFor([&] { return InForce() == signed_head; }, seconds(90), milliseconds(300)))
      << Log();

  // A commit signed by a key that is not in allowed_signers.
  demo_.repo().Git("-c user.signingkey=" + signing_.keys.Sub("stranger") +
                   " commit -q --allow-empty -m 'signed by a stranger'");
  const std::string stranger = demo_.repo().Rev();
  Push();
  std::string why = RefusalOf(stranger);
  EXPECT_NE(std::string::npos, why.find("unknown key")) << why << Log();
  EXPECT_EQ(signed_head, InForce());

  // An unsigned commit with a signed one on top: mode all checks the range.
  demo_.repo().Git("reset -q --hard " + signed_head);
  demo_.repo().Git("-c commit.gpgsign=false commit -q --allow-empty -m 'unsigned'");
  demo_.repo().Git("commit -q --allow-empty -m 'signed on top'");
  const std::string on_top = demo_.repo().Rev();
  Push();
  why = RefusalOf(on_top);
  EXPECT_NE(std::string::npos, why.find("unsigned")) << why << Log();
  EXPECT_EQ(signed_head, InForce());
  const json alerts = demo_.Api("/api/v1/alerts");
  EXPECT_NE(std::string::npos, alerts.dump().find("revision_rejected")) << alerts.dump();
  const json history = demo_.Api("/api/v1/revisions");
  ASSERT_TRUE(history.is_array() && !history.empty());
  EXPECT_EQ("rejected", history[0].value("result", "")) << history.dump();

  // A signed history again is applied.
  demo_.repo().Git("reset -q --hard " + signed_head);
  demo_.repo().Git("commit -q --allow-empty -m 'signed fix'");
  const std::string fixed = demo_.repo().Rev();
  Push();
  EXPECT_TRUE(WaitFor([&] { return InForce() == fixed; }, seconds(30), milliseconds(300))) << Log();
}

// repo.signingKey (issue 15): with repo.verify on, clusterctl rollback
// refuses to write an unsigned commit that clusterd would refuse, and signs
// it with the configured key, so clusterd applies it.
TEST_F(SignaturesTest, ARollbackIsSignedWithTheSigningKeyAndApplied) {
  clusterd_ = demo_.StartClusterd();
  const std::string first = demo_.repo().Rev();
  ASSERT_TRUE(WaitFor([&] { return InForce() == first; }, seconds(90), milliseconds(300))) << Log();
  demo_.repo().Git("commit -q --allow-empty -m 'signed second'");
  const std::string second = demo_.repo().Rev();
  Push();
  ASSERT_TRUE(WaitFor([&] { return InForce() == second; }, seconds(30), milliseconds(300)))
      << Log();

  testing::GitRepo origin(demo_.origin(), /*bare=*/true);
  std::string out;
  EXPECT_NE(0, demo_.Cli("rollback --steps 1", &out));
  EXPECT_NE(std::string::npos, out.find("repo.signingKey")) << out;
  EXPECT_EQ(second, origin.Rev("main"));  // Nothing written.

  std::string config = testing::ReadFile(demo_.config_path());
  config.insert(config.find("verify:"), "signingKey: " + signing_.keys.Sub("allowed") + ", ");
  testing::WriteFile(demo_.config_path(), config);
  ASSERT_EQ(0, demo_.Cli("rollback --steps 1 -m 'signed rollback'", &out)) << out;
  const std::string rollback = origin.Rev("main");
  ASSERT_NE(second, rollback);
  // git itself (the oracle) finds a good signature by the allowed signer.
  EXPECT_NE(std::string::npos,
            origin
                .Git("-c gpg.ssh.allowedSignersFile=" + signing_.keys.Sub("allowed_signers") +
                     " log -1 --format=%G?%GS " + rollback)
                .find("Gdeploy@example.com"));
  EXPECT_TRUE(WaitFor([&] { return InForce() == rollback; }, seconds(30), milliseconds(300)))
      << Log();
  for (const auto& r : testing::AuditRecordsOf(demo_.data_dir())) {
    EXPECT_NE("revision_rejected", r.action) << r.detail;
  }
}

}  // namespace
}  // namespace clusterctl

// SshPool against real sshd hosts (tests/harness/ssh_host.h), and shell
// quoting.
#include "reconcilers/ssh.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "reconcilers/shell.h"
#include "tests/harness/process.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::reconcilers {
namespace {

using ::clusterctl::testing::ReadFile;
using ::clusterctl::testing::SshHost;
using ::clusterctl::testing::TempDir;
using ::clusterctl::testing::TestCluster;
using ::clusterctl::testing::WaitFor;
using ::clusterctl::testing::WriteFile;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

bool Exists(const std::string& path) { return std::filesystem::exists(path); }

SshTarget TargetFor(const SshHost& host, const std::string& machine = "m1") {
  SshTarget t;
  t.machine = machine;
  t.address = host.address();
  t.port = host.port();
  t.user = host.user();
  t.identity_file = host.client_key_path();
  return t;
}

// Generous connect bound: session set-up takes up to a few seconds on a
// loaded 2-core machine.
SshOptions OptionsFor(const std::string& known_hosts) {
  SshOptions o;
  o.known_hosts = known_hosts;
  o.connect_timeout_ms = 15000;
  return o;
}

// A Result as text, for assertion messages.
std::string Describe(const Result<CommandResult>& r) {
  if (!r.ok()) return r.status().ToString();
  return "exit " + std::to_string(r->exit_code) + " out[" + r->out + "] err[" + r->err + "]";
}

// ---------------------------------------------------------------- quoting

TEST(ShellTest, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(ShellQuote("plain-word_1.2/x:y,z@h+"), "plain-word_1.2/x:y,z@h+");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("a b"), "'a b'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("$(x)"), "'$(x)'");
  EXPECT_EQ(ShellQuote("A=b"), "'A=b'");  // not an assignment as a command word
  EXPECT_EQ(ShellQuote("~"), "'~'");
}

TEST(ShellTest, JoinsQuotedWords) {
  EXPECT_EQ(ShellJoin({}), "");
  EXPECT_EQ(ShellJoin({"echo", "a b", "", "c"}), "echo 'a b' '' c");
}

TEST(ShellTest, QuotedWordsReachALocalShellVerbatim) {
  TempDir tmp;
  const std::string pwned = tmp.Sub("pwned");
  const std::vector<std::string> args = {"it's \"quoted\"",
                                         "$(touch " + pwned + ")",
                                         "; touch " + pwned,
                                         "`touch " + pwned + "`",
                                         "a\nb",
                                         "*",
                                         "$HOME",
                                         "\\",
                                         "'",
                                         "",
                                         "-n",
                                         "A=b"};
  std::string out;
  ASSERT_EQ(::clusterctl::testing::RunShell(
                "printf '[%s]' " + ShellJoin(args) + " > " + tmp.Sub("out"), &out),
            0)
      << out;
  std::string expected;
  for (const auto& a : args) expected += "[" + a + "]";
  EXPECT_EQ(ReadFile(tmp.Sub("out")), expected);
  EXPECT_FALSE(Exists(pwned));
}

// ---------------------------------------------------------------- SshPool

class SshPoolTest : public ::testing::Test {
 protected:
  TempDir tmp_;
  SshHost host_;
};

TEST_F(SshPoolTest, RunsACommandAndReturnsOutputAndExitCode) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  auto r = pool.Run(TargetFor(host_), "echo out; echo err >&2; exit 7", milliseconds(10000));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->exit_code, 7);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_GE(r->duration_ms, 0);
}

TEST_F(SshPoolTest, RunsTheScriptWithShAndAnEmptyHome) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  // `cat` must see an empty stdin instead of waiting forever.
  auto r = pool.Run(TargetFor(host_), "cat; echo \"$HOME\"; test -n \"$BASH_VERSION\" || echo sh",
                    milliseconds(10000));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->out, host_.home_dir() + "\nsh\n");
}

TEST_F(SshPoolTest, ReportsADeathBySignalAs128PlusTheSignal) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  auto r = pool.Run(TargetFor(host_), "kill -KILL $$", milliseconds(10000));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->exit_code, 128 + SIGKILL);
}

TEST_F(SshPoolTest, ReusesOneSessionForManyCommands) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  for (int i = 0; i < 10; ++i) {
    auto r = pool.Run(TargetFor(host_), "echo " + std::to_string(i), milliseconds(10000));
    ASSERT_TRUE(r.ok()) << Describe(r);
    EXPECT_EQ(r->out, std::to_string(i) + "\n");
  }
  EXPECT_EQ(pool.ConnectsForTest("m1"), 1);
}

TEST_F(SshPoolTest, ProbesAnIdleSessionBeforeReusingIt) {
  SshOptions options = OptionsFor(host_.known_hosts_path());
  options.keepalive_seconds = 0;  // every reuse counts as idle: SSH_MSG_IGNORE first
  SshPool pool(options);
  for (int i = 0; i < 3; ++i) {
    auto r = pool.Run(TargetFor(host_), "echo " + std::to_string(i), milliseconds(10000));
    ASSERT_TRUE(r.ok()) << Describe(r);
    EXPECT_EQ(r->out, std::to_string(i) + "\n");
  }
  EXPECT_EQ(pool.ConnectsForTest("m1"), 1);
}

TEST_F(SshPoolTest, CloseMakesTheNextRunConnectAgain) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  ASSERT_TRUE(pool.Run(TargetFor(host_), "true", milliseconds(10000)).ok());
  pool.Close("m1");
  ASSERT_TRUE(pool.Run(TargetFor(host_), "true", milliseconds(10000)).ok());
  EXPECT_EQ(pool.ConnectsForTest("m1"), 2);
}

TEST_F(SshPoolTest, ConcurrentCommandsOnOneMachineAllSucceedOnOneSession) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  std::vector<std::future<Result<CommandResult>>> runs;
  for (int i = 0; i < 8; ++i) {
    runs.push_back(std::async(std::launch::async, [&, i] {
      return pool.Run(TargetFor(host_), "echo " + std::to_string(i), milliseconds(20000));
    }));
  }
  for (int i = 0; i < 8; ++i) {
    auto r = runs[i].get();
    ASSERT_TRUE(r.ok()) << Describe(r);
    EXPECT_EQ(r->out, std::to_string(i) + "\n");
  }
  EXPECT_EQ(pool.ConnectsForTest("m1"), 1);
}

TEST_F(SshPoolTest, ReturnsLargeOutputWhole) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  auto r = pool.Run(TargetFor(host_), "head -c 3000000 /dev/zero | tr '\\0' a; echo done >&2",
                    milliseconds(20000));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->out.size(), 3000000u);
  EXPECT_EQ(r->out.find_first_not_of('a'), std::string::npos);
  EXPECT_EQ(r->err, "done\n");
}

TEST_F(SshPoolTest, ArgumentsReachTheMachineVerbatimWithoutSideEffects) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  const std::string pwned = tmp_.Sub("pwned");
  const std::vector<std::string> args = {"it's \"quoted\" with  spaces",
                                         "$(touch " + pwned + ")",
                                         "; touch " + pwned,
                                         "`touch " + pwned + "`",
                                         "| touch " + pwned + " &&",
                                         "$HOME ${PATH} *",
                                         "\\n\\'",
                                         "line1\nline2",
                                         "",
                                         "-e"};
  auto r = pool.Run(TargetFor(host_), "printf '[%s]' " + ShellJoin(args), milliseconds(10000));
  ASSERT_TRUE(r.ok()) << Describe(r);
  std::string expected;
  for (const auto& a : args) expected += "[" + a + "]";
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->out, expected);
  EXPECT_FALSE(Exists(pwned));
}

TEST_F(SshPoolTest, RefusesAScriptWithANulByte) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  auto r = pool.Run(TargetFor(host_), std::string("echo a\0b", 8), milliseconds(10000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_EQ(pool.ConnectsForTest("m1"), 0);
}

TEST_F(SshPoolTest, StrictRefusesAChangedHostKeyAndRunsNothing) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  ASSERT_TRUE(pool.Run(TargetFor(host_), "true", milliseconds(10000)).ok());
  host_.RegenerateHostKey();
  host_.Restart();
  const std::string marker = tmp_.Sub("marker");
  auto r = pool.Run(TargetFor(host_), "touch " + ShellQuote(marker), milliseconds(10000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kPermission);
  EXPECT_THAT(r.status().message(), HasSubstr("host_key_mismatch"));
  EXPECT_THAT(r.status().message(), HasSubstr("SHA256:"));
  EXPECT_THAT(r.status().message(), HasSubstr(host_.known_hosts_path()));
  EXPECT_THAT(r.status().message(), HasSubstr("m1"));
  EXPECT_FALSE(Exists(marker));
  EXPECT_EQ(pool.ConnectsForTest("m1"), 1);
}

TEST_F(SshPoolTest, StrictRefusesAnUnknownHost) {
  const std::string empty_known_hosts = tmp_.Sub("known_hosts");
  WriteFile(empty_known_hosts, "");
  const std::string marker = tmp_.Sub("marker");
  for (const std::string& kh : {empty_known_hosts, tmp_.Sub("missing/known_hosts")}) {
    SshPool pool(OptionsFor(kh));
    auto r = pool.Run(TargetFor(host_), "touch " + ShellQuote(marker), milliseconds(10000));
    ASSERT_FALSE(r.ok()) << kh;
    EXPECT_EQ(r.status().code(), Code::kPermission);
    EXPECT_THAT(r.status().message(), HasSubstr("host_key_unknown"));
    EXPECT_THAT(r.status().message(), HasSubstr("add it to " + kh));
    EXPECT_FALSE(Exists(marker));
  }
  EXPECT_EQ(ReadFile(empty_known_hosts), "");
}

TEST_F(SshPoolTest, AcceptNewRecordsANewHostButRefusesAChangedKey) {
  const std::string known_hosts = tmp_.Sub("kh/known_hosts");
  SshOptions options = OptionsFor(known_hosts);
  options.policy = HostKeyPolicy::kAcceptNew;
  {
    SshPool pool(options);
    auto r = pool.Run(TargetFor(host_), "echo hi", milliseconds(10000));
    ASSERT_TRUE(r.ok()) << Describe(r);
    EXPECT_EQ(r->out, "hi\n");
  }
  const std::string recorded = ReadFile(known_hosts);
  EXPECT_THAT(recorded, HasSubstr("[" + host_.address() + "]:" + std::to_string(host_.port()) +
                                  " " + host_.host_key_pub()));

  host_.RegenerateHostKey();
  host_.Restart();
  const std::string marker = tmp_.Sub("marker");
  SshPool pool(options);
  auto r = pool.Run(TargetFor(host_), "touch " + ShellQuote(marker), milliseconds(10000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kPermission);
  EXPECT_THAT(r.status().message(), HasSubstr("host_key_mismatch"));
  EXPECT_FALSE(Exists(marker));
  EXPECT_EQ(ReadFile(known_hosts), recorded);  // the changed key was not added
}

TEST_F(SshPoolTest, RefusesAKeyTheMachineDoesNotAuthorize) {
  const std::string other_key = tmp_.Sub("other_key");
  ::clusterctl::testing::GenerateEd25519Key(other_key);
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  SshTarget t = TargetFor(host_);
  t.identity_file = other_key;
  auto r = pool.Run(t, "true", milliseconds(10000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kPermission);
  EXPECT_THAT(r.status().message(), HasSubstr("authentication refused"));
  // Never the key's content.
  EXPECT_THAT(r.status().message(), ::testing::Not(HasSubstr("PRIVATE KEY")));

  t.identity_file = tmp_.Sub("no_such_key");
  SshPool pool2(OptionsFor(host_.known_hosts_path()));
  auto r2 = pool2.Run(t, "true", milliseconds(10000));
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.status().code(), Code::kPermission);
  EXPECT_THAT(r2.status().message(), HasSubstr("cannot load identity file"));
}

TEST_F(SshPoolTest, UsesTheDefaultIdentityFileWhenTheTargetNamesNone) {
  SshOptions options = OptionsFor(host_.known_hosts_path());
  options.default_identity_file = host_.client_key_path();
  SshPool pool(options);
  SshTarget t = TargetFor(host_);
  t.identity_file.clear();
  auto r = pool.Run(t, "echo ok", milliseconds(10000));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->out, "ok\n");
}

// Issue 10 item 1: a key a target names (from the repository) is read from
// secretsDir only, under the rule of base/secret_file.h.
TEST_F(SshPoolTest, ReadsATargetsKeyFromSecretsDirOnly) {
  const std::string secrets = tmp_.Sub("secrets");
  std::filesystem::create_directories(secrets + "/machines");
  std::filesystem::copy_file(host_.client_key_path(), secrets + "/machines/key");
  SshOptions options = OptionsFor(host_.known_hosts_path());
  options.secrets = SecretsPolicy{secrets, {}};
  SshPool pool(options);
  SshTarget t = TargetFor(host_);
  t.identity_file = "machines/key";  // relative to secretsDir
  auto r = pool.Run(t, "echo ok", milliseconds(10000));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->out, "ok\n");

  SshPool outside_pool(options);
  t.identity_file = host_.client_key_path();  // the right key, outside secretsDir
  auto outside = outside_pool.Run(t, "true", milliseconds(10000));
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.status().code(), Code::kPermission);
  EXPECT_THAT(outside.status().message(), HasSubstr("is outside secretsDir " + secrets));

  ASSERT_EQ(::symlink(host_.client_key_path().c_str(), (secrets + "/link").c_str()), 0);
  SshPool link_pool(options);
  t.identity_file = "link";
  auto link = link_pool.Run(t, "true", milliseconds(10000));
  ASSERT_FALSE(link.ok());
  EXPECT_THAT(link.status().message(), HasSubstr("goes through the symlink \"link\""));
  EXPECT_THAT(link.status().message(), ::testing::Not(HasSubstr("PRIVATE KEY")));
}

TEST_F(SshPoolTest, ReconnectsAfterSshdWasKilledAndRestarted) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  ASSERT_TRUE(pool.Run(TargetFor(host_), "true", milliseconds(10000)).ok());
  host_.Kill(SIGKILL);
  host_.Restart();
  auto r = pool.Run(TargetFor(host_), "echo back", milliseconds(10000));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->out, "back\n");
  EXPECT_EQ(pool.ConnectsForTest("m1"), 2);
}

TEST_F(SshPoolTest, ConnectionLostMidCommandIsUnavailableWithUnknownOutcome) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  const std::string started = tmp_.Sub("started");
  auto run = std::async(std::launch::async, [&] {
    return pool.Run(TargetFor(host_), "touch " + ShellQuote(started) + "; sleep 20",
                    milliseconds(30000));
  });
  ASSERT_TRUE(WaitFor([&] { return Exists(started); }, milliseconds(20000)));
  const auto killed_at = Clock::now();
  host_.Kill(SIGKILL);
  auto r = run.get();
  EXPECT_LT(Clock::now() - killed_at, milliseconds(5000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("outcome is unknown"));
}

TEST_F(SshPoolTest, CommandTimeoutReturnsTimeoutAndTheNextRunWorks) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  ASSERT_TRUE(pool.Run(TargetFor(host_), "true", milliseconds(10000)).ok());
  const auto start = Clock::now();
  auto r = pool.Run(TargetFor(host_), "sleep 30", milliseconds(1000));
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  EXPECT_THAT(r.status().message(), HasSubstr("timed out"));
  EXPECT_GE(elapsed, milliseconds(900));
  EXPECT_LT(elapsed, milliseconds(5000));
  auto next = pool.Run(TargetFor(host_), "echo fine", milliseconds(10000));
  ASSERT_TRUE(next.ok()) << Describe(next);
  EXPECT_EQ(next->out, "fine\n");
}

TEST_F(SshPoolTest, CommandThatNeverStopsWritingTimesOut) {
  SshPool pool(OptionsFor(host_.known_hosts_path()));
  const auto start = Clock::now();
  auto r = pool.Run(TargetFor(host_), "yes", milliseconds(1500));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  EXPECT_LT(Clock::now() - start, milliseconds(20000));
}

TEST_F(SshPoolTest, FailedConnectBacksOffThenRecovers) {
  SshOptions options = OptionsFor(host_.known_hosts_path());
  options.connect_timeout_ms = 2000;
  options.backoff_initial_ms = 300;
  options.backoff_max_ms = 1000;
  SshPool pool(options);
  host_.Stop();
  auto r = pool.Run(TargetFor(host_), "true", milliseconds(2000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("connect failed"));
  EXPECT_THAT(r.status().message(), HasSubstr("retry in"));

  // Within the backoff window: refused at once, without touching the network.
  const auto start = Clock::now();
  auto again = pool.Run(TargetFor(host_), "true", milliseconds(2000));
  EXPECT_LT(Clock::now() - start, milliseconds(100));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kUnavailable);
  EXPECT_THAT(again.status().message(), HasSubstr("backoff"));

  host_.Restart();
  EXPECT_TRUE(WaitFor([&] { return pool.Run(TargetFor(host_), "true", milliseconds(5000)).ok(); },
                      milliseconds(10000)));
  EXPECT_EQ(pool.ConnectsForTest("m1"), 1);
}

TEST(SshPoolFrozenTest, FrozenMachineFailsWithinItsBoundWhileAnotherIsServed) {
  TestCluster cluster(2);
  SshHost& frozen = cluster.host(0);
  SshHost& healthy = cluster.host(1);
  SshOptions options;
  options.known_hosts = cluster.known_hosts_path();
  options.connect_timeout_ms = 1000;
  options.command_timeout_ms = 2000;
  SshPool pool(options);
  // Establish both sessions with a generous bound first.
  ASSERT_TRUE(pool.Run(TargetFor(frozen, "frozen"), "true", milliseconds(20000)).ok());
  ASSERT_TRUE(pool.Run(TargetFor(healthy, "healthy"), "true", milliseconds(20000)).ok());

  frozen.Kill(SIGSTOP);
  const auto start = Clock::now();
  std::atomic<bool> frozen_done{false};
  auto frozen_run = std::async(std::launch::async, [&] {
    auto r = pool.Run(TargetFor(frozen, "frozen"), "true", milliseconds(2000));
    frozen_done = true;
    return r;
  });
  // The healthy machine answers while the frozen one's Run is in flight.
  int served_while_frozen_pending = 0;
  for (int i = 0; i < 5; ++i) {
    auto r =
        pool.Run(TargetFor(healthy, "healthy"), "echo " + std::to_string(i), milliseconds(5000));
    ASSERT_TRUE(r.ok()) << Describe(r);
    EXPECT_EQ(r->out, std::to_string(i) + "\n");
    if (!frozen_done) ++served_while_frozen_pending;
  }
  EXPECT_GT(served_while_frozen_pending, 0);

  auto r = frozen_run.get();
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().code(), AnyOf(Code::kTimeout, Code::kUnavailable));
  EXPECT_LT(elapsed, milliseconds(5000)) << r.status().ToString();

  // A pool that never saw the machine fails within the connect bound too.
  SshPool fresh(options);
  const auto fresh_start = Clock::now();
  auto f = fresh.Run(TargetFor(frozen, "frozen"), "true", milliseconds(2000));
  EXPECT_FALSE(f.ok());
  EXPECT_LT(Clock::now() - fresh_start, milliseconds(5000));

  frozen.Kill(SIGCONT);
}

}  // namespace
}  // namespace clusterctl::reconcilers

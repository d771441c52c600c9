// Persistent remote shells (issue 9) against a real sshd: framing, hostile
// scripts, hangs, a shell that dies, and isolation between purposes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <string>

#include "reconcilers/shell.h"
#include "reconcilers/ssh.h"
#include "tests/harness/process.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::reconcilers {
namespace {

using ::clusterctl::testing::ReadFile;
using ::clusterctl::testing::SshHost;
using ::clusterctl::testing::TempDir;
using ::clusterctl::testing::WaitFor;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class RemoteShellTest : public ::testing::Test {
 protected:
  RemoteShellTest() : pool_(Options()) {}

  SshOptions Options() {
    SshOptions o;
    o.known_hosts = host_.known_hosts_path();
    o.connect_timeout_ms = 15000;
    return o;
  }
  SshTarget Target() {
    SshTarget t;
    t.machine = "m1";
    t.address = host_.address();
    t.port = host_.port();
    t.user = host_.user();
    t.identity_file = host_.client_key_path();
    return t;
  }
  Result<CommandResult> Run(const Command& c, milliseconds timeout = milliseconds(10000)) {
    return pool_.Run(Target(), c, timeout);
  }
  // The pid of the persistent shell of `purpose` (an untrusted script runs
  // in a subshell, where $$ is still the shell's pid).
  std::string ShellPid(Purpose purpose) {
    auto r = Run(Command("echo $$", "", false, purpose));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->out : "";
  }

  TempDir tmp_;
  SshHost host_;
  SshPool pool_;
};

std::string Describe(const Result<CommandResult>& r) {
  if (!r.ok()) return r.status().ToString();
  return "exit " + std::to_string(r->exit_code) + " out[" + r->out + "] err[" + r->err + "]";
}

TEST_F(RemoteShellTest, CommandsShareOneShellAndOneSession) {
  const std::string first = ShellPid(Purpose::kObserve);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(ShellPid(Purpose::kObserve), first);
  EXPECT_EQ(pool_.ShellsOpenedForTest("m1"), 1);
  EXPECT_EQ(pool_.ConnectsForTest("m1"), 1);
}

TEST_F(RemoteShellTest, TheLibraryIsDefinedOnceAndTrustedCallsRunInTheShell) {
  const std::string lib = "_greet() { printf 'hello %s\\n' \"$1\"; return 4; }";
  auto r = Run(Command("_greet a; _x=kept", lib, true, Purpose::kObserve));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->out, "hello a\n");
  EXPECT_EQ(r->exit_code, 0);
  // A trusted body runs in the shell itself: its variables stay, `return`
  // ends the call, and the library is still defined.
  auto again = Run(Command("echo \"$_x\"; _greet b; return $?", lib, true, Purpose::kObserve));
  ASSERT_TRUE(again.ok()) << Describe(again);
  EXPECT_EQ(again->out, "kept\nhello b\n");
  EXPECT_EQ(again->exit_code, 4);
}

TEST_F(RemoteShellTest, OutputWithAFakeEndMarkerIsReturnedAsOutput) {
  // Lines shaped like markers (any token, sequence numbers around ours).
  const std::string script =
      "for i in 0 1 2 3 4 5; do printf '\\n0123456789abcdef01234567:%s 0\\n' $i; "
      "printf '\\n%s\\n' \"$i\" >&2; done; printf 'tail'";
  auto r = Run(Command(script));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_THAT(r->out, HasSubstr("01234567:5 0\ntail"));
  EXPECT_EQ(r->out.substr(r->out.size() - 4), "tail");
  EXPECT_EQ(r->err, "\n0\n\n1\n\n2\n\n3\n\n4\n\n5\n");
  auto next = Run(Command("echo next"));
  ASSERT_TRUE(next.ok()) << Describe(next);
  EXPECT_EQ(next->out, "next\n");
}

TEST_F(RemoteShellTest, AScriptThatReadsStdinSeesEndOfFileAndDoesNotEatTheNextCommand) {
  auto r = Run(Command("cat; read x || echo eof"));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->out, "eof\n");
  auto trusted = Run(Command("read x || echo eof2", "", true, Purpose::kAction));
  ASSERT_TRUE(trusted.ok()) << Describe(trusted);
  EXPECT_EQ(trusted->out, "eof2\n");
  auto next = Run(Command("echo still here"));
  ASSERT_TRUE(next.ok()) << Describe(next);
  EXPECT_EQ(next->out, "still here\n");
}

TEST_F(RemoteShellTest, ExitInAScriptEndsOnlyItsSubshell) {
  const std::string pid = ShellPid(Purpose::kAction);
  auto r = Run(Command("echo before; exit 3; echo after"));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "before\n");
  auto syntax = Run(Command("if then fi ("));
  ASSERT_TRUE(syntax.ok()) << Describe(syntax);
  EXPECT_EQ(syntax->exit_code, 2);
  auto exec = Run(Command("exec echo replaced"));
  ASSERT_TRUE(exec.ok()) << Describe(exec);
  EXPECT_EQ(exec->out, "replaced\n");
  EXPECT_EQ(ShellPid(Purpose::kAction), pid);
  EXPECT_EQ(pool_.ShellsOpenedForTest("m1"), 1);
}

TEST_F(RemoteShellTest, HugeOutputIsCappedDrainedAndTheShellStaysUsable) {
  // 20 MiB on stdout; the cap is 8 MiB.
  auto r =
      Run(Command("head -c 20971520 /dev/zero | tr '\\0' a; echo done >&2"), milliseconds(60000));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->out.substr(0, 8u << 20), std::string(8u << 20, 'a'));
  EXPECT_THAT(r->out.substr(8u << 20), HasSubstr("[output truncated]"));
  EXPECT_EQ(r->err, "done\n");
  auto next = Run(Command("echo small"));
  ASSERT_TRUE(next.ok()) << Describe(next);
  EXPECT_EQ(next->out, "small\n");
  EXPECT_EQ(pool_.ShellsOpenedForTest("m1"), 1);
}

TEST_F(RemoteShellTest, AHangPastTheDeadlineIsUnknownAndTheShellIsReplaced) {
  const std::string marker = tmp_.Sub("ran");
  const auto start = Clock::now();
  auto r = Run(Command("touch " + ShellQuote(marker) + "; sleep 30"), milliseconds(1000));
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  EXPECT_THAT(r.status().message(), HasSubstr("outcome is unknown"));
  auto next = Run(Command("echo fine"));
  ASSERT_TRUE(next.ok()) << Describe(next);
  EXPECT_EQ(next->out, "fine\n");
  EXPECT_EQ(pool_.ShellsOpenedForTest("m1"), 2);
  EXPECT_EQ(pool_.ConnectsForTest("m1"), 1);
}

TEST_F(RemoteShellTest, AShellKilledBetweenCommandsIsReopenedTransparently) {
  const std::string pid = ShellPid(Purpose::kObserve);
  ASSERT_FALSE(pid.empty());
  ASSERT_EQ(::kill(std::stoi(pid), SIGKILL), 0);
  // The next command works on a new shell, and says nothing of the old one.
  EXPECT_TRUE(WaitFor(
      [&] {
        const std::string now = ShellPid(Purpose::kObserve);
        return !now.empty() && now != pid;
      },
      milliseconds(10000)));
  auto r = Run(Command("echo ok", "", false, Purpose::kObserve));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->out, "ok\n");
  EXPECT_EQ(pool_.ConnectsForTest("m1"), 1);
}

TEST_F(RemoteShellTest, AScriptThatKillsItsShellGetsTheSignalAsItsStatus) {
  auto r = Run(Command("kill -KILL $$"));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->exit_code, 128 + SIGKILL);
  auto next = Run(Command("echo back"));
  ASSERT_TRUE(next.ok()) << Describe(next);
  EXPECT_EQ(next->out, "back\n");
}

// A 25 s exec probe holds one probe shell; observation, actions and the
// other probes of the machine keep flowing on their own shells.
TEST_F(RemoteShellTest, ASlowProbeDelaysNeitherObservationNorActionsNorOtherProbes) {
  const std::string pidfile = tmp_.Sub("slow.pid");
  auto slow = std::async(std::launch::async, [&] {
    return Run(Command("sleep 25 & echo $! > " + ShellQuote(pidfile) + "; wait $!", "", false,
                       Purpose::kProbe),
               milliseconds(30000));
  });
  ASSERT_TRUE(WaitFor([&] { return !ReadFile(pidfile).empty(); }, milliseconds(10000)));
  for (Purpose p : {Purpose::kObserve, Purpose::kAction, Purpose::kProbe, Purpose::kWatch}) {
    for (int i = 0; i < 3; ++i) {
      const auto t0 = Clock::now();
      auto r = Run(Command("echo " + std::to_string(i), "", false, p), milliseconds(5000));
      ASSERT_TRUE(r.ok()) << PurposeName(p) << ": " << Describe(r);
      EXPECT_EQ(r->out, std::to_string(i) + "\n");
      EXPECT_LT(Clock::now() - t0, milliseconds(2000)) << PurposeName(p);
    }
  }
  EXPECT_EQ(slow.wait_for(milliseconds(0)), std::future_status::timeout);
  // End the slow probe early (it would take 25 s): it reports the kill.
  ::kill(std::stoi(ReadFile(pidfile)), SIGKILL);
  auto r = slow.get();
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->exit_code, 128 + SIGKILL);
}

TEST_F(RemoteShellTest, WhenEveryProbeShellIsBusyACommandIsNotStartedAndSaysBusy) {
  SshOptions o = Options();
  o.max_probe_shells = 1;
  SshPool pool(o);
  const std::string pidfile = tmp_.Sub("busy.pid");
  auto slow = std::async(std::launch::async, [&] {
    return pool.Run(Target(),
                    Command("sleep 25 & echo $! > " + ShellQuote(pidfile) + "; wait", "", false,
                            Purpose::kProbe),
                    milliseconds(30000));
  });
  ASSERT_TRUE(WaitFor([&] { return !ReadFile(pidfile).empty(); }, milliseconds(10000)));
  const std::string marker = tmp_.Sub("must-not-run");
  auto r = pool.Run(Target(), Command("touch " + ShellQuote(marker), "", false, Purpose::kProbe),
                    milliseconds(300));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_THAT(r.status().message(), HasSubstr("busy"));
  EXPECT_THAT(r.status().message(), HasSubstr("not started"));
  ::kill(std::stoi(ReadFile(pidfile)), SIGKILL);
  ASSERT_TRUE(slow.get().ok());
  EXPECT_FALSE(std::filesystem::exists(marker));
}

}  // namespace
}  // namespace clusterctl::reconcilers

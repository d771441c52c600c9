// clusterctl logs end to end: the built binary reads the log of a real
// clusterctl-test-service on two real sshd hosts (the DemoCluster), with
// strict host key checking. The systemd path has no systemd here: its
// journalctl command is checked as text and run through a real sh against a
// fake journalctl that prints its arguments. Plus the pure pieces: the
// terminal escaping and the quoting of hostile paths.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "base/utf8.h"
#include "reconcilers/driver_scripts.h"
#include "tests/harness/demo_cluster.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl {
namespace {

using std::chrono::milliseconds;
using testing::DemoCluster;
using testing::ReadFile;
using testing::WriteFile;

// A service on two machines whose test service prints whatever a test
// renames to <stateDir>/echo/say (its working directory).
class LogsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    demo_.repo().Write("services/echo.yaml",
                       "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: echo}\n"
                       "spec:\n  machines: [jetson, worker-tools]\n  process:\n"
                       "    command: [\"" +
                           testing::TestServiceBin() +
                           "\", --echo-file, say]\n  stopTimeoutSeconds: 5\n");
    demo_.repo().CommitAll("echo on two machines");
    demo_.repo().Git("push -q origin main");
    std::string out;
    ASSERT_EQ(demo_.Cli("apply --service echo", &out), 0) << out;
    for (const char* m : {"jetson", "worker-tools"}) {
      ASSERT_TRUE(LogHas(m, "clusterctl-test-service pid=")) << m;
    }
  }

  std::string Dir(const std::string& machine) { return demo_.host(machine).state_dir() + "/echo"; }

  // Makes the service on `machine` print `text` (atomically: a rename).
  void Say(const std::string& machine, const std::string& text) {
    WriteFile(Dir(machine) + "/say.tmp", text);
    std::filesystem::rename(Dir(machine) + "/say.tmp", Dir(machine) + "/say");
  }

  // Waits (bounded) until the service's log on `machine` holds `text`.
  bool LogHas(const std::string& machine, const std::string& text) {
    return testing::WaitFor(
        [&] { return ReadFile(Dir(machine) + "/log").find(text) != std::string::npos; },
        milliseconds(10000));
  }

  // Runs `clusterctl logs ARGS`; stdout and stderr apart.
  int Logs(const std::string& args, std::string* out, std::string* err = nullptr) {
    const std::string err_file = tmp_.Sub("stderr");
    // RunShell adds 2>&1 after the command: the subshell keeps them apart.
    const int code =
        testing::RunShell("(" + testing::CliBin() + " --config '" + demo_.config_path() +
                              "' logs " + args + " 2>'" + err_file + "')",
                          out);
    if (err != nullptr) *err = ReadFile(err_file);
    return code;
  }

  // `tail` or `journalctl` processes still running in `machine`'s sshd tree.
  std::vector<pid_t> RemoteLogCommands(const std::string& machine) {
    std::vector<pid_t> out;
    for (pid_t p : testing::Descendants(demo_.host(machine).pid())) {
      std::string cmd = ReadFile("/proc/" + std::to_string(p) + "/cmdline");
      if (cmd.rfind("tail", 0) == 0 || cmd.find("journalctl") != std::string::npos) {
        out.push_back(p);
      }
    }
    return out;
  }

  DemoCluster demo_;
  testing::TempDir tmp_;
};

TEST_F(LogsE2eTest, PrintsTheLastLinesOfARunningService) {
  Say("jetson", "line 1\nline 2\nline 3\nline 4\nline 5\n");
  ASSERT_TRUE(LogHas("jetson", "line 5\n"));
  std::string out, err;
  ASSERT_EQ(Logs("echo --machine jetson --lines 3", &out, &err), 0) << out << err;
  EXPECT_EQ(out, "line 3\nline 4\nline 5\n");  // one machine: no prefix
  EXPECT_EQ(err, "");

  // Default: the last 100 lines, from the service's first.
  ASSERT_EQ(Logs("echo --machine jetson", &out), 0) << out;
  EXPECT_EQ(out.rfind("clusterctl-test-service pid=", 0), 0u) << out;
  EXPECT_NE(out.find("line 1\nline 2\n"), std::string::npos) << out;
}

TEST_F(LogsE2eTest, PrefixesEachLineWithItsMachineWhenThereAreSeveral) {
  Say("jetson", "from jetson\n");
  Say("worker-tools", "from worker-tools\n");
  ASSERT_TRUE(LogHas("jetson", "from jetson\n"));
  ASSERT_TRUE(LogHas("worker-tools", "from worker-tools\n"));
  std::string out, err;
  ASSERT_EQ(Logs("echo --lines 1", &out, &err), 0) << out << err;
  // Aligned after the longest name; order is arrival order.
  EXPECT_NE(out.find("jetson:       from jetson\n"), std::string::npos) << out;
  EXPECT_NE(out.find("worker-tools: from worker-tools\n"), std::string::npos) << out;
  EXPECT_EQ(out.size(), std::string("jetson:       from jetson\n").size() +
                            std::string("worker-tools: from worker-tools\n").size())
      << out;

  ASSERT_EQ(Logs("echo --machine worker-tools --lines 1", &out), 0) << out;
  EXPECT_EQ(out, "from worker-tools\n");

  ASSERT_EQ(Logs("echo --lines 1 --json", &out), 0) << out;
  EXPECT_NE(out.find(R"({"line":"from jetson","machine":"jetson"})"), std::string::npos) << out;
}

TEST_F(LogsE2eTest, FollowShowsALinePrintedAfterTheCommandStartedWithinOneSecond) {
  const std::string out_file = tmp_.Sub("follow.out");
  testing::Process cli({testing::CliBin(), "--config", demo_.config_path(), "logs", "echo", "-f"},
                       testing::OutputTo(out_file));
  // Both streams are up once each machine's earlier lines arrived.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        const std::string o = ReadFile(out_file);
        return o.find("jetson:       clusterctl-test-service pid=") != std::string::npos &&
               o.find("worker-tools: clusterctl-test-service pid=") != std::string::npos;
      },
      milliseconds(10000)))
      << ReadFile(out_file);

  for (const char* machine : {"worker-tools", "jetson"}) {
    const std::string line = std::string("printed after the start on ") + machine;
    const auto said = std::chrono::steady_clock::now();
    Say(machine, line + "\n");
    const std::string expected = std::string(machine) + ":" +
                                 std::string(13 - std::string(machine).size(), ' ') + line + "\n";
    EXPECT_TRUE(testing::WaitFor(
        [&] { return ReadFile(out_file).find(expected) != std::string::npos; }, milliseconds(1000)))
        << "not shown within 1 s: " << ReadFile(out_file);
    EXPECT_LT(std::chrono::steady_clock::now() - said, milliseconds(1000));
  }

  // Ctrl-C: exit 0, and no tail is left running on the machines.
  ASSERT_FALSE(RemoteLogCommands("jetson").empty());
  ASSERT_FALSE(RemoteLogCommands("worker-tools").empty());
  cli.Kill(SIGINT);
  EXPECT_EQ(cli.WaitForExit(milliseconds(5000)), std::optional<int>(0)) << ReadFile(out_file);
  for (const char* machine : {"jetson", "worker-tools"}) {
    EXPECT_TRUE(
        testing::WaitFor([&] { return RemoteLogCommands(machine).empty(); }, milliseconds(5000)))
        << machine;
  }
}

TEST_F(LogsE2eTest, UnknownServiceOrMachineIsAnErrorNamingWhatExists) {
  std::string out, err;
  EXPECT_EQ(Logs("nope", &out, &err), 1);
  EXPECT_EQ(out, "");
  EXPECT_NE(err.find("clusterctl: error: no service \"nope\" in revision "), std::string::npos)
      << err;
  EXPECT_NE(err.find("echo"), std::string::npos) << err;
  EXPECT_NE(err.find("tools-server"), std::string::npos) << err;

  EXPECT_EQ(Logs("echo --machine nowhere", &out, &err), 1);
  EXPECT_NE(err.find("no machine \"nowhere\""), std::string::npos) << err;
  EXPECT_NE(err.find("machines: "), std::string::npos) << err;

  EXPECT_EQ(Logs("echo --machine cpu-coordinator", &out, &err), 1);
  EXPECT_NE(err.find("service echo is not placed on machine cpu-coordinator"), std::string::npos)
      << err;
  EXPECT_NE(err.find("it is placed on jetson, worker-tools"), std::string::npos) << err;

  EXPECT_EQ(Logs("echo --since 10m", &out, &err), 1);
  EXPECT_NE(err.find("--since needs timestamps"), std::string::npos) << err;
  EXPECT_EQ(Logs("echo --since yesterday", &out, &err), 1);
  EXPECT_NE(err.find("--since"), std::string::npos) << err;
}

TEST_F(LogsE2eTest, ControlCharactersTheServicePrintsAreEscaped) {
  Say("jetson", "evil \x1b]0;owned\x07\x1b[31mred\x1b[0m\tcr\rback\b c1 \xc2\x9b bad \xff end\n");
  ASSERT_TRUE(LogHas("jetson", " end\n"));
  std::string out;
  ASSERT_EQ(Logs("echo --machine jetson --lines 1", &out), 0) << out;
  EXPECT_EQ(out,
            "evil \\x1b]0;owned\\x07\\x1b[31mred\\x1b[0m\tcr\\x0dback\\x08 c1 \\u009b bad \\xff "
            "end\n");
}

TEST_F(LogsE2eTest, AnUnreachableMachineIsReportedWhileTheOthersArePrinted) {
  Say("jetson", "still here\n");
  ASSERT_TRUE(LogHas("jetson", "still here\n"));
  demo_.host("worker-tools").Stop();
  std::string out, err;
  EXPECT_EQ(Logs("echo --lines 1", &out, &err), 1);
  EXPECT_EQ(out, "jetson:       still here\n");
  EXPECT_NE(err.find("clusterctl: error: worker-tools: ssh worker-tools"), std::string::npos)
      << err;
}

// --- Pure pieces and the systemd command -----------------------------------

desired_state::Machine MachineAt(const std::string& state_dir) {
  desired_state::Machine m;
  m.name = "m1";
  m.state_dir = state_dir;
  return m;
}

desired_state::Service SystemdService(const std::string& unit, bool sudo) {
  desired_state::Service s;
  s.name = "web";
  s.driver = desired_state::DriverKind::kSystemd;
  s.systemd.unit = unit;
  s.systemd.sudo = sudo;
  return s;
}

TEST(LogScriptTest, SystemdReadsTheJournalOfTheUnit) {
  const auto m = MachineAt("/var/lib/clusterctl");
  reconcilers::LogRequest r;
  EXPECT_EQ(*reconcilers::LogScript(m, SystemdService("web.service", false), r),
            "exec journalctl '--unit=web.service' --no-pager -o cat '--lines=100' </dev/null\n");
  r.lines = 20;
  r.follow = true;
  r.since_ago_s = 600;
  EXPECT_EQ(*reconcilers::LogScript(m, SystemdService("web.service", true), r),
            "exec sudo -n journalctl '--unit=web.service' --no-pager -o cat '--lines=20' "
            "'--since=-600s' --follow </dev/null\n");
  r = {};
  r.lines = -1;
  r.since_epoch_s = 1764800000;
  EXPECT_EQ(*reconcilers::LogScript(m, SystemdService("web.service", false), r),
            "exec journalctl '--unit=web.service' --no-pager -o cat '--lines=all' "
            "'--since=@1764800000' </dev/null\n");
}

TEST(LogScriptTest, AHostileUnitNameReachesJournalctlAsOneArgument) {
  testing::TempDir tmp;
  // A fake journalctl that prints its arguments, and a sudo that runs the rest.
  WriteFile(tmp.Sub("bin/journalctl"), "#!/bin/sh\nfor a; do printf '<%s>\\n' \"$a\"; done\n");
  WriteFile(tmp.Sub("bin/sudo"), "#!/bin/sh\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n");
  std::filesystem::permissions(tmp.Sub("bin/journalctl"), std::filesystem::perms::owner_all);
  std::filesystem::permissions(tmp.Sub("bin/sudo"), std::filesystem::perms::owner_all);
  const std::string unit = "x'; touch " + tmp.Sub("pwned") + "; echo '$(id)`id` \"";
  reconcilers::LogRequest r;
  r.follow = true;
  auto script = reconcilers::LogScript(MachineAt("/x"), SystemdService(unit, true), r);
  ASSERT_TRUE(script.ok());
  WriteFile(tmp.Sub("script"), *script);
  std::string out;
  ASSERT_EQ(testing::RunShell(
                "PATH='" + tmp.Sub("bin") + "':\"$PATH\" sh '" + tmp.Sub("script") + "'", &out),
            0)
      << out;
  EXPECT_EQ(out, "<--unit=" + unit + ">\n<--no-pager>\n<-o>\n<cat>\n<--lines=100>\n<--follow>\n");
  EXPECT_FALSE(std::filesystem::exists(tmp.Sub("pwned")));
}

TEST(LogScriptTest, ProcessDriverReadsItsLogFileAndRefusesSince) {
  testing::TempDir tmp;
  // A state directory whose name would run commands if it were not quoted.
  const std::string state = tmp.Sub("st'ate $(touch pwned) `touch pwned2`");
  desired_state::Service s;
  s.name = "web";
  WriteFile(state + "/web/log.1", "old 1\nold 2\n");
  WriteFile(state + "/web/log", "new 1\nnew 2\n");
  reconcilers::LogRequest r;
  r.lines = 3;
  auto script = reconcilers::LogScript(MachineAt(state), s, r);
  ASSERT_TRUE(script.ok());
  WriteFile(tmp.Sub("script"), *script);
  std::string out;
  ASSERT_EQ(testing::RunShell("cd '" + tmp.path() + "' && sh script", &out), 0) << out;
  EXPECT_EQ(out, "old 2\nnew 1\nnew 2\n");  // what log lacks comes from log.1
  EXPECT_FALSE(std::filesystem::exists(tmp.Sub("pwned")));
  EXPECT_FALSE(std::filesystem::exists(tmp.Sub("pwned2")));

  std::filesystem::remove(state + "/web/log");
  EXPECT_EQ(testing::RunShell("cd '" + tmp.path() + "' && sh script", &out), 3);
  EXPECT_NE(out.find("no log at "), std::string::npos) << out;

  r.since_ago_s = 600;
  auto refused = reconcilers::LogScript(MachineAt(state), s, r);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kInvalid);
  EXPECT_NE(refused.status().message().find("--since needs timestamps"), std::string::npos);
}

TEST(EscapeForTerminalTest, EscapesControlsButTabAndKeepsText) {
  EXPECT_EQ(EscapeForTerminal("plain text, back\\slash, caf\xc3\xa9 \xe2\x9c\x93"),
            "plain text, back\\slash, caf\xc3\xa9 \xe2\x9c\x93");
  EXPECT_EQ(EscapeForTerminal("a\tb"), "a\tb");
  EXPECT_EQ(EscapeForTerminal(std::string("\x1b[2J\r\n\x7f\0", 8)), "\\x1b[2J\\x0d\\x0a\\x7f\\x00");
  EXPECT_EQ(EscapeForTerminal("\xc2\x85\xc2\x9f\xc2\xa0"), "\\u0085\\u009f\xc2\xa0");
  EXPECT_EQ(EscapeForTerminal("\xff\xc3"), "\\xff\\xc3");
}

}  // namespace
}  // namespace clusterctl

// The process and systemd drivers on real machines: real sshd hosts, real
// service processes (the project's test service), real signals.
#include "reconcilers/driver.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <set>

#include "desired-state/spec_hash.h"
#include "reconcilers/driver_scripts.h"
#include "reconcilers/shell.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"
#include "tests/reconcilers/proc_scan.h"

namespace clusterctl::reconcilers {
namespace {

using desired_state::DriverKind;
using desired_state::Machine;
using desired_state::Service;
using std::chrono::milliseconds;
using testing::WaitFor;

Machine MachineOf(testing::TestCluster& cluster, size_t i) {
  testing::SshHost& h = cluster.host(i);
  Machine m;
  m.name = "m" + std::to_string(i + 1);
  m.address = h.address();
  m.ssh.port = h.port();
  m.ssh.user = h.user();
  m.ssh.identity_file = cluster.client_key_path();
  m.state_dir = h.state_dir();
  return m;
}

Service TestService(const std::string& name, int port, std::vector<std::string> extra = {}) {
  Service s;
  s.name = name;
  s.driver = DriverKind::kProcess;
  s.process.command = {testing::TestServiceBin(), "--host", "127.0.0.1", "--port",
                       std::to_string(port)};
  s.process.command.insert(s.process.command.end(), extra.begin(), extra.end());
  s.stop_timeout_seconds = 5;
  return s;
}

// The pid in a driver outcome ("... started pid 4242").
pid_t StartedPid(const std::string& outcome) {
  const size_t at = outcome.rfind("started pid ");
  return at == std::string::npos ? -1 : static_cast<pid_t>(std::stol(outcome.substr(at + 12)));
}

// A copy of /bin/sleep at `path` (a program name of our choosing).
void CopySleep(const std::string& path) {
  std::filesystem::copy_file("/bin/sleep", path);
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
}

class DriverTest : public ::testing::Test {
 protected:
  DriverTest() : cluster_(2) {
    SshOptions opts;
    opts.known_hosts = cluster_.known_hosts_path();
    opts.connect_timeout_ms = 5000;
    pool_ = std::make_unique<SshPool>(opts);
    driver_ = std::make_unique<ShellDriver>(pool_.get());
  }

  ObservedInstance ObserveOne(const Machine& m, const Service& s) {
    auto obs = driver_->Observe(m, {&s});
    EXPECT_TRUE(obs.ok()) << obs.status().ToString();
    if (!obs.ok() || obs->instances.empty()) return {};
    return obs->instances[0];
  }

  testing::TestCluster cluster_;
  std::unique_ptr<SshPool> pool_;
  std::unique_ptr<ShellDriver> driver_;
};

TEST_F(DriverTest, StartsObservesStopsAndRestartsAProcessOnTwoMachines) {
  for (size_t i = 0; i < 2; ++i) {
    Machine m = MachineOf(cluster_, i);
    const int port = testing::PickFreePort();
    Service s = TestService("web", port);
    const std::string hash = desired_state::SpecHash(s);

    ObservedInstance before = ObserveOne(m, s);
    EXPECT_EQ(before.state, ObservedState::kStopped);
    EXPECT_EQ(before.detail, "never-started");

    auto started = driver_->Start(m, s, hash);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    EXPECT_EQ(started->rfind("started pid ", 0), 0u) << *started;
    ASSERT_TRUE(
        WaitFor([&] { return testing::CanConnect("127.0.0.1", port); }, milliseconds(10000)));

    ObservedInstance running = ObserveOne(m, s);
    EXPECT_EQ(running.state, ObservedState::kRunning);
    EXPECT_GT(running.pid, 0);
    EXPECT_TRUE(testing::ProcessAlive(static_cast<pid_t>(running.pid)));
    EXPECT_EQ(running.spec_hash, hash);
    EXPECT_EQ(running.restarts, 1);
    EXPECT_NEAR(static_cast<double>(running.started_at), static_cast<double>(time(nullptr)), 5.0);

    // Starting again is a no-op.
    auto again = driver_->Start(m, s, hash);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->rfind("already running", 0), 0u) << *again;

    auto restarted = driver_->Restart(m, s, hash);
    ASSERT_TRUE(restarted.ok()) << restarted.status().ToString();
    EXPECT_NE(restarted->find("terminated by SIGTERM, then started pid"), std::string::npos)
        << *restarted;
    ObservedInstance after = ObserveOne(m, s);
    EXPECT_EQ(after.state, ObservedState::kRunning);
    EXPECT_NE(after.pid, running.pid);
    EXPECT_EQ(after.restarts, 2);
    EXPECT_FALSE(testing::ProcessAlive(static_cast<pid_t>(running.pid)));

    auto stopped = driver_->Stop(m, s);
    ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
    EXPECT_EQ(*stopped, "terminated by SIGTERM");
    EXPECT_TRUE(WaitFor([&] { return !testing::ProcessAlive(static_cast<pid_t>(after.pid)); },
                        milliseconds(5000)));
    ObservedInstance down = ObserveOne(m, s);
    EXPECT_EQ(down.state, ObservedState::kStopped);
    EXPECT_EQ(down.detail, "stopped");
    auto stopped_again = driver_->Stop(m, s);
    ASSERT_TRUE(stopped_again.ok());
    EXPECT_EQ(*stopped_again, "was not running");
  }
}

TEST_F(DriverTest, KillsAServiceThatIgnoresSigtermAfterStopTimeout) {
  Machine m = MachineOf(cluster_, 0);
  const int port = testing::PickFreePort();
  Service s = TestService("stubborn", port, {"--ignore-sigterm"});
  s.stop_timeout_seconds = 1;
  ASSERT_TRUE(driver_->Start(m, s, "h").ok());
  ASSERT_TRUE(WaitFor([&] { return testing::CanConnect("127.0.0.1", port); }, milliseconds(10000)));
  const int64_t pid = ObserveOne(m, s).pid;
  auto start = std::chrono::steady_clock::now();
  auto stopped = driver_->Stop(m, s);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  EXPECT_EQ(*stopped, "killed by SIGKILL after 1 s");
  // It waited the stop timeout before killing.
  EXPECT_GE(std::chrono::duration_cast<milliseconds>(took).count(), 1000);
  EXPECT_FALSE(testing::ProcessAlive(static_cast<pid_t>(pid)));
}

TEST_F(DriverTest, ACrashedServiceIsFailedNotStopped) {
  Machine m = MachineOf(cluster_, 1);
  const int port = testing::PickFreePort();
  Service s = TestService("crashy", port);
  ASSERT_TRUE(driver_->Start(m, s, "h").ok());
  ASSERT_TRUE(WaitFor([&] { return testing::CanConnect("127.0.0.1", port); }, milliseconds(10000)));
  const pid_t pid = static_cast<pid_t>(ObserveOne(m, s).pid);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return ObserveOne(m, s).state == ObservedState::kFailed; },
                      milliseconds(10000)));
  EXPECT_EQ(ObserveOne(m, s).detail, "exited");
}

TEST_F(DriverTest, ARecycledPidIsNotMistakenForTheService) {
  Machine m = MachineOf(cluster_, 0);
  const int port = testing::PickFreePort();
  Service s = TestService("recycled", port);
  ASSERT_TRUE(driver_->Start(m, s, "h").ok());
  ASSERT_TRUE(WaitFor([&] { return testing::CanConnect("127.0.0.1", port); }, milliseconds(10000)));
  const pid_t pid = static_cast<pid_t>(ObserveOne(m, s).pid);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return ObserveOne(m, s).state == ObservedState::kFailed; },
                      milliseconds(10000)));
  // The kernel hands the pid to an unrelated process: simulate it by pointing
  // the pid file at a live process that started at another time.
  testing::Process other({"/bin/sleep", "60"});
  testing::WriteFile(ServiceStateDir(m, s.name) + "/pid", std::to_string(other.pid()) + "\n");
  ObservedInstance seen = ObserveOne(m, s);
  EXPECT_EQ(seen.state, ObservedState::kFailed);
  EXPECT_EQ(seen.detail, "exited; pid " + std::to_string(other.pid()) + " is now another process");
  // Stopping must not signal the unrelated process.
  auto stopped = driver_->Stop(m, s);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(*stopped, "was not running");
  EXPECT_TRUE(other.Running());
  // Nor does a start take it for the service, or end its process group.
  auto started = driver_->Start(m, s, "h");
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  EXPECT_EQ(started->rfind("started pid ", 0), 0u) << *started;
  EXPECT_NE(StartedPid(*started), other.pid());
  EXPECT_TRUE(other.Running());
  EXPECT_EQ(ObserveOne(m, s).state, ObservedState::kRunning);
  ASSERT_TRUE(driver_->Stop(m, s).ok());
  EXPECT_TRUE(other.Running());
}

TEST_F(DriverTest, AProgramWhoseNameLooksLikeStatFieldsIsObservedRight) {
  Machine m = MachineOf(cluster_, 0);
  testing::TempDir tmp;
  // comm "a) Z 9) b": spaces, ')' and a fake zombie state, all before the
  // real fields of /proc/<pid>/stat.
  const std::string program = tmp.Sub("a) Z 9) b");
  CopySleep(program);
  Service s;
  s.name = "odd";
  s.driver = DriverKind::kProcess;
  s.process.command = {program, "300"};
  s.stop_timeout_seconds = 5;
  auto started = driver_->Start(m, s, "h");
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  const pid_t pid = StartedPid(*started);
  ASSERT_TRUE(WaitFor(
      [&] {
        return testing::ReadFile("/proc/" + std::to_string(pid) + "/stat").find("(a) Z 9) b) S") !=
               std::string::npos;
      },
      milliseconds(10000)));

  ObservedInstance seen = ObserveOne(m, s);
  EXPECT_EQ(seen.state, ObservedState::kRunning);
  EXPECT_EQ(seen.pid, pid);
  EXPECT_NEAR(static_cast<double>(seen.started_at), static_cast<double>(time(nullptr)), 5.0);
  auto again = driver_->Start(m, s, "h");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, "already running (pid " + std::to_string(pid) + ")");

  auto stopped = driver_->Stop(m, s);
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  EXPECT_EQ(*stopped, "terminated by SIGTERM");
  EXPECT_FALSE(testing::ProcessAlive(pid));
  EXPECT_EQ(ObserveOne(m, s).state, ObservedState::kStopped);
}

// A wrapper whose child ignores SIGTERM: the leader dies at once, the child
// lives on in the group.
Service Wrapper(const std::string& name) {
  Service s;
  s.name = name;
  s.driver = DriverKind::kProcess;
  s.process.command = {"/bin/sh", "-c", "(trap '' TERM; exec sleep 300) & wait"};
  s.stop_timeout_seconds = 1;
  return s;
}

TEST_F(DriverTest, AStopEndsTheWholeProcessGroupNotOnlyItsLeader) {
  Machine m = MachineOf(cluster_, 0);
  Service s = Wrapper("wrapper");
  auto started = driver_->Start(m, s, "h");
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  const pid_t pid = StartedPid(*started);
  // The child has set its trap once it runs sleep.
  ASSERT_TRUE(WaitFor([&] { return testing::GroupRuns(pid, "sleep"); }, milliseconds(10000)));
  ASSERT_EQ(testing::LiveGroupMembers(pid).size(), 2u);

  auto stopped = driver_->Stop(m, s);
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  EXPECT_EQ(*stopped, "killed by SIGKILL after 1 s");
  EXPECT_EQ(testing::LiveGroupMembers(pid), std::vector<pid_t>{});
  ObservedInstance down = ObserveOne(m, s);
  EXPECT_EQ(down.state, ObservedState::kStopped);
  EXPECT_EQ(down.detail, "stopped");
}

TEST_F(DriverTest, AStartEndsWhatACrashedLeaderLeftInItsGroup) {
  Machine m = MachineOf(cluster_, 1);
  Service s = Wrapper("orphans");
  auto first = driver_->Start(m, s, "h");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const pid_t leader = StartedPid(*first);
  ASSERT_TRUE(WaitFor([&] { return testing::GroupRuns(leader, "sleep"); }, milliseconds(10000)));
  ASSERT_EQ(kill(leader, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return ObserveOne(m, s).state == ObservedState::kFailed; },
                      milliseconds(10000)));
  ASSERT_EQ(testing::LiveGroupMembers(leader).size(), 1u);  // the orphaned child

  auto second = driver_->Start(m, s, "h");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->rfind("ended the rest of process group " + std::to_string(leader) +
                              " (killed), then started pid ",
                          0),
            0u)
      << *second;
  EXPECT_EQ(testing::LiveGroupMembers(leader), std::vector<pid_t>{});
  EXPECT_EQ(ObserveOne(m, s).state, ObservedState::kRunning);
  ASSERT_TRUE(driver_->Stop(m, s).ok());
  EXPECT_EQ(testing::LiveGroupMembers(StartedPid(*second)), std::vector<pid_t>{});
}

TEST_F(DriverTest, AStartThatCannotRecordItsPidFailsAndLeavesNothingRunning) {
  Machine m = MachineOf(cluster_, 0);
  testing::TempDir tmp;
  const std::string program = tmp.Sub("unrecorded-sleep");
  CopySleep(program);
  Service s;
  s.name = "unrecorded";
  s.driver = DriverKind::kProcess;
  s.process.command = {program, "300"};
  s.stop_timeout_seconds = 5;
  const std::string dir = ServiceStateDir(m, s.name);
  // The pid file cannot be written: it is a directory.
  std::filesystem::create_directories(dir + "/pid");
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto r = driver_->Start(m, s, "h");
    ASSERT_FALSE(r.ok()) << *r;
    EXPECT_NE(r.status().message().find("exit 23: cannot write " + dir + "/pid"), std::string::npos)
        << r.status().ToString();
    EXPECT_EQ(testing::LiveProcessesWithArgument(program), std::vector<pid_t>{});
    EXPECT_NE(ObserveOne(m, s).state, ObservedState::kRunning);
  }
  // A spec that cannot be written fails the start before anything starts.
  std::filesystem::remove(dir + "/pid");
  std::filesystem::remove(dir + "/spec");
  std::filesystem::create_directories(dir + "/spec");
  auto r = driver_->Start(m, s, "h");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("exit 22: cannot write " + dir + "/spec"), std::string::npos)
      << r.status().ToString();
  EXPECT_EQ(testing::LiveProcessesWithArgument(program), std::vector<pid_t>{});

  // Once the files can be written, starts make exactly one process.
  std::filesystem::remove(dir + "/spec");
  std::set<pid_t> seen;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto ok = driver_->Start(m, s, "h");
    ASSERT_TRUE(ok.ok()) << ok.status().ToString();
    // The pid is recorded before the detached child has exec'd the program:
    // wait (bounded) for the program itself to show in /proc.
    std::vector<pid_t> running;
    testing::WaitFor(
        [&] {
          running = testing::LiveProcessesWithArgument(program);
          return !running.empty();
        },
        std::chrono::seconds(5));
    ASSERT_EQ(running.size(), 1u);
    seen.insert(running[0]);
  }
  EXPECT_EQ(seen.size(), 1u);
  ASSERT_TRUE(driver_->Stop(m, s).ok());
  EXPECT_EQ(testing::LiveProcessesWithArgument(program), std::vector<pid_t>{});
}

TEST_F(DriverTest, HostileValuesReachTheMachineVerbatimAndRunNothingElse) {
  Machine m = MachineOf(cluster_, 0);
  testing::TempDir tmp;
  const std::string marker = tmp.Sub("pwned");
  const std::string hostile = "it's \"quoted\" $(touch " + marker + "); touch " + marker +
                              " `touch " + marker + "` && echo $HOME";
  const std::string dir = tmp.Sub("dir with spaces; $(x) 'q'");
  std::filesystem::create_directories(dir);
  Service s;
  s.name = "quoting";
  s.driver = DriverKind::kProcess;
  const std::string out = tmp.Sub("out.txt");
  // The service writes its argv and one env var into a file, then exits.
  s.process.command = {"/bin/sh", "-c",    "printf '%s\\n' \"$1\" \"$HOSTILE\" \"$PWD\" > \"$2\"",
                       "sh",      hostile, out};
  s.process.env = {{"HOSTILE", hostile}};
  s.process.working_dir = dir;
  auto started = driver_->Start(m, s, "h");
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  ASSERT_TRUE(WaitFor([&] { return testing::ReadFile(out).size() > 0; }, milliseconds(10000)));
  ASSERT_TRUE(WaitFor([&] { return testing::ReadFile(out).find(dir) != std::string::npos; },
                      milliseconds(5000)));
  EXPECT_EQ(testing::ReadFile(out), hostile + "\n" + hostile + "\n" + dir + "\n");
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST_F(DriverTest, ObservesMachineFactsInTheSameRoundTrip) {
  Machine m = MachineOf(cluster_, 0);
  Service a = TestService("a", 1), b = TestService("b", 2);
  auto obs = driver_->Observe(m, {&a, &b});
  ASSERT_TRUE(obs.ok()) << obs.status().ToString();
  EXPECT_TRUE(obs->facts.reachable);
  EXPECT_GT(obs->facts.uptime_seconds, 0);
  EXPECT_GT(obs->facts.mem_total_kb, 0);
  EXPECT_GT(obs->facts.mem_available_kb, 0);
  EXPECT_GT(obs->facts.disk_total_kb, 0);
  EXPECT_GT(obs->facts.cpus, 0);
  ASSERT_EQ(obs->instances.size(), 2u);
  EXPECT_EQ(obs->instances[0].service, "a");
  EXPECT_EQ(obs->instances[1].service, "b");
  EXPECT_EQ(pool_->ConnectsForTest(m.name), 1);
}

TEST_F(DriverTest, AnUnreachableMachineIsAnErrorNotAState) {
  Machine m = MachineOf(cluster_, 1);
  cluster_.host(1).Stop();
  Service s = TestService("web", 1);
  auto obs = driver_->Observe(m, {&s});
  EXPECT_FALSE(obs.ok());
  EXPECT_NE(obs.status().message().find("m2"), std::string::npos) << obs.status().ToString();
}

// A local runner for the systemd driver: the scripts run in a local sh with a
// fake `systemctl` first on PATH (no systemd in the test environment). The
// fake keeps unit state in files, as systemctl would report it.
class LocalRunner : public CommandRunner {
 public:
  explicit LocalRunner(std::string path_prefix) : path_prefix_(std::move(path_prefix)) {}
  Result<CommandResult> Run(const SshTarget&, const Command& command,
                            std::chrono::milliseconds) override {
    const std::string script = command.Standalone();
    CommandResult r;
    std::string out;
    r.exit_code = testing::RunShell(
        "PATH=" + ShellQuote(path_prefix_) + ":$PATH sh -c " + ShellQuote(script) + " 2>/dev/null",
        &out);
    r.out = out;
    return r;
  }

 private:
  std::string path_prefix_;
};

TEST(SystemdDriverTest, StartsStopsAndObservesAUnitWithSystemctl) {
  testing::TempDir tmp;
  const std::string bin = tmp.Sub("bin");
  testing::WriteFile(bin + "/systemctl",
                     "#!/bin/sh\n"
                     "log=" +
                         tmp.Sub("calls") + "; st=" + tmp.Sub("unit-state") +
                         "\n"
                         "echo \"$*\" >> \"$log\"\n"
                         "case $1 in\n"
                         "  start) echo active > \"$st\";;\n"
                         "  stop) echo inactive > \"$st\";;\n"
                         "  show) s=$(cat \"$st\" 2>/dev/null || echo inactive);\n"
                         "        echo ActiveState=$s; echo SubState=running; echo MainPID=777;\n"
                         "        echo ExecMainStartTimestampMonotonic=5000000;;\n"
                         "esac\n");
  ASSERT_EQ(testing::RunShell("chmod +x " + bin + "/systemctl"), 0);
  LocalRunner runner(bin);
  ShellDriver driver(&runner);
  Machine m;
  m.name = "local";
  m.state_dir = tmp.Sub("state");
  Service s;
  s.name = "redis-server";
  s.driver = DriverKind::kSystemd;
  s.systemd.unit = "redis-server.service";

  auto before = driver.Observe(m, {&s});
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->instances[0].state, ObservedState::kStopped);

  auto started = driver.Start(m, s, "hash1");
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  auto after = driver.Observe(m, {&s});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->instances[0].state, ObservedState::kRunning);
  EXPECT_EQ(after->instances[0].pid, 777);
  EXPECT_EQ(after->instances[0].spec_hash, "hash1");
  EXPECT_EQ(after->instances[0].restarts, 1);

  ASSERT_TRUE(driver.Stop(m, s).ok());
  EXPECT_EQ(driver.Observe(m, {&s})->instances[0].state, ObservedState::kStopped);
  EXPECT_EQ(testing::ReadFile(tmp.Sub("calls")),
            "show -p ActiveState -p SubState -p MainPID -p ExecMainStartTimestampMonotonic "
            "redis-server.service\n"
            "start redis-server.service\n"
            "show -p ActiveState -p SubState -p MainPID -p ExecMainStartTimestampMonotonic "
            "redis-server.service\n"
            "stop redis-server.service\n"
            "show -p ActiveState -p SubState -p MainPID -p ExecMainStartTimestampMonotonic "
            "redis-server.service\n");
}

TEST(DriverScriptsTest, SudoIsUsedOnlyWhenAsked) {
  Machine m;
  m.name = "x";
  m.state_dir = "/var/lib/clusterctl/";
  Service s;
  s.name = "u";
  s.driver = DriverKind::kSystemd;
  s.systemd.unit = "u.service";
  EXPECT_EQ(StartScript(m, s, "h").find("sudo"), std::string::npos);
  s.systemd.sudo = true;
  EXPECT_NE(StartScript(m, s, "h").find("sudo -n systemctl start u.service"), std::string::npos);
  Service p;
  p.name = "p";
  p.process.command = {"/bin/true"};
  p.process.user = "svc";
  EXPECT_NE(StartScript(m, p, "h").find("setsid sudo -n -u svc -- env /bin/true"),
            std::string::npos);
  EXPECT_EQ(ServiceStateDir(m, "p"), "/var/lib/clusterctl/p");
}

}  // namespace
}  // namespace clusterctl::reconcilers

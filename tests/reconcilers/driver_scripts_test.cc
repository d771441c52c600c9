// The driver's shell library in a persistent local /bin/sh, fed on stdin the
// way SshPool feeds a machine's shell: the library once, then each call as
// the body of a function. Real processes, real signals; strace counts the
// processes an observation creates.
#include "reconcilers/driver_scripts.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <regex>

#include "reconcilers/shell.h"
#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"
#include "tests/reconcilers/proc_scan.h"

namespace clusterctl::reconcilers {
namespace {

using desired_state::DriverKind;
using desired_state::Machine;
using desired_state::Service;
using std::chrono::milliseconds;
using testing::WaitFor;

// One /bin/sh reading its stdin from a FIFO, stdout and stderr in files.
// `prefix` runs it under another program (strace).
class PersistentShell {
 public:
  struct Reply {
    bool done = false;  // the call finished within its timeout
    int status = -1;
    std::string out;
  };

  PersistentShell(const testing::TempDir& tmp, const std::vector<std::string>& prefix = {})
      : fifo_(tmp.Sub("shell-stdin")),
        out_(tmp.Sub("shell-stdout")),
        err_(tmp.Sub("shell-stderr")) {
    signal(SIGPIPE, SIG_IGN);  // a dead shell must fail a write, not end the test
    if (mkfifo(fifo_.c_str(), 0600) != 0) throw std::runtime_error("mkfifo " + fifo_);
    std::vector<std::string> argv = prefix;
    for (const char* a : {"/bin/sh", "-c"}) argv.emplace_back(a);
    argv.push_back("exec /bin/sh < " + ShellQuote(fifo_));
    testing::SpawnOptions options;
    options.stdout_path = out_;
    options.stderr_path = err_;
    process_ = std::make_unique<testing::Process>(argv, options);
    WaitFor(
        [&] {
          fd_ = open(fifo_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
          return fd_ >= 0;
        },
        milliseconds(10000));
    if (fd_ < 0) throw std::runtime_error("the shell did not open " + fifo_);
    fcntl(fd_, F_SETFL, 0);
    Send("command eval " + ShellQuote(ShellLibrary()) + "\n");
  }

  ~PersistentShell() { Close(); }

  // Runs `call` as a trusted command: the body of a function, stdin from
  // /dev/null. Its stdout and exit status.
  Reply Call(const std::string& call, milliseconds timeout = milliseconds(20000)) {
    const std::string mark = "\nend-of-call-" + std::to_string(++seq_) + " ";
    Send("_cc_main() { command eval " + ShellQuote(call) + "\n}\n_cc_main </dev/null\nprintf '" +
         "\\nend-of-call-%s %s\\n' " + std::to_string(seq_) + " \"$?\"\n");
    Reply r;
    size_t at = std::string::npos;
    std::string text;
    r.done = WaitFor(
        [&] {
          text = testing::ReadFile(out_);
          at = text.find(mark, offset_);
          return at != std::string::npos && text.find('\n', at + mark.size()) != std::string::npos;
        },
        timeout);
    if (!r.done) return r;
    const size_t eol = text.find('\n', at + mark.size());
    r.out = text.substr(offset_, at - offset_);
    r.status = std::stoi(text.substr(at + mark.size(), eol - at - mark.size()));
    offset_ = eol + 1;
    return r;
  }

  // Everything the shell wrote to stderr so far.
  std::string Stderr() const { return testing::ReadFile(err_); }
  pid_t pid() const { return process_->pid(); }
  bool Running() { return process_->Running(); }

  // End of input: the shell exits. Returns its exit value.
  int Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return process_->WaitForExit(milliseconds(10000)).value_or(-1);
  }

 private:
  void Send(const std::string& text) {
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = write(fd_, text.data() + done, text.size() - done);
      if (n <= 0) throw std::runtime_error("the shell no longer reads its stdin");
      done += static_cast<size_t>(n);
    }
  }

  std::string fifo_, out_, err_;
  std::unique_ptr<testing::Process> process_;
  int fd_ = -1;
  int seq_ = 0;
  size_t offset_ = 0;
};

Machine LocalMachine(const testing::TempDir& tmp) {
  Machine m;
  m.name = "local";
  m.state_dir = tmp.Sub("state");
  return m;
}

Service ProcessService(const std::string& name, std::vector<std::string> command) {
  Service s;
  s.name = name;
  s.driver = DriverKind::kProcess;
  s.process.command = std::move(command);
  s.stop_timeout_seconds = 1;
  return s;
}

// Records `pid` as the service's process, as a start would have.
void RecordPid(const Machine& m, const std::string& service, pid_t pid, bool stopped) {
  const std::string dir = ServiceStateDir(m, service);
  testing::WriteFile(dir + "/pid", std::to_string(pid) + "\n");
  testing::WriteFile(dir + "/starttime", std::to_string(testing::ProcessStartTicks(pid)) + "\n");
  testing::WriteFile(dir + "/stopped", stopped ? "1\n" : "0\n");
  testing::WriteFile(dir + "/spec", "hash-" + service + "\n");
}

// A pid that belonged to a process that has exited.
pid_t DeadPid() {
  testing::Process p({"/bin/true"});
  p.WaitForExit(milliseconds(10000));
  return p.pid();
}

// Kills, by pid, what a test's start calls left running.
struct KillRecordedOnExit {
  std::vector<std::string> pid_files;
  ~KillRecordedOnExit() {
    for (const auto& f : pid_files) {
      const pid_t pid = static_cast<pid_t>(std::atol(testing::ReadFile(f).c_str()));
      if (pid > 1) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
      }
    }
  }
};

bool StraceWorks() {
  return testing::RunShell("strace -f -o /dev/null /bin/true >/dev/null 2>&1") == 0;
}

// Lines of an `strace -f` log that create a process.
std::vector<std::string> ProcessCreations(const std::string& log) {
  static const std::regex kCreate(R"(\b(clone|clone3|fork|vfork|execve)\()");
  std::vector<std::string> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (std::regex_search(line, kCreate)) out.push_back(line);
  }
  return out;
}

TEST(DriverScriptsTest, AnObservationCreatesNoProcess) {
  if (!StraceWorks()) {
    GTEST_SKIP() << "strace is missing or cannot trace here (scripts/install-deps.sh installs it)";
  }
  testing::TempDir tmp;
  Machine m = LocalMachine(tmp);
  // Every branch of the observation: running, never started, stopped on
  // purpose, exited, and a pid recycled by another process.
  testing::Process running({"/bin/sleep", "300"});
  testing::Process other({"/bin/sleep", "300"});
  Service run = ProcessService("run", {"/bin/sleep", "300"});
  Service never = ProcessService("never", {"/bin/true"});
  Service stopped = ProcessService("stopped", {"/bin/true"});
  Service exited = ProcessService("exited", {"/bin/true"});
  Service recycled = ProcessService("recycled", {"/bin/true"});
  RecordPid(m, run.name, running.pid(), false);
  RecordPid(m, stopped.name, DeadPid(), true);
  RecordPid(m, exited.name, DeadPid(), false);
  RecordPid(m, recycled.name, other.pid(), false);
  testing::WriteFile(ServiceStateDir(m, recycled.name) + "/starttime", "12345\n");
  const std::string observe = ObserveScript(m, {&run, &never, &stopped, &exited, &recycled});

  const std::string trace = tmp.Sub("trace");
  const std::string begin = tmp.Sub("measure-begin"), end = tmp.Sub("measure-end");
  std::string first, second;
  {
    PersistentShell sh(tmp, {"strace", "-f", "-qq", "-e",
                             "trace=clone,clone3,fork,vfork,execve,openat", "-o", trace});
    // The first observation computes the cached facts (getconf, df).
    PersistentShell::Reply warm = sh.Call(observe);
    ASSERT_TRUE(warm.done) << sh.Stderr();
    first = warm.out;
    ASSERT_TRUE(sh.Call("read -r _cc_x 2>/dev/null <" + ShellQuote(begin)).done);
    PersistentShell::Reply steady = sh.Call(observe);
    ASSERT_TRUE(steady.done) << sh.Stderr();
    EXPECT_EQ(steady.status, 0);
    second = steady.out;
    ASSERT_TRUE(sh.Call("read -r _cc_x 2>/dev/null <" + ShellQuote(end)).done);
    EXPECT_EQ(sh.Close(), 0);
  }
  const std::string log = testing::ReadFile(trace);
  const size_t from = log.find(begin), to = log.find(end);
  ASSERT_NE(from, std::string::npos) << log;
  ASSERT_NE(to, std::string::npos) << log;
  // strace does see process creation: the warm-up ran getconf and df.
  EXPECT_FALSE(ProcessCreations(log.substr(0, from)).empty()) << log.substr(0, from);
  EXPECT_EQ(ProcessCreations(log.substr(from, to - from)), std::vector<std::string>{});

  // And it observed what the first one did (the F line moves with uptime).
  EXPECT_EQ(first.substr(0, first.find("F\t")), second.substr(0, second.find("F\t")));
  auto obs = ParseObservation(m, {&run, &never, &stopped, &exited, &recycled}, second, 0);
  ASSERT_TRUE(obs.ok()) << obs.status().ToString();
  ASSERT_EQ(obs->instances.size(), 5u);
  EXPECT_EQ(obs->instances[0].state, ObservedState::kRunning);
  EXPECT_EQ(obs->instances[0].pid, running.pid());
  EXPECT_EQ(obs->instances[0].spec_hash, "hash-run");
  EXPECT_NEAR(static_cast<double>(obs->instances[0].started_at), static_cast<double>(time(nullptr)),
              5.0);
  EXPECT_EQ(obs->instances[1].state, ObservedState::kStopped);
  EXPECT_EQ(obs->instances[1].detail, "never-started");
  EXPECT_EQ(obs->instances[2].state, ObservedState::kStopped);
  EXPECT_EQ(obs->instances[2].detail, "stopped");
  EXPECT_EQ(obs->instances[3].state, ObservedState::kFailed);
  EXPECT_EQ(obs->instances[3].detail, "exited");
  EXPECT_EQ(obs->instances[4].state, ObservedState::kFailed);
  EXPECT_EQ(obs->instances[4].detail,
            "exited; pid " + std::to_string(other.pid()) + " is now another process");
  EXPECT_GT(obs->facts.mem_total_kb, 0);
  EXPECT_GT(obs->facts.disk_total_kb, 0);
  EXPECT_GT(obs->facts.cpus, 0);
  EXPECT_GT(obs->facts.uptime_seconds, 0);
}

TEST(DriverScriptsTest, CallsNeverEndTheShellTheyRunIn) {
  // The library has no exit, exec or set -e: a trusted call runs inside the
  // persistent shell, which must survive every outcome.
  static const std::regex kEndsShell(R"((^|[\s;&|(){}])(exit|exec|set -e)([\s;&|)]|$))");
  EXPECT_FALSE(std::regex_search(ShellLibrary(), kEndsShell));

  testing::TempDir tmp;
  Machine m = LocalMachine(tmp);
  KillRecordedOnExit cleanup;
  Service sleeper = ProcessService("sleeper", {"/bin/sleep", "300"});
  Service wrapper =
      ProcessService("wrapper", {"/bin/sh", "-c", "(trap '' TERM; exec sleep 300) & wait"});
  Service unwritable = ProcessService("unwritable", {"/bin/sleep", "300"});
  Service nowhere = ProcessService("nowhere", {"/bin/sleep", "300"});
  nowhere.process.working_dir = tmp.Sub("missing");
  Service unit;
  unit.name = "unit";
  unit.driver = DriverKind::kSystemd;
  unit.systemd.unit = "no-such-unit.service";
  for (const Service* s : {&sleeper, &wrapper, &unwritable}) {
    cleanup.pid_files.push_back(ServiceStateDir(m, s->name) + "/pid");
  }
  std::filesystem::create_directories(ServiceStateDir(m, unwritable.name) + "/pid");

  PersistentShell sh(tmp);
  auto never = sh.Call(ObserveScript(m, {&sleeper, &unit}));
  ASSERT_TRUE(never.done);
  EXPECT_EQ(never.status, 0);
  EXPECT_NE(never.out.find("I\tsleeper\tstopped\t0\t0\t\t0\tnever-started\n"), std::string::npos)
      << never.out;

  auto started = sh.Call(StartScript(m, sleeper, "h1"));
  ASSERT_TRUE(started.done);
  ASSERT_EQ(started.status, 0) << sh.Stderr();
  ASSERT_EQ(started.out.rfind("started ", 0), 0u) << started.out;
  const pid_t pid = static_cast<pid_t>(std::stol(started.out.substr(8)));
  EXPECT_TRUE(testing::ProcessAlive(pid));
  // Started from a transient subshell: the service is not a child of the
  // long-lived shell, so it never lingers there as a zombie.
  EXPECT_NE(testing::StatAfterComm(pid).at(1), std::to_string(sh.pid()));
  EXPECT_EQ(sh.Call(StartScript(m, sleeper, "h1")).out,
            "already-running " + std::to_string(pid) + "\n");
  auto restarted = sh.Call(RestartScript(m, sleeper, "h2"));
  EXPECT_EQ(restarted.status, 0);
  EXPECT_EQ(restarted.out.rfind("terminated\nstarted ", 0), 0u) << restarted.out;

  auto wrapped = sh.Call(StartScript(m, wrapper, "h"));
  ASSERT_EQ(wrapped.status, 0) << sh.Stderr();
  const pid_t wrapper_pid = static_cast<pid_t>(std::stol(wrapped.out.substr(8)));
  // The child has set its trap once it runs sleep.
  ASSERT_TRUE(
      WaitFor([&] { return testing::GroupRuns(wrapper_pid, "sleep"); }, milliseconds(10000)));
  EXPECT_EQ(sh.Call(StopScript(m, wrapper)).out, "killed\n");
  EXPECT_EQ(testing::LiveGroupMembers(wrapper_pid), std::vector<pid_t>{});

  auto failed = sh.Call(StartScript(m, unwritable, "h"));
  EXPECT_EQ(failed.status, 23);
  EXPECT_NE(sh.Stderr().find("cannot write " + ServiceStateDir(m, unwritable.name) + "/pid"),
            std::string::npos)
      << sh.Stderr();
  auto lost = sh.Call(StartScript(m, nowhere, "h"));
  EXPECT_EQ(lost.status, 21);
  EXPECT_NE(sh.Stderr().find("working directory " + tmp.Sub("missing") + " does not exist"),
            std::string::npos);

  auto unknown = sh.Call(ObserveScript(m, {&unit}));
  EXPECT_EQ(unknown.status, 0);
  EXPECT_NE(unknown.out.find("I\tunit\tunknown\t"), std::string::npos) << unknown.out;
  EXPECT_EQ(sh.Call(StopScript(m, sleeper)).out, "terminated\n");
  EXPECT_EQ(sh.Call(StopScript(m, sleeper)).out, "not-running\n");

  // Still the same shell, still answering, and no child of it left behind.
  EXPECT_TRUE(sh.Running());
  auto alive = sh.Call("echo still here");
  EXPECT_TRUE(alive.done);
  EXPECT_EQ(alive.out, "still here\n");
  EXPECT_EQ(testing::ChildrenOf(sh.pid()), std::vector<pid_t>{});
  EXPECT_EQ(sh.Close(), 0);
}

}  // namespace
}  // namespace clusterctl::reconcilers

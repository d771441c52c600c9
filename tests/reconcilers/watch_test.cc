// The drift watch on real machines: real sshd hosts, real service processes
// (the project's test service) started by the process driver, real signals,
// and the tick itself run by a real dash under strace.
#include "reconcilers/watch.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

#include "desired-state/loader.h"
#include "desired-state/spec_hash.h"
#include "reconcilers/driver.h"
#include "reconcilers/driver_scripts.h"
#include "reconcilers/watch_scripts.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::reconcilers {
namespace {

using desired_state::DesiredState;
using desired_state::DriverKind;
using desired_state::Machine;
using desired_state::Service;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;
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

Service TestService(const std::string& name, const std::vector<std::string>& machines,
                    std::vector<std::string> extra = {}) {
  Service s;
  s.name = name;
  s.machines = machines;
  s.driver = DriverKind::kProcess;
  s.process.command = {testing::TestServiceBin()};
  s.process.command.insert(s.process.command.end(), extra.begin(), extra.end());
  s.stop_timeout_seconds = 2;
  return s;
}

// A desired state of `machines` and `services`, every instance running.
std::shared_ptr<const DesiredState> Desired(std::vector<Machine> machines,
                                            std::vector<Service> services) {
  auto d = std::make_shared<DesiredState>();
  auto by_name = [](const auto& a, const auto& b) { return a.name < b.name; };
  std::sort(machines.begin(), machines.end(), by_name);
  std::sort(services.begin(), services.end(), by_name);
  d->machines = std::move(machines);
  d->services = std::move(services);
  for (const auto& s : d->services) {
    for (const auto& m : s.machines) {
      d->instances.push_back(
          {s.name, m, desired_state::RunState::kRunning, desired_state::SpecHash(s)});
    }
  }
  return d;
}

// Events as the watch delivers them, with the time each arrived.
class Recorder {
 public:
  struct Timed {
    DriftWatch::Event event;
    SteadyClock::time_point at;
  };

  void Add(const DriftWatch::Event& e) {
    std::lock_guard<std::mutex> g(mu_);
    events_.push_back({e, SteadyClock::now()});
    cv_.notify_all();
  }

  // The first event (from index `from` on) that matches, waiting at most `timeout`.
  std::optional<Timed> Wait(const std::function<bool(const DriftWatch::Event&)>& match,
                            milliseconds timeout, size_t from = 0) {
    std::unique_lock<std::mutex> l(mu_);
    std::optional<Timed> found;
    cv_.wait_for(l, timeout, [&] {
      for (size_t i = from; i < events_.size(); ++i) {
        if (match(events_[i].event)) {
          found = events_[i];
          return true;
        }
      }
      return false;
    });
    return found;
  }

  std::vector<DriftWatch::Event> All() {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<DriftWatch::Event> out;
    for (const auto& t : events_) out.push_back(t.event);
    return out;
  }

  size_t size() {
    std::lock_guard<std::mutex> g(mu_);
    return events_.size();
  }

  std::string Dump() {
    std::string out;
    for (const auto& e : All()) {
      out += e.Key() + " " + ObservedStateName(e.state) + " pid " + std::to_string(e.pid) + " " +
             e.detail + "\n";
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Timed> events_;
};

auto Is(const std::string& service, ObservedState state, int64_t pid = -1) {
  return [=](const DriftWatch::Event& e) {
    return e.service == service && e.state == state && (pid < 0 || e.pid == pid);
  };
}

class DriftWatchTest : public ::testing::Test {
 protected:
  DriftWatchTest() : cluster_(2) {
    SshOptions opts;
    opts.known_hosts = cluster_.known_hosts_path();
    opts.connect_timeout_ms = 5000;
    opts.backoff_initial_ms = 100;
    opts.backoff_max_ms = 1000;
    pool_ = std::make_unique<SshPool>(opts);
    driver_ = std::make_unique<ShellDriver>(pool_.get());
  }

  std::unique_ptr<DriftWatch> MakeWatch(Recorder* recorder) {
    DriftWatch::Options o;
    o.interval = milliseconds(200);
    o.backoff_initial = milliseconds(100);
    o.backoff_max = milliseconds(1000);
    o.on_event = [recorder](const DriftWatch::Event& e) { recorder->Add(e); };
    o.on_log_rotated = [this](const DriftWatch::LogRotation& r) {
      std::lock_guard<std::mutex> g(mu_);
      rotations_.push_back(r);
    };
    o.on_machine = [this](const std::string& machine, const Status& s) {
      std::lock_guard<std::mutex> g(mu_);
      machine_reports_.push_back(machine + ": " + (s.ok() ? "ok" : s.message()));
    };
    return std::make_unique<DriftWatch>(pool_.get(), o);
  }

  // Starts `s` on `m` with the driver; returns its pid.
  int64_t StartService(const Machine& m, const Service& s) {
    auto started = driver_->Start(m, s, desired_state::SpecHash(s));
    EXPECT_TRUE(started.ok()) << started.status().ToString();
    if (!started.ok()) return 0;
    return std::stoll(started->substr(started->rfind(' ') + 1));
  }

  std::vector<DriftWatch::LogRotation> Rotations() {
    std::lock_guard<std::mutex> g(mu_);
    return rotations_;
  }

  std::vector<std::string> MachineReports() {
    std::lock_guard<std::mutex> g(mu_);
    return machine_reports_;
  }

  testing::TestCluster cluster_;
  std::unique_ptr<SshPool> pool_;
  std::unique_ptr<ShellDriver> driver_;
  std::mutex mu_;
  std::vector<DriftWatch::LogRotation> rotations_;
  std::vector<std::string> machine_reports_;
};

TEST_F(DriftWatchTest, ReportsAKill9WithinOneSecondOnEveryMachine) {
  const Machine m1 = MachineOf(cluster_, 0), m2 = MachineOf(cluster_, 1);
  const Service web = TestService("web", {"m1", "m2"});
  Recorder events;
  auto watch = MakeWatch(&events);
  watch->SetDesired(Desired({m1, m2}, {web}));
  watch->Start();
  // Never started yet: reported stopped on both machines.
  for (const char* m : {"m1", "m2"}) {
    ASSERT_TRUE(events.Wait(
        [&](const DriftWatch::Event& e) {
          return e.machine == m && e.state == ObservedState::kStopped &&
                 e.detail == "never-started";
        },
        milliseconds(10000)))
        << events.Dump();
  }
  for (const Machine* m : {&m1, &m2}) {
    const int64_t pid = StartService(*m, web);
    ASSERT_GT(pid, 0);
    ASSERT_TRUE(events.Wait(
        [&](const DriftWatch::Event& e) {
          return e.machine == m->name && Is("web", ObservedState::kRunning, pid)(e);
        },
        milliseconds(5000)))
        << events.Dump();

    const size_t before = events.size();
    const auto killed = SteadyClock::now();
    ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGKILL), 0);
    auto exited = events.Wait(
        [&](const DriftWatch::Event& e) {
          return e.machine == m->name && Is("web", ObservedState::kFailed, pid)(e);
        },
        milliseconds(5000), before);
    ASSERT_TRUE(exited) << events.Dump();
    const auto latency = std::chrono::duration_cast<milliseconds>(exited->at - killed).count();
    EXPECT_LT(latency, 1000) << "kill -9 seen after " << latency << " ms";
    EXPECT_EQ(exited->event.detail, "exited");
    EXPECT_GT(exited->event.at_ms, 0);
    std::printf("kill -9 on %s reported after %lld ms\n", m->name.c_str(),
                static_cast<long long>(latency));
  }
  watch->Stop();
  // Stop joined the workers: nothing is delivered afterwards.
  const size_t after_stop = events.size();
  EXPECT_FALSE(
      events.Wait([](const DriftWatch::Event&) { return true; }, milliseconds(600), after_stop));
}

TEST_F(DriftWatchTest, ARecycledPidIsReportedExitedNotRunning) {
  const Machine m1 = MachineOf(cluster_, 0);
  const Service web = TestService("web", {"m1"});
  const std::string dir = ServiceStateDir(m1, "web");
  Recorder events;
  auto watch = MakeWatch(&events);
  watch->SetDesired(Desired({m1}, {web}));
  watch->Start();
  const int64_t pid = StartService(m1, web);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(events.Wait(Is("web", ObservedState::kRunning, pid), milliseconds(10000)))
      << events.Dump();

  // The service dies and its pid now names another live process (as after
  // a pid wrap-around): the pid file points at it, the start time does not.
  testing::Process other({"sleep", "60"});
  ASSERT_TRUE(
      WaitFor([&] { return testing::ProcessStartTicks(other.pid()) > 0; }, milliseconds(5000)));
  testing::WriteFile(dir + "/pid", std::to_string(other.pid()) + "\n");
  ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGKILL), 0);
  const std::string recycled =
      "exited; pid " + std::to_string(other.pid()) + " is now another process";
  auto failed = events.Wait(Is("web", ObservedState::kFailed, other.pid()), milliseconds(5000));
  ASSERT_TRUE(failed) << events.Dump();
  EXPECT_EQ(failed->event.detail, recycled);
  for (const auto& e : events.All()) {
    EXPECT_FALSE(e.state == ObservedState::kRunning && e.pid == other.pid()) << events.Dump();
  }
  watch->Stop();

  // A watch that starts now, with the pid file already pointing at the
  // unrelated process, reports the instance failed from its first tick.
  Recorder fresh;
  auto second = MakeWatch(&fresh);
  second->SetDesired(Desired({m1}, {web}));
  second->Start();
  auto first = fresh.Wait([](const DriftWatch::Event&) { return true; }, milliseconds(10000));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->event.state, ObservedState::kFailed) << fresh.Dump();
  EXPECT_EQ(first->event.detail, recycled);
  EXPECT_TRUE(testing::ProcessAlive(other.pid()));  // The watch only reads.
}

// st_blocks * 512 of `path`: what it takes on disk; 0 when it is missing.
int64_t DiskBytes(const std::string& path, int64_t* size = nullptr) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  if (size != nullptr) *size = st.st_size;
  return static_cast<int64_t>(st.st_blocks) * 512;
}

// Bytes `pid` has written (/proc/<pid>/io wchar); -1 when unreadable.
int64_t BytesWritten(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/io");
  std::string key;
  int64_t value = 0;
  while (in >> key >> value) {
    if (key == "wchar:") return value;
  }
  return -1;
}

TEST_F(DriftWatchTest, AServiceWriting50MiBOfLogsLeavesAtMostTwiceTheCapOnDisk) {
  const Machine m1 = MachineOf(cluster_, 0);
  const int64_t total = 50LL << 20;
  // 50 MiB at 25 MiB/s: the watch rotates the log many times while it grows.
  Service chatty = TestService("chatty", {"m1"},
                               {"--log-bytes", std::to_string(total), "--log-rate", "26214400"});
  chatty.process.log_max_bytes = 1 << 20;
  const int64_t cap = chatty.process.log_max_bytes;
  const std::string dir = ServiceStateDir(m1, "chatty");
  Recorder events;
  auto watch = MakeWatch(&events);
  watch->SetDesired(Desired({m1}, {chatty}));
  watch->Start();
  const int64_t pid = StartService(m1, chatty);
  ASSERT_GT(pid, 0);
  int64_t peak = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        peak = std::max(peak, DiskBytes(dir + "/log") + DiskBytes(dir + "/log.1"));
        return BytesWritten(static_cast<pid_t>(pid)) >= total;
      },
      milliseconds(30000)))
      << "the service wrote " << BytesWritten(static_cast<pid_t>(pid)) << " bytes";
  // Two more ticks: the last one started after the last write.
  const int64_t ticks = watch->TicksForTest("m1");
  ASSERT_TRUE(WaitFor([&] { return watch->TicksForTest("m1") >= ticks + 2; }, milliseconds(5000)));
  int64_t log_size = 0, old_size = 0;
  const int64_t on_disk = DiskBytes(dir + "/log", &log_size) + DiskBytes(dir + "/log.1", &old_size);
  std::printf(
      "50 MiB written with a 1 MiB cap: %lld bytes on disk at the end, %lld at the "
      "peak seen, %zu rotations\n",
      static_cast<long long>(on_disk), static_cast<long long>(peak), Rotations().size());
  EXPECT_LE(on_disk, 2 * cap);
  EXPECT_LE(log_size, cap);
  EXPECT_EQ(old_size, cap);           // log.1 holds the last `cap` bytes before a rotation.
  EXPECT_GE(Rotations().size(), 2u);  // Rotated again and again while it grew.
  for (const auto& r : Rotations()) {
    EXPECT_EQ(r.service, "chatty");
    EXPECT_GT(r.bytes, cap);
  }
  // The service kept running and kept writing at the start of the emptied
  // file (O_APPEND): the log is not sparse.
  EXPECT_TRUE(testing::ProcessAlive(static_cast<pid_t>(pid)));
  EXPECT_GE(DiskBytes(dir + "/log") + 4096, log_size);
  EXPECT_FALSE(events.Wait(Is("chatty", ObservedState::kFailed), milliseconds(0))) << events.Dump();
}

TEST_F(DriftWatchTest, AnUnreachableMachineIsRetriedAndItsInstancesReportedAgain) {
  const Machine m1 = MachineOf(cluster_, 0);
  const Service web = TestService("web", {"m1"});
  Recorder events;
  auto watch = MakeWatch(&events);
  watch->SetDesired(Desired({m1}, {web}));
  watch->Start();
  const int64_t pid = StartService(m1, web);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(events.Wait(Is("web", ObservedState::kRunning, pid), milliseconds(10000)))
      << events.Dump();
  const size_t before = events.size();
  cluster_.host(0).Stop();
  ASSERT_TRUE(WaitFor([&] { return !MachineReports().empty(); }, milliseconds(15000)));
  EXPECT_EQ(MachineReports()[0].rfind("m1: ", 0), 0u);
  EXPECT_NE(MachineReports()[0], "m1: ok");
  // A lost transport is not a dead service: no event while it is down.
  EXPECT_EQ(events.size(), before) << events.Dump();
  cluster_.host(0).Restart();
  // The state was forgotten: the first tick after the return reports the
  // (still running) instance again.
  ASSERT_TRUE(events.Wait(Is("web", ObservedState::kRunning, pid), milliseconds(20000), before))
      << events.Dump();
  EXPECT_TRUE(WaitFor([&] { return MachineReports().back() == "m1: ok"; }, milliseconds(5000)));
}

TEST_F(DriftWatchTest, ANewDesiredStateReportsOnlyTheServicesItAdds) {
  const Machine m1 = MachineOf(cluster_, 0);
  const Service a = TestService("a", {"m1"});
  const Service b = TestService("b", {"m1"});
  Service unit;
  unit.name = "unit";
  unit.machines = {"m1"};
  unit.driver = DriverKind::kSystemd;
  unit.systemd.unit = "nothing.service";
  Recorder events;
  auto watch = MakeWatch(&events);
  watch->SetDesired(Desired({m1}, {a, unit}));
  watch->Start();
  ASSERT_TRUE(events.Wait(Is("a", ObservedState::kStopped), milliseconds(10000)));
  const size_t before = events.size();
  watch->SetDesired(Desired({m1}, {a, b, unit}));
  ASSERT_TRUE(events.Wait(Is("b", ObservedState::kStopped), milliseconds(5000), before))
      << events.Dump();
  // A few more ticks: `a` did not change, so it is not reported again, and
  // the systemd unit is never watched.
  const int64_t ticks = watch->TicksForTest("m1");
  ASSERT_TRUE(WaitFor([&] { return watch->TicksForTest("m1") >= ticks + 3; }, milliseconds(5000)));
  int a_events = 0;
  for (const auto& e : events.All()) {
    a_events += e.service == "a";
    EXPECT_NE(e.service, "unit");
  }
  EXPECT_EQ(a_events, 1) << events.Dump();
  // A machine that leaves the desired state is no longer ticked.
  watch->SetDesired(nullptr);
  EXPECT_EQ(watch->TicksForTest("m1"), 0);
}

// ------------------------------------------------------------ the scripts

TEST(WatchScriptsTest, ParsesChangesRotationsAndUnset) {
  WatchReport r = ParseWatchEvents(
      "W\tunset\nE\tweb\trunning\t42\t\nE\tdb\tfailed\t7\texited; pid 7 is now another "
      "process\nL\tweb\t20971520\njunk\n");
  EXPECT_TRUE(r.unset);
  ASSERT_EQ(r.changes.size(), 2u);
  EXPECT_EQ(r.changes[0].service, "web");
  EXPECT_EQ(r.changes[0].state, ObservedState::kRunning);
  EXPECT_EQ(r.changes[0].pid, 42);
  EXPECT_EQ(r.changes[0].detail, "");
  EXPECT_EQ(r.changes[1].state, ObservedState::kFailed);
  EXPECT_EQ(r.changes[1].detail, "exited; pid 7 is now another process");
  ASSERT_EQ(r.rotations.size(), 1u);
  EXPECT_EQ(r.rotations[0].service, "web");
  EXPECT_EQ(r.rotations[0].bytes, 20971520);
  EXPECT_FALSE(ParseWatchEvents("").unset);
}

TEST(WatchScriptsTest, TheSetSkipsSystemdAndQuotesEveryValue) {
  Machine m;
  m.name = "m";
  m.state_dir = "/var/lib/it's here/";
  Service p = TestService("web", {"m"});
  p.process.log_max_bytes = 65536;
  Service u;
  u.name = "unit";
  u.driver = DriverKind::kSystemd;
  EXPECT_EQ(WatchSetScript(m, {&p, &u}), "_w_n=0\n_wadd web '/var/lib/it'\\''s here/web' 65536\n");
}

TEST(WatchScriptsTest, TheLogCapComesFromTheServiceSpecAndDefaultsTo10MiB) {
  auto load = [](const std::string& process_extra) {
    const std::string yaml =
        "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: lab}\nspec: {}\n---\n"
        "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m1}\n"
        "spec: {address: 10.0.0.1}\n---\n"
        "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: web}\n"
        "spec:\n  machines: [m1]\n  process:\n    command: [/bin/web]\n" +
        process_extra;
    desired_state::Revision rev;
    rev.commit = "0123456789abcdef0123456789abcdef01234567";
    return desired_state::LoadFiles({{"all.yaml", yaml}}, rev);
  };
  auto plain = load("");
  ASSERT_TRUE(plain.ok()) << plain.errors.ToString();
  EXPECT_EQ(plain.state->services[0].process.log_max_bytes, 10485760);
  auto capped = load("    logMaxBytes: 65536\n");
  ASSERT_TRUE(capped.ok()) << capped.errors.ToString();
  EXPECT_EQ(capped.state->services[0].process.log_max_bytes, 65536);
  // The cap is not part of the spec hash: changing it restarts nothing.
  EXPECT_EQ(capped.state->instances[0].spec_hash, plain.state->instances[0].spec_hash);
  auto tiny = load("    logMaxBytes: 1000\n");
  EXPECT_FALSE(tiny.ok());
  EXPECT_NE(tiny.errors.ToString().find("logMaxBytes"), std::string::npos)
      << tiny.errors.ToString();
}

// Runs `script` with dash under strace; returns the process-creating system
// calls strace saw (clone, clone3, fork, vfork, execve), one per line, and
// the script's stdout in *out. Empty optional when strace cannot run here.
std::optional<std::vector<std::string>> TraceDash(const std::string& script, std::string* out) {
  testing::TempDir tmp;
  testing::WriteFile(tmp.Sub("probe.sh"), "true\n");
  std::string ignored;
  if (testing::RunShell("strace -f -o /dev/null dash " + tmp.Sub("probe.sh"), &ignored) != 0) {
    return std::nullopt;
  }
  testing::WriteFile(tmp.Sub("tick.sh"), script);
  const std::string cmd = "strace -f -qq -e trace=clone,clone3,fork,vfork,execve -o " +
                          tmp.Sub("trace") + " dash " + tmp.Sub("tick.sh") + " > " + tmp.Sub("out");
  EXPECT_EQ(testing::RunShell(cmd, &ignored), 0) << ignored;
  *out = testing::ReadFile(tmp.Sub("out"));
  std::vector<std::string> calls;
  std::istringstream trace(testing::ReadFile(tmp.Sub("trace")));
  std::string line;
  while (std::getline(trace, line)) {
    if (line.find("clone") != std::string::npos || line.find("fork(") != std::string::npos ||
        line.find("execve(") != std::string::npos) {
      calls.push_back(line);
    }
  }
  return calls;
}

// One trusted call as a persistent shell runs it: a function body.
std::string Call(const std::string& body) {
  return "_cc_main() {\n" + body + "\n}\n_cc_main </dev/null\necho ---\n";
}

TEST(WatchScriptsTest, ATickForksNothingAndPrintsOnlyChanges) {
  if (testing::RunShell("command -v strace >/dev/null && command -v dash >/dev/null") != 0) {
    GTEST_SKIP() << "strace or dash is not installed (apt-get install strace dash)";
  }
  testing::TempDir tmp;
  Machine m;
  m.name = "local";
  m.state_dir = tmp.Sub("state");
  // live: a real process with its pid and start time; gone: a pid that does
  // not exist; never: no pid file; stopped: stopped on purpose.
  testing::Process live({testing::TestServiceBin()}, testing::OutputTo(tmp.Sub("live.log")));
  ASSERT_TRUE(
      WaitFor([&] { return testing::ProcessStartTicks(live.pid()) > 0; }, milliseconds(5000)));
  const std::string ld = ServiceStateDir(m, "live");
  testing::WriteFile(ld + "/pid", std::to_string(live.pid()) + "\n");
  testing::WriteFile(ld + "/starttime",
                     std::to_string(testing::ProcessStartTicks(live.pid())) + "\n");
  testing::WriteFile(ServiceStateDir(m, "gone") + "/pid", "999999999\n");
  testing::WriteFile(ServiceStateDir(m, "gone") + "/starttime", "1\n");
  // A start leaves "0" in `stopped`: not stopped on purpose.
  testing::WriteFile(ServiceStateDir(m, "gone") + "/stopped", "0\n");
  testing::WriteFile(ServiceStateDir(m, "never") + "/spec", "x\n");
  testing::WriteFile(ServiceStateDir(m, "stopped") + "/pid", "999999999\n");
  testing::WriteFile(ServiceStateDir(m, "stopped") + "/stopped", "");
  std::vector<Service> services;
  for (const char* n : {"live", "gone", "never", "stopped"}) services.push_back(TestService(n, {}));
  std::vector<const Service*> ptrs;
  for (const auto& s : services) ptrs.push_back(&s);

  // Like a persistent shell: the library once, then calls. The third tick
  // follows a change made with a builtin (the pid file of `live` rewritten).
  const std::string script = WatchLibrary() + Call(WatchTickScript()) +
                             Call(WatchSetScript(m, ptrs) + WatchTickScript()) +
                             Call(WatchTickScript()) + "printf '999999998\\n' > '" + ld +
                             "/pid'\n" + Call(WatchTickScript());
  std::string out;
  auto calls = TraceDash(script, &out);
  if (!calls) GTEST_SKIP() << "strace cannot trace here (ptrace not permitted)";
  // The only execve is dash itself; no clone or fork at all.
  ASSERT_EQ(calls->size(), 1u) << ::testing::PrintToString(*calls);
  EXPECT_NE((*calls)[0].find("execve("), std::string::npos);
  const std::string live_line = "E\tlive\trunning\t" + std::to_string(live.pid()) + "\t\n";
  EXPECT_EQ(out, "W\tunset\n---\n" + live_line +
                     "E\tgone\tfailed\t999999999\texited\n"
                     "E\tnever\tstopped\t0\tnever-started\n"
                     "E\tstopped\tstopped\t999999999\tstopped\n"
                     "---\n"
                     "---\n"
                     "E\tlive\tfailed\t999999998\texited\n"
                     "---\n");
}

}  // namespace
}  // namespace clusterctl::reconcilers

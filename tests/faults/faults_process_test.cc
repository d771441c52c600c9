// The fault-injection suite (issue 18), process and time faults: a service's
// pid recycled by an unrelated process, the wall clock of clusterd stepped
// an hour forward and back (libfaketime), and the Redis of two clusterd
// replicas killed or partitioned from the leader. Each is followed by the
// invariants of fault_suite.h; docs/reliability.md has the table.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "tests/faults/fault_suite.h"
#include "tests/harness/audit_records.h"
#include "tests/harness/paths.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/tcp_proxy.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// clusterd frozen (SIGSTOP) for a scope, thawed even when an ASSERT leaves
// it: the fault's ground is prepared while clusterd cannot look.
class Frozen {
 public:
  explicit Frozen(Process* p) : p_(p) { p_->Kill(SIGSTOP); }
  ~Frozen() { p_->Kill(SIGCONT); }
  Frozen(const Frozen&) = delete;
  Frozen& operator=(const Frozen&) = delete;

 private:
  Process* p_;
};

// An unrelated process (`sleep 600`, leading its own process group as a
// service does) that runs as `pid`, the pid a dead service had: root forces
// the next pid through /proc/sys/kernel/ns_last_pid. Any process on the
// machine that forks between that write and our fork takes the pid instead
// (clusterd's observation, a parallel test); such a process is short-lived,
// so its end is waited for and the pid tried again, within 60 s in all.
// The dead service's zombie also holds the pid until init reaps it. Null
// when the pid could not be had.
std::unique_ptr<Process> SpawnAsPid(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  const auto deadline = Clock::now() + seconds(60);
  while (Clock::now() < deadline) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (!WaitFor([&] { return access(proc.c_str(), F_OK) != 0; }, left, milliseconds(5))) break;
    {
      std::ofstream next("/proc/sys/kernel/ns_last_pid");
      next << pid - 1;
    }
    auto p = std::make_unique<Process>(std::vector<std::string>{"sleep", "600"});
    if (p->pid() == pid) return p;
  }
  return nullptr;
}

// The process state letter of `pid` (/proc/<pid>/stat field 3); 0 when gone.
char ProcessState(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(") ");
  return paren == std::string::npos || paren + 2 >= stat.size() ? 0 : stat[paren + 2];
}

// The impostor still runs, the same process, neither killed nor stopped.
void ExpectUntouched(const Process& impostor, unsigned long long ticks) {
  const pid_t pid = impostor.pid();
  EXPECT_TRUE(ProcessAlive(pid)) << "the process that took pid " << pid << " was killed";
  EXPECT_EQ(ticks, ProcessStartTicks(pid)) << "pid " << pid << " is yet another process";
  EXPECT_NE('T', ProcessState(pid)) << "pid " << pid << " was stopped";
}

// The audit records of `data_dir` that match, in seq order (written order:
// AuditRecordsOf gives time order, which a clock stepped back changes).
std::vector<audit::AuditRecord> RecordsWhere(
    const std::string& data_dir, const std::function<bool(const audit::AuditRecord&)>& match) {
  std::vector<audit::AuditRecord> out;
  for (auto& r : AuditRecordsOf(data_dir)) {
    if (match(r)) out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(),
            [](const audit::AuditRecord& x, const audit::AuditRecord& y) { return x.seq < y.seq; });
  return out;
}

class ProcessFaults : public FaultSuite {
 protected:
  // The newest record of `phase` for `action` of `service`, after `after`.
  std::optional<audit::AuditRecord> Newest(const std::string& service, const std::string& action,
                                           const std::string& phase, uint64_t after = 0) const {
    auto rs = RecordsWhere(demo_.data_dir(), [&](const audit::AuditRecord& r) {
      return r.seq > after && r.service == service && r.action == action && r.phase == phase;
    });
    if (rs.empty()) return std::nullopt;
    return rs.back();
  }
  bool WaitRecord(const std::string& service, const std::string& action, const std::string& phase,
                  uint64_t after, seconds timeout = seconds(60)) const {
    return WaitFor([&] { return Newest(service, action, phase, after).has_value(); }, timeout,
                   milliseconds(100));
  }
  // Adds `line` under the `spec:` of the n-th (0-based) document of
  // services/<file>.yaml.
  void AddToSpec(const std::string& file, int n, const std::string& line) {
    std::string text = demo_.ServiceFile(file);
    size_t at = 0;
    for (int i = 0; i <= n; ++i) {
      at = text.find("\nspec:\n", at);
      ASSERT_NE(std::string::npos, at) << file;
      at += 7;
    }
    text.insert(at, line + "\n");
    demo_.repo().Write("services/" + file + ".yaml", text);
  }
};

// A service dies and its pid is taken by an unrelated process before
// clusterd looks again. The process driver records the pid with its start
// time (/proc/<pid>/stat, reconcilers/driver_scripts.cc), so the impostor is
// seen as "exited; pid N is now another process": a new instance is
// started, and the impostor is never signalled. Then the same during a
// stop: the stop was planned while the service ran, the service dies and its
// pid is recycled before the stop step runs; the stop must find it gone and
// leave the impostor alone.
TEST_F(ProcessFaults, ARecycledPidIsNeverTakenForTheServiceNorSignalled) {
  // 1. Died, pid recycled, clusterd looks again: a new instance.
  const int64_t pid = InstancePid("embeddings-server", "rp-embeddings");
  ASSERT_GT(pid, 1);
  const uint64_t before = LastSeq();
  std::unique_ptr<Process> impostor;
  {
    Frozen frozen(clusterd_.get());
    ASSERT_EQ(0, kill(static_cast<pid_t>(pid), SIGKILL));
    impostor = SpawnAsPid(static_cast<pid_t>(pid));
    ASSERT_NE(nullptr, impostor) << "could not get pid " << pid << " for the impostor";
  }
  const unsigned long long ticks = ProcessStartTicks(impostor->pid());
  EXPECT_TRUE(WaitRepaired("embeddings-server", "rp-embeddings", pid))
      << demo_.Instance("embeddings-server", "rp-embeddings").dump() << "\n"
      << demo_.ClusterdLog();
  EXPECT_TRUE(Newest("embeddings-server", "start", "result", before).has_value())
      << "repaired without a start step?";
  ExpectUntouched(*impostor, ticks);
  CheckInvariants("a recycled pid (the service died)", Clock::now());
  ExpectUntouched(*impostor, ticks);

  // 2. A stop planned while tools-server ran; it dies and its pid is
  // recycled before the stop step runs. The stop waits for the stops of its
  // dependents, haproxy and monitoring-server, which ignores SIGTERM and is
  // killed after its stopTimeoutSeconds (20 s: time to recycle the pid
  // while clusterd runs, even on a loaded machine).
  const std::string good = demo_.repo().Rev();
  ASSERT_NE("", MonitoringIgnoresSigterm(20));
  const int64_t tools = InstancePid("tools-server", "worker-tools");
  ASSERT_GT(tools, 1);
  const uint64_t stopping = LastSeq();
  AddToSpec("tools-server", 0, "  state: stopped");
  AddToSpec("edge", 0, "  state: stopped");  // haproxy needs tools-server.
  AddToSpec("edge", 1, "  state: stopped");
  CommitAndPush("stop tools-server and its dependents");
  ASSERT_TRUE(WaitRecord("monitoring-server", "stop", "intent", stopping)) << demo_.ClusterdLog();
  ASSERT_FALSE(Newest("tools-server", "stop", "intent", stopping).has_value())
      << "the stop of tools-server did not wait for its dependent";
  // clusterd runs on meanwhile (it sees tools-server die; it wants it
  // stopped anyway).
  ASSERT_EQ(0, kill(static_cast<pid_t>(tools), SIGKILL));
  std::unique_ptr<Process> second = SpawnAsPid(static_cast<pid_t>(tools));
  ASSERT_NE(nullptr, second) << "could not get pid " << tools << " for the impostor";
  const int64_t recycled_at = WallClockMs();
  const unsigned long long second_ticks = ProcessStartTicks(second->pid());
  ASSERT_TRUE(WaitRecord("tools-server", "stop", "result", stopping)) << demo_.ClusterdLog();
  const auto stop = Newest("tools-server", "stop", "intent", stopping);
  ASSERT_TRUE(stop.has_value()) << [&] {
    std::string out;
    for (const auto& r : RecordsWhere(
             demo_.data_dir(), [&](const audit::AuditRecord& r) { return r.seq > stopping; })) {
      out += r.action + " " + r.phase + " " + r.service + " " + r.result + " " + r.detail + "\n";
    }
    return out;
  }() << demo_.ClusterdLog();
  EXPECT_GE(stop->time, recycled_at) << "the stop was sent before the pid was recycled";
  const auto result = Newest("tools-server", "stop", "result", stopping);
  EXPECT_EQ("ok", result->result) << result->detail;
  EXPECT_NE(std::string::npos, result->detail.find("was not running")) << result->detail;
  ExpectUntouched(*second, second_ticks);
  EXPECT_TRUE(WaitFor(
      [&] {
        return demo_.Instance("tools-server", "worker-tools").value("state", "") == "stopped";
      },
      seconds(20), milliseconds(200)))
      << demo_.Instance("tools-server", "worker-tools").dump();

  demo_.repo().Git("checkout -q " + good + " -- services");
  CommitAndPush("run them again");
  CheckInvariants("a recycled pid (during a stop)", Clock::now());
  ExpectUntouched(*impostor, ticks);
  ExpectUntouched(*second, second_ticks);
}

// libfaketime fakes the wall clock of the real clusterd binary (time
// namespaces offset only the monotonic and boot clocks). It cannot be
// preloaded into a sanitizer build: ASan insists on coming first in the
// library list and aborts, and TSan intercepts the same clock functions.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif
constexpr const char* kFaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

// clusterd under libfaketime: its wall clock is the real one plus the
// offset in <dir>/faketime.rc ("+3600", "-3600"), read again every second;
// its monotonic clock is left alone.
class ClockStepped : public ProcessFaults {
 protected:
  void SetUp() override {
    if (kSanitized) GTEST_SKIP() << "libfaketime cannot be preloaded into a sanitizer build";
    if (access(kFaketime, R_OK) != 0) {
      GTEST_SKIP() << kFaketime << " missing: apt-get install faketime (scripts/install-deps.sh)";
    }
    Step(0);
    SpawnOptions o = OutputTo(demo_.dir() + "/clusterd.log");
    o.env = {std::string("LD_PRELOAD=") + kFaketime, "FAKETIME_TIMESTAMP_FILE=" + rc(),
             "FAKETIME_CACHE_DURATION=1", "FAKETIME_DONT_FAKE_MONOTONIC=1"};
    clusterd_ = std::make_unique<Process>(
        std::vector<std::string>{ClusterdBin(), "--config", demo_.config_path()}, o);
    ASSERT_TRUE(demo_.WaitHealthy()) << demo_.ClusterdLog();
  }
  std::string rc() const { return demo_.dir() + "/faketime.rc"; }
  // Writes the offset and waits until clusterd's clock shows it (the
  // status' timestamp; libfaketime reads the file again within a second, a
  // loaded machine may take longer to answer).
  void Step(int64_t offset_s) {
    WriteFile(rc(), (offset_s < 0 ? "" : "+") + std::to_string(offset_s) + "\n");
    if (!clusterd_) return;
    int64_t seen = 0;
    ASSERT_TRUE(WaitFor(
        [&] {
          const std::string ts = demo_.Api("/api/v1/status").value("timestamp", "");
          std::tm tm{};
          if (strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return false;
          seen = static_cast<int64_t>(timegm(&tm)) - WallClockMs() / 1000;
          return std::abs(seen - offset_s) < 30;
        },
        seconds(60), milliseconds(200)))
        << "clusterd's clock is " << seen << " s off, not " << offset_s;
  }

  // Kills tools-server; it must be repaired (a start step within 30 s),
  // and that start's audit time tells clusterd's clock: `offset_s` off the
  // real one (within a minute). Nothing else may be restarted meanwhile: a
  // step of the clock fires no timer early.
  void KillAndExpectRepairAt(int64_t offset_s, const std::string& when) {
    SCOPED_TRACE(when);
    const uint64_t before = LastSeq();
    const int64_t pid = InstancePid("tools-server", "worker-tools");
    ASSERT_GT(pid, 1);
    ASSERT_EQ(0, kill(static_cast<pid_t>(pid), SIGKILL));
    EXPECT_TRUE(WaitRepaired("tools-server", "worker-tools", pid))
        << demo_.Instance("tools-server", "worker-tools").dump() << "\n"
        << demo_.ClusterdLog();
    const auto start = Newest("tools-server", "start", "intent", before);
    ASSERT_TRUE(start.has_value());
    EXPECT_NEAR(static_cast<double>(offset_s),
                static_cast<double>(start->time - WallClockMs()) / 1000.0, 60.0)
        <<
        [&] {
          std::string out;
          const int64_t now = WallClockMs();
          for (const auto& r :
               RecordsWhere(demo_.data_dir(), [](const audit::AuditRecord&) { return true; })) {
            out += std::to_string(r.seq) + " " + std::to_string((r.time - now) / 1000) + "s " +
                   r.action + " " + r.phase + " " + r.service + " " + r.detail + "\n";
          }
          return out;
        }()
        << demo_.ClusterdLog();
    for (const auto& r : RecordsWhere(demo_.data_dir(), [&](const audit::AuditRecord& r) {
           return r.seq > before && r.phase == "intent";
         })) {
      EXPECT_EQ("tools-server", r.service) << r.action << " " << r.service << "@" << r.machine;
    }
  }
};

// The wall clock of clusterd jumps an hour forward, back, another hour back,
// and forward again (an NTP step, a VM restored from a snapshot). After each
// step a killed service is repaired at once: the crash-loop backoff and the
// other timers do not stall for an hour nor all fire; the audit chain
// verifies although its timestamps go back.
TEST_F(ClockStepped, TheWallClockSteppedForwardAndBackAnHour) {
  KillAndExpectRepairAt(0, "before any step");
  ASSERT_NO_FATAL_FAILURE(Step(3600));
  KillAndExpectRepairAt(3600, "an hour ahead");
  ASSERT_NO_FATAL_FAILURE(Step(0));
  KillAndExpectRepairAt(0, "back an hour");
  ASSERT_NO_FATAL_FAILURE(Step(-3600));
  KillAndExpectRepairAt(-3600, "an hour behind");
  ASSERT_NO_FATAL_FAILURE(Step(0));
  const auto end = Clock::now();
  KillAndExpectRepairAt(0, "forward an hour again");
  // The fault is in the record: timestamps went back, the chain holds.
  auto records = RecordsWhere(demo_.data_dir(), [](const audit::AuditRecord&) { return true; });
  bool went_back = false;
  for (size_t i = 1; i < records.size(); ++i) went_back |= records[i].time < records[i - 1].time;
  EXPECT_TRUE(went_back) << "libfaketime did not step clusterd's clock";
  std::string out;
  EXPECT_EQ(0, demo_.Cli("audit verify", &out)) << out;
  CheckInvariants("wall clock stepped an hour forward and back", end);
}

// Two clusterd replicas on the demo cluster, electing a leader through a
// real redis-server (lease 3 s, renew 1 s, retry 1 s, margin 1 s, as in
// tests/controller/replicas_e2e_test.cc). The fixture's clusterd is replica
// node-a (the demo's data directory and API: the invariants look at it);
// node-b has its own data directory and API. With `through_proxy`, node-a
// reaches Redis through a TcpProxy the test can partition.
class RedisHa : public ProcessFaults {
 protected:
  static constexpr int64_t kLeaseMs = 3000, kMarginMs = 1000;

  explicit RedisHa(bool through_proxy = false) : through_proxy_(through_proxy) {}
  void BeforeClusterd() override {
    redis_ = std::make_unique<RedisServer>();
    if (through_proxy_) proxy_ = std::make_unique<TcpProxy>(redis_->port());
    plain_config_ = ReadFile(demo_.config_path());
    WriteFile(demo_.config_path(),
              plain_config_ + RedisLine("node-a", proxy_ ? proxy_->port() : redis_->port()));
  }
  void TearDown() override {
    if (b_) b_->Stop(seconds(20));
    ProcessFaults::TearDown();
  }

  static std::string RedisLine(const std::string& name, int port) {
    return "redis: {host: 127.0.0.1, port: " + std::to_string(port) +
           ", leaseSeconds: 3, renewSeconds: 1, retrySeconds: 1, marginSeconds: 1, "
           "replicaName: " +
           name + "}\n";
  }

  // Starts replica node-b (straight to Redis) and waits until it follows
  // node-a, which leads.
  void StartB() {
    b_data_ = demo_.dir() + "/data-node-b";
    b_listen_ = "127.0.0.1:" + std::to_string(PickFreePort());
    std::string text = plain_config_;
    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
             {"dataDir", b_data_}, {"listen", b_listen_}}) {
      const size_t at = text.find("\n" + key + ": ");
      ASSERT_NE(std::string::npos, at) << key;
      text.replace(at + 1, text.find('\n', at + 1) - at - 1, key + ": " + value);
    }
    text += "secretsDir: " + demo_.data_dir() + "/secrets\n" + RedisLine("node-b", redis_->port());
    const std::string config = demo_.dir() + "/node-b.yaml";
    WriteFile(config, text);
    b_ = std::make_unique<Process>(std::vector<std::string>{ClusterdBin(), "--config", config},
                                   OutputTo(demo_.dir() + "/node-b.log"));
    ASSERT_TRUE(
        WaitFor([&] { return Role(b_listen_) == "follower"; }, seconds(60), milliseconds(200)))
        << ReadFile(demo_.dir() + "/node-b.log");
    ASSERT_EQ("leader", Role(demo_.listen()));
  }

  std::string Role(const std::string& listen) const {
    httplib::Client c("http://" + listen);
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(5, 0);
    auto res = c.Get("/api/v1/status", {{"Authorization", "Bearer " + demo_.Token()}});
    if (!res || res->status != 200) return "";
    json st = json::parse(res->body, nullptr, false);
    return st.is_object() ? st.value("role", "") : "";
  }

  // The steps each replica sent itself (not journal copies): its intents,
  // less those whose result says "fenced: ... the step was not sent" (the
  // lease ended, or the intent could not be journaled, after it was
  // written). Name -> intents in seq order.
  std::map<std::string, std::vector<audit::AuditRecord>> SentSteps() const {
    std::map<std::string, std::vector<audit::AuditRecord>> out;
    for (const auto& [name, dir] : std::vector<std::pair<std::string, std::string>>{
             {"node-a", demo_.data_dir()}, {"node-b", b_data_}}) {
      auto own = RecordsWhere(dir, [&, n = name](const audit::AuditRecord& r) {
        return r.phase != "event" && r.fencing_token != 0 && r.leader == n;
      });
      std::set<uint64_t> fenced;
      for (const auto& r : own) {
        if (r.phase == "result" && r.detail.rfind("fenced:", 0) == 0) fenced.insert(r.intent_seq);
      }
      for (auto& r : own) {
        if (r.phase == "intent" && !fenced.count(r.seq)) out[name].push_back(std::move(r));
      }
    }
    return out;
  }
  uint64_t MaxToken() const {
    uint64_t max = 0;
    for (const auto& [_, rs] : SentSteps()) {
      for (const auto& r : rs) max = std::max(max, r.fencing_token);
    }
    return max;
  }
  // Steps either replica sent with an intent written after `ms`.
  size_t SentAfter(int64_t ms) const {
    size_t n = 0;
    for (const auto& [_, rs] : SentSteps()) {
      for (const auto& r : rs) n += r.time > ms;
    }
    return n;
  }
  // Never two replicas acting at once: each fencing token belongs to one
  // replica, and in the steps both sent, by the time of their intents, the
  // token never goes back (so their acting intervals do not overlap).
  void ExpectFenced() const {
    std::vector<audit::AuditRecord> all;
    std::map<uint64_t, std::string> owner;
    for (const auto& [name, rs] : SentSteps()) {
      for (const auto& r : rs) {
        auto [it, fresh] = owner.emplace(r.fencing_token, name);
        EXPECT_TRUE(fresh || it->second == name)
            << "token " << r.fencing_token << " used by " << it->second << " and " << name;
        all.push_back(r);
      }
    }
    std::stable_sort(
        all.begin(), all.end(),
        [](const audit::AuditRecord& x, const audit::AuditRecord& y) { return x.time < y.time; });
    for (size_t i = 1; i < all.size(); ++i) {
      EXPECT_LE(all[i - 1].fencing_token, all[i].fencing_token)
          << all[i - 1].leader << " token " << all[i - 1].fencing_token << " at " << all[i - 1].time
          << " before " << all[i].leader << " token " << all[i].fencing_token << " at "
          << all[i].time;
    }
  }
  std::string Logs() const {
    return demo_.ClusterdLog() + "\n--- node-b:\n" + ReadFile(demo_.dir() + "/node-b.log");
  }

  bool through_proxy_;
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<TcpProxy> proxy_;
  std::unique_ptr<Process> b_;
  std::string plain_config_, b_data_, b_listen_;
};

// Redis killed (SIGKILL): the leader stops acting within its lease, nobody
// repairs a service killed while Redis is down; Redis back, one replica
// leads with a higher fencing token and repairs it.
TEST_F(RedisHa, RedisKilledNobodyActsUntilItReturns) {
  ASSERT_NO_FATAL_FAILURE(StartB());
  const uint64_t token = MaxToken();
  ASSERT_GT(token, 0u);
  const int port = redis_->port();
  const int64_t killed_at = WallClockMs();
  redis_->Kill(SIGKILL);
  ASSERT_TRUE(
      WaitFor([&] { return Role(demo_.listen()) == "follower" && Role(b_listen_) == "follower"; },
              seconds(15), milliseconds(100)))
      << Logs();
  const uint64_t down_seq = LastSeq();
  const int64_t pid = InstancePid("tools-server", "worker-tools");
  ASSERT_GT(pid, 1);
  ASSERT_EQ(0, kill(static_cast<pid_t>(pid), SIGKILL));
  // Both replicas see it down, neither acts: a few passes (a follower looks
  // every retry interval) without a step, and no step at all after the
  // lease the leader held when Redis died, plus its margin.
  ASSERT_TRUE(WaitFor(
      [&] {
        return demo_.Instance("tools-server", "worker-tools").value("state", "") != "running";
      },
      seconds(30), milliseconds(200)));
  EXPECT_FALSE(WaitFor([&] { return SentAfter(killed_at + kLeaseMs + kMarginMs) > 0; }, seconds(5),
                       milliseconds(200)))
      << Logs();
  EXPECT_NE("running", demo_.Instance("tools-server", "worker-tools").value("state", ""));
  const uint64_t back_seq = LastSeq();

  redis_.reset();
  RedisServerOptions again;
  again.port = port;
  redis_ = std::make_unique<RedisServer>(again);
  const auto back = Clock::now();
  EXPECT_TRUE(WaitRepaired("tools-server", "worker-tools", pid, seconds(60))) << Logs();
  bool repaired_fenced = false;
  for (const auto& [_, rs] : SentSteps()) {
    for (const auto& r : rs) {
      repaired_fenced |=
          r.service == "tools-server" && r.action == "start" && r.fencing_token > token;
    }
  }
  EXPECT_TRUE(repaired_fenced) << "no start of tools-server with a token above " << token;
  ExpectFenced();
  std::string why;
  EXPECT_TRUE(AuditVerifies(b_data_, &why)) << why;
  CheckInvariants("Redis down (two replicas)", back, "worker-tools", down_seq, back_seq);
}

class RedisHaPartitioned : public RedisHa {
 protected:
  RedisHaPartitioned() : RedisHa(/*through_proxy=*/true) {}
};

// Redis partitioned from the leader only (its connection goes silent; the
// follower's is direct): the follower takes over once the lease expired,
// the old leader sends nothing after its lease, and after healing it
// follows.
TEST_F(RedisHaPartitioned, RedisPartitionedFromTheLeader) {
  ASSERT_NO_FATAL_FAILURE(StartB());
  const uint64_t token = MaxToken();
  proxy_->set_partitioned(true);
  const int64_t cut_at = WallClockMs();
  ASSERT_TRUE(WaitFor([&] { return Role(b_listen_) == "leader"; }, seconds(30), milliseconds(100)))
      << Logs();
  const int64_t pid = InstancePid("tools-server", "worker-tools");
  ASSERT_GT(pid, 1);
  ASSERT_EQ(0, kill(static_cast<pid_t>(pid), SIGKILL));
  EXPECT_TRUE(WaitRepaired("tools-server", "worker-tools", pid, seconds(60))) << Logs();
  EXPECT_EQ("follower", Role(demo_.listen()));
  const auto sent = SentSteps();
  std::string late;  // Steps node-a sent after its lease ended.
  for (const auto& r : sent.count("node-a") ? sent.at("node-a") : decltype(sent)::mapped_type{}) {
    if (r.time > cut_at + kLeaseMs) {
      late += std::to_string(r.seq) + " at cut + " + std::to_string(r.time - cut_at) +
              " ms: " + r.action + " " + r.service + "@" + r.machine + " token " +
              std::to_string(r.fencing_token) + "; ";
    }
  }
  EXPECT_EQ("", late) << Logs();
  bool taken_over = false;
  if (sent.count("node-b")) {
    for (const auto& r : sent.at("node-b")) taken_over |= r.fencing_token > token;
  }
  EXPECT_TRUE(taken_over) << "node-b acted without a token above " << token;

  proxy_->set_partitioned(false);
  const auto healed = Clock::now();
  // node-a follows again: it copies node-b's journal.
  EXPECT_TRUE(WaitFor(
      [&] {
        return !RecordsWhere(demo_.data_dir(), [](const audit::AuditRecord& r) {
                  return r.leader == "node-b";
                }).empty();
      },
      seconds(30), milliseconds(200)))
      << Logs();
  EXPECT_EQ("leader", Role(b_listen_));
  EXPECT_EQ("follower", Role(demo_.listen()));
  ExpectFenced();
  std::string why;
  EXPECT_TRUE(AuditVerifies(b_data_, &why)) << why;
  CheckInvariants("Redis partitioned from the leader (two replicas)", healed);
}

}  // namespace
}  // namespace clusterctl::testing

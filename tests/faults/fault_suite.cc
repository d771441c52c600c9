#include "tests/faults/fault_suite.h"

#include <dirent.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "tests/harness/audit_records.h"
#include "tests/harness/paths.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::testing {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// Every process: pid -> command line (NULs as spaces).
std::map<int, std::string> CommandLines() {
  std::map<int, std::string> out;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/cmdline", std::ios::binary);
    std::string line((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(line.begin(), line.end(), '\0', ' ');
    if (!line.empty()) out[std::atoi(e->d_name)] = line;
  }
  closedir(proc);
  return out;
}

// The pids that are `service` (listening on `port`): the test service
// keeps "--port N" in its command line, with its own binary as argv[0] (a
// "setsid ..." or "sh -c ..." on the way to exec is not it); redis-server
// retitles itself "redis-server ADDR:PORT".
std::set<int> InstancesOf(const std::map<int, std::string>& procs, const std::string& port) {
  std::set<int> pids;
  for (const auto& [pid, l] : procs) {
    const std::string argv0 = l.substr(0, l.find(' '));
    const bool test_service =
        argv0.size() >= 23 &&
        argv0.compare(argv0.size() - 23, 23, "clusterctl-test-service") == 0 &&
        l.find("--port " + port + " ") != std::string::npos;
    const bool redis = l.rfind("redis-server ", 0) == 0 && l.find(":" + port) != std::string::npos;
    if (test_service || redis) pids.insert(pid);
  }
  return pids;
}

}  // namespace

void FaultSuite::SetUp() {
  BeforeClusterd();
  if (HasFatalFailure()) return;
  clusterd_ = demo_.StartClusterd();
  ASSERT_TRUE(demo_.WaitHealthy()) << demo_.ClusterdLog();
}

void FaultSuite::TearDown() {
  if (clusterd_ && clusterd_->Running()) clusterd_->Stop(std::chrono::seconds(20));
}

uint64_t FaultSuite::LastSeq() const {
  // The greatest seq, not the last record: records come in time order, and
  // a wall clock stepped back puts new records before old ones.
  uint64_t last = 0;
  for (const auto& r : AuditRecordsOf(demo_.data_dir())) last = std::max(last, r.seq);
  return last;
}

size_t FaultSuite::IntentsOn(const std::string& machine, uint64_t after, uint64_t upto) const {
  size_t n = 0;
  for (const auto& r : AuditRecordsOf(demo_.data_dir())) {
    n += r.seq > after && r.seq <= upto && r.machine == machine && r.phase == "intent" ? 1 : 0;
  }
  return n;
}

std::string FaultSuite::OpenIntents(const std::string& machine, uint64_t after) const {
  auto records = AuditRecordsOf(demo_.data_dir());
  std::set<uint64_t> results;
  for (const auto& r : records) {
    if (r.phase == "result") results.insert(r.intent_seq);
  }
  std::string open;
  for (const auto& r : records) {
    if (r.phase == "intent" && !results.count(r.seq) && r.seq > after &&
        (machine.empty() || r.machine == machine)) {
      open += std::to_string(r.seq) + " " + r.action + " " + r.service + "@" + r.machine + "; ";
    }
  }
  return open;
}

int64_t FaultSuite::InstancePid(const std::string& service, const std::string& machine) const {
  return demo_.Instance(service, machine).value("pid", int64_t{0});
}

bool FaultSuite::WaitRepaired(const std::string& service, const std::string& machine,
                              int64_t old_pid, std::chrono::seconds timeout) const {
  return WaitFor(
      [&] {
        json i = demo_.Instance(service, machine);
        return i.value("pid", int64_t{0}) != old_pid && i.value("ready", false);
      },
      timeout, milliseconds(200));
}

bool FaultSuite::WaitAlert(const std::string& kind, const std::string& machine,
                           std::chrono::seconds timeout) const {
  return WaitFor(
      [&] {
        json alerts = demo_.Api("/api/v1/alerts");
        if (alerts.contains("alerts")) alerts = alerts["alerts"];
        if (!alerts.is_array()) return false;
        for (const json& a : alerts) {
          if (a.value("kind", "") == kind &&
              (machine.empty() || a.value("machine", "") == machine)) {
            return true;
          }
        }
        return false;
      },
      timeout, milliseconds(300));
}

std::string FaultSuite::CommitAndPush(const std::string& message) {
  demo_.repo().CommitAll(message);
  demo_.repo().Git("push -q -f origin main");
  return demo_.repo().Rev();
}

void FaultSuite::EditService(const std::string& file, const std::string& from,
                             const std::string& to) {
  std::string text = demo_.ServiceFile(file);
  const size_t at = text.find(from);
  ASSERT_NE(std::string::npos, at) << from << " not in " << file << ":\n" << text;
  text.replace(at, from.size(), to);
  demo_.repo().Write("services/" + file + ".yaml", text);
}

std::string FaultSuite::MonitoringIgnoresSigterm(int stop_timeout_seconds) {
  EditService("edge", "--ready-delay-ms, \"300\"]\n    env: {SERVICE_NAME: monitoring-server}",
              "--ready-delay-ms, \"300\", --ignore-sigterm]\n"
              "    env: {SERVICE_NAME: monitoring-server}");
  // Its stopTimeoutSeconds is the second of the file (haproxy has the first).
  std::string edge = demo_.ServiceFile("edge");
  const std::string key = "stopTimeoutSeconds: 5";
  const size_t second = edge.find(key, edge.find(key) + 1);
  EXPECT_NE(std::string::npos, second) << edge;
  if (second == std::string::npos) return "";
  edge.replace(second, key.size(), "stopTimeoutSeconds: " + std::to_string(stop_timeout_seconds));
  demo_.repo().Write("services/edge.yaml", edge);
  const std::string rev = CommitAndPush("monitoring-server ignores SIGTERM");
  const bool applied = WaitFor(
      [&] {
        return demo_.Api("/api/v1/status").value("revision", "") == rev &&
               demo_.Instance("monitoring-server", "worker-monitor").value("ready", false);
      },
      seconds(60), milliseconds(200));
  EXPECT_TRUE(applied) << demo_.ClusterdLog();
  return applied ? rev : "";
}

void FaultSuite::CheckInvariants(const std::string& fault,
                                 std::chrono::steady_clock::time_point fault_end,
                                 const std::string& unobserved, uint64_t after, uint64_t upto) {
  json report = {{"fault", fault}};
  GitRepo origin(demo_.origin(), /*bare=*/true);
  const std::string head = origin.Rev("main");

  // (d) converged to git within the bound.
  std::string last_status;
  const bool converged = WaitFor(
      [&] {
        json st = demo_.Api("/api/v1/status");
        last_status = st.dump();
        if (st.value("revision", "") != head || !st.contains("services")) return false;
        for (const auto& [name, service] : st["services"].items()) {
          for (const auto& [machine, inst] : service["instances"].items()) {
            const bool want_running = inst.value("desired", "") == "running";
            if (!inst.value("in_sync", false) || (want_running && !inst.value("ready", false))) {
              return false;
            }
          }
        }
        return true;
      },
      kConvergeBound, milliseconds(200));
  const auto recovery =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - fault_end);
  EXPECT_TRUE(converged) << fault << ": not converged to " << head << ": " << last_status << "\n"
                         << demo_.ClusterdLog();
  report["converged"] = converged;
  report["recovery_ms"] = converged ? json(recovery.count()) : json(nullptr);

  // (a) every intent answered, and the chain verifies. A step may still be
  // finishing: give it a few seconds.
  std::string open_intents;
  const bool answered = WaitFor([&] { return (open_intents = OpenIntents()).empty(); }, seconds(20),
                                milliseconds(200));
  std::string why;
  const bool verifies = AuditVerifies(demo_.data_dir(), &why);
  EXPECT_TRUE(answered) << fault << ": intents without a result: " << open_intents;
  EXPECT_TRUE(verifies) << fault << ": " << why;
  report["audit"] = answered && verifies;

  // (b) nothing sent to a machine that could not be observed.
  if (!unobserved.empty()) {
    const size_t blind = IntentsOn(unobserved, after, upto);
    EXPECT_EQ(0u, blind) << fault << ": steps sent to " << unobserved << " while unobserved";
    report["never_blind"] = blind == 0;
  }

  // (c) no instance twice: two processes of one service that both stay
  // (sampled three times over a second; one that is being replaced or has
  // not exec'd yet is not a second instance).
  std::map<std::string, std::set<int>> lasting;
  for (int sample = 0; sample < 3; ++sample) {
    if (sample > 0) std::this_thread::sleep_for(milliseconds(500));
    const auto procs = CommandLines();
    for (const char* svc : {"redis-server", "ollama", "llama-server", "embeddings-server",
                            "tools-server", "haproxy", "monitoring-server"}) {
      std::set<int> now = InstancesOf(procs, std::to_string(demo_.port_of(svc)));
      if (sample == 0) {
        lasting[svc] = now;
      } else {
        std::set<int> both;
        for (int pid : lasting[svc]) {
          if (now.count(pid)) both.insert(pid);
        }
        lasting[svc] = both;
      }
    }
  }
  bool single = true;
  for (const auto& [svc, pids] : lasting) {
    EXPECT_LE(pids.size(), 1u) << fault << ": " << svc << " runs " << pids.size() << " times: " <<
        [&] {
          std::string list;
          const auto procs = CommandLines();
          for (int pid : pids) {
            auto it = procs.find(pid);
            list += std::to_string(pid) + " " + (it != procs.end() ? it->second : "(gone)") + "; ";
          }
          return list;
        }();
    single &= pids.size() <= 1;
  }
  report["single_instance"] = single;

  // (e) no secret anywhere it could leak.
  const std::string token = demo_.Token();
  std::string key = ReadFile(demo_.dir() + "/data/secrets/id_ed25519");
  const size_t body = key.find('\n');
  key = key.substr(body + 1, 40);  // A line of the private key's body.
  std::string exposed = demo_.ClusterdLog();
  for (const auto& r : AuditRecordsOf(demo_.data_dir())) exposed += r.detail + r.actor;
  for (const char* path : {"/api/v1/status", "/api/v1/alerts?state=all", "/api/v1/audit?limit=0",
                           "/api/v1/revisions", "/api/v1/stats"}) {
    exposed += demo_.Api(path).dump();
  }
  const bool leak = exposed.find(token) != std::string::npos ||
                    (!key.empty() && exposed.find(key) != std::string::npos);
  EXPECT_FALSE(leak) << fault << ": a secret appears in a log, record or answer";
  report["no_secret"] = !leak;

  // (f) clusterd alive.
  const bool alive = clusterd_ && clusterd_->Running();
  EXPECT_TRUE(alive) << fault << ": clusterd exited\n" << demo_.ClusterdLog();
  report["clusterd_alive"] = alive;

  if (const char* path = std::getenv("CLUSTERCTL_FAULTS_REPORT"); path != nullptr && *path) {
    std::ofstream(path, std::ios::app) << report.dump() << "\n";
  }
}

SmallDisk::SmallDisk(const std::string& dir, size_t bytes) : dir_(dir), stash_(dir + ".stash") {
  std::string out;
  // Keep what is there, mount, put it back: the data directory holds the
  // machines' key already.
  EXPECT_EQ(0, RunShell("mkdir -p '" + dir_ + "' && cp -a '" + dir_ + "' '" + stash_ + "'", &out))
      << out;
  mounted_ = RunShell("mount -t tmpfs -o size=" + std::to_string(bytes) + " tmpfs '" + dir_ + "'",
                      &out) == 0;
  EXPECT_TRUE(mounted_) << "mount: " << out;
  EXPECT_EQ(0, RunShell("cp -a '" + stash_ + "/.' '" + dir_ + "/' && chmod --reference='" + stash_ +
                            "' '" + dir_ + "'",
                        &out))
      << out;
}

SmallDisk::~SmallDisk() {
  std::string out;
  if (mounted_) RunShell("umount -l '" + dir_ + "'", &out);
  RunShell("rm -rf '" + stash_ + "'", &out);
}

void SmallDisk::Fill() {
  std::string out;
  // fallocate fails on the last blocks; dd then takes what is left.
  RunShell("fallocate -l $(df --output=avail -B1 '" + dir_ + "' | tail -1) '" + dir_ +
               "/filler' 2>/dev/null; dd if=/dev/zero of='" + dir_ +
               "/filler2' bs=4k 2>/dev/null; sync",
           &out);
}

void SmallDisk::Free() {
  std::string out;
  RunShell("rm -f '" + dir_ + "/filler' '" + dir_ + "/filler2'", &out);
}

}  // namespace clusterctl::testing

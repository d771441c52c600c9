// The daemon's loops driven step by step with fakes: an in-memory git
// history (RevisionSource), an in-memory fleet (ServiceDriver), a prober
// whose answers the test sets, and a FakeClock. Each test runs in
// milliseconds and is deterministic: source -> reconcile -> probe -> alert,
// crash-loop backoff and its 10-minute healthy reset, refused revisions,
// unreachable machines, suspension, and memory kept across a restart.
// The same loops against real sshd and real time: clusterd_e2e_test.cc.
#include "controller/daemon.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "controller/quarantine.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::controller {
namespace {

using desired_state::Revision;
using desired_state::Snapshot;
using desired_state::SourceFile;
using reconcilers::ObservedState;
using testing::TempDir;
using testing::WaitFor;

constexpr int64_t kSecond = 1000;
constexpr int64_t kMinute = 60 * kSecond;

// What the fakes share with the test, so it outlives a daemon (a restart
// gives the new daemon new fakes over the same history and fleet).
struct World {
  std::mutex mu;
  // The source: commits oldest first; the branch head is the last.
  std::vector<Snapshot> history;
  std::string fetch_error;  // Fetch() fails with it when set.
  // The fleet: instance key -> process.
  struct Proc {
    ObservedState state = ObservedState::kStopped;
    int64_t pid = 0;
    std::string spec_hash;
    int64_t restarts = 0;
  };
  std::map<std::string, Proc> procs;
  std::set<std::string> unreachable;  // Machines.
  // Machine -> {total, available} KiB of its state directory's filesystem.
  std::map<std::string, std::pair<int64_t, int64_t>> disk_kb;
  // The notifications delivered (DaemonParts::deliver), in order.
  std::vector<nlohmann::json> delivered;
  std::set<std::string> failing_start;  // Instance keys whose start fails.
  std::vector<std::string> calls;       // "start db@m1", in order.
  // Runs inside every start and restart with the instance key, unlocked.
  std::function<void(const std::string&)> on_start;
  int64_t next_pid = 100;
  // The prober: instance key/role -> answer; absent = ok.
  std::set<std::string> liveness_failing;

  std::string Push(const std::string& services, const std::string& message,
                   const std::string& cluster_spec = "{}") {
    std::lock_guard<std::mutex> g(mu);
    Snapshot s;
    // A distinct short sha per commit: a000000, a010101, a020202, ...
    char sha[41];
    std::snprintf(sha, sizeof sha, "%07zx%033zx", 0xa000000 + history.size() * 0x10101,
                  history.size());
    s.revision.commit = sha;
    s.revision.author = "Alice <alice@example.com>";
    s.revision.message = message;
    s.revision.time = 1767225600 + static_cast<int64_t>(history.size());
    s.files = {
        {"cluster.yaml", "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: t}\nspec: " +
                             cluster_spec + "\n"},
        {"machines.yaml",
         "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m1}\n"
         "spec: {address: 127.0.0.1}\n---\n"
         "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m2}\n"
         "spec: {address: 127.0.0.2}\n"},
        {"services.yaml", services}};
    history.push_back(s);
    return sha;
  }
  void Crash(const std::string& key) {
    std::lock_guard<std::mutex> g(mu);
    procs[key].state = ObservedState::kFailed;
    procs[key].pid = 0;
  }
  std::vector<std::string> TakeCalls() {
    std::lock_guard<std::mutex> g(mu);
    std::vector<std::string> out;
    out.swap(calls);
    return out;
  }
  ObservedState StateOf(const std::string& key) {
    std::lock_guard<std::mutex> g(mu);
    return procs[key].state;
  }
};

class FakeSource : public desired_state::RevisionSource {
 public:
  explicit FakeSource(std::shared_ptr<World> w) : w_(std::move(w)) {}
  Status Fetch() override {
    std::lock_guard<std::mutex> g(w_->mu);
    return w_->fetch_error.empty() ? Status::Ok() : Status::Unavailable(w_->fetch_error);
  }
  void Cancel() override {}
  Result<Revision> Resolve(const std::string& rev) override {
    auto s = Read(rev);
    if (!s.ok()) return s.status();
    return s->revision;
  }
  Result<Snapshot> Read(const std::string& rev) override {
    std::lock_guard<std::mutex> g(w_->mu);
    if (w_->history.empty()) return Status::NotFound("the branch has no commit");
    if (rev.empty()) return w_->history.back();
    for (const auto& s : w_->history) {
      if (s.revision.commit == rev) return s;
    }
    return Status::NotFound("no commit " + rev);
  }
  Result<bool> IsDescendant(const std::string& commit, const std::string& ancestor) override {
    std::lock_guard<std::mutex> g(w_->mu);
    int c = -1, a = -1;
    for (size_t i = 0; i < w_->history.size(); ++i) {
      if (w_->history[i].revision.commit == commit) c = static_cast<int>(i);
      if (w_->history[i].revision.commit == ancestor) a = static_cast<int>(i);
    }
    if (c < 0 || a < 0) return Status::NotFound("commit gone");
    return a <= c;
  }

 private:
  std::shared_ptr<World> w_;
};

class FakeDriver : public reconcilers::ServiceDriver {
 public:
  explicit FakeDriver(std::shared_ptr<World> w) : w_(std::move(w)) {}
  Result<reconcilers::MachineObservation> Observe(
      const desired_state::Machine& m,
      const std::vector<const desired_state::Service*>& services) override {
    std::lock_guard<std::mutex> g(w_->mu);
    if (w_->unreachable.count(m.name)) {
      return Status::Unavailable("connecting to " + m.address + ":22: timeout after 5000 ms");
    }
    reconcilers::MachineObservation o;
    o.facts.machine = m.name;
    o.facts.reachable = true;
    if (auto d = w_->disk_kb.find(m.name); d != w_->disk_kb.end()) {
      o.facts.disk_total_kb = d->second.first;
      o.facts.disk_available_kb = d->second.second;
    }
    for (const auto* s : services) {
      const World::Proc& p = w_->procs[s->name + "@" + m.name];
      reconcilers::ObservedInstance i;
      i.service = s->name;
      i.machine = m.name;
      i.state = p.state;
      i.pid = p.pid;
      i.spec_hash = p.spec_hash;
      i.restarts = p.restarts;
      i.detail = p.state == ObservedState::kFailed ? "exited with status 1" : "";
      o.instances.push_back(i);
    }
    return o;
  }
  Result<std::string> Start(const desired_state::Machine& m, const desired_state::Service& s,
                            const std::string& spec_hash) override {
    return Run("start", s.name + "@" + m.name, spec_hash);
  }
  Result<std::string> Stop(const desired_state::Machine& m,
                           const desired_state::Service& s) override {
    std::lock_guard<std::mutex> g(w_->mu);
    const std::string key = s.name + "@" + m.name;
    w_->calls.push_back("stop " + key);
    w_->procs[key].state = ObservedState::kStopped;
    w_->procs[key].pid = 0;
    return std::string("terminated by SIGTERM");
  }
  Result<std::string> Restart(const desired_state::Machine& m, const desired_state::Service& s,
                              const std::string& spec_hash) override {
    return Run("restart", s.name + "@" + m.name, spec_hash);
  }

 private:
  Result<std::string> Run(const std::string& verb, const std::string& key,
                          const std::string& spec_hash) {
    std::function<void(const std::string&)> hook;
    {
      std::lock_guard<std::mutex> g(w_->mu);
      hook = w_->on_start;
    }
    if (hook) hook(key);
    std::lock_guard<std::mutex> g(w_->mu);
    w_->calls.push_back(verb + " " + key);
    World::Proc& p = w_->procs[key];
    if (w_->failing_start.count(key)) {
      p.state = ObservedState::kFailed;
      p.pid = 0;
      return Status::Internal("exit 1: bind: address already in use");
    }
    p.state = ObservedState::kRunning;
    p.pid = w_->next_pid++;
    p.spec_hash = spec_hash;
    ++p.restarts;
    return "started pid " + std::to_string(p.pid);
  }
  std::shared_ptr<World> w_;
};

class FakeProber : public reconcilers::Prober {
 public:
  explicit FakeProber(std::shared_ptr<World> w) : w_(std::move(w)) {}
  reconcilers::ProbeResult Run(const desired_state::Service& s, const desired_state::Machine& m,
                               reconcilers::ProbeRole role) override {
    reconcilers::ProbeResult r;
    r.service = s.name;
    r.machine = m.name;
    r.role = role;
    r.kind = "tcp";
    std::lock_guard<std::mutex> g(w_->mu);
    r.ok = !(role == reconcilers::ProbeRole::kLiveness && w_->liveness_failing.count(r.Key()));
    r.detail = r.ok ? "connected" : "connection refused";
    return r;
  }

 private:
  std::shared_ptr<World> w_;
};

// db on m1; app on m1 and m2 after db, with a liveness probe.
const char* kServices = R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: db}
spec:
  machines: [m1]
  process: {command: [/usr/bin/db]}
  restart: {backoffSeconds: 2, maxBackoffSeconds: 8}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: app}
spec:
  machines: [m1, m2]
  process: {command: [/usr/bin/app]}
  dependsOn: [{service: db}]
  liveness: {tcp: {port: 8080}, periodSeconds: 10, failureThreshold: 3}
)";

// The same without app on m2.
const char* kServicesAppOnM1 = R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: db}
spec:
  machines: [m1]
  process: {command: [/usr/bin/db]}
  restart: {backoffSeconds: 2, maxBackoffSeconds: 8}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: app}
spec:
  machines: [m1]
  process: {command: [/usr/bin/app]}
  dependsOn: [{service: db}]
)";

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = std::make_shared<World>();
    config_.data_dir = dir_.Sub("data");
    config_.repo_url = "fake://history";
  }

  void Start() { daemon_ = Make(config_, nullptr); }

  // A daemon over the shared world; with `elector`, one of several replicas.
  std::unique_ptr<Daemon> Make(const Config& config, std::unique_ptr<ha::LeaderElector> elector) {
    DaemonParts parts;
    parts.clock = &clock_;
    parts.source = std::make_unique<FakeSource>(world_);
    parts.driver = std::make_unique<FakeDriver>(world_);
    parts.prober = std::make_unique<FakeProber>(world_);
    parts.elector = std::move(elector);
    std::shared_ptr<World> world = world_;
    parts.deliver = [world](const notify::SinkConfig& sink, const nlohmann::json& n) {
      std::lock_guard<std::mutex> g(world->mu);
      if (sink.name != "down") world->delivered.push_back(n);
      return sink.name == "down" ? Status::Unavailable("receiver down") : Status::Ok();
    };
    auto d = Daemon::Create(config, std::move(parts));
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? std::move(d.value()) : nullptr;
  }

  // Fetch, then one reconcile pass.
  void Pass() {
    daemon_->PollSource();
    daemon_->ReconcileOnce();
  }
  // Fetch and converge: the pass that acts, then the pass that sees the
  // result (the reconcile loop runs it at once), as the loops would.
  void Converge() {
    Pass();
    daemon_->ReconcileOnce();
    world_->TakeCalls();
  }

  bool HasAlert(const std::string& id) { return HasAlert(daemon_.get(), id); }
  static bool HasAlert(Daemon* d, const std::string& id) {
    for (const auto& a : d->Alerts({})) {
      if (a.key == id) return true;
    }
    return false;
  }

  std::vector<audit::AuditRecord> AuditOf(const std::string& action) {
    return AuditOf(daemon_.get(), action);
  }
  static std::vector<audit::AuditRecord> AuditOf(Daemon* d, const std::string& action) {
    audit::AuditFilter f;
    f.action = action;
    f.limit = 0;
    f.oldest_first = true;
    auto r = d->Audit(f);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<audit::AuditRecord>{};
  }

  // Runs the probes due now and waits (bounded) until their results are in.
  void ProbeNow() {
    daemon_->RunProbesDue();
    ASSERT_TRUE(
        WaitFor([&] { return daemon_->ProbesInFlight() == 0; }, std::chrono::milliseconds(5000)));
  }

  TempDir dir_;
  FakeClock clock_;
  std::shared_ptr<World> world_;
  Config config_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(DaemonTest, ANewRevisionIsConvergedDependenciesFirstAndRecorded) {
  const std::string sha = world_->Push(kServices, "first");
  Start();
  EXPECT_TRUE(daemon_->PollSource());
  daemon_->ReconcileOnce();
  std::vector<std::string> calls = world_->TakeCalls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0], "start db@m1");  // Before either app.
  EXPECT_EQ(std::set<std::string>(calls.begin() + 1, calls.end()),
            (std::set<std::string>{"start app@m1", "start app@m2"}));
  auto revisions = daemon_->Revisions(10);
  ASSERT_EQ(revisions.size(), 1u);
  EXPECT_EQ(revisions[0].commit, sha);
  EXPECT_EQ(revisions[0].result, "ok");
  auto applied = AuditOf("revision_applied");
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].trigger, "revision");
  EXPECT_EQ(AuditOf("start").size(), 6u);  // An intent and a result per start.

  // Converged: the next pass does nothing, and the same head is not reloaded.
  EXPECT_FALSE(daemon_->PollSource());
  daemon_->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());
  EXPECT_EQ(daemon_->Status()["overall_status"], "healthy");
}

TEST_F(DaemonTest, ACrashIsRepairedWithTriggerDrift) {
  world_->Push(kServices, "first");
  Start();
  Converge();
  world_->Crash("app@m2");
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start app@m2"}));
  EXPECT_EQ(world_->StateOf("app@m2"), ObservedState::kRunning);
  auto starts = AuditOf("start");
  ASSERT_FALSE(starts.empty());
  EXPECT_EQ(starts.back().trigger, "drift");
  EXPECT_EQ(starts.back().machine, "m2");
}

TEST_F(DaemonTest, CrashLoopBackoffDoublesAlertsAfterThreeAndResetsAfterTenHealthyMinutes) {
  world_->Push(kServices, "first");
  Start();
  Converge();

  // Crash 1: repaired at once; counts, next start not before +2 s.
  world_->Crash("db@m1");
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start db@m1"}));
  // Crash 2 within the backoff: not started until 2 s passed.
  world_->Crash("db@m1");
  clock_.Advance(1 * kSecond);
  daemon_->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());
  EXPECT_NE(daemon_->Status()["overall_status"], "healthy");  // db@m1 is down.
  clock_.Advance(1 * kSecond + 1);
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start db@m1"}));
  EXPECT_FALSE(HasAlert("crash_loop/m1/db"));
  // Crash 3: the delay doubled to 4 s; the third counted start alerts.
  world_->Crash("db@m1");
  clock_.Advance(3 * kSecond);
  daemon_->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());
  clock_.Advance(1 * kSecond + 1);
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start db@m1"}));
  EXPECT_TRUE(HasAlert("crash_loop/m1/db"));

  // Healthy for a minute: the alert stays; past alerts.resolveAfterSeconds
  // (120 s) since its last start it resolves.
  clock_.Advance(1 * kMinute);
  daemon_->ReconcileOnce();
  EXPECT_TRUE(HasAlert("crash_loop/m1/db"));
  clock_.Advance(1 * kMinute + 1);
  daemon_->ReconcileOnce();
  EXPECT_FALSE(HasAlert("crash_loop/m1/db"));
  // Past 10 minutes healthy the count is forgotten too.
  clock_.Advance(8 * kMinute);
  daemon_->ReconcileOnce();
  // The count starts over: after the next crash and repair, a crash 3 s
  // later is repaired at once (2 s backoff), where the old count (4) would
  // have held it for 8 s.
  world_->Crash("db@m1");
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start db@m1"}));
  world_->Crash("db@m1");
  clock_.Advance(3 * kSecond);
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start db@m1"}));
}

TEST_F(DaemonTest, AFailingStartBacksOffAndHoldsBackItsDependents) {
  world_->failing_start.insert("db@m1");
  world_->Push(kServices, "first");
  Start();
  Pass();
  // db failed: app is not started before its dependency runs.
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start db@m1"}));
  auto revisions = daemon_->Revisions(10);
  ASSERT_EQ(revisions.size(), 1u);
  EXPECT_EQ(revisions[0].result, "failed");
  daemon_->ReconcileOnce();  // Within the 2 s backoff: nothing.
  EXPECT_TRUE(world_->TakeCalls().empty());
  {
    std::lock_guard<std::mutex> g(world_->mu);
    world_->failing_start.clear();
  }
  clock_.Advance(2 * kSecond + 1);
  daemon_->ReconcileOnce();
  auto calls = world_->TakeCalls();
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls[0], "start db@m1");
  // Level-based: the dependents follow in the same or the next pass.
  daemon_->ReconcileOnce();
  calls = world_->TakeCalls();
  EXPECT_EQ(world_->StateOf("app@m1"), ObservedState::kRunning);
  EXPECT_EQ(world_->StateOf("app@m2"), ObservedState::kRunning);
}

TEST_F(DaemonTest, AnInvalidRevisionIsRefusedAuditedAndAlertedWhileTheLastValidStaysInForce) {
  const std::string good = world_->Push(kServices, "first");
  Start();
  Converge();
  const std::string bad =
      world_->Push(std::string(kServices) +
                       "---\napiVersion: clusterctl/v1\nkind: Service\n"
                       "metadata: {name: lb}\nspec: {machines: [m1], process: {command: "
                       "[/usr/bin/lb]}, dependsOn: [{service: nginx}]}\n",
                   "add lb");
  EXPECT_FALSE(daemon_->PollSource());
  daemon_->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());
  EXPECT_TRUE(HasAlert("revision_rejected//"));
  auto rejected = AuditOf("revision_rejected");
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].revision, bad.substr(0, 7));
  EXPECT_NE(rejected[0].detail.find("nginx"), std::string::npos) << rejected[0].detail;
  auto revisions = daemon_->Revisions(10);
  ASSERT_EQ(revisions.size(), 2u);
  EXPECT_EQ(revisions[0].result, "rejected");  // Newest first.
  EXPECT_EQ(daemon_->Status()["revision"], good);
  // The same bad head is not retried; a fixed commit ends the alert.
  EXPECT_FALSE(daemon_->PollSource());
  EXPECT_EQ(AuditOf("revision_rejected").size(), 1u);
  world_->Push(kServicesAppOnM1, "drop app from m2");
  EXPECT_TRUE(daemon_->PollSource());
  EXPECT_FALSE(HasAlert("revision_rejected//"));
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"stop app@m2"}));
}

TEST_F(DaemonTest, AnUnreachableMachineAlertsAndIsAuditedOncePerOutage) {
  world_->Push(kServices, "first");
  Start();
  Converge();
  {
    std::lock_guard<std::mutex> g(world_->mu);
    world_->unreachable.insert("m2");
  }
  daemon_->ReconcileOnce();
  daemon_->ReconcileOnce();
  EXPECT_TRUE(HasAlert("machine_unreachable/m2/"));
  auto events = AuditOf("machine_unreachable");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].machine, "m2");
  EXPECT_NE(events[0].detail.find("timeout"), std::string::npos);
  EXPECT_TRUE(world_->TakeCalls().empty());  // Nothing is sent blind.
  {
    std::lock_guard<std::mutex> g(world_->mu);
    world_->unreachable.clear();
  }
  daemon_->ReconcileOnce();
  EXPECT_FALSE(HasAlert("machine_unreachable/m2/"));
}

TEST_F(DaemonTest, LivenessFailuresUpToTheThresholdRestartTheInstance) {
  world_->Push(kServices, "first");
  Start();
  Converge();
  {
    std::lock_guard<std::mutex> g(world_->mu);
    world_->liveness_failing.insert("app@m1");
  }
  // failureThreshold 3, periodSeconds 10: three failed periods.
  for (int i = 0; i < 3; ++i) {
    if (i > 0) clock_.Advance(10 * kSecond);
    ProbeNow();
    EXPECT_EQ(AuditOf("probe_failed").size(), i < 2 ? 0u : 1u) << "after probe " << i;
  }
  // Nothing is due again before the period ends.
  clock_.Advance(9 * kSecond);
  EXPECT_EQ(daemon_->RunProbesDue(), 0u);
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"restart app@m1"}));
  auto failed = AuditOf("probe_failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].service, "app");
  EXPECT_EQ(failed[0].machine, "m1");
  auto restarts = AuditOf("restart");
  ASSERT_FALSE(restarts.empty());
  EXPECT_EQ(restarts.back().trigger, "drift");
}

TEST_F(DaemonTest, SuspendedItActsOnNothingUntilResumed) {
  world_->Push(kServices, "first");
  Start();
  Converge();
  daemon_->Suspend("alice@laptop");
  world_->Crash("app@m1");
  daemon_->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());
  EXPECT_TRUE(HasAlert("suspended//"));
  daemon_->Resume("alice@laptop");
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start app@m1"}));
  auto suspend = AuditOf("suspend");
  ASSERT_EQ(suspend.size(), 1u);
  EXPECT_EQ(suspend[0].actor, "alice@laptop");
}

TEST_F(DaemonTest, SuspensionAlertsAndBackoffSurviveARestart) {
  world_->Push(kServices, "first");
  Start();
  Pass();
  for (int i = 0; i < 3; ++i) {
    world_->Crash("db@m1");
    clock_.Advance(10 * kSecond);
    daemon_->ReconcileOnce();
  }
  ASSERT_TRUE(HasAlert("crash_loop/m1/db"));
  daemon_->Suspend("bob@laptop");
  daemon_.reset();

  Start();
  EXPECT_TRUE(daemon_->suspended());
  EXPECT_TRUE(HasAlert("crash_loop/m1/db"));
  // The revision in force is read back: a pass knows what to run before
  // any fetch.
  daemon_->Resume("bob@laptop");
  world_->TakeCalls();
  world_->Crash("db@m1");
  daemon_->ReconcileOnce();  // Within the kept 8 s backoff: nothing.
  EXPECT_TRUE(world_->TakeCalls().empty());
  clock_.Advance(8 * kSecond + 1);
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start db@m1"}));
}

TEST_F(DaemonTest, AFailingFetchAlertsAndKeepsTheRevisionInForce) {
  const std::string sha = world_->Push(kServices, "first");
  Start();
  Pass();
  {
    std::lock_guard<std::mutex> g(world_->mu);
    world_->fetch_error = "connection refused";
  }
  bool fetched = true;
  EXPECT_FALSE(daemon_->PollSource(&fetched));
  EXPECT_FALSE(fetched);
  EXPECT_TRUE(HasAlert("source_fetch//"));
  EXPECT_EQ(daemon_->Status()["revision"], sha);
  {
    std::lock_guard<std::mutex> g(world_->mu);
    world_->fetch_error.clear();
  }
  daemon_->PollSource(&fetched);
  EXPECT_TRUE(fetched);
  EXPECT_FALSE(HasAlert("source_fetch//"));
}

// ------------------------------------------------------------- replicas

// Two replicas over the same fleet and history, electing a leader through a
// real redis-server; the lease is judged on the shared FakeClock and the
// electors are ticked by the test.
class ReplicasTest : public DaemonTest {
 protected:
  static constexpr int64_t kLeaseMs = 15000, kMarginMs = 2000;

  void SetUp() override {
    DaemonTest::SetUp();
    redis_ = std::make_unique<testing::RedisServer>();
    world_->Push(kServices, "first");
  }

  // Replica `name` with its own data directory.
  std::unique_ptr<Daemon> Replica(const std::string& name, ha::LeaderElector** elector) {
    ha::LeaderElectionOptions o;
    o.host = redis_->host();
    o.port = redis_->port();
    o.replica_name = name;
    o.lease_ms = kLeaseMs;
    o.renew_interval_ms = 5000;
    o.safety_margin_ms = kMarginMs;
    o.clock = &clock_;
    auto e = ha::LeaderElector::Create(o);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    *elector = e->get();
    Config c = config_;
    c.data_dir = dir_.Sub("data-" + name);
    return Make(c, std::move(e.value()));
  }

  static void Converge(Daemon* d) {
    d->PollSource();
    d->ReconcileOnce();
    d->ReconcileOnce();
  }

  std::unique_ptr<testing::RedisServer> redis_;
};

TEST_F(ReplicasTest, OnlyTheLeaderActsAndTheFollowerNamesIt) {
  ha::LeaderElector *ea = nullptr, *eb = nullptr;
  auto a = Replica("node-a", &ea);
  auto b = Replica("node-b", &eb);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(ea->Tick().ok());
  ASSERT_TRUE(eb->Tick().ok());
  ASSERT_TRUE(a->Leading());
  ASSERT_FALSE(b->Leading());

  Converge(b.get());  // The follower observes and plans, and sends nothing.
  EXPECT_TRUE(world_->TakeCalls().empty());
  EXPECT_TRUE(b->Revisions(10).empty());  // The leader records the revision.
  Converge(a.get());
  EXPECT_EQ(world_->TakeCalls().size(), 3u);

  nlohmann::json status = b->Status();
  EXPECT_EQ(status["role"], "follower");
  EXPECT_EQ(status["replica"], "node-b");
  EXPECT_EQ(status["leader"], "node-a");
  EXPECT_EQ(a->Status()["role"], "leader");
  EXPECT_NE(b->WriteRefusal().find("the leader is node-a"), std::string::npos) << b->WriteRefusal();
  EXPECT_EQ(a->WriteRefusal(), "");
  EXPECT_NE(a->Metrics().find("clusterd_leader{replica=\"node-a\"} 1"), std::string::npos);
  EXPECT_NE(b->Metrics().find("clusterd_leader{replica=\"node-b\"} 0"), std::string::npos);

  // Drift is repaired by the leader only.
  world_->Crash("app@m2");
  b->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());
  a->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start app@m2"}));

  // The leader's records of actions carry its name and token.
  const int64_t token = ea->state().token;
  ASSERT_GT(token, 0);
  auto starts = AuditOf(a.get(), "start");
  ASSERT_EQ(starts.size(), 8u);  // Four starts, intent and result each.
  for (const auto& r : starts) {
    EXPECT_EQ(r.leader, "node-a");
    EXPECT_EQ(r.fencing_token, static_cast<uint64_t>(token));
  }
  // Every record the leader writes carries its name and token: the
  // revision it applied, a user's suspension.
  a->Suspend("alice@laptop");
  a->Resume("alice@laptop");
  for (const char* action : {"revision_applied", "suspend", "resume"}) {
    auto events = AuditOf(a.get(), action);
    ASSERT_EQ(events.size(), 1u) << action;
    EXPECT_EQ(events[0].leader, "node-a") << action;
    EXPECT_EQ(events[0].fencing_token, static_cast<uint64_t>(token)) << action;
  }
  // The follower acted on nothing; its log holds copies of the leader's
  // records (the leader's journal), under the leader's name and token.
  b->ReconcileOnce();  // A follower copies the journal on every pass.
  for (const char* action : {"revision_applied", "suspend", "resume"}) {
    EXPECT_EQ(AuditOf(b.get(), action).size(), 1u) << action;  // The copies.
  }
  auto copies = AuditOf(b.get(), "start");
  ASSERT_EQ(copies.size(), starts.size());
  // The copies may come in another order than the leader's own log (steps
  // on two machines run at once): each names the leader's record it copies.
  for (const auto& copy : copies) {
    const audit::AuditRecord* start = nullptr;
    for (const auto& r : starts) {
      const std::string prefix = "[journal of node-a #" + std::to_string(r.seq);
      if (copy.detail.rfind(prefix, 0) == 0 && copy.detail.size() > prefix.size() &&
          !std::isdigit(static_cast<unsigned char>(copy.detail[prefix.size()]))) {
        start = &r;
      }
    }
    ASSERT_NE(start, nullptr) << copy.detail;
    EXPECT_EQ(copy.leader, "node-a");
    EXPECT_EQ(copy.fencing_token, start->fencing_token);
    EXPECT_EQ(copy.phase, start->phase);
    EXPECT_EQ(copy.result, start->result);
    EXPECT_EQ(copy.machine, start->machine);
    if (copy.phase == "result") {
      EXPECT_NE(copy.intent_seq, 0u);  // Linked to the copy of its intent.
    }
  }
}

// The leader is deposed in the middle of a step: its intent reached the
// journal, its result could not. The follower that takes over records the
// step interrupted before it acts.
TEST_F(ReplicasTest, ANewLeaderClosesTheStepTheOldOneLeftOpen) {
  ha::LeaderElector *ea = nullptr, *eb = nullptr;
  auto a = Replica("node-a", &ea);
  auto b = Replica("node-b", &eb);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(ea->Tick().ok());
  ASSERT_TRUE(eb->Tick().ok());
  Converge(a.get());
  Converge(b.get());
  world_->TakeCalls();
  world_->on_start = [&](const std::string&) { (void)ea->Release(); };  // Deposed mid-step.
  world_->Crash("app@m1");
  a->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start app@m1"}));
  world_->on_start = nullptr;

  ASSERT_TRUE(eb->Tick().ok());
  ASSERT_TRUE(b->Leading());
  b->ReconcileOnce();
  auto starts = AuditOf(b.get(), "start");
  ASSERT_GE(starts.size(), 2u);
  const audit::AuditRecord& closed = starts.back();
  EXPECT_EQ(closed.phase, "result");
  EXPECT_EQ(closed.result, "interrupted");
  EXPECT_EQ(closed.trigger, "recovery");
  EXPECT_EQ(closed.machine, "m1");
  ASSERT_NE(closed.intent_seq, 0u);
  const auto intent = std::find_if(starts.begin(), starts.end(), [&](const audit::AuditRecord& r) {
    return r.seq == closed.intent_seq;
  });
  ASSERT_NE(intent, starts.end());
  EXPECT_EQ(intent->leader, "node-a");
  EXPECT_EQ(intent->phase, "intent");
  // The new leader re-observed: app@m1 runs (the old leader's start did
  // happen), so nothing is started twice.
  EXPECT_TRUE(world_->TakeCalls().empty());
}

TEST_F(ReplicasTest, ALeaderPastItsLeaseByItsOwnClockSendsNothingEvenWithoutRedis) {
  ha::LeaderElector* ea = nullptr;
  auto a = Replica("node-a", &ea);
  ASSERT_TRUE(a);
  ASSERT_TRUE(ea->Tick().ok());
  Converge(a.get());
  world_->TakeCalls();
  redis_->Stop();  // No renewal from now on.
  EXPECT_FALSE(ea->Tick().ok());
  clock_.Advance(kLeaseMs - kMarginMs - 1);
  EXPECT_TRUE(a->Leading());
  clock_.Advance(1);
  EXPECT_FALSE(a->Leading());
  world_->Crash("db@m1");
  a->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());
  EXPECT_EQ(a->Status()["role"], "follower");
}

TEST_F(ReplicasTest, AStepIsFencedWhenTheLeaseEndsInThePassAndNothingMoreIsSent) {
  ha::LeaderElector* ea = nullptr;
  auto a = Replica("node-a", &ea);
  ASSERT_TRUE(a);
  ASSERT_TRUE(ea->Tick().ok());
  // The lease runs out (by the replica's clock) while db@m1 starts: app,
  // which waits for db, must not be sent.
  world_->on_start = [&](const std::string& key) {
    if (key == "db@m1") clock_.Advance(kLeaseMs);
  };
  a->PollSource();
  a->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start db@m1"}));
  auto starts = AuditOf(a.get(), "start");
  int fenced = 0;
  for (const auto& r : starts) {
    if (r.result != "fenced") continue;
    ++fenced;
    EXPECT_EQ(r.service, "app");
    EXPECT_EQ(r.fencing_token, 0u);  // Not an action.
    EXPECT_NE(r.detail.find("no longer holds the leader lease"), std::string::npos) << r.detail;
  }
  EXPECT_EQ(fenced, 2);
  // The fenced steps do not count as crashes, and the pass is not recorded
  // as applied by a replica that lost the lease during it.
  EXPECT_FALSE(HasAlert(a.get(), "crash_loop/m1/app"));
  EXPECT_TRUE(a->Revisions(10).empty());
}

TEST_F(ReplicasTest, AfterAFailoverTheNewLeaderActsWithAHigherToken) {
  ha::LeaderElector *ea = nullptr, *eb = nullptr;
  auto a = Replica("node-a", &ea);
  auto b = Replica("node-b", &eb);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(ea->Tick().ok());
  ASSERT_TRUE(eb->Tick().ok());
  Converge(a.get());
  Converge(b.get());
  world_->TakeCalls();
  const int64_t old_token = ea->state().token;
  ASSERT_TRUE(ea->Release().ok());  // node-a shuts down.
  ASSERT_TRUE(eb->Tick().ok());
  ASSERT_TRUE(b->Leading());
  EXPECT_GT(eb->state().token, old_token);
  EXPECT_FALSE(a->Leading());

  world_->Crash("app@m1");
  a->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());
  b->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start app@m1"}));
  auto starts = AuditOf(b.get(), "start");
  ASSERT_FALSE(starts.empty());
  EXPECT_EQ(starts.back().fencing_token, static_cast<uint64_t>(eb->state().token));
  EXPECT_EQ(starts.back().leader, "node-b");
  // The revision pending on the old follower is recorded by it as leader.
  auto revisions = b->Revisions(10);
  ASSERT_EQ(revisions.size(), 1u);
  EXPECT_EQ(revisions[0].result, "ok");
}

// The alert pipeline on fakes: conditions an observation shows raise,
// escalate and resolve alerts, and each event reaches the sinks that want
// it, once, in order.
TEST_F(DaemonTest, ObservedConditionsRaiseEscalateAndResolveAlertsAndNotifyOnce) {
  config_.escalate_after_ms = {60 * kSecond};
  notify::SinkConfig hook;
  hook.name = "hook";
  hook.kinds = {"machine_disk", "critical_service_down"};
  hook.cooldown_seconds = 0;
  config_.notify.sinks.push_back(hook);
  config_.disk_percent = 90;
  world_->Push(std::string(kServices) + "---\n" + R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: edge}
spec:
  machines: [m2]
  critical: true
  process: {command: [/usr/bin/edge]}
)",
               "first");
  Start();
  Converge();
  // m1's state directory fills up to 95%; edge crashes.
  world_->disk_kb["m1"] = {1000000, 50000};
  world_->Crash("edge@m2");
  daemon_->ReconcileOnce();
  EXPECT_TRUE(HasAlert("machine_disk/m1/"));
  EXPECT_TRUE(HasAlert("critical_service_down//edge"));
  // The repair brought edge back; the disk stays full past the escalation.
  clock_.Advance(61 * kSecond);
  daemon_->ReconcileOnce();
  daemon_->TickAlerts();
  EXPECT_FALSE(HasAlert("critical_service_down//edge"));
  EXPECT_TRUE(HasAlert("machine_disk/m1/"));
  world_->disk_kb["m1"] = {1000000, 500000};
  daemon_->ReconcileOnce();
  EXPECT_FALSE(HasAlert("machine_disk/m1/"));
  ASSERT_NE(daemon_->notifier(), nullptr);
  daemon_->notifier()->DeliverDue();
  std::vector<std::string> got;
  for (const auto& n : world_->delivered) {
    got.push_back(n["event"].get<std::string>() + " " + n["alert"]["key"].get<std::string>());
  }
  EXPECT_EQ(got, (std::vector<std::string>{
                     "firing machine_disk/m1/", "firing critical_service_down//edge",
                     "resolved critical_service_down//edge", "escalated machine_disk/m1/",
                     "resolved machine_disk/m1/"}));
  // The history keeps both, resolved.
  EXPECT_EQ(daemon_->Alerts({api::AlertQuery::State::kResolved, 0}).size(), 2u);
}

TEST_F(DaemonTest, AnAckIsAuditedAndAlertsAndTheOutboxSurviveARestart) {
  notify::SinkConfig down;
  down.name = "down";  // Its receiver refuses everything (see Make).
  config_.notify.sinks.push_back(down);
  world_->Push(kServices, "first");
  Start();
  Converge();
  world_->unreachable.insert("m2");
  daemon_->ReconcileOnce();
  ASSERT_TRUE(HasAlert("machine_unreachable/m2/"));
  auto acked =
      daemon_->AckAlert("machine_unreachable/m2/", "alice@laptop", 30 * kMinute, "rack power work");
  ASSERT_TRUE(acked.ok()) << acked.status().ToString();
  EXPECT_EQ(acked->ack->by, "alice@laptop");
  EXPECT_EQ(daemon_->AckAlert("nope", "alice@laptop", kMinute, "").status().code(),
            Code::kNotFound);
  daemon_->notifier()->DeliverDue();  // Refused: stays queued.
  EXPECT_EQ(daemon_->notifier()->Stats()[0].queued, 1u);
  daemon_.reset();

  Start();
  const auto firing = daemon_->Alerts({});
  ASSERT_EQ(firing.size(), 1u);
  EXPECT_EQ(firing[0].key, "machine_unreachable/m2/");
  ASSERT_TRUE(firing[0].ack.has_value());
  EXPECT_EQ(firing[0].ack->note, "rack power work");
  EXPECT_EQ(daemon_->notifier()->Stats()[0].queued, 1u);
  const auto acks = AuditOf("alert_acknowledged");
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].actor, "alice@laptop");
  EXPECT_NE(acks[0].detail.find("rack power work"), std::string::npos) << acks[0].detail;
}

// Drift leases: a hand-stopped instance under a lease is left alone (and so
// are its dependents), shown with the lease, kept across a restart, and
// started again by the first pass after the lease ends; all audited.
TEST_F(DaemonTest, ADriftLeaseHoldsAnInstanceUntilItEndsThenTheDriftIsReverted) {
  world_->Push(kServices, "first");
  Start();
  Converge();
  auto granted = daemon_->GrantLease("db", "m1", 10 * kMinute, "moving the data dir", "bob@h");
  ASSERT_TRUE(granted.ok()) << granted.status().ToString();
  EXPECT_EQ(daemon_->GrantLease("nope", "", kMinute, "x", "bob@h").status().code(),
            Code::kNotFound);
  EXPECT_EQ(daemon_->GrantLease("db", "m2", kMinute, "x", "bob@h").status().code(),
            Code::kNotFound);  // db is not placed on m2.
  EXPECT_EQ(daemon_->GrantLease("db", "", 48 * 60 * kMinute, "x", "bob@h").status().code(),
            Code::kInvalid);
  // Bob stops db by hand; app on m1 crashes too: db stays down, app waits.
  {
    std::lock_guard<std::mutex> g(world_->mu);
    world_->procs["db@m1"].state = ObservedState::kStopped;
  }
  world_->Crash("app@m1");
  daemon_->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());
  const nlohmann::json db = daemon_->Status()["services"]["db"]["instances"]["m1"];
  EXPECT_NE(db["reason"].get<std::string>().find("drift lease 1 by bob@h"), std::string::npos)
      << db.dump();
  EXPECT_EQ(daemon_->Status()["leases"].size(), 1u);
  // It survives a restart of clusterd.
  daemon_.reset();
  Start();
  Pass();
  EXPECT_TRUE(world_->TakeCalls().empty());
  ASSERT_EQ(daemon_->Leases().size(), 1u);
  // Past its end, the next pass reverts the drift, dependencies first.
  clock_.Advance(10 * kMinute);
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start db@m1", "start app@m1"}));
  EXPECT_TRUE(daemon_->Leases().empty());
  ASSERT_EQ(AuditOf("lease_granted").size(), 1u);
  EXPECT_EQ(AuditOf("lease_granted")[0].actor, "bob@h");
  EXPECT_EQ(AuditOf("lease_granted")[0].service, "db");
  ASSERT_EQ(AuditOf("lease_expired").size(), 1u);
  EXPECT_EQ(AuditOf("lease_expired")[0].machine, "m1");
}

TEST_F(DaemonTest, EndingALeaseEarlyRevertsAtOnceAndIsAudited) {
  world_->Push(kServices, "first");
  Start();
  Converge();
  auto lease = daemon_->GrantLease("app", "", 30 * kMinute, "debugging", "ann@h");
  ASSERT_TRUE(lease.ok());
  world_->Crash("app@m2");
  daemon_->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());
  ASSERT_TRUE(daemon_->EndLease(lease->id, "ann@h").ok());
  EXPECT_EQ(daemon_->EndLease(lease->id, "ann@h").status().code(), Code::kNotFound);
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start app@m2"}));
  ASSERT_EQ(AuditOf("lease_ended").size(), 1u);
  EXPECT_EQ(AuditOf("lease_ended")[0].actor, "ann@h");
}

// Detect-only services (reconcile: {mode: observe}): drift is shown and
// alerted, never corrected; an enforced service next to it is repaired.
TEST_F(DaemonTest, AnObserveModeServiceIsReportedAndAlertedAndLeftAsItIs) {
  world_->Push(std::string(kServices) + "---\n" + R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: legacy}
spec:
  machines: [m2]
  reconcile: {mode: observe}
  process: {command: [/usr/bin/legacy]}
)",
               "first");
  Start();
  Pass();
  // Never started by the controller: observing is all it does.
  for (const auto& c : world_->TakeCalls()) EXPECT_EQ(c.find("legacy"), std::string::npos) << c;
  EXPECT_TRUE(HasAlert("drift_observed/m2/legacy"));
  const nlohmann::json legacy = daemon_->Status()["services"]["legacy"]["instances"]["m2"];
  EXPECT_NE(legacy["reason"].get<std::string>().find("reconcile mode observe"), std::string::npos)
      << legacy.dump();
  // Someone starts it by hand; later it crashes: still not repaired.
  {
    std::lock_guard<std::mutex> g(world_->mu);
    world_->procs["legacy@m2"] = {ObservedState::kRunning, 999, "", 0};
  }
  world_->Crash("db@m1");
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start db@m1"}));
  world_->Crash("legacy@m2");
  daemon_->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());
  EXPECT_EQ(world_->StateOf("legacy@m2"), ObservedState::kFailed);
  EXPECT_TRUE(HasAlert("drift_observed/m2/legacy"));
}

// Sync windows: a deny window holds the changes of a new revision (shown
// in status), a crash is still repaired inside it (repairDrift: always),
// and when it closes the change is made and the revision recorded.
TEST_F(DaemonTest, ADenyWindowHoldsANewRevisionUntilItEndsButNotADriftRepair) {
  world_->Push(kServices, "first");
  Start();
  Converge();
  // 2026-01-01 00:00 UTC on the fake clock: a freeze from midnight to 02:00.
  std::string changed = kServices;
  changed.replace(changed.find("/usr/bin/db"), 11, "/usr/bin/db2");
  const std::string second = world_->Push(
      changed, "db2",
      "{windows: [{name: freeze, kind: deny, schedule: \"0 0 * * *\", duration: 2h}]}");
  clock_.Advance(10 * kSecond);
  Pass();
  EXPECT_TRUE(world_->TakeCalls().empty());
  const nlohmann::json db = daemon_->Status()["services"]["db"]["instances"]["m1"];
  EXPECT_NE(db["reason"].get<std::string>().find("in deny window freeze"), std::string::npos)
      << db.dump();
  EXPECT_TRUE(AuditOf("revision_applied").size() == 1u);  // Only the first, so far.
  // A crash inside the window is repaired (repairDrift: always).
  world_->Crash("app@m2");
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start app@m2"}));
  // The window closes: db gets its new spec (and its dependents follow).
  clock_.Advance(2 * 60 * kMinute);
  daemon_->ReconcileOnce();
  const auto calls = world_->TakeCalls();
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls[0], "restart db@m1");
  ASSERT_EQ(AuditOf("revision_applied").size(), 2u);
  EXPECT_EQ(AuditOf("revision_applied")[1].revision, second.substr(0, 7));
}

// web on m1 and m2, canary first (count 1), 30 s of analysis; `version` in
// its command (the spec hash).
std::string CanaryWeb(const std::string& version) {
  return "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
         "  machines: [m1, m2]\n  process: {command: [/usr/bin/web, \"" +
         version +
         "\"]}\n"
         "  rollout: {canary: {count: 1, analysisSeconds: 30}}\n";
}

TEST_F(DaemonTest, ACanaryRolloutWaitsForTheAnalysisAndContinuesAfterARestart) {
  world_->Push(CanaryWeb("1"), "v1");
  Start();
  Converge();
  const std::string v2 = world_->Push(CanaryWeb("2"), "v2");
  Pass();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"restart web@m1"}));
  daemon_->ReconcileOnce();  // The canary is ready: the analysis starts.
  EXPECT_TRUE(world_->TakeCalls().empty());
  EXPECT_EQ(daemon_->Status()["services"]["web"]["rollout"]["summary"],
            "rollout of web to " + v2.substr(0, 7) +
                ": wave 1 of 2 (canary), 1/1 ready, "
                "analysis 30 s left");
  EXPECT_NE(
      daemon_->Status()["services"]["web"]["instances"]["m2"]["reason"].get<std::string>().find(
          "not acted on: rollout of web to " + v2.substr(0, 7)),
      std::string::npos);
  // clusterd restarts in the middle of the analysis: it goes on from there.
  clock_.Advance(10 * kSecond);
  daemon_.reset();
  Start();
  Pass();
  EXPECT_TRUE(world_->TakeCalls().empty());
  clock_.Advance(20 * kSecond);
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"restart web@m2"}));
  ASSERT_EQ(AuditOf("rollout_wave").size(), 1u);
  EXPECT_EQ(AuditOf("rollout_wave")[0].trigger, "revision");
  daemon_->ReconcileOnce();
  clock_.Advance(30 * kSecond);
  daemon_->ReconcileOnce();
  ASSERT_EQ(AuditOf("rollout_succeeded").size(), 1u);
  EXPECT_EQ(daemon_->Rollouts()[0]["phase"], "succeeded");
}

TEST_F(DaemonTest, ACanaryThatFailsIsPutBackAndItsRevisionQuarantined) {
  const std::string v1 = world_->Push(CanaryWeb("1"), "v1");
  Start();
  Converge();
  const std::string v2 = world_->Push(CanaryWeb("2"), "v2");
  {
    std::lock_guard<std::mutex> g(world_->mu);
    world_->failing_start.insert("web@m1");
  }
  Pass();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"restart web@m1"}));
  {
    std::lock_guard<std::mutex> g(world_->mu);
    world_->failing_start.clear();
  }
  daemon_->ReconcileOnce();  // The budget (0) is spent: the rollout fails.
  EXPECT_TRUE(world_->TakeCalls().empty());
  ASSERT_EQ(AuditOf("rollout_failed").size(), 1u);
  EXPECT_EQ(AuditOf("rollout_failed")[0].trigger, "auto-rollback");
  EXPECT_TRUE(HasAlert("rollout_failed//web"));
  // The source loop's turn: a fake source writes no commit, so the last
  // good revision itself goes back in force; v2 is quarantined.
  EXPECT_TRUE(daemon_->PollSource());
  auto q = ReadQuarantine(config_.data_dir);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->commits, std::set<std::string>{v2});
  EXPECT_EQ(q->rollback_commit, v1);
  ASSERT_EQ(AuditOf("auto_rollback").size(), 1u);
  EXPECT_EQ(AuditOf("auto_rollback")[0].result, "failed");  // No commit written.
  clock_.Advance(5 * kSecond);                              // Past the crash-loop backoff.
  daemon_->ReconcileOnce();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"start web@m1"}));
  auto starts = AuditOf("start");
  ASSERT_FALSE(starts.empty());
  EXPECT_EQ(starts.back().trigger, "auto-rollback");
  EXPECT_EQ(starts.back().revision, v1.substr(0, 7));
  // Auto-sync does not apply v2 again.
  EXPECT_FALSE(daemon_->PollSource());
  daemon_->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());
  // A fix rolls out normally, canary first (once the canary's crash-loop
  // backoff from the failed start is over).
  clock_.Advance(10 * kSecond);
  const std::string v3 = world_->Push(CanaryWeb("3"), "v3: fixed");
  Pass();
  EXPECT_EQ(world_->TakeCalls(), (std::vector<std::string>{"restart web@m1"}));
  EXPECT_FALSE(ReadQuarantine(config_.data_dir).has_value());
  EXPECT_EQ(daemon_->Rollouts()[0]["revision"], v3);
}

TEST_F(DaemonTest, ARolloutIsPausedResumedAndAbortedByHandWithTheActor) {
  world_->Push(CanaryWeb("1"), "v1");
  Start();
  Converge();
  world_->Push(CanaryWeb("2"), "v2");
  EXPECT_EQ(daemon_->ControlRollout("web", "pause", "alice@laptop").status().code(),
            Code::kNotFound);  // Not started yet.
  daemon_->PollSource();
  ASSERT_TRUE(daemon_->ControlRollout("nope", "pause", "alice@laptop").status().code() ==
              Code::kNotFound);
  daemon_->ReconcileOnce();
  world_->TakeCalls();
  ASSERT_TRUE(daemon_->ControlRollout("web", "pause", "alice@laptop").ok());
  clock_.Advance(60 * kSecond);
  daemon_->ReconcileOnce();
  EXPECT_TRUE(world_->TakeCalls().empty());  // Paused: wave 2 does not open.
  ASSERT_TRUE(daemon_->ControlRollout("web", "resume", "alice@laptop").ok());
  auto aborted = daemon_->ControlRollout("web", "abort", "alice@laptop");
  ASSERT_TRUE(aborted.ok());
  EXPECT_EQ((*aborted)["phase"], "failed");
  ASSERT_EQ(AuditOf("rollout_pause").size(), 1u);
  EXPECT_EQ(AuditOf("rollout_pause")[0].actor, "alice@laptop");
  EXPECT_EQ(AuditOf("rollout_abort")[0].trigger, "manual");
  EXPECT_EQ(daemon_->ControlRollout("web", "stop", "alice@laptop").status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace clusterctl::controller

#include "controller/daemon.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <utility>

#include "api/dashboard_view.h"
#include "api/status_view.h"
#include "base/malloc_tuning.h"
#include "base/paths.h"
#include "base/process_stats.h"
#include "base/time_format.h"
#include "controller/daemon_policy.h"
#include "controller/journal.h"
#include "controller/quarantine.h"
#include "controller/revision_pass.h"
#include "controller/windows.h"
#include "desired-state/commit_signature.h"
#include "desired-state/loader.h"
#include "desired-state/redact_url.h"
#include "reconcilers/observer.h"

namespace clusterctl::controller {

using desired_state::DesiredState;
using nlohmann::json;

namespace {

constexpr size_t kMaxSnapshots = 500;
constexpr char kAvailabilityKey[] = "daemon/availability";
constexpr int64_t kAvailabilitySaveMs = 60000;
constexpr size_t kPassDurationsKept = 200;

std::string HostName() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return host;
}

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

// readiness.failureThreshold of `service` (1 when it has no readiness probe).
int ReadinessThreshold(const DesiredState* d, const std::string& service) {
  const auto* s = d != nullptr ? d->FindService(service) : nullptr;
  return s != nullptr && s->readiness ? s->readiness->failure_threshold : 1;
}

// Beats the reconcile loop on every step, so a long pass that makes
// progress is not taken for a stalled one.
// Marks the reconcile loop's progress on every step, and tells the daemon
// when a start or restart begins (`new_life`).
class BeatListener : public reconcilers::StepListener {
 public:
  BeatListener(std::function<void()> beat, std::function<void(const reconcilers::Step&)> new_life)
      : beat_(std::move(beat)), new_life_(std::move(new_life)) {}
  clusterctl::Status OnStepStart(const reconcilers::Step& st) override {
    beat_();
    if (st.action != reconcilers::Action::kStop) new_life_(st);
    return clusterctl::Status::Ok();
  }
  void OnStepEnd(const reconcilers::Step&, const reconcilers::StepOutcome&) override { beat_(); }

 private:
  std::function<void()> beat_;
  std::function<void(const reconcilers::Step&)> new_life_;
};

// The leader lease as the reconciler's gate.
class ElectorGate : public ActGate {
 public:
  explicit ElectorGate(ha::LeaderElector* elector) : elector_(elector) {}
  bool MayAct(uint64_t* token) const override {
    int64_t t = 0;
    const bool may = elector_->MayAct(&t);
    if (token != nullptr) *token = static_cast<uint64_t>(t);
    return may;
  }
  std::string replica() const override { return elector_->replica_name(); }
  clusterctl::Status Journal(const audit::AuditRecord& record) override {
    return elector_->Publish(audit::ToJsonLine(record)).status();
  }

 private:
  ha::LeaderElector* elector_;
};

// The machine leases of shards (ha/shard_coordinator.h) as the reconciler's
// gate: a step on machine M is sent only while this replica holds M's lease.
class ShardGate : public ActGate {
 public:
  explicit ShardGate(ha::ShardCoordinator* shards) : shards_(shards) {}
  // No lease covers what is not on one machine: events are recorded
  // without a token.
  bool MayAct(uint64_t* token) const override {
    (void)token;
    return false;
  }
  bool MayActOn(const std::string& machine, uint64_t* token) const override {
    int64_t t = 0;
    const bool may = shards_->MayAct(machine, &t);
    if (token != nullptr) *token = static_cast<uint64_t>(t);
    return may;
  }
  std::string FencedWhy(const std::string& machine) const override {
    return "fenced: replica " + replica() + " no longer holds the lease of machine " + machine +
           "; the step was not sent";
  }
  std::string replica() const override { return shards_->replica_name(); }
  // Each replica's audit log holds its own actions: no shared journal.
  clusterctl::Status Journal(const audit::AuditRecord& record) override {
    (void)record;
    return clusterctl::Status::Ok();
  }

 private:
  ha::ShardCoordinator* shards_;
};

// The highest fencing token among the newest records of `log`: a restarted
// replica's tokens start above the ones it wrote before.
uint64_t MaxRecentToken(const audit::AuditLog& log) {
  audit::AuditFilter f;
  f.limit = 1000;
  auto records = log.Query(f);
  uint64_t max = 0;
  if (records.ok()) {
    for (const auto& r : *records) max = std::max(max, r.fencing_token);
  }
  return max;
}

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::Create(const Config& config, const Clock* clock) {
  DaemonParts parts;
  parts.clock = clock;
  return Create(config, std::move(parts));
}

Result<std::unique_ptr<Daemon>> Daemon::Create(const Config& config, DaemonParts parts) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->clock_ = &ClockOr(parts.clock);
  d->config_ = config;
  if (d->config_.data_dir.empty()) d->config_.data_dir = DefaultDataDir();
  d->load_options_ = LoadOptionsOf(d->config_, d->config_.data_dir);
  // Every revision is loaded in full; only the files a push changed are
  // parsed again (parse_cache.h).
  d->load_options_.cache = std::make_shared<desired_state::ParseCache>();
  if (d->config_.repo_url.empty() && !parts.source) {
    return clusterctl::Status::Invalid("the config names no repository: set repo.url");
  }
  d->actor_ = "clusterd@" + HostName();
  (void)api::DescribeClusterdMetrics(&d->metrics_);
  // A clusterctl command may hold the directory for a moment: retry briefly
  // before concluding that another clusterd owns it.
  auto store = store::Store::OpenPrimary(d->config_.data_dir);
  for (int i = 0; i < 25 && !store.ok() && store.status().code() == Code::kConflict; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    store = store::Store::OpenPrimary(d->config_.data_dir);
  }
  if (!store.ok()) return store.status();
  d->store_ = std::move(store.value());
  d->state_ = std::make_unique<store::StateStore>(d->store_.get(), store::Retention{}, d->clock_);
  auto audit = audit::AuditLog::Open(d->store_.get(), d->clock_);
  if (!audit.ok()) return audit.status();
  d->audit_ = std::move(audit.value());
  d->revisions_ = std::make_unique<store::RevisionLog>(d->store_.get());

  if (parts.source) {
    d->source_ = std::move(parts.source);
  } else {
    desired_state::GitSource::Options go;
    go.repo = d->config_.repo_url;
    go.branch = d->config_.branch;
    go.cache_dir = d->config_.data_dir + "/repos";
    go.fetch_timeout_seconds = d->config_.fetch_timeout_seconds;
    go.defer_clone = true;  // The source loop clones; start-up never waits on the remote.
    auto source = desired_state::GitSource::Open(go);
    if (!source.ok()) return source.status().Annotate("opening the repository");
    d->source_ = std::move(source.value());
  }

  reconcilers::SshOptions so;
  so.known_hosts = !d->config_.known_hosts.empty() ? d->config_.known_hosts
                                                   : d->config_.data_dir + "/known_hosts";
  if (d->config_.host_key_policy == "accept-new")
    so.policy = reconcilers::HostKeyPolicy::kAcceptNew;
  so.default_identity_file = ExpandHome(d->config_.identity_file);
  so.secrets = d->load_options_.secrets;
  so.connect_timeout_ms = d->config_.connect_timeout_seconds * 1000;
  so.command_timeout_ms = d->config_.command_timeout_seconds * 1000;
  if (parts.driver) {
    d->driver_ = std::move(parts.driver);
  } else {
    d->ssh_ = std::make_unique<reconcilers::SshPool>(so);
    reconcilers::ShellDriver::Options driver_options;
    driver_options.command_timeout = std::chrono::seconds(d->config_.command_timeout_seconds);
    driver_options.clock = d->clock_;
    d->driver_ = std::make_unique<reconcilers::ShellDriver>(d->ssh_.get(), driver_options);
  }
  if (parts.prober) {
    d->prober_ = std::move(parts.prober);
  } else if (d->ssh_) {
    d->prober_ = std::make_unique<reconcilers::RealProber>(d->ssh_.get(), d->clock_,
                                                           *d->load_options_.secrets);
  } else {
    return clusterctl::Status::Invalid("a daemon given its driver must be given its prober too");
  }
  {
    Daemon* self = d.get();
    d->probes_ = std::make_unique<reconcilers::AsyncProber>(
        d->prober_.get(), 16,
        [self](const reconcilers::ProbeResult& r) { self->OnProbeResult(r); });
  }
  if (parts.elector) {
    d->elector_ = std::move(parts.elector);
  } else if (d->config_.redis_host) {
    ha::LeaderElectionOptions eo;
    eo.host = *d->config_.redis_host;
    eo.port = d->config_.redis_port;
    auto password = ReadControllerSecret(d->config_.redis_password_file, "redis password");
    if (!password.ok()) return password.status().Annotate("redis.passwordFile");
    eo.password = *password;
    eo.key = d->config_.redis_key;
    eo.replica_name = d->config_.replica_name;
    eo.lease_ms = d->config_.redis_lease_ms;
    eo.renew_interval_ms = d->config_.redis_renew_ms;
    eo.retry_interval_ms = d->config_.redis_retry_ms;
    eo.safety_margin_ms = d->config_.redis_margin_ms;
    eo.clock = d->clock_;
    auto elector = ha::LeaderElector::Create(eo);
    if (!elector.ok()) return elector.status().Annotate("config redis");
    d->elector_ = std::move(elector.value());
    d->elector_ticked_by_run_ = true;
    if (d->config_.redis_shards) {
      ha::ShardOptions sh;
      sh.host = eo.host;
      sh.port = eo.port;
      sh.password = eo.password;
      sh.prefix = eo.key;
      sh.replica_id = d->elector_->replica_id();
      sh.replica_name = d->elector_->replica_name();
      sh.lease_ms = eo.lease_ms;
      sh.interval_ms = eo.renew_interval_ms;
      sh.safety_margin_ms = eo.safety_margin_ms;
      sh.clock = d->clock_;
      auto shards = ha::ShardCoordinator::Create(sh);
      if (!shards.ok()) return shards.status().Annotate("config redis.shards");
      d->shards_ = std::move(shards.value());
    }
  }
  if (d->elector_) {
    auto journal = LoadJournalState(*d->store_);
    if (!journal.ok()) return journal.status();
    d->journal_ = std::move(*journal);
    const auto floor = static_cast<int64_t>(MaxRecentToken(*d->audit_));
    d->elector_->RaiseTokenFloor(floor);
    if (d->shards_) {
      d->shards_->RaiseTokenFloor(floor);
      d->gate_ = std::make_unique<ShardGate>(d->shards_.get());
    } else {
      d->gate_ = std::make_unique<ElectorGate>(d->elector_.get());
    }
    (void)d->metrics_.Describe(api::kMetricLeader, api::MetricType::kGauge,
                               "1 on the clusterd replica that holds the leader lease, else 0.");
  }
  ReconcileDeps deps;
  deps.state = d->state_.get();
  deps.audit = d->audit_.get();
  deps.driver = d->driver_.get();
  deps.prober = d->prober_.get();
  deps.clock = d->clock_;
  deps.actor = d->actor_;
  deps.gate = d->gate_.get();
  d->reconciler_ = std::make_unique<Reconciler>(deps);
  // Shards: each replica watches only the machines it holds (UpdateWatch).
  if (d->config_.watch_enabled && d->ssh_) {
    reconcilers::DriftWatch::Options wo;
    wo.interval = std::chrono::milliseconds(d->config_.watch_interval_ms);
    wo.clock = d->clock_;
    wo.tick_timeout = std::chrono::milliseconds(std::min(5000, so.command_timeout_ms));
    Daemon* self = d.get();
    wo.on_event = [self](const reconcilers::DriftWatch::Event& e) { self->OnWatchEvent(e); };
    wo.on_log_rotated = [](const reconcilers::DriftWatch::LogRotation& r) {
      spdlog::debug("watch: log of {}@{} rotated at {} bytes", r.service, r.machine, r.bytes);
    };
    wo.on_machine = [](const std::string& machine, const clusterctl::Status& s) {
      spdlog::debug("watch: machine {}: {}", machine, s.ok() ? "back" : s.ToString());
    };
    d->watch_ = std::make_unique<reconcilers::DriftWatch>(d->ssh_.get(), wo);
  }

  // The last applied revision is in force until the source says otherwise.
  auto last = d->revisions_->LastApplied();
  if (last.ok() && last->has_value()) {
    d->applied_commit_ = (*last)->commit;
    auto snap = d->source_->Read((*last)->commit);
    if (snap.ok()) {
      auto r = desired_state::Load(*snap, d->load_options_);
      if (r.ok()) d->desired_ = std::make_shared<DesiredState>(std::move(*r.state));
    }
  }
  // Suspension, backoff, alerts and history survive a restart.
  auto memory = LoadMemory(*d->store_);
  if (!memory.ok()) return memory.status().Annotate("reading the daemon state");
  d->suspended_ = memory->suspended;
  d->suspended_by_ = memory->suspended_by;
  d->backoff_.Restore(memory->backoff, memory->healthy_since_ms);
  d->alerts_.SetEscalation(d->config_.escalate_after_ms);
  d->alerts_.SetKeepResolved(d->config_.alerts_keep_resolved);
  bool leases_ok = true;
  if (!memory->leases.is_null()) d->leases_.Restore(memory->leases, &leases_ok);
  if (!leases_ok) spdlog::warn("the stored drift leases were unreadable; starting with none");
  bool rollouts_ok = true;
  if (!memory->rollouts.is_null()) d->rollouts_.Restore(memory->rollouts, &rollouts_ok);
  if (!rollouts_ok) spdlog::warn("the stored rollouts were unreadable; starting with none");
  bool alerts_ok = true;
  if (!memory->alerts.is_null()) d->alerts_.Restore(memory->alerts, &alerts_ok);
  if (!alerts_ok) spdlog::warn("the stored alerts were unreadable; starting with none");
  d->saved_ = MemoryToJson(*memory).dump();
  if (auto saved = d->store_->Get("meta", kAvailabilityKey); saved.ok() && saved->has_value()) {
    bool ok = false;
    d->availability_ =
        AvailabilityBook::FromJson(json::parse(**saved, nullptr, /*allow_exceptions=*/false), &ok);
    if (!ok) spdlog::warn("the stored availability history was unreadable; starting afresh");
  }
  if (!d->config_.notify.sinks.empty()) {
    notify::NotifyConfig nc = d->config_.notify;
    clusterctl::Status read = ReadNotifySecrets(&nc);
    if (!read.ok()) return read.Annotate("config notify");
    auto notifier = notify::Notifier::Create(std::move(nc), d->store_.get(), d->clock_, d->actor_,
                                             std::move(parts.deliver));
    if (!notifier.ok()) return notifier.status().Annotate("opening the notification outbox");
    d->notifier_ = std::move(notifier.value());
  }
  d->started_ms_ = d->clock_->WallMs();
  // Only the keys: /api/v1/history reads the snapshots from the store (a
  // status of 10,000 instances is ~13 MiB as JSON; 500 of them in memory
  // made clusterd's RSS grow by that much per pass: the scale benchmark).
  (void)LoadSnapshots(*d->store_, 0, &d->snapshot_keys_);
  // What earlier runs started, to prune what is no longer desired.
  bool found = false;
  auto managed = LoadManaged(*d->state_, &found);
  if (!managed.ok()) return managed.status().Annotate("reading the managed instances");
  d->managed_ = std::move(*managed);
  if (!found && d->desired_) d->managed_ = SeedManaged(*d->desired_);
  {
    desired_state::RevisionSource* git = d->source_.get();
    // Without the cache: an old revision loaded for pruning would replace
    // the entries of the head's files.
    desired_state::LoadOptions options = d->load_options_;
    options.cache = nullptr;
    d->prune_loader_ = std::make_unique<PruneBasisLoader>(
        [git, options](const std::string& commit) -> Result<DesiredState> {
          auto snap = git->Read(commit);
          if (!snap.ok()) return snap.status();
          auto r = desired_state::Load(*snap, options);
          if (!r.ok()) return clusterctl::Status::Invalid(r.errors.ToString());
          return std::move(*r.state);
        });
  }
  return d;
}

Daemon::~Daemon() {
  Shutdown();
  if (shards_) shards_->Stop();
  if (elector_) elector_->Stop();
  if (watch_) watch_->Stop();    // Its callbacks use this object.
  if (probes_) probes_->Stop();  // So do these.
}

void Daemon::Shutdown() {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (source_) source_->Cancel();  // A fetch in flight ends now.
  if (reconciler_) reconciler_->Cancel();
}

void Daemon::SleepOrWake(int64_t ms, bool* flag) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, std::chrono::milliseconds(std::max<int64_t>(ms, 0)),
               [&] { return stopping_.load() || (flag != nullptr && *flag); });
  if (flag != nullptr) *flag = false;
}

void Daemon::Beat(const char* loop) {
  std::lock_guard<std::mutex> g(mu_);
  loops_.Beat(loop, clock_->SteadyMs());
}

void Daemon::PersistMemory(bool sync) {
  std::lock_guard<std::mutex> p(persist_mu_);
  DaemonMemory m;
  {
    std::lock_guard<std::mutex> g(mu_);
    m.suspended = suspended_;
    m.suspended_by = suspended_by_;
    m.backoff = backoff_.entries();
    m.healthy_since_ms = backoff_.healthy_since_ms();
    m.alerts = alerts_.ToJson();
    m.leases = leases_.ToJson();
    m.rollouts = rollouts_.ToJson();
  }
  std::string doc = MemoryToJson(m).dump();
  if (doc == saved_) return;
  clusterctl::Status s = SaveMemory(store_.get(), m, sync);
  if (s.ok()) {
    saved_ = std::move(doc);
  } else {
    spdlog::error("{}; retrying after the next pass", s.ToString());
  }
}

void Daemon::WakeReconcile() {
  {
    std::lock_guard<std::mutex> g(mu_);
    reconcile_requested_ = true;
  }
  cv_.notify_all();
}

clusterctl::Status Daemon::Run() {
  spdlog::info("clusterd starting: repository {} branch {}, data directory {}, secrets {}",
               desired_state::RedactUrls(config_.repo_url), config_.branch, config_.data_dir,
               load_options_.secrets->dir);
  if (suspended_) {
    spdlog::warn("starting suspended (by {}): POST /api/v1/resume to reconcile", suspended_by_);
  }
  // Steps a crashed predecessor left without a result.
  auto interrupted = audit_->RecordInterrupted(actor_);
  if (interrupted.ok() && !interrupted->empty()) {
    spdlog::warn("recorded {} step(s) interrupted by an earlier crash; re-observing",
                 interrupted->size());
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    const int64_t now = clock_->SteadyMs();
    loops_.Start("source", now,
                 SourceLoopBoundMs(config_.poll_seconds, config_.fetch_timeout_seconds));
    loops_.Start("reconcile", now,
                 ReconcileLoopBoundMs(desired_.get(), config_.command_timeout_seconds));
    loops_.Start("probe", now, kProbeLoopBoundMs);
  }
  // The source loop fetches first; the reconcile loop waits for that fetch
  // (a while: see kFirstFetchGraceMs), and meanwhile the API answers and
  // signals are handled.
  UpdateWatch();
  if (watch_) watch_->Start();
  if (elector_ && elector_ticked_by_run_) {
    spdlog::info("leader election through redis {}:{} as replica {}", *config_.redis_host,
                 config_.redis_port, elector_->replica_name());
    elector_->Start();
    if (shards_) {
      spdlog::info("shards: the replicas split the machines (redis.shards auto)");
      shards_->Start();
    }
  }
  state_->StartBackgroundCleanup(std::chrono::minutes(5));
  if (notifier_) notifier_->Start();
  std::thread source([this] { SourceLoop(); });
  std::thread reconcile([this] { ReconcileLoop(); });
  std::thread probes([this] { ProbeLoop(); });
  source.join();
  reconcile.join();
  probes.join();
  probes_->Stop();
  if (watch_) watch_->Stop();
  if (elector_ && elector_ticked_by_run_) {
    // Nothing acts any more: hand the lease over now instead of letting
    // the other replicas wait for it to expire.
    elector_->Stop();
    clusterctl::Status released = elector_->Release();
    if (!released.ok()) spdlog::warn("releasing the leader lease: {}", released.ToString());
    if (shards_) {
      shards_->Stop();
      clusterctl::Status left = shards_->Leave();
      if (!left.ok()) spdlog::warn("handing the machines over: {}", left.ToString());
    }
  }
  state_->Stop();
  if (notifier_) notifier_->Stop();  // The undelivered stay in the outbox.
  PersistMemory(/*sync=*/true);
  SaveAvailability();
  clusterctl::Status flushed = store_->Flush();
  if (flushed.code() == Code::kResourceExhausted) {
    // A full data disk: every write that succeeded is in the WAL already,
    // so stopping without the flush loses nothing (the next start replays
    // it); SIGTERM still exits 0.
    spdlog::warn("clusterd stopped without flushing the state store: {}", flushed.message());
    return clusterctl::Status::Ok();
  }
  spdlog::info("clusterd stopped{}", flushed.ok() ? "" : ": flush failed: " + flushed.message());
  return flushed;
}

// ---------------------------------------------------------------- source

bool Daemon::PollSource(bool* fetched_ok) {
  clusterctl::Status fetched = source_->Fetch();
  if (fetched_ok != nullptr) *fetched_ok = fetched.ok();
  if (fetched.ok()) WriteAutoRollback();  // A failed canary rollout waits for it.
  if (!fetched.ok()) {
    if (Stopping()) return false;  // Cancelled by shutdown.
    bool have_revision = false;
    {
      std::lock_guard<std::mutex> g(mu_);
      have_revision = desired_ != nullptr;
    }
    RaiseAlert(alerts::kind::kSourceFetch, "warning",
               "cannot fetch " + desired_state::RedactUrls(config_.repo_url) + ": " +
                   fetched.message() +
                   (have_revision ? "; the last good revision stays in force"
                                  : "; nothing is reconciled until a first fetch succeeds"));
    return false;
  }
  auto head = source_->Resolve("");
  if (!head.ok()) {
    RaiseAlert(alerts::kind::kSourceFetch, "warning", head.status().message());
    return false;
  }
  ResolveAlert(alerts::kind::kSourceFetch);
  // A rollback quarantines the revisions it undid: while the branch still
  // points at one of them (a refused push), the rollback commit stays in
  // force; a newer commit ends the quarantine.
  std::string wanted = head->commit;
  if (auto q = ReadQuarantine(config_.data_dir)) {
    if (q->commits.count(head->commit)) {
      wanted = q->rollback_commit;
      RaiseAlert(alerts::kind::kQuarantine, "info",
                 "branch head " + head->Short() + " is quarantined by a rollback; " +
                     q->rollback_commit.substr(0, 7) + " stays in force until a newer commit");
    } else if (head->commit != q->rollback_commit) {
      (void)ClearQuarantine(config_.data_dir);
      ResolveAlert(alerts::kind::kQuarantine);
    }
  }
  std::string current;
  {
    std::lock_guard<std::mutex> g(mu_);
    current = desired_ ? desired_->revision.commit : "";
    if (wanted == current || wanted == rejected_commit_) return false;
  }
  if (wanted != head->commit) {
    auto rb = source_->Resolve(wanted);
    if (!rb.ok()) {
      RaiseAlert(alerts::kind::kQuarantine, "warning",
                 "the rollback commit is missing: " + rb.status().message());
      return false;
    }
    head = std::move(rb);
  }
  if (config_.verify_mode != "off") {
    const std::string refusal = SignatureRefusal(head->commit, current);
    if (!refusal.empty()) {
      spdlog::error("revision {} refused: {}; {} stays in force", head->Short(), refusal,
                    current.empty() ? "nothing" : current.substr(0, 7));
      RejectRevision(*head, refusal,
                     "revision " + head->Short() + " refused: " + refusal +
                         "; the last valid revision stays in force");
      return false;
    }
  }
  auto snap = source_->Read(head->commit);
  if (!snap.ok()) {
    RaiseAlert(alerts::kind::kSourceFetch, "warning", snap.status().message());
    return false;
  }
  desired_state::LoadResult r = desired_state::Load(*snap, load_options_);
  if (!r.ok()) {
    const std::string errors = r.errors.ToString();
    const size_t n = r.errors.Sorted().size();
    spdlog::error("revision {} rejected ({} errors); {} stays in force:\n{}", head->Short(), n,
                  current.empty() ? "nothing" : current.substr(0, 7), errors);
    RejectRevision(*head, errors,
                   "revision " + head->Short() + " rejected with " + std::to_string(n) +
                       " error(s); the last valid revision stays in force: " + FirstLine(errors));
    return false;
  }
  std::string note;
  if (!current.empty()) {
    auto descends = source_->IsDescendant(head->commit, current);
    if (!descends.ok() || !*descends) {
      note =
          "history rewritten: " + current.substr(0, 7) + " is not an ancestor of " + head->Short();
      spdlog::warn("{}", note);
    }
  }
  ResolveAlert(alerts::kind::kRevisionRejected);
  ResolveAlert(alerts::kind::kMassStopRefused);
  spdlog::info("new revision {} by {}: {}", head->Short(), head->author, FirstLine(head->message));
  {
    std::lock_guard<std::mutex> g(mu_);
    previous_ = desired_;
    desired_ = std::make_shared<DesiredState>(std::move(*r.state));
    revision_pending_ = true;
    pending_note_ = note;
    rejected_commit_.clear();
  }
  return true;
}

void Daemon::SourceLoop() {
  int failures = 0;
  while (!Stopping()) {
    bool fetched = false;
    const bool changed = PollSource(&fetched);
    failures = fetched ? 0 : failures + 1;
    {
      std::lock_guard<std::mutex> g(mu_);
      first_fetch_done_ = true;
    }
    cv_.notify_all();
    if (changed) {
      UpdateWatch();
      WakeReconcile();
    }
    Beat("source");
    SleepOrWake(SourceRetryDelayMs(failures, config_.poll_seconds), &sync_requested_);
  }
}

// ------------------------------------------------------------- reconcile

void Daemon::ReconcileLoop() {
  {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::milliseconds(kFirstFetchGraceMs),
                 [&] { return stopping_.load() || first_fetch_done_; });
  }
  while (!Stopping()) {
    ReconcileOnce();
    PersistMemory(/*sync=*/false);  // Alerts the other loops raised, too.
    // A pass builds and frees the status and the observations of every
    // instance (megabytes at 1,000 machines): hand the free pages back.
    ReleaseFreeMemory();
    Beat("reconcile");
    SleepOrWake(ReconcileSleepMs(), &reconcile_requested_);
  }
}

int64_t Daemon::ReconcileSleepMs() {
  std::lock_guard<std::mutex> g(mu_);
  int64_t ms = desired_ ? desired_->cluster.reconcile.interval_seconds * 1000LL : 30000;
  // An instance that is down and waits out its crash-loop backoff is retried
  // when the backoff ends, not an interval later.
  FollowWallStep();
  const int64_t retry = backoff_.NextRetryInMs(clock_->WallMs(), running_instances_, ms);
  ms = retry < ms ? retry + 10 : ms;
  // A canary analysis that ends opens the next wave then.
  if (const int64_t at = rollouts_.NextDeadlineMs(); at > 0) {
    ms = std::clamp<int64_t>(at - clock_->WallMs() + 10, 10, ms);
  }
  // A follower looks again every retry interval: when it becomes the
  // leader, it acts within that.
  if (elector_ && !elector_->MayAct()) ms = std::min<int64_t>(ms, config_.redis_retry_ms);
  // Shards: machines move, and dependencies on other replicas' machines
  // become ready, between passes: look again every renew interval.
  if (shards_) ms = std::min<int64_t>(ms, config_.redis_renew_ms);
  return ms;
}

void Daemon::FollowWallStep() {
  const int64_t step = wall_step_.Observe(clock_->WallMs(), clock_->SteadyMs());
  if (step == 0) return;
  backoff_.Shift(step);
  spdlog::warn("the wall clock stepped by {} s; crash-loop backoff deadlines moved with it",
               step / 1000);
}

void Daemon::UpdateWatch() {
  if (!watch_) return;
  std::lock_guard<std::mutex> w(watch_mu_);
  std::shared_ptr<const DesiredState> desired;
  {
    std::lock_guard<std::mutex> g(mu_);
    desired = desired_;
  }
  std::set<std::string> held;
  if (shards_) held = shards_->Held();
  if (desired == watched_ && held == watched_held_) return;
  watched_ = desired;
  watched_held_ = held;
  if (!shards_ || !desired) {
    watch_->SetDesired(desired);
    return;
  }
  // Shards: each replica watches the machines it holds, nothing else.
  auto mine = std::make_shared<DesiredState>(*desired);
  std::erase_if(mine->machines, [&](const auto& m) { return !held.count(m.name); });
  std::erase_if(mine->instances, [&](const auto& i) { return !held.count(i.machine); });
  watch_->SetDesired(std::move(mine));
}

void Daemon::OnWatchEvent(const reconcilers::DriftWatch::Event& e) {
  const std::string key = e.Key();
  const bool down = e.state == reconcilers::ObservedState::kStopped ||
                    e.state == reconcilers::ObservedState::kFailed;
  bool should_run = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (desired_) {
      for (const auto& i : desired_->instances) {
        if (i.service == e.service && i.machine == e.machine) {
          should_run = i.desired == desired_state::RunState::kRunning;
          break;
        }
      }
    }
    // Probes follow what the watch saw until the next observation.
    if (e.state == reconcilers::ObservedState::kRunning) {
      running_instances_.insert(key);
    } else {
      running_instances_.erase(key);
    }
  }
  if (reconciler_) reconciler_->UpdateLive(key, e.state, e.detail);  // A pass in flight sees it.
  const std::string what = std::string(reconcilers::ObservedStateName(e.state)) + " (pid " +
                           std::to_string(e.pid) + (e.detail.empty() ? "" : ", " + e.detail) + ")";
  if (down && should_run) {
    spdlog::info("watch: {} is {}; reconciling now", key, what);
    WakeReconcile();
  } else {
    spdlog::debug("watch: {} is {}", key, what);
  }
}

void Daemon::FollowOrTakeOver() {
  if (!elector_ || shards_) return;  // Shards keep no journal.
  const bool leading = Leading();
  if (leading && took_over_) return;
  if (!leading) took_over_ = false;
  auto copied = FollowJournal(elector_.get(), audit_.get(), store_.get(), &journal_,
                              elector_->replica_name());
  if (!copied.ok()) {
    spdlog::warn("{}", copied.status().ToString());
    return;  // A leader that has not caught up does not act yet.
  }
  if (*copied > 0) spdlog::debug("copied {} record(s) of the leader's journal", *copied);
  if (!leading) return;
  auto closed = CloseOrphans(audit_.get(), store_.get(), &journal_, actor_);
  if (!closed.ok()) {
    spdlog::warn("{}", closed.status().ToString());
    return;
  }
  if (*closed > 0) {
    spdlog::warn(
        "took over: {} step(s) of the previous leader have no result; recorded as "
        "interrupted and re-observed",
        *closed);
  }
  spdlog::info("replica {} leads with fencing token {}", elector_->replica_name(),
               elector_->state().token);
  took_over_ = true;
}

bool Daemon::AdvanceRollouts(const DesiredState& desired, const DesiredState* previous,
                             bool rollback, reconcilers::PlanInput* plan_in) {
  const std::vector<reconcilers::InstanceDiff> diffs = reconcilers::Diff(*plan_in);
  std::vector<RolloutEvent> events;
  bool auto_rollback, changed;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto_rollback = rollouts_.IsAutoRollback(desired.revision.commit);
    const std::string from = previous != nullptr ? previous->revision.commit : applied_commit_;
    const json before = rollouts_.ToJson();
    events = rollouts_.Update(desired, diffs, from, rollback || auto_rollback, clock_->WallMs());
    changed = rollouts_.ToJson() != before;  // An analysis started, say.
    rollouts_.AddHolds(desired, diffs, &plan_in->hold);
  }
  bool failed = false;
  for (const RolloutEvent& e : events) {
    const bool fail = e.action == "rollout_failed";
    failed |= fail;
    spdlog::info("{}", e.detail);
    AuditEvent(e.action, fail ? audit::Trigger::kAutoRollback : audit::Trigger::kRevision,
               desired.revision.Short(), fail ? audit::Outcome::kFailed : audit::Outcome::kOk,
               e.detail, "", e.service);
    if (fail) {
      RaiseAlert(alerts::kind::kRolloutFailed, "", e.service, "critical",
                 e.detail + "; rolling back");
    } else if (e.action == "rollout_succeeded") {
      ResolveAlert(alerts::kind::kRolloutFailed, "", e.service);
    }
  }
  // A restarted clusterd continues the rollout where this pass left it.
  if (changed) PersistMemory(/*sync=*/!events.empty());
  if (failed) Sync("auto-rollback");  // The source loop writes the rollback commit.
  return auto_rollback;
}

void Daemon::WriteAutoRollback() {
  Rollout r;
  {
    std::lock_guard<std::mutex> g(mu_);
    const Rollout* pending = rollouts_.PendingRollback();
    if (pending == nullptr) return;
    r = *pending;
  }
  const int64_t now = clock_->WallMs();
  const std::string bad = r.revision.substr(0, 7), good = r.from_revision.substr(0, 7);
  std::string commit, push_error, error;
  // Signed with repo.signingKey; with repo.verify on and no key, an unsigned
  // commit would be refused: the last good revision goes back in force.
  desired_state::CommitSigner signer;
  const clusterctl::Status can_sign = CommitSignerOf(config_, &signer);
  if (r.from_revision.empty()) {
    error = "no earlier revision is known to roll back to";
  } else if (!can_sign.ok()) {
    error = can_sign.message();
  } else {
    const std::string message =
        RollbackMessage("Roll back to " + good + ": automatic rollback of " + bad + "\n\n" +
                            r.Describe(now) + "\n\nRolled back by " + actor_ +
                            " (trigger auto-rollback).\n\nRolled back revisions: " + bad,
                        r.from_revision);
    auto made =
        source_->CommitTreeOf(r.from_revision, message, "clusterd", actor_, &push_error, signer);
    if (made.ok()) {
      commit = made->commit;
    } else {
      error = made.status().message();
    }
  }
  std::string detail;
  if (!r.from_revision.empty()) {
    // Without a commit the last good revision itself is put back in force.
    Quarantine q;
    q.target_commit = r.from_revision;
    q.commits = {r.revision};
    q.rollback_commit = commit.empty() ? r.from_revision : commit;
    q.created_ms = now;
    clusterctl::Status written = WriteQuarantine(config_.data_dir, q);
    if (!written.ok()) error += (error.empty() ? "" : "; ") + written.message();
    detail = "rollout of " + r.service + " failed (" + r.why + "): " + bad + " quarantined, " +
             (commit.empty()
                  ? good + " put back in force (no rollback commit: " + error + ")"
                  : "commit " + commit.substr(0, 7) + " restores the tree of " + good +
                        (push_error.empty() ? " (pushed)"
                                            : " (push refused: " + push_error +
                                                  "; it waits on branch clusterctl/rollback-" +
                                                  commit.substr(0, 7) + ")"));
  } else {
    detail = "rollout of " + r.service + " failed (" + r.why + "): cannot roll back: " + error;
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    rollouts_.RollbackDone(r.service, commit);
  }
  PersistMemory(/*sync=*/true);
  spdlog::warn("auto-rollback: {}", detail);
  AuditEvent("auto_rollback", audit::Trigger::kAutoRollback, bad,
             error.empty() ? audit::Outcome::kOk : audit::Outcome::kFailed, detail, "", r.service);
  RaiseAlert(alerts::kind::kRolloutFailed, "", r.service, "critical", detail);
}

void Daemon::ReconcileOnce() {
  FollowOrTakeOver();
  if (shards_) ApplySharedWrites();
  std::shared_ptr<const DesiredState> desired, previous;
  PassOptions po;
  bool new_revision;
  std::string note;
  std::map<std::string, std::string> manual;
  std::vector<DriftLease> expired;
  {
    std::lock_guard<std::mutex> g(mu_);
    desired = desired_;
    previous = previous_;
    new_revision = revision_pending_;
    note = pending_note_;
    FollowWallStep();
    po.backoff = backoff_.entries();
    po.force_restart = force_restart_;
    manual = manual_actor_;
    po.override_windows = override_windows_;
    override_windows_ = false;
    expired = leases_.Expire(clock_->WallMs());
    if (desired_) po.hold = leases_.Holds(*desired_);
  }
  for (const DriftLease& l : expired) {
    // The next step of these instances reverts their drift: audited as drift.
    AuditEvent("lease_expired", audit::Trigger::kDrift, desired ? desired->revision.Short() : "",
               audit::Outcome::kOk, l.Describe() + " ended; the drift it held is reverted now",
               l.machine, l.service);
    spdlog::info("{} ended", l.Describe());
  }
  if (!expired.empty()) PersistMemory(/*sync=*/true);
  if (!desired || Stopping()) return;
  po.clock = clock_;  // The plan's now: backoff not-before times are on this clock.
  UpdateWatch();      // Also after a refused revision put the previous one back.
  const int64_t t0 = clock_->WallMs();
  // What to prune: everything started and not desired now, whichever
  // revision started it (not just the one before this).
  std::vector<std::string> unreadable;
  std::shared_ptr<const DesiredState> prune = prune_loader_->Build(*desired, managed_, &unreadable);
  if (unreadable.empty()) {
    ResolveAlert(alerts::kind::kPruneBlocked);
  } else {
    std::string list;
    for (const auto& u : unreadable) list += (list.empty() ? "" : ", ") + u;
    RaiseAlert(alerts::kind::kPruneBlocked, "warning",
               "cannot prune " + list + ": the revision that started it cannot be read");
  }
  ReconcileDeps deps;
  deps.state = state_.get();
  deps.driver = driver_.get();
  deps.prober = prober_.get();
  // Shards: only the machines whose lease this replica holds.
  std::set<std::string> held;
  if (shards_) {
    SetShardMachines(*desired, prune.get());
    held = shards_->Held();
    UpdateWatch();  // The machines held changed (a replica came or went).
  }
  reconcilers::ClusterObservation obs =
      ObserveAndRecord(deps, *desired, prune.get(), 32, shards_ ? &held : nullptr);

  // Machine reachability: alert and audit on transitions.
  std::set<std::string> unreachable;
  for (const auto& f : obs.facts) {
    metrics_.Set("clusterctl_machine_reachable", {{"machine", f.machine}}, f.reachable ? 1 : 0);
    if (f.reachable) {
      ResolveAlert(alerts::kind::kMachineUnreachable, f.machine);
      ResolveAlert(alerts::kind::kHostKeyMismatch, f.machine);
      continue;
    }
    unreachable.insert(f.machine);
    // A changed host key is not an outage: someone must look at it. The
    // error carries the context it was seen in ("observing machine ...: ssh
    // ...: host_key_mismatch: ..."): found by the fault suite.
    const bool host_key = f.error.find("host_key_mismatch: ") != std::string::npos;
    RaiseAlert(host_key ? alerts::kind::kHostKeyMismatch : alerts::kind::kMachineUnreachable,
               f.machine, "", host_key ? "critical" : "warning",
               "machine " + f.machine + " unreachable: " + f.error);
    bool was;
    {
      std::lock_guard<std::mutex> g(mu_);
      was = unreachable_.count(f.machine) > 0;
    }
    if (!was) {
      AuditEvent("machine_unreachable", audit::Trigger::kDrift, desired->revision.Short(),
                 audit::Outcome::kFailed, f.error, f.machine);
    }
  }
  std::set<std::string> running;
  for (const auto& i : obs.instances) {
    if (i.state == reconcilers::ObservedState::kRunning) running.insert(i.Key());
  }
  std::set<std::string> machines, gone_machines, was_running;
  for (const auto& f : obs.facts) machines.insert(f.machine);
  {
    std::lock_guard<std::mutex> g(mu_);
    was_running = running_instances_;
    unreachable_ = unreachable;
    running_instances_ = running;
    // One failed probe does not make a ready instance not ready: the
    // observation's probes count toward readiness.failureThreshold like the
    // probe loop's, and the plan and the status see the verdict. A stopped
    // instance starts its next life not ready.
    for (auto it = readiness_.map().begin(); it != readiness_.map().end();) {
      it = running.count(it->first) ? std::next(it) : readiness_.map().erase(it);
    }
    for (const auto& p : obs.readiness) {
      if (!p.inconclusive)
        readiness_.Add(p.Key(), p.ok, ReadinessThreshold(desired.get(), p.service));
      obs.ready[p.Key()] = readiness_.Ready(p.Key());
    }
    // Instances and machines that left (pruned, or gone from the desired
    // state) take their bookkeeping, alerts and metric series with them.
    std::set<std::string> live = running;
    for (const auto* d : {desired.get(), prune.get()}) {
      if (d == nullptr) continue;
      for (const auto& i : d->instances) live.insert(i.Key());
    }
    EraseGoneInstances(&readiness_.map(), live);
    EraseGoneInstances(&liveness_failures_, live);
    probe_schedule_.EraseGone(live);
    backoff_.EraseGone(live);
    EraseGoneInstances(&force_restart_, live);
    EraseGoneInstances(&manual_actor_, live);
    alerts_.ResolveIf(
        [&](const alerts::Alert& a) {
          if (!a.service.empty() && !a.machine.empty()) {
            return !live.count(a.service + "@" + a.machine);
          }
          return !a.machine.empty() && !machines.count(a.machine);
        },
        clock_->WallMs());
    std::set_difference(reported_machines_.begin(), reported_machines_.end(), machines.begin(),
                        machines.end(), std::inserter(gone_machines, gone_machines.end()));
    reported_machines_ = machines;
  }
  for (const auto& m : gone_machines) {
    metrics_.Remove("clusterctl_machine_reachable", {{"machine", m}});
  }

  if (shards_) {
    PublishShardReadiness(*desired, held, obs);
    AddForeignShards(*desired, prune.get(), held, &obs, &po.hold);
  }
  // Leases, observe mode and sync windows hold instances: the status names
  // them as the plan does.
  reconcilers::PlanInput plan_in = MakePlanInput(*desired, prune.get(), obs, po);
  const bool rollback = RollbackTarget(desired->revision.message).has_value();
  const bool auto_rollback = AdvanceRollouts(*desired, previous.get(), rollback, &plan_in);
  api::StatusView view =
      api::BuildStatus(*desired, prune.get(), obs, clock_->WallMs(), {}, plan_in.hold);
  AssessAlerts(obs, view.diffs, was_running);
  std::map<std::string, int> by_state;
  for (const auto& x : view.diffs) by_state[reconcilers::ObservedStateName(x.observed)]++;
  for (const char* s : {"running", "stopped", "failed", "unknown"}) {
    metrics_.Set("clusterctl_instances", {{"state", s}}, by_state[s]);
  }
  po.trigger = !new_revision   ? audit::Trigger::kDrift
               : auto_rollback ? audit::Trigger::kAutoRollback
               : rollback      ? audit::Trigger::kRollback
                               : audit::Trigger::kRevision;
  // A restarted instance starts its new life not ready: the readiness
  // verdict of the old process (kept under readiness.failureThreshold) must
  // not answer the new one's readiness wait (a canary that never gets ready
  // looked ready at once).
  BeatListener beat([this] { Beat("reconcile"); },
                    [this](const reconcilers::Step& st) {
                      std::lock_guard<std::mutex> g(mu_);
                      readiness_.Reset(st.Key());
                    });
  po.progress = &beat;
  for (const auto& [key, who] : manual) {
    po.step_trigger[key] = audit::Trigger::kManual;
    po.step_actor[key] = who;
  }
  reconcilers::Plan plan = reconcilers::MakePlan(plan_in);
  // The steps that put the instances of an auto-rollback back are audited as
  // such also when a crash-loop backoff delays them past its first pass.
  for (const auto& st : plan.steps) {
    if (auto_rollback && st.cause == reconcilers::Cause::kSpecChanged) {
      po.step_trigger.emplace(st.Key(), audit::Trigger::kAutoRollback);
    }
  }
  // A new revision some of whose changes wait for a sync window is recorded
  // as applied by the pass that makes them, when the window lets it.
  std::map<std::string, std::string> window_holds;
  AddWindowHolds(plan_in, clock_->WallMs() / 1000, po.override_windows, &window_holds);
  if (new_revision && !window_holds.empty()) {
    spdlog::info("revision {}: {} change(s) wait for a sync window: {}", desired->revision.Short(),
                 window_holds.size(), window_holds.begin()->second);
  }
  if (!plan.steps.empty() && !new_revision) {
    // Served at once: a crashed instance shows as failed while its repair
    // runs (a start waits for readiness), not only in the next pass. (A new
    // revision's status waits for its pass: once the status names it, it is
    // recorded as applied.)
    json observed = std::move(view.json);
    std::lock_guard<std::mutex> g(mu_);
    observed["alerts"] = alerts_.Messages();
    observed["suspended"] = suspended_.load();
    last_status_ = std::move(observed);
  }

  std::string outcome = "noop";
  reconcilers::ExecutionReport report;
  bool executed = false;
  if (!plan.refused.empty()) {
    // A mass stop is refused like an invalid revision: the previous desired
    // state goes back in force.
    AuditEvent("revision_rejected", audit::Trigger::kRevision, desired->revision.Short(),
               audit::Outcome::kFailed, plan.refused);
    RaiseAlert(alerts::kind::kMassStopRefused, "critical",
               "revision " + desired->revision.Short() + " refused: " + plan.refused);
    std::lock_guard<std::mutex> g(mu_);
    rejected_commit_ = desired->revision.commit;
    auto in_force = InForceAfterRefusal(desired_, desired, previous);
    if (in_force != desired_) {
      desired_ = in_force;
      revision_pending_ = false;
    }
    outcome = "refused";
  } else if (suspended_) {
    outcome = plan.steps.empty() ? "noop" : "suspended";
  } else if (!Acting()) {
    outcome = plan.steps.empty() ? "noop" : "follower";  // The leader acts.
  } else if (plan.steps.empty() && !plan.blocked.empty()) {
    outcome = "blocked";  // Something to do, nothing possible now (unreachable, backoff).
  } else if (!plan.steps.empty()) {
    if (shards_) {
      // The leases of machines with a step in flight are kept until it ends.
      std::set<std::string> busy;
      for (const auto& st : plan.steps) busy.insert(st.machine);
      shards_->Pin(std::move(busy));
    }
    // Freed before the pass builds its status again (a status of 10,000
    // instances is tens of MiB as a JSON tree).
    view = api::StatusView();
    executed = true;
    report = reconciler_->Execute(*desired, prune.get(), plan, obs, po);
    if (shards_) shards_->Pin({});
    outcome = report.ok() ? "ok" : "failed";
    // The lease ended during the pass: its unsent steps failed as fenced,
    // which says nothing about the services (no crash-loop count).
    const bool deposed = !Acting();
    const int64_t now = clock_->WallMs();
    std::vector<std::pair<const reconcilers::Step*, std::string>> crash_alerts;  // Raised unlocked.
    std::unique_lock<std::mutex> g(mu_);
    for (const auto& st : plan.steps) {
      const auto& o = report.outcomes[st.id];
      metrics_.Inc("clusterctl_actions_total",
                   {{"action", reconcilers::ActionName(st.action)},
                    {"result", reconcilers::StepResultName(o.result)}},
                   1);
      if (deposed && o.result == reconcilers::StepResult::kFailed) continue;
      force_restart_.erase(st.Key());
      manual_actor_.erase(st.Key());
      if (st.action == reconcilers::Action::kStop) {
        backoff_.OnStop(st.Key());
        readiness_.Reset(st.Key());
        continue;
      }
      // A new life: ready when its start waited for readiness and got it.
      if (o.result == reconcilers::StepResult::kOk) {
        readiness_.MarkReady(st.Key(), ReadinessThreshold(desired.get(), st.service));
      } else if (o.result == reconcilers::StepResult::kFailed) {
        readiness_.Reset(st.Key());
        rollouts_.RecordFailure(
            desired->revision.commit, st.service, st.machine,
            std::string(reconcilers::ActionName(st.action)) + " failed: " + o.detail);
      }
      const auto* s = desired->FindService(st.service);
      const desired_state::Service defaults;
      const auto counted =
          backoff_.OnStart(st, o.result, s ? s->backoff_seconds : defaults.backoff_seconds,
                           s ? s->max_backoff_seconds : defaults.max_backoff_seconds, now);
      if (counted && counted->alert) {
        crash_alerts.push_back({&st, CrashLoopBackoff::AlertMessage(st.Key(), *counted)});
      }
    }
    // Level-based: look again at once, so the status shows the new state.
    reconcile_requested_ = true;
    g.unlock();
    for (const auto& [st, message] : crash_alerts) {
      RaiseAlert(alerts::kind::kCrashLoop, st->machine, st->service, "warning", message);
    }
  }
  if (outcome != "refused" && outcome != "follower") {
    ManagedInstances next = NextManaged(managed_, *desired, obs, plan, report);
    if (next != managed_) {
      clusterctl::Status saved = SaveManaged(state_.get(), next);
      if (saved.ok()) {
        managed_ = std::move(next);
      } else {
        RaiseAlert(alerts::kind::kStoreWrite, "critical",
                   "cannot record the managed instances: " + saved.message());
      }
    }
  }
  // Backoff resets after 10 minutes healthy.
  {
    std::lock_guard<std::mutex> g(mu_);
    (void)backoff_.ResetHealthy(clock_->WallMs(), running_instances_);
  }
  if (new_revision && window_holds.empty() && outcome != "refused" && outcome != "suspended" &&
      outcome != "follower" && Acting()) {
    RevisionPassRecord pass;
    pass.revision = desired->revision;
    pass.result = ClassifyPass(plan, report);
    pass.actor = actor_;
    pass.trigger = po.trigger;
    pass.summary = PassSummary(plan, report);
    pass.note = note;
    pass.now_ms = clock_->WallMs();
    pass.gate = gate_.get();
    clusterctl::Status recorded = RecordRevisionPass(revisions_.get(), audit_.get(), pass);
    std::lock_guard<std::mutex> g(mu_);
    if (recorded.ok()) {
      alerts_.Resolve(alerts::Key(alerts::kind::kStoreWrite), clock_->WallMs());
      // Only the pass that recorded it ends the pending revision; a failed
      // write is retried by the next pass rather than lost.
      if (desired_ == desired) {
        revision_pending_ = false;
        pending_note_.clear();
      }
      applied_commit_ = desired->revision.commit;
    } else {
      spdlog::error("revision {}: {}; retrying on the next pass", desired->revision.Short(),
                    recorded.ToString());
      alerts_.Raise(
          alerts::kind::kStoreWrite, "critical",
          "cannot record revision " + desired->revision.Short() + ": " + recorded.message(),
          clock_->WallMs());
    }
  }
  const double seconds = static_cast<double>(clock_->WallMs() - t0) / 1000.0;
  metrics_.Inc("clusterctl_reconcile_total", {{"outcome", outcome}}, 1);
  metrics_.Observe("clusterctl_reconcile_duration_seconds", {{"outcome", outcome}}, seconds);
  metrics_.Set("clusterctl_suspended", {}, suspended_ ? 1 : 0);
  // Status snapshot for /api/v1/status and /api/v1/history.
  // Nothing executed: the observation and holds are those of the status
  // built above, so it is the same but for its time (a status of 10,000
  // instances took a quarter of a no-op pass's CPU to build).
  api::StatusView after;
  if (!executed && view.json.is_object()) {
    after = std::move(view);
    after.json["timestamp"] = FormatRfc3339Ms(clock_->WallMs());
  } else {
    after = api::BuildStatus(*desired, prune.get(), obs, clock_->WallMs(), {}, plan_in.hold);
  }
  json replaced;  // The previous status, freed after the lock is released.
  std::lock_guard<std::mutex> g(mu_);
  json alerts = alerts_.Messages();  // An array, [] when none is open.
  after.json["alerts"] = alerts;
  after.json["suspended"] = suspended_.load();
  replaced = std::exchange(last_status_, std::move(after.json));  // Moved, not copied.
  last_pass_ms_ = clock_->WallMs();
  ++passes_;
  pass_ms_.push_back(last_pass_ms_ - t0);
  if (pass_ms_.size() > kPassDurationsKept) pass_ms_.pop_front();
  clusterctl::Status kept =
      AppendSnapshot(store_.get(), last_pass_ms_, last_status_, kMaxSnapshots, &snapshot_keys_);
  if (!kept.ok()) {
    spdlog::error("keeping the status snapshot: {}", kept.ToString());
    // A full data disk shows here first, on every pass (store/store.h).
    alerts_.Raise(alerts::kind::kStoreWrite, "critical",
                  "cannot write the state store: " + kept.message(), clock_->WallMs());
  } else if (const alerts::Alert* a = alerts_.FindFiring(alerts::Key(alerts::kind::kStoreWrite));
             a != nullptr && a->message.rfind("cannot write the state store", 0) == 0) {
    alerts_.Resolve(alerts::Key(alerts::kind::kStoreWrite), clock_->WallMs());
  }
  loops_.SetBound("reconcile",
                  ReconcileLoopBoundMs(desired_.get(), config_.command_timeout_seconds));
  metrics_.Clear(api::kMetricRevisionInfo);  // One series: the revision in force.
  metrics_.Set(api::kMetricRevisionInfo, {{"revision", desired->revision.Short()}}, 1);
}

// ---------------------------------------------------------------- probes

size_t Daemon::RunProbesDue() {
  std::shared_ptr<const DesiredState> desired;
  std::set<std::string> running;
  {
    std::lock_guard<std::mutex> g(mu_);
    desired = desired_;
    running = running_instances_;
  }
  if (!desired) return 0;
  std::vector<reconcilers::ProbeRequest> due;
  {
    std::lock_guard<std::mutex> g(mu_);
    due = probe_schedule_.TakeDue(*desired, running, clock_->SteadyMs());
  }
  // A probe still running from an earlier period is not started again.
  size_t submitted = 0;
  for (const auto& req : due) submitted += probes_->Submit(desired, req) ? 1 : 0;
  return submitted;
}

size_t Daemon::ProbesInFlight() const { return probes_->InFlight(); }

void Daemon::OnProbeResult(const reconcilers::ProbeResult& r) {
  (void)state_->RecordProbe(r);
  metrics_.Observe("clusterctl_probe_latency_seconds", {{"kind", r.kind}},
                   static_cast<double>(r.latency_ms) / 1000.0);
  // Not run (every probe shell of the machine busy): says nothing of the
  // service, neither ready nor failing.
  if (r.inconclusive) return;
  int slow_ms = 0;
  {
    std::lock_guard<std::mutex> g(mu_);
    const auto* s = desired_ ? desired_->FindService(r.service) : nullptr;
    if (s != nullptr) {
      const auto& probe = r.role == reconcilers::ProbeRole::kReadiness ? s->readiness : s->liveness;
      if (probe) slow_ms = probe->slow_ms;
    }
  }
  const char* role = reconcilers::ProbeRoleName(r.role);
  if (slow_ms > 0 && r.latency_ms > slow_ms) {
    RaiseAlert(alerts::kind::kProbeSlow, r.machine, r.service, "warning",
               fmt::format("the {} probe of {} took {} ms (slowMs {})", role, r.Key(), r.latency_ms,
                           slow_ms));
  } else if (slow_ms > 0) {
    ResolveAlert(alerts::kind::kProbeSlow, r.machine, r.service);
  }
  bool wake = false;
  int restart_after = 0;
  std::string revision;
  reconcilers::ProbeResult verdict = r;  // A readiness result under its threshold.
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!desired_) return;
    revision = desired_->revision.Short();
    if (r.role == reconcilers::ProbeRole::kReadiness) {
      // readiness.failureThreshold: the verdict changes after that many
      // failures in a row, or on a pass.
      const int threshold = ReadinessThreshold(desired_.get(), r.service);
      verdict.ok = readiness_.Add(r.Key(), r.ok, threshold, &wake);
      if (!r.ok && verdict.ok) {
        verdict.detail += "; still ready (" + std::to_string(readiness_.Failures(r.Key())) +
                          " of " + std::to_string(threshold) + " failures in a row)";
      }
    } else {
      const auto* s = desired_->FindService(r.service);
      if (s == nullptr || !s->liveness) return;  // Gone with a new revision.
      int& failures = liveness_failures_[r.Key()];
      failures = r.ok ? 0 : failures + 1;
      if (!r.ok && failures == s->liveness->failure_threshold) {
        force_restart_.insert(r.Key());
        wake = true;
        liveness_failures_[r.Key()] = 0;
        rollouts_.RecordFailure(desired_->revision.commit, r.service, r.machine,
                                "liveness failed " + std::to_string(failures) + " times");
        restart_after = s->liveness->failure_threshold;
      }
    }
  }
  if (restart_after > 0) {
    AuditEvent(
        "probe_failed", audit::Trigger::kDrift, revision, audit::Outcome::kFailed,
        "liveness failed " + std::to_string(restart_after) + " times: " + r.detail + "; restarting",
        r.machine, r.service);
  }
  if (r.role == reconcilers::ProbeRole::kReadiness && reconciler_) {
    reconciler_->UpdateReadiness(verdict);
  }
  if (wake) WakeReconcile();
}

void Daemon::ProbeLoop() {
  while (!Stopping()) {
    RunProbesDue();
    TickAlerts();
    Beat("probe");
    SleepOrWake(500, nullptr);
  }
}

// ---------------------------------------------------------------- events

void Daemon::RaiseAlert(const char* kind, const std::string& machine, const std::string& service,
                        const std::string& severity, const std::string& raw_message) {
  {
    // Alerts are logged, persisted, served and sent: no URL credentials in them.
    const std::string message = desired_state::RedactUrls(raw_message);
    std::lock_guard<std::mutex> g(mu_);
    alerts_.Raise(kind, machine, service, severity, message, clock_->WallMs());
  }
  FlushAlertEvents();
}

void Daemon::ResolveAlert(const char* kind, const std::string& machine,
                          const std::string& service) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!alerts_.Resolve(alerts::Key(kind, machine, service), clock_->WallMs())) return;
  }
  FlushAlertEvents();
}

void Daemon::FlushAlertEvents() {
  std::lock_guard<std::mutex> order(notify_mu_);
  std::vector<alerts::AlertEvent> events;
  {
    std::lock_guard<std::mutex> g(mu_);
    events = alerts_.TakeEvents();
  }
  for (const alerts::AlertEvent& e : events) {
    const alerts::Alert& a = e.alert;
    switch (e.type) {
      case alerts::EventType::kFiring:
        spdlog::warn("alert {} firing ({}): {}", a.key, a.severity, a.message);
        break;
      case alerts::EventType::kEscalated:
        spdlog::warn("alert {} escalated to level {} (firing since {})", a.key, a.level,
                     FormatRfc3339Ms(a.first_seen_ms));
        break;
      case alerts::EventType::kResolved:
        spdlog::info("alert {} resolved after {} s", a.key,
                     (a.resolved_ms - a.first_seen_ms) / 1000);
        break;
      case alerts::EventType::kAckExpired:
        spdlog::warn("alert {}: the acknowledgement by {} expired; still firing", a.key,
                     a.ack ? a.ack->by : "?");
        break;
    }
  }
  if (notifier_ && Leading()) notifier_->Enqueue(events);
}

void Daemon::AssessAlerts(const reconcilers::ClusterObservation& obs,
                          const std::vector<reconcilers::InstanceDiff>& diffs,
                          const std::set<std::string>& was_running) {
  namespace kind = alerts::kind;
  const int64_t now = clock_->WallMs();
  for (const auto& f : obs.facts) {
    if (!f.reachable) continue;
    if (f.disk_total_kb > 0) {
      const int64_t used = 100 * (f.disk_total_kb - f.disk_available_kb) / f.disk_total_kb;
      if (used > config_.disk_percent) {
        RaiseAlert(kind::kMachineDisk, f.machine, "", "warning",
                   fmt::format("the filesystem of {}'s state directory is {}% full ({} MiB free; "
                               "alerts.diskPercent {})",
                               f.machine, used, f.disk_available_kb / 1024, config_.disk_percent));
      } else {
        ResolveAlert(kind::kMachineDisk, f.machine);
      }
    }
    if (f.mem_total_kb > 0) {
      const int64_t used = 100 * (f.mem_total_kb - f.mem_available_kb) / f.mem_total_kb;
      if (used > config_.memory_percent) {
        RaiseAlert(
            kind::kMachineMemory, f.machine, "", "warning",
            fmt::format("{} uses {}% of its memory ({} MiB available; alerts.memoryPercent {})",
                        f.machine, used, f.mem_available_kb / 1024, config_.memory_percent));
      } else {
        ResolveAlert(kind::kMachineMemory, f.machine);
      }
    }
  }
  std::map<std::string, const reconcilers::ObservedInstance*> observed;
  for (const auto& o : obs.instances) observed[o.Key()] = &o;
  std::map<std::string, std::vector<std::string>> critical_down;  // Service -> machines.
  std::set<std::string> live;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (const auto& d : diffs) {
      if (d.pruned || d.desired != desired_state::RunState::kRunning) continue;
      live.insert(d.Key());
      const bool up = d.observed == reconcilers::ObservedState::kRunning && d.ready;
      if (!up && !availability_.Tracks(d.Key())) continue;  // Not up yet since it was placed.
      if (d.observed == reconcilers::ObservedState::kUnknown) {
        availability_.Unknown(d.Key(), now);
      } else {
        availability_.Observe(d.Key(), d.service, up, now);
      }
    }
    availability_.EraseGone(live);
    availability_.Prune(now);
  }
  for (const auto& d : diffs) {
    const desired_state::Service* s = d.service_def;
    const bool should_run = !d.pruned && d.desired == desired_state::RunState::kRunning;
    // Running without passing readiness for longer than its start timeout.
    bool readiness_late = false;
    if (should_run && s != nullptr && s->readiness &&
        d.observed == reconcilers::ObservedState::kRunning && !d.ready) {
      auto o = observed.find(d.Key());
      const int64_t started_at = o != observed.end() ? o->second->started_at : 0;
      const int64_t running_s = started_at > 0 ? now / 1000 - started_at : 0;
      if (running_s > s->readiness->start_timeout_seconds) {
        readiness_late = true;
        RaiseAlert(kind::kReadinessTimeout, d.machine, d.service, "warning",
                   fmt::format("{} has run for {} s without passing readiness "
                               "(startTimeoutSeconds {})",
                               d.Key(), running_s, s->readiness->start_timeout_seconds));
      }
    }
    if (!readiness_late) ResolveAlert(kind::kReadinessTimeout, d.machine, d.service);
    // Detect-only services: their drift is alerted, never corrected.
    if (s != nullptr && !d.pruned && s->reconcile_mode == desired_state::ReconcileMode::kObserve &&
        d.action != reconcilers::Action::kNone) {
      RaiseAlert(kind::kDriftObserved, d.machine, d.service, "warning",
                 d.Key() + " drifted (" + d.reason + ")");
    } else {
      ResolveAlert(kind::kDriftObserved, d.machine, d.service);
    }
    if (s == nullptr || !s->critical || !should_run) continue;
    std::vector<std::string>& down = critical_down[d.service];
    // Down: failed, stopped after it ran (not one that was never started
    // yet), or not ready past its start timeout.
    if (d.observed == reconcilers::ObservedState::kFailed || readiness_late ||
        (d.observed == reconcilers::ObservedState::kStopped && was_running.count(d.Key()))) {
      down.push_back(d.machine);
    }
  }
  for (const auto& [service, down] : critical_down) {
    if (down.empty()) {
      ResolveAlert(kind::kCriticalServiceDown, "", service);
      continue;
    }
    std::string list;
    for (const auto& m : down) list += (list.empty() ? "" : ", ") + m;
    RaiseAlert(kind::kCriticalServiceDown, "", service, "critical",
               "critical service " + service + " is down on " + list);
  }
  // Services no longer desired (or no longer critical) take their alert.
  {
    std::lock_guard<std::mutex> g(mu_);
    alerts_.ResolveIf(
        [&](const alerts::Alert& a) {
          return a.kind == kind::kCriticalServiceDown && !critical_down.count(a.service);
        },
        now);
    // A crash loop ends when its instance has run alerts.resolveAfterSeconds
    // since its last start.
    const auto& healthy = backoff_.healthy_since_ms();
    alerts_.ResolveIf(
        [&](const alerts::Alert& a) {
          if (a.kind != kind::kCrashLoop) return false;
          const std::string key = a.service + "@" + a.machine;
          if (!running_instances_.count(key)) return false;
          auto h = healthy.find(key);
          return h == healthy.end() || now - h->second >= config_.alert_resolve_after_ms;
        },
        now);
  }
  FlushAlertEvents();
  if (now - availability_saved_ms_ >= kAvailabilitySaveMs) SaveAvailability();
}

void Daemon::SaveAvailability() {
  std::string doc;
  {
    std::lock_guard<std::mutex> g(mu_);
    doc = availability_.ToJson().dump();
    availability_saved_ms_ = clock_->WallMs();
  }
  store::StoreBatch batch(store_.get());
  batch.Put("meta", kAvailabilityKey, doc);
  clusterctl::Status s = store_->Commit(&batch, /*sync=*/false);
  if (!s.ok()) spdlog::error("saving the availability history: {}", s.ToString());
}

api::StatsView Daemon::Stats() {
  api::StatsView v;
  v.now_ms = clock_->WallMs();
  v.started_ms = started_ms_;
  if (auto p = ReadProcessStats(); p.ok()) {
    v.cpu_seconds = p->cpu_seconds;
    v.rss_bytes = p->rss_bytes;
    v.open_fds = p->open_fds;
    v.threads = p->threads;
  }
  if (auto u = DirectoryUsage(config_.data_dir); u.ok())
    v.data_dir_bytes = static_cast<int64_t>(u->bytes);
  v.probes_in_flight = static_cast<int64_t>(ProbesInFlight());
  if (notifier_) {
    for (const notify::SinkStats& st : notifier_->Stats()) {
      v.sinks.push_back({st.name, st.type, st.last_error, static_cast<int64_t>(st.queued),
                         static_cast<int64_t>(st.sent), static_cast<int64_t>(st.failed_attempts),
                         static_cast<int64_t>(st.dropped), static_cast<int64_t>(st.suppressed),
                         st.last_success_ms});
    }
  }
  std::lock_guard<std::mutex> g(mu_);
  v.passes = passes_;
  v.last_pass_ms = last_pass_ms_;
  if (!pass_ms_.empty()) {
    std::vector<int64_t> sorted(pass_ms_.begin(), pass_ms_.end());
    std::sort(sorted.begin(), sorted.end());
    v.pass_p50_ms = sorted[sorted.size() / 2];
    v.pass_p95_ms = sorted[std::min(sorted.size() - 1, sorted.size() * 95 / 100)];
    v.pass_max_ms = sorted.back();
  }
  v.alerts_firing = static_cast<int64_t>(alerts_.Firing().size());
  static const std::pair<const char*, int64_t> kWindows[] = {
      {"1h", 3600000LL}, {"24h", 24 * 3600000LL}, {"7d", 7 * 24 * 3600000LL}};
  for (const std::string& service : availability_.Services()) {
    api::ServiceAvailability a;
    a.service = service;
    const auto* def = desired_ ? desired_->FindService(service) : nullptr;
    a.critical = def != nullptr && def->critical;
    for (const auto& [name, ms] : kWindows) {
      const AvailabilityFigures f = availability_.Service(service, ms, v.now_ms);
      a.down_now = f.down_now;
      a.windows.push_back({name, f.availability, f.observed_ms, f.down_ms, f.restarts, f.failures,
                           f.mttd_ms, f.mttr_ms});
    }
    v.services.push_back(std::move(a));
  }
  return v;
}

void Daemon::RejectRevision(const desired_state::Revision& head, const std::string& detail,
                            const std::string& alert) {
  AuditEvent("revision_rejected", audit::Trigger::kRevision, head.Short(), audit::Outcome::kFailed,
             head.author + ": " + FirstLine(head.message) + "\n" + detail);
  RaiseAlert(alerts::kind::kRevisionRejected, "critical", alert);
  store::RevisionRecord rec;
  rec.commit = head.commit;
  rec.author = head.author;
  rec.message = head.message;
  rec.commit_time = head.time;
  rec.applied_at_ms = clock_->WallMs();
  rec.result = "rejected";
  rec.actor = actor_;
  rec.trigger = audit::Name(audit::Trigger::kRevision);
  rec.detail = detail;
  (void)revisions_->Record(rec);
  std::lock_guard<std::mutex> g(mu_);
  rejected_commit_ = head.commit;
}

std::string Daemon::SignatureRefusal(const std::string& commit, const std::string& in_force) {
  std::string text;
  {
    std::ifstream in(config_.allowed_signers_file, std::ios::binary);
    if (!in) return "cannot read the allowed signers file " + config_.allowed_signers_file;
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  auto allowed = desired_state::AllowedSigners::Parse(text, config_.allowed_signers_file);
  if (!allowed.ok()) return allowed.status().message();
  std::vector<std::string> commits = {commit};
  if (config_.verify_mode == "all") {
    auto range = source_->CommitsSince(in_force, commit);
    if (!range.ok())
      return "cannot list the commits since " + in_force.substr(0, 7) + ": " +
             range.status().message();
    commits = *range;
  }
  for (const std::string& c : commits) {
    auto data = source_->SignatureData(c);
    if (!data.ok())
      return "cannot read the signature of " + c.substr(0, 7) + ": " + data.status().message();
    const desired_state::SignatureCheck check = desired_state::VerifyCommitSignature(
        data->signed_data, data->signature, *allowed, clock_->WallMs() / 1000);
    if (check.verdict != desired_state::SignatureCheck::kValid) {
      return "commit " + c.substr(0, 7) + ": " + desired_state::VerdictName(check.verdict) +
             (check.fingerprint.empty() ? "" : " (key " + check.fingerprint + ")") +
             (check.reason.empty() ? "" : ": " + check.reason);
    }
    spdlog::info("commit {} signed by {} ({})", c.substr(0, 7), check.signer, check.fingerprint);
  }
  return "";
}

json Daemon::Graph() {
  std::lock_guard<std::mutex> g(mu_);
  if (!desired_) return nullptr;
  return api::BuildGraph(*desired_, last_status_.is_object() ? last_status_ : json::object());
}

Result<std::vector<api::DaemonView::FileChange>> Daemon::RevisionFiles(const std::string& from,
                                                                       const std::string& to) {
  // GitSource reads are safe from any thread (its own mutex, not held
  // during a fetch).
  auto a = source_->Read(from);
  if (!a.ok()) return a.status().Annotate("from");
  auto b = source_->Read(to);
  if (!b.ok()) return b.status().Annotate("to");
  std::map<std::string, std::pair<const std::string*, const std::string*>> files;
  for (const auto& f : a->files) files[f.path].first = &f.content;
  for (const auto& f : b->files) files[f.path].second = &f.content;
  std::vector<FileChange> out;
  for (const auto& [path, pair] : files) {
    const auto& [before, after] = pair;
    if (before && after && *before == *after) continue;
    out.push_back({path,
                   !before  ? "added"
                   : !after ? "removed"
                            : "modified",
                   before ? *before : "", after ? *after : ""});
  }
  return out;
}

Result<audit::VerifyReport> Daemon::VerifyAudit() { return audit_->Verify(); }

std::vector<std::string> Daemon::Quarantined() {
  auto q = ReadQuarantine(config_.data_dir);
  if (!q) return {};
  return std::vector<std::string>(q->commits.begin(), q->commits.end());
}

namespace {
api::DaemonView::LeaseView ViewOf(const DriftLease& l) {
  return {l.id, l.service, l.machine, l.reason, l.actor, l.granted_ms, l.until_ms};
}
}  // namespace

std::vector<api::DaemonView::LeaseView> Daemon::Leases() {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<LeaseView> out;
  for (const DriftLease& l : leases_.Active()) out.push_back(ViewOf(l));
  return out;
}

Result<api::DaemonView::LeaseView> Daemon::GrantLease(const std::string& service,
                                                      const std::string& machine, int64_t for_ms,
                                                      const std::string& reason,
                                                      const std::string& actor) {
  Result<DriftLease> granted = clusterctl::Status::Internal("not granted");
  std::string revision;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!desired_) return clusterctl::Status::Unavailable("no desired state in force yet");
    revision = desired_->revision.Short();
    granted = leases_.Grant(*desired_, service, machine, for_ms, reason, actor, clock_->WallMs());
  }
  if (!granted.ok()) return granted.status();
  PersistMemory(/*sync=*/true);
  AuditManual("lease_granted", actor, granted->Describe(), service, machine, revision);
  spdlog::info("{} granted", granted->Describe());
  return ViewOf(*granted);
}

Result<api::DaemonView::LeaseView> Daemon::EndLease(int64_t id, const std::string& actor) {
  Result<DriftLease> ended = clusterctl::Status::Internal("not ended");
  {
    std::lock_guard<std::mutex> g(mu_);
    ended = leases_.End(id, clock_->WallMs());
  }
  if (!ended.ok()) return ended.status();
  PersistMemory(/*sync=*/true);
  AuditManual("lease_ended", actor, ended->Describe() + " ended early by " + actor, ended->service,
              ended->machine);
  WakeReconcile();  // Revert the drift now.
  return ViewOf(*ended);
}

json Daemon::Rollouts() {
  std::lock_guard<std::mutex> g(mu_);
  json out = json::array();
  for (const auto& [_, r] : rollouts_.rollouts()) out.push_back(r.ToJson(clock_->WallMs()));
  return out;
}

Result<json> Daemon::ControlRollout(const std::string& service, const std::string& verb,
                                    const std::string& actor) {
  Result<Rollout> r = clusterctl::Status::Invalid("unknown rollout command \"" + verb +
                                                  "\"; use pause, resume or abort");
  std::string revision;
  {
    std::lock_guard<std::mutex> g(mu_);
    revision = desired_ ? desired_->revision.Short() : "";
    if (verb == "pause") {
      r = rollouts_.Pause(service, actor);
    } else if (verb == "resume") {
      r = rollouts_.Resume(service, actor);
    } else if (verb == "abort") {
      r = rollouts_.Abort(service, actor, clock_->WallMs());
    }
  }
  if (!r.ok()) return r.status();
  const int64_t now = clock_->WallMs();
  PersistMemory(/*sync=*/true);
  AuditManual("rollout_" + verb, actor, r->Describe(now), service, "", revision);
  spdlog::info("rollout {} by {}: {}", verb, actor, r->Describe(now));
  if (verb == "abort") {
    RaiseAlert(alerts::kind::kRolloutFailed, "", service, "critical",
               r->Describe(now) + "; rolling back");
    Sync("rollout aborted by " + actor);  // The source loop writes the rollback commit.
  } else {
    WakeReconcile();
  }
  return r->ToJson(now);
}

void Daemon::TickAlerts() {
  std::map<std::string, int> by_severity;
  {
    std::lock_guard<std::mutex> g(mu_);
    alerts_.Tick(clock_->WallMs());
    for (const std::string& sev : alerts::Severities()) by_severity[sev] = 0;
    for (const alerts::Alert& a : alerts_.Firing()) ++by_severity[a.severity];
  }
  FlushAlertEvents();
  for (const auto& [sev, n] : by_severity) {
    metrics_.Set(api::kMetricAlertsFiring, {{"severity", sev}}, n);
  }
  if (notifier_) {
    for (const notify::SinkStats& st : notifier_->Stats()) {
      metrics_.Set(api::kMetricNotificationsQueued, {{"sink", st.name}},
                   static_cast<double>(st.queued));
      metrics_.Set(api::kMetricNotificationsSent, {{"sink", st.name}},
                   static_cast<double>(st.sent));
    }
  }
}

void Daemon::AuditEvent(const std::string& action, audit::Trigger trigger,
                        const std::string& revision, audit::Outcome result,
                        const std::string& detail, const std::string& machine,
                        const std::string& service) {
  audit::AuditRecord r;
  r.actor = actor_;
  r.trigger = audit::Name(trigger);
  r.revision = revision;
  r.action = action;
  r.phase = audit::Name(audit::Phase::kEvent);
  r.result = audit::Name(result);
  // Audit records are kept forever: no URL credentials in them.
  const std::string redacted = desired_state::RedactUrls(detail);
  r.detail = redacted.size() > 16000 ? redacted.substr(0, 16000) + "..." : redacted;
  r.machine = machine;
  r.service = service;
  auto w = AppendRecord(audit_.get(), gate_.get(), std::move(r));
  if (!w.ok()) spdlog::error("writing audit event {}: {}", action, w.status().ToString());
}

void Daemon::AuditManual(const std::string& action, const std::string& actor,
                         const std::string& detail, const std::string& service,
                         const std::string& machine, const std::string& revision) {
  audit::AuditRecord r;
  r.actor = actor;
  r.trigger = audit::Name(audit::Trigger::kManual);
  r.action = action;
  r.service = service;
  r.machine = machine;
  r.revision = revision;
  r.phase = audit::Name(audit::Phase::kEvent);
  r.result = audit::Name(audit::Outcome::kOk);
  r.detail = detail;
  auto w = AppendRecord(audit_.get(), gate_.get(), std::move(r));
  if (!w.ok()) spdlog::error("writing audit event {}: {}", action, w.status().ToString());
}

// ------------------------------------------------------------ DaemonView

json Daemon::Status() {
  std::lock_guard<std::mutex> g(mu_);
  if (last_status_.is_null()) {
    json s = {{"timestamp", FormatRfc3339Ms(clock_->WallMs())},
              {"overall_status", "unhealthy"},
              {"revision", desired_ ? desired_->revision.commit : ""},
              {"machines", json::object()},
              {"services", json::object()},
              {"alerts", json::array({"no observation yet"})},
              {"suspended", suspended_.load()}};
    AddReplica(&s);
    return s;
  }
  json s = last_status_;
  json alerts = alerts_.Messages();  // An array, [] when none is open.
  s["alerts"] = alerts;
  json leases = json::array();
  for (const DriftLease& l : leases_.Active()) leases.push_back(l.Describe());
  s["leases"] = leases;
  // Each canary service's latest rollout (rollout.h), on the service.
  for (const auto& [service, r] : rollouts_.rollouts()) {
    if (s["services"].contains(service)) {
      s["services"][service]["rollout"] = r.ToJson(clock_->WallMs());
    }
  }
  s["suspended"] = suspended_.load();
  AddReplica(&s);
  return s;
}

void Daemon::AddReplica(json* status) const {
  if (!elector_) return;
  const ha::LeaseState lease = elector_->state();
  (*status)["role"] = ha::RoleName(lease.role);
  (*status)["replica"] = elector_->replica_name();
  (*status)["leader"] = lease.role == ha::Role::kLeader ? json(elector_->replica_name())
                        : lease.leader                  ? json(lease.leader->replica_name)
                                                        : json(nullptr);
  (*status)["fencing_token"] = lease.token;
  if (!shards_) return;
  // Who owns each machine, as the last tick of the machine leases saw it.
  const ha::ShardState st = shards_->state();
  (*status)["shards"] = "auto";
  json members = json::array();
  for (const ha::ShardMember& m : st.members) members.push_back(m.name);
  (*status)["members"] = members;
  json& machines = (*status)["machines"];
  if (!machines.is_object()) machines = json::object();
  for (const auto& [machine, _] : st.assigned) {
    auto h = st.holders.find(machine);
    machines[machine]["owner"] =
        h != st.holders.end() ? json(h->second.replica_name) : json(nullptr);
    machines[machine]["owner_token"] = h != st.holders.end() ? h->second.token : 0;
  }
}

void Daemon::SetShardMachines(const DesiredState& desired, const DesiredState* prune) {
  std::set<std::string> all;
  for (const DesiredState* d : {&desired, prune}) {
    if (d == nullptr) continue;
    for (const auto& m : d->machines) all.insert(m.name);
  }
  if (all == shard_machines_) return;
  shard_machines_ = all;
  shards_->SetMachines(std::move(all));
  // New machines are taken now, not a renew interval later.
  clusterctl::Status s = shards_->Tick();
  if (!s.ok()) spdlog::warn("shards: {}", s.ToString());
}

void Daemon::AddForeignShards(const DesiredState& desired, const DesiredState* prune,
                              const std::set<std::string>& held,
                              reconcilers::ClusterObservation* obs,
                              std::map<std::string, std::string>* hold) {
  const ha::ShardState st = shards_->state();
  std::set<std::string> foreign;
  for (const DesiredState* d : {&desired, prune}) {
    if (d == nullptr) continue;
    for (const auto& i : d->instances) {
      if (held.count(i.machine)) continue;
      foreign.insert(i.machine);
      auto h = st.holders.find(i.machine);
      hold->emplace(i.Key(),
                    h != st.holders.end()
                        ? "machine " + i.machine + " is owned by replica " + h->second.replica_name
                        : "machine " + i.machine + " has no owner yet");
    }
  }
  // Unreadable: nothing counts as up there.
  std::map<std::string, ha::SharedReadiness> reported;
  if (auto shared = shards_->ReadReadiness(foreign); shared.ok()) {
    reported = std::move(shared).value();
  } else {
    spdlog::warn("shards: reading the other replicas' readiness: {}", shared.status().ToString());
  }
  const int64_t now = clock_->WallMs();
  for (const auto& [key, r] : reported) {
    const size_t at = key.find('@');
    if (at == std::string::npos || !r.running) continue;
    reconcilers::ObservedInstance o;
    o.service = key.substr(0, at);
    o.machine = key.substr(at + 1);
    if (held.count(o.machine)) continue;
    o.state = reconcilers::ObservedState::kRunning;
    o.spec_hash = r.spec_hash;
    o.observed_at_ms = now;
    o.detail = "as its owner reports it";
    obs->ready[key] = r.ready;
    obs->instances.push_back(std::move(o));
  }
  // A dependency on another replica's machine is never waited for in a
  // pass (that would probe a machine this replica does not own): a
  // dependent whose dependency there is not up yet is held until its owner
  // reports it up; the plan holds back what depends on the dependent.
  for (const auto& i : desired.instances) {
    if (!held.count(i.machine) || i.desired != desired_state::RunState::kRunning) continue;
    const desired_state::Service* s = desired.FindService(i.service);
    if (s == nullptr) continue;
    for (const desired_state::Dependency& dep : s->depends_on) {
      for (const auto& di : desired.instances) {
        if (di.service != dep.service || held.count(di.machine) ||
            di.desired != desired_state::RunState::kRunning) {
          continue;
        }
        auto r = reported.find(di.Key());
        const bool up =
            r != reported.end() && r->second.running &&
            (dep.condition != desired_state::DependencyCondition::kReady || r->second.ready);
        if (up) continue;
        auto h = st.holders.find(di.machine);
        hold->emplace(
            i.Key(), "waits for " + di.Key() + " (owned by replica " +
                         (h != st.holders.end() ? h->second.replica_name : "none yet") + ", not " +
                         (dep.condition == desired_state::DependencyCondition::kReady ? "ready"
                                                                                      : "running") +
                         " as it reports)");
      }
    }
  }
}

void Daemon::PublishShardReadiness(const DesiredState& desired, const std::set<std::string>& held,
                                   const reconcilers::ClusterObservation& obs) {
  std::map<std::string, std::map<std::string, ha::SharedReadiness>> by_machine;
  for (const std::string& m : held) by_machine[m];
  for (const auto& i : obs.instances) {
    if (!held.count(i.machine)) continue;
    ha::SharedReadiness r;
    r.running = i.state == reconcilers::ObservedState::kRunning;
    auto ready = obs.ready.find(i.Key());
    const auto* s = desired.FindService(i.service);
    // As the plan decides it: the verdict, or running without a probe.
    r.ready =
        r.running && (ready != obs.ready.end() ? ready->second : s != nullptr && !s->readiness);
    r.spec_hash = i.spec_hash;
    by_machine[i.machine][i.Key()] = r;
  }
  // Published every pass (at least every renew interval): entries live three
  // of those plus a lease, then an owner that stopped publishing leaves none.
  const int64_t stale_ms = 3LL * config_.redis_renew_ms + config_.redis_lease_ms;
  clusterctl::Status s = shards_->PublishReadiness(by_machine, stale_ms);
  if (!s.ok()) spdlog::warn("shards: publishing readiness: {}", s.ToString());
}

bool Daemon::Leading() const { return !elector_ || elector_->MayAct(); }

bool Daemon::Acting() const {
  // Shards: every replica acts, each step gated by its machine's lease.
  return !elector_ || shards_ || (took_over_ && elector_->MayAct());
}

std::string Daemon::WriteRefusal() {
  // Shards: every replica takes writes and shares them (ApplySharedWrites).
  if (Leading() || shards_) return "";
  const ha::LeaseState lease = elector_->state();
  if (lease.leader && lease.leader->replica_id != elector_->replica_id()) {
    return "this clusterd (" + elector_->replica_name() + ") is a follower; the leader is " +
           lease.leader->replica_name + ": send the request to it";
  }
  return "this clusterd (" + elector_->replica_name() +
         ") is a follower and no leader is known (is Redis reachable?); retry in a few seconds";
}

std::vector<alerts::Alert> Daemon::Alerts(const api::AlertQuery& query) {
  std::lock_guard<std::mutex> g(mu_);
  if (query.state == api::AlertQuery::State::kFiring) {
    std::vector<alerts::Alert> out;
    for (alerts::Alert& a : alerts_.Firing()) {
      if (a.last_seen_ms >= query.since_ms) out.push_back(std::move(a));
    }
    return out;
  }
  std::vector<alerts::Alert> out = alerts_.All(query.since_ms);
  if (query.state == api::AlertQuery::State::kResolved) {
    out.erase(
        std::remove_if(out.begin(), out.end(), [](const alerts::Alert& a) { return a.firing; }),
        out.end());
  }
  return out;
}

Result<alerts::Alert> Daemon::AckAlert(const std::string& ref, const std::string& actor,
                                       int64_t for_ms, const std::string& note) {
  Result<alerts::Alert> acked = clusterctl::Status::Internal("not acknowledged");
  {
    std::lock_guard<std::mutex> g(mu_);
    const int64_t now = clock_->WallMs();
    acked = alerts_.Acknowledge(ref, actor, now + for_ms, note, now);
  }
  if (!acked.ok()) return acked;
  AuditManual("alert_acknowledged", actor,
              "alert " + std::to_string(acked->id) + " (" + acked->key + ") acknowledged until " +
                  FormatRfc3339Ms(acked->ack->until_ms) +
                  (note.empty() ? std::string() : ": " + note));
  PersistMemory(/*sync=*/true);
  return acked;
}

json Daemon::History(size_t limit) {
  std::deque<std::string> keys;
  auto snapshots = LoadSnapshots(*store_, std::min(limit, kMaxSnapshots), &keys);
  json out = json::array();
  if (!snapshots.ok()) return out;
  for (auto& s : *snapshots) out.push_back(std::move(s));
  return out;
}

std::vector<store::RevisionRecord> Daemon::Revisions(size_t limit) {
  auto h = revisions_->History(limit);
  if (!h.ok()) return {};
  return std::move(h).value();
}

Result<std::vector<audit::AuditRecord>> Daemon::Audit(const audit::AuditFilter& filter) {
  return audit_->Query(filter);
}

std::string Daemon::Metrics() {
  if (elector_) {
    metrics_.Set(api::kMetricLeader, {{"replica", elector_->replica_name()}}, Leading() ? 1 : 0);
  }
  // What /api/v1/stats says, where Prometheus has a name for it.
  const api::StatsView st = Stats();
  metrics_.Set(api::kMetricProcessRss, {}, static_cast<double>(st.rss_bytes));
  metrics_.Set(api::kMetricProcessCpu, {}, st.cpu_seconds);
  metrics_.Set(api::kMetricProcessFds, {}, static_cast<double>(st.open_fds));
  metrics_.Set(api::kMetricProcessStart, {}, static_cast<double>(st.started_ms) / 1000.0);
  metrics_.Clear(api::kMetricServiceAvailability);  // Services that left take their series.
  for (const api::ServiceAvailability& a : st.services) {
    for (const api::AvailabilityWindow& w : a.windows) {
      if (w.availability < 0) continue;
      metrics_.Set(api::kMetricServiceAvailability, {{"service", a.service}, {"window", w.name}},
                   w.availability);
    }
  }
  return metrics_.Render();
}

bool Daemon::Healthy(std::string* detail) {
  std::lock_guard<std::mutex> g(mu_);
  if (stopping_) {
    *detail = "shutting down";
    return false;
  }
  // A loop that made no progress within its bound: a hung fetch, a wedged
  // pass, a dead thread. The cluster's own health is in /api/v1/status.
  std::string stalled = loops_.Stalled(clock_->SteadyMs());
  if (!stalled.empty()) {
    *detail = stalled;
    return false;
  }
  if (const alerts::Alert* a = alerts_.FindFiring(alerts::Key(alerts::kind::kStoreWrite))) {
    *detail = "store: " + a->message;
    return false;
  }
  *detail = desired_ ? "revision " + desired_->revision.Short() : "no valid revision yet";
  return true;
}

clusterctl::Status Daemon::OverrideWindows(const std::string& reason, const std::string& actor) {
  {
    std::lock_guard<std::mutex> g(mu_);
    override_windows_ = true;
  }
  AuditManual("window_override", actor,
              "sync windows with manualOverride overridden for the next pass: " + reason);
  return clusterctl::Status::Ok();
}

void Daemon::Sync(const std::string& reason) {
  spdlog::info("sync requested: {}", reason);
  {
    std::lock_guard<std::mutex> g(mu_);
    sync_requested_ = true;
    reconcile_requested_ = true;
  }
  cv_.notify_all();
  if (!shards_) return;
  // Every replica fetches: each follows the branch for its own machines.
  clusterctl::Status s = shards_->RequestSync();
  if (!s.ok()) spdlog::warn("shards: the sync did not reach the other replicas: {}", s.ToString());
}

clusterctl::Status Daemon::Restart(const std::string& service, const std::string& machine,
                                   const std::string& actor) {
  std::map<std::string, std::string> requested;  // Instance key -> machine.
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!desired_ || desired_->FindService(service) == nullptr) {
      return clusterctl::Status::NotFound("no service \"" + service + "\" in the desired state");
    }
    for (const auto& i : desired_->instances) {
      if (i.service != service || (!machine.empty() && i.machine != machine)) continue;
      if (i.desired != desired_state::RunState::kRunning) continue;
      requested[i.Key()] = i.machine;
      if (shards_) continue;  // Its machine's owner restarts it.
      force_restart_.insert(i.Key());
      manual_actor_[i.Key()] = actor;
    }
    if (requested.empty()) {
      return clusterctl::Status::NotFound("no running instance of \"" + service + "\"");
    }
    reconcile_requested_ = true;
  }
  if (shards_) {
    // Recorded in Redis for each machine's lease holder (this replica too),
    // which takes it on its next pass; kept for a few leases if nobody does.
    clusterctl::Status s = shards_->RequestRestarts(requested, actor, 10 * config_.redis_lease_ms);
    if (!s.ok()) {
      return clusterctl::Status(Code::kUnavailable,
                                "restart not recorded for the replicas: " + s.ToString());
    }
    spdlog::info("shards: restart of {} instance(s) of {} recorded for their owners by {}",
                 requested.size(), service, actor);
  }
  cv_.notify_all();
  return clusterctl::Status::Ok();
}

void Daemon::SetSuspendedHere(bool suspended, const std::string& actor, const std::string& how) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (suspended_ == suspended && (!suspended || suspended_by_ == actor)) return;
    suspended_ = suspended;
    suspended_by_ = suspended ? actor : "";
  }
  if (suspended) {
    spdlog::info("reconciliation suspended by {}{}", actor, how);
    AuditManual("suspend", actor, "automatic reconciliation suspended" + how);
    RaiseAlert(alerts::kind::kSuspended, "info", "automatic reconciliation suspended by " + actor);
  } else {
    spdlog::info("reconciliation resumed by {}{}", actor, how);
    AuditManual("resume", actor, "automatic reconciliation resumed" + how);
    ResolveAlert(alerts::kind::kSuspended);
  }
  PersistMemory(/*sync=*/true);  // A restart stays suspended.
  if (!suspended) WakeReconcile();
}

void Daemon::Suspend(const std::string& actor) {
  SetSuspendedHere(true, actor, "");
  if (!shards_) return;
  clusterctl::Status s = shards_->ShareSuspension(true, actor);
  if (!s.ok()) spdlog::warn("shards: the suspension did not reach Redis: {}", s.ToString());
}

void Daemon::Resume(const std::string& actor) {
  SetSuspendedHere(false, actor, "");
  if (!shards_) return;
  clusterctl::Status s = shards_->ShareSuspension(false, actor);
  if (!s.ok()) spdlog::warn("shards: the resumption did not reach Redis: {}", s.ToString());
}

void Daemon::ApplySharedWrites() {
  auto w = shards_->TakeWrites();
  if (!w.ok()) {
    spdlog::warn("shards: reading the writes of the other replicas: {}", w.status().ToString());
    return;
  }
  // Applied when the shared word changes (or on the first read): a word
  // read just before this replica's own suspend or resume reached Redis
  // must not undo it.
  const std::string word =
      w->has_suspension ? std::string(w->suspended ? "1|" : "0|") + w->suspension_actor : "";
  if (w->has_suspension && shared_suspension_seen_ != word) {
    SetSuspendedHere(w->suspended, w->suspension_actor, " (shared by the replicas)");
  }
  shared_suspension_seen_ = word;
  std::lock_guard<std::mutex> g(mu_);
  if (shared_sync_seen_ >= 0 && w->sync_generation != shared_sync_seen_) {
    spdlog::info("sync requested through another replica");
    sync_requested_ = true;
    cv_.notify_all();
  }
  shared_sync_seen_ = w->sync_generation;
  for (const auto& [key, actor] : w->restarts) {
    if (!desired_) break;
    for (const auto& i : desired_->instances) {
      if (i.Key() != key || i.desired != desired_state::RunState::kRunning) continue;
      spdlog::info("shards: restart of {} asked by {}", key, actor);
      force_restart_.insert(key);
      manual_actor_[key] = actor;
    }
  }
}

}  // namespace clusterctl::controller

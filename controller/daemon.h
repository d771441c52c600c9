// Daemon: clusterd, the continuous controller. A manager of runnables with
// one shutdown path:
//
//   source loop     fetch the branch every repo.pollSeconds, or at once on
//                   Sync(); load and validate a new head; a valid revision
//                   becomes the desired state (a force-push is noted as
//                   history rewritten), an invalid one is audited
//                   revision_rejected and alerted while the last valid one
//                   stays in force.
//   reconcile loop  every reconcile.intervalSeconds, or when woken by a new
//                   revision, a readiness/liveness change, the drift watch,
//                   the end of an instance's crash-loop backoff or Sync(): observe,
//                   diff, plan, execute (level-based: every pass re-reads
//                   everything). Drift (a killed service) is repaired with
//                   trigger drift, within the instance's crash-loop backoff
//                   (restart.backoffSeconds doubling to maxBackoffSeconds,
//                   reset after 10 minutes healthy).
//   drift watch     (watch.enabled) every watch.intervalMs, a fork-free tick
//                   on each machine (reconcilers/watch.h) reports instances
//                   whose state changed; an instance that should run and is
//                   reported stopped or failed (killed, crashed) wakes the
//                   reconcile loop at once, so drift is repaired in about a
//                   second instead of on the next interval. The periodic
//                   observation stays the safety net. The tick also caps
//                   service logs (process.logMaxBytes).
//   probe loop      each readiness and liveness probe on its own period;
//                   results are recorded; readiness turns not ready after
//                   readiness.failureThreshold failures in a row; liveness
//                   failures past the threshold restart the instance.
//   API             api/api.h over this object (DaemonView).
//
// Replicas (config `redis`): each replica runs every loop; only the one that
// holds the leader lease (ha/leader_election.h) executes plans, and every
// step is checked against the lease just before it is sent. Followers
// observe, probe, record and serve the read API; they refuse writes
// (WriteRefusal) naming the leader, and re-check every retry interval so a
// new leader acts within lease + retry.
//
// Shards (config `redis.shards: auto`, ha/shard_coordinator.h): the
// replicas split the machines instead. Each observes, plans and acts only on
// the machines whose lease it holds (a fencing token per machine, checked
// before each step); the instances of the other machines are held (no
// step) and seen as their owners publish them to Redis (running, ready or
// not; else unknown), and a dependent of one that is not up is held until
// its owner reports it up. A machine with a step in flight
// is pinned: its lease is kept until the step ends. The leader lease still
// picks one replica for what is not per machine (notifications, writes
// through the API); the leader's journal is not kept (each replica's audit
// log holds its own actions).
//
// Shutdown (SIGTERM): the driver command in flight completes, waits are cut
// short (a start whose readiness wait is cut is audited interrupted),
// nothing new starts, the store is flushed, Run() returns. After a SIGKILL the next start records
// intents without results as interrupted (trigger recovery) and converges.
//
// Thread-safety: DaemonView methods are safe from any thread; Run() once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "alerts/alert_book.h"
#include "api/daemon_view.h"
#include "api/metrics.h"
#include "audit/audit_log.h"
#include "controller/availability.h"
#include "controller/config.h"
#include "controller/crash_backoff.h"
#include "controller/daemon_memory.h"
#include "controller/daemon_policy.h"
#include "controller/journal.h"
#include "controller/leases.h"
#include "controller/managed.h"
#include "controller/probe_schedule.h"
#include "controller/reconcile.h"
#include "controller/rollout.h"
#include "desired-state/git_source.h"
#include "ha/leader_election.h"
#include "ha/shard_coordinator.h"
#include "notify/notifier.h"
#include "reconcilers/async_prober.h"
#include "reconcilers/driver.h"
#include "reconcilers/failure_streak.h"
#include "reconcilers/probes.h"
#include "reconcilers/ssh.h"
#include "reconcilers/watch.h"
#include "store/revisions.h"
#include "store/state_store.h"
#include "store/store.h"

namespace clusterctl::controller {

// What the daemon acts through. Every part left empty is made from the
// config: a GitSource on repo.url, a ShellDriver and a RealProber over one
// SSH pool, and (watch.enabled) the drift watch on that pool. Tests give a
// fake driver, prober, source and clock; with a driver given there is no
// SSH pool and no drift watch (the periodic observation stays).
struct DaemonParts {
  // The daemon's time: loop heartbeats, backoff, alerts, probe schedules,
  // record stamps. Not owned; must outlive the daemon. Default: RealClock().
  const Clock* clock = nullptr;
  std::unique_ptr<desired_state::RevisionSource> source;
  std::unique_ptr<reconcilers::ServiceDriver> driver;
  std::unique_ptr<reconcilers::Prober> prober;
  // Leader election between replicas. Default: made from the config's
  // `redis` block and ticked by its own thread while Run() runs; none
  // without one (this clusterd acts alone). Given by a test, it is ticked
  // by the test.
  std::unique_ptr<ha::LeaderElector> elector;
  // How notifications are delivered. Default: notify::Deliver (HTTP, command).
  notify::Notifier::DeliverFn deliver;
};

class Daemon : public api::DaemonView {
 public:
  // Opens the data directory (refused if another process holds it), the
  // repository and the SSH pool. Nothing runs until Run().
  static Result<std::unique_ptr<Daemon>> Create(const Config& config, DaemonParts parts);
  static Result<std::unique_ptr<Daemon>> Create(const Config& config, const Clock* clock = nullptr);
  ~Daemon() override;

  // Runs every loop and the API until Shutdown(). Returns OK on a clean stop.
  clusterctl::Status Run();
  // Asks Run() to return: cut waits short, start nothing new.
  void Shutdown();

  // DaemonView.
  nlohmann::json Status() override;
  std::vector<alerts::Alert> Alerts(const api::AlertQuery& query) override;
  Result<alerts::Alert> AckAlert(const std::string& ref, const std::string& actor, int64_t for_ms,
                                 const std::string& note) override;
  api::StatsView Stats() override;
  nlohmann::json Graph() override;
  Result<std::vector<FileChange>> RevisionFiles(const std::string& from,
                                                const std::string& to) override;
  Result<audit::VerifyReport> VerifyAudit() override;
  std::vector<std::string> Quarantined() override;
  std::vector<LeaseView> Leases() override;
  Result<LeaseView> GrantLease(const std::string& service, const std::string& machine,
                               int64_t for_ms, const std::string& reason,
                               const std::string& actor) override;
  Result<LeaseView> EndLease(int64_t id, const std::string& actor) override;
  nlohmann::json Rollouts() override;
  Result<nlohmann::json> ControlRollout(const std::string& service, const std::string& verb,
                                        const std::string& actor) override;
  nlohmann::json History(size_t limit) override;
  std::vector<store::RevisionRecord> Revisions(size_t limit) override;
  Result<std::vector<audit::AuditRecord>> Audit(const audit::AuditFilter& filter) override;
  std::string Metrics() override;
  bool Healthy(std::string* detail) override;
  void Sync(const std::string& reason) override;
  clusterctl::Status OverrideWindows(const std::string& reason, const std::string& actor) override;
  clusterctl::Status Restart(const std::string& service, const std::string& machine,
                             const std::string& actor) override;
  void Suspend(const std::string& actor) override;
  void Resume(const std::string& actor) override;
  bool suspended() override { return suspended_; }
  std::string WriteRefusal() override;

  // With leader election: whether this replica holds the lease now (by its
  // own clock). Always true without one.
  bool Leading() const;
  // Leading, and caught up with the previous leader's journal: only then
  // are plans executed.
  bool Acting() const;

  // The daemon's metrics, also fed by the API server's request counters.
  api::MetricsRegistry* metrics() { return &metrics_; }

  // One turn of each loop. Run() calls them on its schedule; a test drives
  // them itself with a FakeClock, one deterministic step at a time (not
  // while Run() runs).
  //
  // One fetch + load; returns whether the desired state changed. *fetched:
  // whether the fetch itself succeeded.
  bool PollSource(bool* fetched = nullptr);
  // Observe, diff, plan, execute, record: one reconcile pass.
  void ReconcileOnce();
  // Submits the probes that are due to the background probers; their
  // results arrive on other threads (OnProbeResult). Returns how many.
  size_t RunProbesDue();
  // Probes submitted and not finished yet.
  size_t ProbesInFlight() const;
  // Escalates alerts and ends expired acknowledgements; hands new alert
  // events to the notifier. The probe loop calls it every half second.
  void TickAlerts();
  // The notifier (null without notify sinks), for tests that deliver by hand.
  notify::Notifier* notifier() { return notifier_.get(); }

 private:
  Daemon() = default;

  void SourceLoop();
  // repo.verify: "" when `commit` (and, in mode all, every commit since
  // `in_force`) is signed by an allowed signer; else why not.
  std::string SignatureRefusal(const std::string& commit, const std::string& in_force);
  // A refused head: audited, alerted with `alert`, recorded as rejected in
  // the revision log, not retried until the branch moves.
  void RejectRevision(const desired_state::Revision& head, const std::string& detail,
                      const std::string& alert);
  void ReconcileLoop();
  // Canary rollouts (rollout.h) in a reconcile pass: moves them on, audits
  // and alerts what changed, and holds in `plan_in` the instances their
  // waves do not allow yet. Returns whether `desired` is an auto-rollback.
  bool AdvanceRollouts(const desired_state::DesiredState& desired,
                       const desired_state::DesiredState* previous, bool rollback,
                       reconcilers::PlanInput* plan_in);
  // The source loop's part of a failed rollout: a rollback commit with the
  // tree of the last good revision (pushed, or left on a branch), the bad
  // revision quarantined; audited with trigger auto-rollback and alerted.
  void WriteAutoRollback();
  void ProbeLoop();
  // Bookkeeping of one probe result (from an AsyncProber worker).
  void OnProbeResult(const reconcilers::ProbeResult& r);

  // Raises or refreshes the alert kind/machine/service (alerts/alert_book.h).
  void RaiseAlert(const char* kind, const std::string& machine, const std::string& service,
                  const std::string& severity, const std::string& message);
  void RaiseAlert(const char* kind, const std::string& severity, const std::string& message) {
    RaiseAlert(kind, "", "", severity, message);
  }
  void ResolveAlert(const char* kind, const std::string& machine = "",
                    const std::string& service = "");
  // Alerts computed from an observation: machine disk and memory, critical
  // services down, readiness past its start timeout, crash loops healthy again.
  void AssessAlerts(const reconcilers::ClusterObservation& obs,
                    const std::vector<reconcilers::InstanceDiff>& diffs,
                    const std::set<std::string>& was_running);
  // Logs the alert book's new events and hands them to the notifier (the
  // leader's only: followers would send every notification twice).
  void FlushAlertEvents();
  void AuditEvent(const std::string& action, audit::Trigger trigger, const std::string& revision,
                  audit::Outcome result, const std::string& detail, const std::string& machine = "",
                  const std::string& service = "");
  // An event by a user (suspend, resume), audited with trigger manual.
  void AuditManual(const std::string& action, const std::string& actor, const std::string& detail,
                   const std::string& service = "", const std::string& machine = "",
                   const std::string& revision = "");
  void WakeReconcile();
  // Writes suspension, backoff and alerts to the store if they changed.
  void PersistMemory(bool sync);
  // Hands the desired state in force to the drift watch when it changed;
  // with shards, only the machines this replica holds (and when they
  // changed).
  void UpdateWatch();
  // A change the drift watch saw (called on the watch's threads).
  void OnWatchEvent(const reconcilers::DriftWatch::Event& e);
  // How long the reconcile loop may sleep: the reconcile interval, or less
  // when the crash-loop backoff of an instance that is down ends sooner.
  int64_t ReconcileSleepMs();
  // Moves the crash-loop backoff by a step of the wall clock (WallStep),
  // logged. Called with mu_ held.
  void FollowWallStep();
  bool Stopping() const { return stopping_; }
  // Replicas: a follower copies the leader's journal; a new leader catches
  // up with it and closes the steps the old one left open before acting.
  void FollowOrTakeOver();
  // With leader election: role, replica, leader and fencing_token in a
  // status document; with shards, the owner of each machine too.
  void AddReplica(nlohmann::json* status) const;
  // Shards: the machines of `desired` and `prune` to share out.
  void SetShardMachines(const desired_state::DesiredState& desired,
                        const desired_state::DesiredState* prune);
  // Shards: the instances on machines this replica does not hold (`held`)
  // are held (no step); those their owners publish running join the
  // observation as such (with the readiness published), the rest stay
  // unknown; a dependent on `held` of one that is not up is held too.
  void AddForeignShards(const desired_state::DesiredState& desired,
                        const desired_state::DesiredState* prune, const std::set<std::string>& held,
                        reconcilers::ClusterObservation* obs,
                        std::map<std::string, std::string>* hold);
  // Shards: publishes what this pass observed on the machines it holds.
  void PublishShardReadiness(const desired_state::DesiredState& desired,
                             const std::set<std::string>& held,
                             const reconcilers::ClusterObservation& obs);
  // Shards: applies the writes any replica recorded in Redis (a suspension
  // or resumption, a sync, restarts of instances on machines this replica
  // holds); called at the start of each pass.
  void ApplySharedWrites();
  // Suspends or resumes this replica (audited with `actor`, `how` ends the
  // detail); no-op when it is so already.
  void SetSuspendedHere(bool suspended, const std::string& actor, const std::string& how);
  // Marks progress of a loop for /healthz.
  void Beat(const char* loop);
  // Sleeps until `ms` passed, Shutdown(), or `flag` is set (then clears it).
  void SleepOrWake(int64_t ms, bool* flag);

  Config config_;
  desired_state::LoadOptions load_options_;  // With the secrets rule of config_.
  std::string actor_;
  const Clock* clock_ = &RealClock();
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::StateStore> state_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::unique_ptr<store::RevisionLog> revisions_;
  std::unique_ptr<desired_state::RevisionSource> source_;
  std::unique_ptr<reconcilers::SshPool> ssh_;  // Null when the driver was given.
  std::unique_ptr<reconcilers::ServiceDriver> driver_;
  std::unique_ptr<reconcilers::Prober> prober_;
  // Leader election (null: none, this clusterd acts alone) and the gate the
  // reconciler asks before each step.
  std::unique_ptr<ha::LeaderElector> elector_;
  bool elector_ticked_by_run_ = false;
  std::unique_ptr<ActGate> gate_;
  // Shards (null: off): the machine leases, ticked by their own thread while
  // Run() runs.
  std::unique_ptr<ha::ShardCoordinator> shards_;
  std::set<std::string> shard_machines_;  // Last given to shards_ (reconcile loop).
  int64_t shared_sync_seen_ = -1;         // Redis' sync counter last seen (reconcile loop).
  // Redis' suspension word last seen ("1|actor", "0|actor", "" for none;
  // nullopt before the first read); applied when it changes (reconcile loop).
  std::optional<std::string> shared_suspension_seen_;
  // The leader's journal as this replica copied it (reconcile loop only),
  // and whether it caught up since it became the leader.
  JournalState journal_;
  bool took_over_ = false;
  // Runs the probe loop's probes in the background: a slow probe (a 25 s
  // exec probe) delays only itself. Stopped before the members its
  // callback uses.
  std::unique_ptr<reconcilers::AsyncProber> probes_;
  std::unique_ptr<Reconciler> reconciler_;
  api::MetricsRegistry metrics_;
  std::unique_ptr<reconcilers::DriftWatch> watch_;  // Null when watch.enabled is false.
  std::mutex watch_mu_;                             // Serializes UpdateWatch(); guards watched_.
  std::shared_ptr<const desired_state::DesiredState> watched_;  // Last given to watch_.
  std::set<std::string> watched_held_;  // Shards: the machines held then (watch_mu_).

  std::mutex mu_;  // Guards everything below.
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> suspended_{false};
  bool sync_requested_ = false;
  bool override_windows_ = false;  // For the next reconcile pass only.
  bool reconcile_requested_ = false;
  bool first_fetch_done_ = false;                                // The source loop has tried once.
  std::shared_ptr<const desired_state::DesiredState> desired_;   // In force.
  std::shared_ptr<const desired_state::DesiredState> previous_;  // Last applied before it.
  std::string applied_commit_;     // Last revision whose pass was recorded.
  std::string rejected_commit_;    // Last head refused (not retried until it changes).
  bool revision_pending_ = false;  // desired_ changed since the last recorded pass.
  std::string pending_note_;       // "history rewritten ..." for the next revision_applied.
  nlohmann::json last_status_;
  alerts::AlertBook alerts_;
  LeaseBook leases_;
  RolloutBook rollouts_;
  CrashLoopBackoff backoff_;
  std::set<std::string> force_restart_;
  std::map<std::string, std::string> manual_actor_;  // Instance -> who asked to restart.
  // Readiness verdicts under readiness.failureThreshold, fed by the probe
  // loop and the observations' probes.
  reconcilers::ReadinessStreaks readiness_;
  std::map<std::string, int> liveness_failures_;
  ProbeSchedule probe_schedule_;
  std::set<std::string> running_instances_;  // From the last observation.
  std::set<std::string> unreachable_;        // Machines, for transitions.
  std::set<std::string> reported_machines_;  // With a machine_reachable series.
  int64_t last_pass_ms_ = 0;
  LoopHealth loops_;    // Progress of the source, reconcile and probe loops.
  WallStep wall_step_;  // Steps of the wall clock, for backoff_ (FollowWallStep).

  // What the controller started and has not seen stopped: the basis of
  // pruning. Used by the reconcile loop only (and Create).
  ManagedInstances managed_;
  std::unique_ptr<PruneBasisLoader> prune_loader_;
  std::deque<std::string> snapshot_keys_;       // Stored snapshots, oldest first (reconcile loop).
  std::unique_ptr<notify::Notifier> notifier_;  // Null without notify sinks.
  std::mutex notify_mu_;                        // Keeps alert events in order on their way out.
  int64_t started_ms_ = 0;
  // Per-instance up/down history for /api/v1/stats (guarded by mu_), saved
  // to the store at most every kAvailabilitySaveMs and at shutdown.
  AvailabilityBook availability_;
  int64_t availability_saved_ms_ = 0;
  void SaveAvailability();
  int64_t passes_ = 0;
  std::deque<int64_t> pass_ms_;  // Durations of the recent passes (guarded by mu_).
  std::mutex persist_mu_;        // Serializes PersistMemory(); guards saved_.
  std::string saved_;            // The daemon state last written (JSON).
  std::string suspended_by_;     // Guarded by mu_.
  std::string last_pass_error_;
};

}  // namespace clusterctl::controller

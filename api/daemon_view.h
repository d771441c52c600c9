// DaemonView: what the HTTP API (api.h) needs from the running controller.
// clusterd's Daemon implements it; API tests use a fake. Answers are typed
// values; the API turns them into JSON (handlers.cc). The status document and
// the history snapshots are already JSON documents, built by BuildStatus
// (status_view.h) in this library.
//
// Thread-safety: every method may be called from any HTTP worker thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "alerts/alert_book.h"
#include "audit/audit_log.h"
#include "base/status.h"
#include "store/revisions.h"

namespace clusterctl::api {

// GET /api/v1/alerts?state=&since=: which alerts.
struct AlertQuery {
  enum class State { kFiring, kResolved, kAll };
  State state = State::kFiring;
  int64_t since_ms = 0;  // Seen (or resolved) at or after it; 0: any time.
};

// GET /api/v1/stats: clusterd's own figures and the cluster's availability.
struct AvailabilityWindow {
  std::string name;          // "1h", "24h", "7d"
  double availability = -1;  // -1: nothing observed in the window.
  int64_t observed_ms = 0, down_ms = 0;
  int restarts = 0, failures = 0;
  int64_t mttd_ms = -1, mttr_ms = -1;  // -1: no episode to average.
};
struct ServiceAvailability {
  std::string service;
  bool critical = false, down_now = false;
  std::vector<AvailabilityWindow> windows;
};
struct SinkView {
  std::string name, type, last_error;
  int64_t queued = 0, sent = 0, failed_attempts = 0, dropped = 0, suppressed = 0;
  int64_t last_success_ms = 0;
};
struct StatsView {
  int64_t now_ms = 0, started_ms = 0;
  double cpu_seconds = 0;
  int64_t rss_bytes = 0, open_fds = 0, threads = 0;
  int64_t data_dir_bytes = -1;  // -1: could not be measured.
  // Reconcile passes: how many since start, and the durations of the recent ones.
  int64_t passes = 0, last_pass_ms = 0;
  int64_t pass_p50_ms = 0, pass_p95_ms = 0, pass_max_ms = 0;
  int64_t probes_in_flight = 0, alerts_firing = 0;
  std::vector<SinkView> sinks;
  std::vector<ServiceAvailability> services;
};

class DaemonView {
 public:
  virtual ~DaemonView() = default;

  // GET /api/v1/status: the document of SPEC.md section 4 (status_view.h).
  virtual nlohmann::json Status() = 0;
  // GET /api/v1/alerts: firing alerts ordered by key; with history
  // (resolved, all) newest first.
  virtual std::vector<alerts::Alert> Alerts(const AlertQuery& query) = 0;
  // POST /api/v1/alerts/{id}/ack: acknowledge a firing alert (id or dedup
  // key) for `for_ms`, audited with `actor`.
  virtual Result<alerts::Alert> AckAlert(const std::string& ref, const std::string& actor,
                                         int64_t for_ms, const std::string& note) {
    (void)ref, (void)actor, (void)for_ms, (void)note;
    return clusterctl::Status(Code::kNotFound, "alerts cannot be acknowledged here");
  }
  // GET /api/v1/stats.
  virtual StatsView Stats() { return {}; }

  // The dashboard's (docs/dashboard.md). GET /api/v1/graph: BuildGraph
  // (dashboard_view.h) of the desired state in force; null before one.
  virtual nlohmann::json Graph() { return nullptr; }
  // GET /api/v1/revisions/diff?from&to: the desired-state files that differ
  // between two commits (added: empty before; removed: empty after).
  struct FileChange {
    std::string path, status, before, after;
  };
  virtual Result<std::vector<FileChange>> RevisionFiles(const std::string& from,
                                                        const std::string& to) {
    (void)from, (void)to;
    return clusterctl::Status(Code::kNotFound, "revision diffs are not served here");
  }
  // GET /api/v1/audit/verify: the audit log's chain and index, checked.
  virtual Result<audit::VerifyReport> VerifyAudit() {
    return clusterctl::Status(Code::kNotFound, "the audit log is not verified here");
  }
  // The commits a rollback quarantined, marked in GET /api/v1/revisions.
  virtual std::vector<std::string> Quarantined() { return {}; }

  // Drift leases (docs/operations.md): GET /api/v1/leases, POST
  // /api/v1/leases {service, machine?, for, reason}, POST
  // /api/v1/leases/{id}/end. Granting and ending are audited with `actor`.
  struct LeaseView {
    int64_t id = 0;
    std::string service, machine, reason, actor;
    int64_t granted_ms = 0, until_ms = 0;
  };
  virtual std::vector<LeaseView> Leases() { return {}; }
  virtual Result<LeaseView> GrantLease(const std::string& service, const std::string& machine,
                                       int64_t for_ms, const std::string& reason,
                                       const std::string& actor) {
    (void)service, (void)machine, (void)for_ms, (void)reason, (void)actor;
    return clusterctl::Status(Code::kNotFound, "drift leases are not served here");
  }
  virtual Result<LeaseView> EndLease(int64_t id, const std::string& actor) {
    (void)id, (void)actor;
    return clusterctl::Status(Code::kNotFound, "drift leases are not served here");
  }
  // Canary rollouts (docs/operations.md): GET /api/v1/rollouts (the latest
  // rollout of each canary service), POST /api/v1/rollouts/{service}/pause,
  // .../resume, .../abort (verb), audited with `actor`.
  virtual nlohmann::json Rollouts() { return nlohmann::json::array(); }
  virtual Result<nlohmann::json> ControlRollout(const std::string& service, const std::string& verb,
                                                const std::string& actor) {
    (void)service, (void)verb, (void)actor;
    return clusterctl::Status(Code::kNotFound, "rollouts are not served here");
  }
  // GET /api/v1/history?limit=N: past status snapshots, newest first.
  virtual nlohmann::json History(size_t limit) = 0;
  // GET /api/v1/revisions: applied and rejected revisions, newest first.
  // Empty when the revision log cannot be read.
  virtual std::vector<store::RevisionRecord> Revisions(size_t limit) = 0;
  // GET /api/v1/audit?filters: records newest first (or oldest first).
  virtual Result<std::vector<audit::AuditRecord>> Audit(const audit::AuditFilter& filter) = 0;
  // GET /metrics: Prometheus text exposition format.
  virtual std::string Metrics() = 0;
  // GET /healthz: the daemon's own health (loops alive, store writable).
  virtual bool Healthy(std::string* detail) = 0;

  // POST /api/v1/sync: fetch the branch and reconcile now.
  virtual void Sync(const std::string& reason) = 0;
  // POST /api/v1/sync {"overrideWindow": true, "reason": "..."}: the next
  // pass acts where only sync windows with manualOverride block; audited
  // (window_override) with `actor` and the reason.
  virtual clusterctl::Status OverrideWindows(const std::string& reason, const std::string& actor) {
    (void)reason, (void)actor;
    return clusterctl::Status(Code::kNotFound, "sync windows are not overridden here");
  }
  // POST /api/v1/restart {service, machine?}: rolling restart, audited with
  // trigger manual and `actor`.
  virtual clusterctl::Status Restart(const std::string& service, const std::string& machine,
                                     const std::string& actor) = 0;
  // POST /api/v1/suspend, /resume: pause automatic reconciles (observing
  // and reporting go on).
  virtual void Suspend(const std::string& actor) = 0;
  virtual void Resume(const std::string& actor) = 0;
  virtual bool suspended() = 0;
  // Why this clusterd refuses the write endpoints (sync, restart, suspend,
  // resume) now: it is a follower among replicas, and the message names the
  // leader. Empty: it accepts them (always, without replicas).
  virtual std::string WriteRefusal() { return ""; }
};

}  // namespace clusterctl::api

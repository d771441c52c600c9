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

#include "audit/audit_log.h"
#include "base/status.h"
#include "store/revisions.h"

namespace clusterctl::api {

// An open alert, as GET /api/v1/alerts lists it.
struct AlertView {
  std::string id, severity, message;
  int64_t since_ms = 0;  // When it was first raised.
};

class DaemonView {
 public:
  virtual ~DaemonView() = default;

  // GET /api/v1/status: the document of SPEC.md section 4 (status_view.h).
  virtual nlohmann::json Status() = 0;
  // GET /api/v1/alerts: the open alerts, ordered by id.
  virtual std::vector<AlertView> Alerts() = 0;
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

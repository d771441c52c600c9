// ApiServer: clusterd's HTTP API (SPEC.md section 4, docs/api.md) on
// cpp-httplib, serving a DaemonView.
//
//   GET  /healthz              no auth; 200 {"status":"ok"} or 503
//   GET  /metrics              no auth; Prometheus text format 0.0.4
//   GET  /api/v1/status        bearer token
//   GET  /api/v1/alerts        bearer token
//   GET  /api/v1/history       ?limit=N (default 20, at most 1000)
//   GET  /api/v1/revisions     ?limit=N (default 20, at most 1000)
//   GET  /api/v1/audit         ?since&until&service&machine&action&result&
//                               revision&actor&trigger&limit&reverse&cursor
//                              -> {"records": [...], "next_cursor": "..."|null}
//   POST /api/v1/sync          bearer token, or a webhook signed with
//                              X-Hub-Signature-256: sha256=<HMAC-SHA256 hex>
//   POST /api/v1/restart       {"service": S, "machine": M?}
//   POST /api/v1/suspend, /api/v1/resume
//
// Every answer but /metrics is JSON (Content-Type: application/json);
// errors are {"error": "..."} with 400 (bad parameter or body, naming it),
// 401 (missing or bad credentials; nothing is changed), 404 (unknown path,
// unknown service), 405 (wrong method, with Allow), 411 (a chunked body),
// 413 (body over Options::max_body_bytes), 415 (a compressed body), 500/503.
// The token and the webhook secret never appear in an answer or a log line.
//
// Manual actions are done with the actor "api@<remote address>", or with the
// value of the X-Clusterctl-Actor header ("alice@laptop", as the CLI sends it)
// when the request carries a valid bearer token.
//
// Thread-safety: Start() and Stop() from one owning thread; requests are
// served on Options::threads worker threads, which call the DaemonView
// concurrently. The DaemonView (not owned) must outlive the server.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller/daemon_view.h"
#include "controller/metrics.h"
#include "desired-state/status.h"

// httplib.h stays out of this header: it is heavy and needs the defines of
// the PkgConfig::HTTPLIB target.
namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace clusterctl::controller {

class ApiServer {
 public:
  struct Options {
    // "host:port" or "[v6]:port"; port 0 picks a free port (see port()).
    // An empty host (":7480") listens on every IPv4 address.
    // Default: 127.0.0.1:7480.
    std::string listen = "127.0.0.1:7480";
    // The bearer token (the contents of tokenFile, trailing whitespace
    // removed by the caller). Empty = every authenticated call is refused.
    std::string token;
    // The webhook HMAC secret. Empty = signed webhooks are refused (a bearer
    // token still works on /api/v1/sync).
    std::string webhook_secret;
    // Largest request body accepted; larger ones get 413. Default: 1 MiB.
    size_t max_body_bytes = 1 << 20;
    // Worker threads serving requests. Default: 8.
    int threads = 8;
    // The clock for relative audit times (since=15m). Default: WallClockMs.
    std::function<int64_t()> now_ms;
    // Where to count requests (clusterctl_api_requests_total{route,code});
    // not owned, may be null. Default: none.
    MetricsRegistry* metrics = nullptr;
    // Receives one line per request ("POST /api/v1/sync 401 api@127.0.0.1
    // 0.4ms: bad token") and per start/stop; never a header value. May be
    // null. Default: none.
    std::function<void(const std::string&)> log;
  };

  // `view` is not owned and must outlive the server.
  ApiServer(DaemonView* view, Options options);
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;
  // Stops the server (Stop()).
  ~ApiServer();

  // Binds Options::listen and serves on a background thread; returns once
  // the server accepts connections. Errors: kInvalid for a malformed
  // listen address or options, kUnavailable naming the address when it
  // cannot be bound (in use, not local), kTimeout when the server did not
  // come up within 5 s. Calling it twice is kConflict.
  Status Start();
  // Stops accepting, finishes the requests in flight and joins the
  // serving thread. Idempotent; safe to call without Start().
  void Stop();

  // The bound port (the chosen one when Options::listen asked for 0); 0
  // before Start().
  int port() const { return port_; }

 private:
  struct Route;
  struct Call;

  // The routes of SPEC.md section 4. HEAD is served as GET.
  static const std::vector<Route>& Routes();

  void Dispatch(const httplib::Request& req, httplib::Response& res);
  void HandleHealthz(Call& call);
  void HandleMetrics(Call& call);
  void HandleStatus(Call& call);
  void HandleAlerts(Call& call);
  void HandleHistory(Call& call);
  void HandleRevisions(Call& call);
  void HandleAudit(Call& call);
  void HandleSync(Call& call);
  void HandleRestart(Call& call);
  void HandleSuspend(Call& call);
  void HandleResume(Call& call);

  DaemonView* view_;
  Options options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  bool started_ = false;
  std::atomic<bool> done_{true};  // The serving thread has returned.
  std::mutex stop_mu_;            // Serialises Stop().
};

}  // namespace clusterctl::controller

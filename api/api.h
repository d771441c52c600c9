// ApiServer: clusterd's HTTP API (SPEC.md section 4, docs/api.md) on
// Boost.Beast (asynchronous I/O on one thread), serving a DaemonView.
//
//   GET  /healthz              no auth; 200 {"status":"ok"} or 503
//   GET  /metrics              no auth; Prometheus text format 0.0.4
//   GET  /api/v1/status        bearer token
//   GET  /api/v1/alerts        bearer token; ?state=firing|resolved|all&since=
//   POST /api/v1/alerts/{id}/ack {"for": "1h", "note": "..."}; id or dedup key
//   GET  /api/v1/health        overall state, counts, critical services down
//   GET  /api/v1/stats         clusterd's own figures, availability per service
//   GET  /api/v1/graph         the dependency DAG with health and blocking edges
//   GET  /api/v1/revisions/diff ?from=SHA&to=SHA: the desired state's file diffs
//   GET  /api/v1/audit/verify  the audit chain and index, checked
//   GET  /, /<asset>           no auth; the dashboard's static files (dashboard/)
//   GET  /api/v1/leases        drift leases; POST {service, machine?, for, reason}
//   POST /api/v1/leases/{id}/end
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
// What one client can hold is bounded, before it is authenticated: at most
// Options::max_connections connections (more are answered 503 and closed),
// a request header of at most max_header_bytes and max_headers fields (431),
// and a whole request, from its first byte (or from the end of the previous
// answer on a kept-alive connection) to its last, within request_timeout
// (408 and closed; an idle connection is closed without an answer). A slow
// client holds no thread: sockets are read asynchronously on one I/O thread.
//
// Manual actions are done with the actor "api@<remote address>", or with the
// value of the X-Clusterctl-Actor header ("alice@laptop", as the CLI sends it)
// when the request carries a valid bearer token.
//
// The server (listener, connections, limits) is api.cc; the routes,
// authentication and endpoint handlers are handlers.cc.
//
// Thread-safety: Start() and Stop() from one owning thread; requests are
// served on Options::threads worker threads, which call the DaemonView
// concurrently, and /healthz on a thread of its own, so it answers while
// every worker is busy. The DaemonView (not owned) must outlive the server.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/daemon_view.h"
#include "api/metrics.h"
#include "base/clock.h"
#include "base/status.h"

namespace clusterctl::api {

// Boost.Beast stays out of this header: it is heavy (api.cc, and the header
// fields of api/request.h, which defines these two for api.cc and handlers.cc).
namespace api_detail {
struct Request;
struct Response;
}  // namespace api_detail

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
    // Worker threads serving requests (/healthz has its own). Default: 8.
    int threads = 8;
    // Open connections at most; one more is answered 503 and closed at
    // once, so a flood of idle connections cannot take every file
    // descriptor of the process. Default: 256.
    int max_connections = 256;
    // Bytes of a request's start line and header fields together at most;
    // more is answered 431 and the connection closed. Default: 16 KiB.
    size_t max_header_bytes = 16 << 10;
    // Header fields in one request at most; more is answered 431. Default: 100.
    int max_headers = 100;
    // A whole request (header and body) must arrive within this long of its
    // first byte, and a kept-alive connection must start its next request
    // within this long; else 408 (nothing sent yet: closed without an
    // answer). Also bounds writing one answer. Default: 10 s.
    std::chrono::milliseconds request_timeout{10000};
    // The clock for relative audit times (since=15m). Default: RealClock().
    const Clock* clock = nullptr;
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
  // cannot be bound (in use, not local). Calling it twice is kConflict.
  Status Start();
  // Stops accepting, closes idle connections, finishes the requests in
  // flight (their answers are written, bounded by request_timeout) and
  // joins every thread. Idempotent; safe to call without Start().
  void Stop();

  // The bound port (the chosen one when Options::listen asked for 0); 0
  // before Start().
  int port() const { return port_; }

  // Every route: method, path ("{id}" matches a path segment or more) and
  // whether it needs credentials. For tests and docs.
  struct RouteInfo {
    std::string method, path;
    bool authenticated = true;
  };
  static std::vector<RouteInfo> RouteTable();

 private:
  struct Route;
  struct Call;
  struct Impl;
  class Connection;

  // The routes of SPEC.md section 4. HEAD is served as GET.
  static const std::vector<Route>& Routes();

  // Accepts the next connection (on the I/O thread).
  void Accept();
  // Serves one complete request (on a worker thread): Dispatch(), then
  // counts and logs it.
  void Handle(const api_detail::Request& req, api_detail::Response& res);
  void Dispatch(const api_detail::Request& req, api_detail::Response& res);
  // Counts and logs one answer ("GET /api/v1/status 401 from 127.0.0.1:
  // invalid token"); `method` and `path` may be empty when the request was
  // refused before they were read.
  void LogAnswer(const std::string& method, const std::string& path, const std::string& remote,
                 int status, const std::string& body);
  void HandleHealthz(Call& call);
  void HandleMetrics(Call& call);
  void HandleStatus(Call& call);
  void HandleAlerts(Call& call);
  void HandleAck(Call& call);
  void HandleHealth(Call& call);
  void HandleStats(Call& call);
  void HandleGraph(Call& call);
  void HandleRevisionDiff(Call& call);
  void HandleVerify(Call& call);
  void HandleAsset(Call& call);
  void HandleLeases(Call& call);
  void HandleGrantLease(Call& call);
  void HandleEndLease(Call& call);
  void HandleRollouts(Call& call);
  void HandleRolloutControl(Call& call);
  void HandleHistory(Call& call);
  void HandleRevisions(Call& call);
  void HandleAudit(Call& call);
  void HandleSync(Call& call);
  void HandleRestart(Call& call);
  void HandleSuspend(Call& call);
  void HandleResume(Call& call);

  DaemonView* view_;
  Options options_;
  std::unique_ptr<Impl> impl_;  // While started and not stopped.
  int port_ = 0;
  bool started_ = false;
  std::mutex stop_mu_;  // Serialises Stop().
};

}  // namespace clusterctl::api

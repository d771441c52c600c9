// ApiServer's request handling (api/api.h): the routes of SPEC.md section 4,
// authentication (bearer token, webhook signature) and the actor, the
// endpoints' handlers, and the counting and logging of every answer. The
// server that reads requests and writes answers is api.cc; the Request and
// Response they exchange are api/request.h.
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <initializer_list>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "api/api.h"
#include "api/dashboard_view.h"
#include "api/monitoring_view.h"
#include "api/request.h"
#include "base/sha256.h"
#include "base/time_format.h"
#include "base/utf8.h"
#include "dashboard/assets.h"

namespace clusterctl::api {

namespace {

using api_detail::HexValue;
using api_detail::ReplyError;
using api_detail::ReplyJson;
using api_detail::Request;
using api_detail::Response;

using json = nlohmann::json;

constexpr size_t kDefaultListLimit = 20;   // history, revisions
constexpr size_t kDefaultAuditLimit = 50;  // audit (AuditFilter's default)
constexpr size_t kMaxLimit = 1000;         // every list

// The HTTP status for a Status from the DaemonView.
int HttpStatusFor(Code code) {
  switch (code) {
    case Code::kOk:
      return 200;
    case Code::kInvalid:
      return 400;
    case Code::kNotFound:
      return 404;
    case Code::kConflict:
      return 409;
    case Code::kPermission:
      return 403;
    case Code::kUnavailable:
    case Code::kTimeout:
    case Code::kResourceExhausted:
      return 503;
    case Code::kInternal:
      return 500;
  }
  return 500;
}

// Whether `signature_header` ("sha256=<64 hex>") is the HMAC-SHA256 of `body`
// under `secret`.
bool ValidWebhookSignature(std::string_view signature_header, std::string_view body,
                           const std::string& secret) {
  constexpr std::string_view kPrefix = "sha256=";
  if (signature_header.size() != kPrefix.size() + 2 * SHA256_DIGEST_LENGTH) return false;
  if (signature_header.substr(0, kPrefix.size()) != kPrefix) return false;
  std::array<unsigned char, SHA256_DIGEST_LENGTH> given{};
  std::string_view hex = signature_header.substr(kPrefix.size());
  for (size_t i = 0; i < given.size(); ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    given[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  const Sha256Digest mac = HmacSha256(secret, body);
  return CRYPTO_memcmp(mac.data(), given.data(), given.size()) == 0;
}

// Whether every character of `s` is a letter, digit, '.', '_', '-' or one
// of `extra`.
bool NameChars(std::string_view s, std::string_view extra) {
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || extra.find(c) != std::string_view::npos;
  });
}

// "alice@laptop": a user and a host spelled as user and host names are.
bool ValidActor(std::string_view actor) {
  if (actor.empty() || actor.size() > 256) return false;
  size_t at = actor.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == actor.size()) return false;
  if (actor.find('@', at + 1) != std::string_view::npos) return false;
  return NameChars(actor.substr(0, at), "+") && NameChars(actor.substr(at + 1), ":");
}

// A request path as it may appear in a log line or an answer: printable
// ASCII, bounded.
std::string PrintablePath(std::string_view path) {
  std::string out;
  for (char c : path.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (path.size() > 200) out += "...";
  return out;
}

// The value of query parameter `name`, if given.
std::optional<std::string> Param(const Request& req, const std::string& name) {
  auto it = req.params.find(name);
  if (it == req.params.end()) return std::nullopt;
  return it->second;
}

// Parses "limit": a whole number >= 1; larger than kMaxLimit is lowered to
// kMaxLimit. Absent: `default_limit`.
bool ParseLimit(const std::optional<std::string>& text, size_t default_limit, size_t* out,
                std::string* error) {
  if (!text) {
    *out = default_limit;
    return true;
  }
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (text->empty() || end != text->data() + text->size() ||
      (ec != std::errc() && ec != std::errc::result_out_of_range) ||
      (ec == std::errc() && v == 0)) {
    *error = "limit: expected a whole number from 1 to " + std::to_string(kMaxLimit) + ", got \"" +
             *text + "\"";
    return false;
  }
  *out = (ec == std::errc::result_out_of_range || v > kMaxLimit) ? kMaxLimit : v;
  return true;
}

bool ParseBool(const std::string& text, bool* out) {
  if (text == "true" || text == "1" || text == "yes") {
    *out = true;
  } else if (text == "false" || text == "0" || text == "no") {
    *out = false;
  } else {
    return false;
  }
  return true;
}

// Audit cursors: "b<seq>" continues a newest-first listing (records listed
// before record seq), "a<seq>" an oldest-first one. Opaque to clients.
std::string MakeCursor(bool oldest_first, uint64_t seq) {
  return (oldest_first ? "a" : "b") + std::to_string(seq);
}

bool ParseCursor(const std::string& text, bool* oldest_first, uint64_t* seq) {
  if (text.size() < 2 || (text[0] != 'a' && text[0] != 'b')) return false;
  auto [end, ec] = std::from_chars(text.data() + 1, text.data() + text.size(), *seq);
  if (ec != std::errc() || end != text.data() + text.size() || *seq == 0) return false;
  *oldest_first = text[0] == 'a';
  return true;
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

// Whether `path` is the route's path; a "{id}" in it matches one or more
// characters (a dedup key's slashes too), returned in *param.
bool PathMatches(std::string_view pattern, std::string_view path, std::string* param) {
  const size_t hole = pattern.find("{id}");
  if (hole == std::string_view::npos) return pattern == path;
  const std::string_view head = pattern.substr(0, hole), tail = pattern.substr(hole + 4);
  if (path.size() <= head.size() + tail.size() || path.substr(0, head.size()) != head ||
      path.substr(path.size() - tail.size()) != tail) {
    return false;
  }
  if (param != nullptr)
    *param = std::string(path.substr(head.size(), path.size() - head.size() - tail.size()));
  return true;
}

struct ApiServer::Route {
  // How a route authenticates its callers.
  enum class Auth {
    kNone,            // /healthz, /metrics
    kToken,           // Authorization: Bearer <token>
    kTokenOrWebhook,  // the token, or X-Hub-Signature-256 over the body
  };
  const char* method;
  const char* path;
  Auth auth;
  void (ApiServer::*handler)(Call&);
};

// One request being served.
struct ApiServer::Call {
  Call(const Request& rq, Response& rs) : req(rq), res(rs) {}

  const Request& req;
  Response& res;
  bool by_token = false;    // Authenticated with the bearer token.
  bool by_webhook = false;  // Authenticated with a webhook signature.
  std::string actor;        // Who manual actions are done for.
  std::string path_param;   // What the route's "{id}" matched.

  // Answers 400 and returns false when the query has a parameter outside
  // `allowed`, or one given twice.
  bool CheckParams(std::initializer_list<std::string_view> allowed) {
    for (auto it = req.params.begin(); it != req.params.end(); ++it) {
      if (std::find(allowed.begin(), allowed.end(), it->first) == allowed.end()) {
        std::string known;
        for (std::string_view a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
        ReplyError(res, 400,
                   "unknown query parameter \"" + it->first + "\"" +
                       (known.empty() ? std::string(" (this endpoint takes none)")
                                      : "; this endpoint takes " + known),
                   it->first);
        return false;
      }
      if (req.params.count(it->first) > 1) {
        ReplyError(res, 400, it->first + ": given more than once", it->first);
        return false;
      }
    }
    return true;
  }
};

const std::vector<ApiServer::Route>& ApiServer::Routes() {
  using Auth = Route::Auth;
  static const std::vector<Route> kRoutes = [] {
    std::vector<Route> routes = {
        {"GET", "/healthz", Auth::kNone, &ApiServer::HandleHealthz},
        {"GET", "/metrics", Auth::kNone, &ApiServer::HandleMetrics},
        {"GET", "/api/v1/status", Auth::kToken, &ApiServer::HandleStatus},
        {"GET", "/api/v1/alerts", Auth::kToken, &ApiServer::HandleAlerts},
        {"POST", "/api/v1/alerts/{id}/ack", Auth::kToken, &ApiServer::HandleAck},
        {"GET", "/api/v1/health", Auth::kToken, &ApiServer::HandleHealth},
        {"GET", "/api/v1/stats", Auth::kToken, &ApiServer::HandleStats},
        {"GET", "/api/v1/history", Auth::kToken, &ApiServer::HandleHistory},
        {"GET", "/api/v1/revisions", Auth::kToken, &ApiServer::HandleRevisions},
        {"GET", "/api/v1/revisions/diff", Auth::kToken, &ApiServer::HandleRevisionDiff},
        {"GET", "/api/v1/graph", Auth::kToken, &ApiServer::HandleGraph},
        {"GET", "/api/v1/audit/verify", Auth::kToken, &ApiServer::HandleVerify},
        {"GET", "/api/v1/leases", Auth::kToken, &ApiServer::HandleLeases},
        {"POST", "/api/v1/leases", Auth::kToken, &ApiServer::HandleGrantLease},
        {"POST", "/api/v1/leases/{id}/end", Auth::kToken, &ApiServer::HandleEndLease},
        {"GET", "/api/v1/rollouts", Auth::kToken, &ApiServer::HandleRollouts},
        {"POST", "/api/v1/rollouts/{id}/pause", Auth::kToken, &ApiServer::HandleRolloutControl},
        {"POST", "/api/v1/rollouts/{id}/resume", Auth::kToken, &ApiServer::HandleRolloutControl},
        {"POST", "/api/v1/rollouts/{id}/abort", Auth::kToken, &ApiServer::HandleRolloutControl},
        {"GET", "/api/v1/audit", Auth::kToken, &ApiServer::HandleAudit},
        {"POST", "/api/v1/sync", Auth::kTokenOrWebhook, &ApiServer::HandleSync},
        {"POST", "/api/v1/restart", Auth::kToken, &ApiServer::HandleRestart},
        {"POST", "/api/v1/suspend", Auth::kToken, &ApiServer::HandleSuspend},
        {"POST", "/api/v1/resume", Auth::kToken, &ApiServer::HandleResume},
    };
    // The dashboard's static files (docs/dashboard.md): no data, no auth.
    routes.push_back({"GET", "/", Auth::kNone, &ApiServer::HandleAsset});
    for (const dashboard::Asset& a : dashboard::All()) {
      routes.push_back({"GET", a.path, Auth::kNone, &ApiServer::HandleAsset});
    }
    return routes;
  }();
  return kRoutes;
}

std::vector<ApiServer::RouteInfo> ApiServer::RouteTable() {
  std::vector<RouteInfo> out;
  for (const Route& r : Routes()) out.push_back({r.method, r.path, r.auth != Route::Auth::kNone});
  return out;
}

void ApiServer::Handle(const Request& req, Response& res) {
  Dispatch(req, res);
  LogAnswer(req.method, req.path, req.remote_addr, res.status, res.body);
}

void ApiServer::LogAnswer(const std::string& method, const std::string& path,
                          const std::string& remote, int status, const std::string& body) {
  std::string route = "other";
  for (const Route& r : Routes()) {
    if (PathMatches(r.path, path, nullptr)) route = r.path;
  }
  if (options_.metrics != nullptr) {
    options_.metrics->Inc(kMetricApiRequests, {{"route", route}, {"code", std::to_string(status)}});
  }
  if (!options_.log) return;
  std::string line =
      method.empty() ? std::string("request") : PrintablePath(method) + " " + PrintablePath(path);
  line += " " + std::to_string(status) + " from " + remote;
  if (status >= 400) {
    json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) {
      line += ": " + j["error"].get<std::string>();
    }
  }
  options_.log(line);
}

void ApiServer::Dispatch(const Request& req, Response& res) {
  using Auth = Route::Auth;
  const std::string method = req.method == "HEAD" ? "GET" : req.method;
  const Route* route = nullptr;
  std::string allow;
  std::string path_param;
  for (const Route& r : Routes()) {
    if (!PathMatches(r.path, req.path, &path_param)) continue;
    allow += (allow.empty() ? "" : ", ") + std::string(r.method);
    if (method == r.method) route = &r;
  }
  if (route == nullptr) {
    if (allow.empty()) {
      ReplyError(res, 404, "no such endpoint: " + PrintablePath(req.path));
    } else {
      res.set_header("Allow", allow);
      ReplyError(
          res, 405,
          "method " + PrintablePath(req.method) + " not allowed on " + req.path + "; use " + allow);
    }
    return;
  }

  Call call(req, res);
  call.path_param = path_param;
  if (route->auth != Auth::kNone) {
    const bool has_authorization = req.has_header("Authorization");
    const bool has_signature = req.has_header("X-Hub-Signature-256");
    std::string failure;
    if (has_authorization || !has_signature || route->auth != Auth::kTokenOrWebhook) {
      // RFC 6750: "Bearer" is case-insensitive.
      const std::string header = req.get_header_value("Authorization");
      constexpr std::string_view kScheme = "bearer ";
      const bool bearer =
          header.size() > kScheme.size() &&
          std::equal(kScheme.begin(), kScheme.end(), header.begin(), [](char a, char b) {
            return a == std::tolower(static_cast<unsigned char>(b));
          });
      std::string_view given =
          bearer ? std::string_view(header).substr(kScheme.size()) : std::string_view();
      while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
      if (!has_authorization) {
        failure = "missing credentials: send Authorization: Bearer <token>";
      } else if (!bearer || given.empty()) {
        failure = "malformed Authorization header: expected Bearer <token>";
      } else if (options_.token.empty()) {
        failure = "no API token is configured on the server (tokenFile)";
      } else if (!SecretEquals(given, options_.token)) {
        failure = "invalid token";
      } else {
        call.by_token = true;
      }
    } else if (options_.webhook_secret.empty()) {
      failure = "webhooks are not accepted: no webhook secret is configured (webhookSecretFile)";
    } else if (!ValidWebhookSignature(req.get_header_value("X-Hub-Signature-256"), req.body,
                                      options_.webhook_secret)) {
      failure = "invalid webhook signature (X-Hub-Signature-256)";
    } else {
      call.by_webhook = true;
    }
    if (!failure.empty()) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"clusterd\"");
      ReplyError(res, 401, failure);
      return;
    }
  }

  call.actor = "api@" + req.remote_addr;
  if (call.by_token && req.has_header("X-Clusterctl-Actor")) {
    std::string actor = req.get_header_value("X-Clusterctl-Actor");
    if (!ValidActor(actor)) {
      ReplyError(res, 400, "X-Clusterctl-Actor: expected user@host, e.g. alice@laptop",
                 "X-Clusterctl-Actor");
      return;
    }
    call.actor = actor;
  }

  if (std::string_view(route->method) == "POST") {
    // Replicas: only the leader changes anything.
    const std::string refusal = view_->WriteRefusal();
    if (!refusal.empty()) {
      ReplyError(res, 409, refusal);
      return;
    }
  }

  try {
    (this->*(route->handler))(call);
  } catch (...) {
    // A library exception's message may quote data: answer plainly.
    ReplyError(res, 500, "internal error while serving " + std::string(route->path));
  }
}

void ApiServer::HandleHealthz(Call& call) {
  if (!call.CheckParams({})) return;
  std::string detail;
  if (view_->Healthy(&detail)) {
    json body = {{"status", "ok"}};
    if (!detail.empty()) body["detail"] = detail;
    ReplyJson(call.res, 200, body);
  } else {
    ReplyJson(call.res, 503, {{"status", "unhealthy"}, {"detail", detail}});
  }
}

void ApiServer::HandleMetrics(Call& call) {
  if (!call.CheckParams({})) return;
  call.res.status = 200;
  call.res.set_header("Cache-Control", "no-store");
  call.res.set_content(view_->Metrics(), "text/plain; version=0.0.4; charset=utf-8");
}

void ApiServer::HandleStatus(Call& call) {
  if (!call.CheckParams({})) return;
  ReplyJson(call.res, 200, view_->Status());
}

void ApiServer::HandleAlerts(Call& call) {
  if (!call.CheckParams({"state", "since"})) return;
  AlertQuery q;
  const std::string state = Param(call.req, "state").value_or("firing");
  if (state == "firing") {
    q.state = AlertQuery::State::kFiring;
  } else if (state == "resolved") {
    q.state = AlertQuery::State::kResolved;
  } else if (state == "all") {
    q.state = AlertQuery::State::kAll;
  } else {
    ReplyError(call.res, 400,
               "state: \"" + state + "\" is not a state; use firing, resolved or all", "state");
    return;
  }
  if (auto since = Param(call.req, "since")) {
    Result<int64_t> t = ParseTimeFlag(*since, ClockOr(options_.clock).WallMs());
    if (!t.ok()) {
      ReplyError(call.res, 400, "since: " + t.status().message(), "since");
      return;
    }
    q.since_ms = *t;
  }
  json out = json::array();
  for (const alerts::Alert& a : view_->Alerts(q)) out.push_back(AlertJson(a));
  ReplyJson(call.res, 200, out);
}

// Reads a JSON object body whose fields are all strings among `fields`
// (absent ones keep their value in *out; an empty body is {}), and a "for"
// duration when `out` has one: from 1 s to `max_for_ms`. Answers 400 naming
// the field and returns false otherwise.
static bool ReadStringBody(const Request& req, Response& res,
                           std::initializer_list<std::string_view> fields,
                           std::map<std::string, std::string>* out, int64_t max_for_ms,
                           int64_t* for_ms) {
  json body = req.body.empty() ? json::object()
                               : json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  std::string names;
  for (std::string_view f : fields) names += (names.empty() ? "" : ", ") + std::string(f);
  if (!body.is_object()) {
    ReplyError(res, 400, "body: expected a JSON object with " + names, "body");
    return false;
  }
  for (const auto& item : body.items()) {
    if (std::find(fields.begin(), fields.end(), item.key()) == fields.end() ||
        !item.value().is_string()) {
      ReplyError(res, 400,
                 "body: unexpected field \"" + item.key() + "\" (expected " + names + ", strings)",
                 item.key());
      return false;
    }
    const std::string v = item.value().get<std::string>();
    if (v.size() > 1000 || !IsValidUtf8(v)) {
      ReplyError(res, 400, item.key() + ": at most 1000 characters of UTF-8", item.key());
      return false;
    }
    (*out)[item.key()] = v;
  }
  if (for_ms != nullptr) {
    const std::string text = (*out)["for"];
    Result<int64_t> ms = ParseDurationMs(text);
    if (!ms.ok() || *ms < 1000 || *ms > max_for_ms) {
      ReplyError(res, 400,
                 "for: expected a duration from 1s to " + FormatDurationMs(max_for_ms) +
                     " such as 30m or 2h, got \"" + PrintablePath(text) + "\"",
                 "for");
      return false;
    }
    *for_ms = *ms;
  }
  return true;
}

void ApiServer::HandleAck(Call& call) {
  if (!call.CheckParams({})) return;
  Response& res = call.res;
  std::map<std::string, std::string> body = {{"for", "1h"}, {"note", ""}};
  int64_t for_ms = 0;
  if (!ReadStringBody(call.req, res, {"for", "note"}, &body, 30LL * 24 * 3600 * 1000, &for_ms)) {
    return;
  }
  const std::string& note = body["note"];
  Result<alerts::Alert> acked = view_->AckAlert(call.path_param, call.actor, for_ms, note);
  if (!acked.ok()) {
    ReplyError(res, HttpStatusFor(acked.status().code()), acked.status().message());
    return;
  }
  ReplyJson(res, 200, AlertJson(*acked));
}

static json LeaseJson(const DaemonView::LeaseView& l) {
  return {{"id", std::to_string(l.id)},
          {"service", l.service},
          {"machine", l.machine.empty() ? json(nullptr) : json(l.machine)},
          {"reason", l.reason},
          {"actor", l.actor},
          {"granted", FormatRfc3339Ms(l.granted_ms)},
          {"until", FormatRfc3339Ms(l.until_ms)}};
}

void ApiServer::HandleLeases(Call& call) {
  if (!call.CheckParams({})) return;
  json out = json::array();
  for (const DaemonView::LeaseView& l : view_->Leases()) out.push_back(LeaseJson(l));
  ReplyJson(call.res, 200, out);
}

void ApiServer::HandleGrantLease(Call& call) {
  if (!call.CheckParams({})) return;
  std::map<std::string, std::string> body = {{"for", ""}, {"reason", ""}};
  int64_t for_ms = 0;
  if (!ReadStringBody(call.req, call.res, {"service", "machine", "for", "reason"}, &body,
                      24LL * 3600 * 1000, &for_ms)) {
    return;
  }
  if (body["service"].empty()) {
    ReplyError(call.res, 400, "service: required, a service name", "service");
    return;
  }
  if (body["reason"].empty()) {
    ReplyError(call.res, 400, "reason: required: say why; it is shown and audited", "reason");
    return;
  }
  auto lease =
      view_->GrantLease(body["service"], body["machine"], for_ms, body["reason"], call.actor);
  if (!lease.ok()) {
    ReplyError(call.res, HttpStatusFor(lease.status().code()), lease.status().message());
    return;
  }
  ReplyJson(call.res, 200, LeaseJson(*lease));
}

void ApiServer::HandleEndLease(Call& call) {
  if (!call.CheckParams({})) return;
  int64_t id = 0;
  auto [end, ec] =
      std::from_chars(call.path_param.data(), call.path_param.data() + call.path_param.size(), id);
  if (ec != std::errc() || end != call.path_param.data() + call.path_param.size() || id <= 0) {
    ReplyError(call.res, 400, "id: expected a lease id (a whole number)", "id");
    return;
  }
  auto lease = view_->EndLease(id, call.actor);
  if (!lease.ok()) {
    ReplyError(call.res, HttpStatusFor(lease.status().code()), lease.status().message());
    return;
  }
  ReplyJson(call.res, 200, LeaseJson(*lease));
}

void ApiServer::HandleRollouts(Call& call) {
  if (!call.CheckParams({})) return;
  ReplyJson(call.res, 200, view_->Rollouts());
}

void ApiServer::HandleRolloutControl(Call& call) {
  if (!call.CheckParams({})) return;
  const std::string& path = call.req.path;
  const std::string verb = path.substr(path.rfind('/') + 1);
  auto r = view_->ControlRollout(call.path_param, verb, call.actor);
  if (!r.ok()) {
    ReplyError(call.res, HttpStatusFor(r.status().code()), r.status().message());
    return;
  }
  ReplyJson(call.res, 200, *r);
}

void ApiServer::HandleHealth(Call& call) {
  if (!call.CheckParams({})) return;
  ReplyJson(call.res, 200, BuildHealth(view_->Status(), view_->Alerts({})));
}

void ApiServer::HandleStats(Call& call) {
  if (!call.CheckParams({})) return;
  ReplyJson(call.res, 200, StatsJson(view_->Stats()));
}

void ApiServer::HandleHistory(Call& call) {
  if (!call.CheckParams({"limit"})) return;
  size_t limit = 0;
  std::string error;
  if (!ParseLimit(Param(call.req, "limit"), kDefaultListLimit, &limit, &error)) {
    ReplyError(call.res, 400, error, "limit");
    return;
  }
  ReplyJson(call.res, 200, view_->History(limit));
}

void ApiServer::HandleRevisions(Call& call) {
  if (!call.CheckParams({"limit"})) return;
  size_t limit = 0;
  std::string error;
  if (!ParseLimit(Param(call.req, "limit"), kDefaultListLimit, &limit, &error)) {
    ReplyError(call.res, 400, error, "limit");
    return;
  }
  json out = json::array();
  const std::vector<std::string> quarantined = view_->Quarantined();
  for (const store::RevisionRecord& r : view_->Revisions(limit)) {
    out.push_back({{"commit", r.commit},
                   {"author", r.author},
                   {"message", r.message},
                   {"commit_time", r.commit_time},
                   {"applied_at", FormatRfc3339Ms(r.applied_at_ms)},
                   {"result", r.result},
                   {"actor", r.actor},
                   {"trigger", r.trigger},
                   {"detail", r.detail},
                   {"quarantined", Contains(quarantined, r.commit)}});
  }
  ReplyJson(call.res, 200, out);
}

void ApiServer::HandleRevisionDiff(Call& call) {
  if (!call.CheckParams({"from", "to"})) return;
  std::string commits[2];
  const char* names[2] = {"from", "to"};
  for (int i = 0; i < 2; ++i) {
    commits[i] = Param(call.req, names[i]).value_or("");
    if (commits[i].size() < 4 || commits[i].size() > 40 ||
        !std::all_of(commits[i].begin(), commits[i].end(),
                     [](unsigned char c) { return std::isxdigit(c); })) {
      ReplyError(call.res, 400,
                 std::string(names[i]) + ": required, a commit sha (4 to 40 hex digits)", names[i]);
      return;
    }
  }
  auto files = view_->RevisionFiles(commits[0], commits[1]);
  if (!files.ok()) {
    ReplyError(call.res, HttpStatusFor(files.status().code()), files.status().message());
    return;
  }
  json out = json::array();
  for (const DaemonView::FileChange& f : *files) {
    out.push_back(
        {{"path", f.path}, {"status", f.status}, {"diff", UnifiedDiff(f.before, f.after)}});
  }
  ReplyJson(call.res, 200, {{"from", commits[0]}, {"to", commits[1]}, {"files", out}});
}

void ApiServer::HandleGraph(Call& call) {
  if (!call.CheckParams({})) return;
  json graph = view_->Graph();
  if (graph.is_null()) {
    ReplyError(call.res, 503, "no desired state in force yet");
    return;
  }
  ReplyJson(call.res, 200, graph);
}

void ApiServer::HandleVerify(Call& call) {
  if (!call.CheckParams({})) return;
  auto report = view_->VerifyAudit();
  if (!report.ok()) {
    ReplyError(call.res, HttpStatusFor(report.status().code()),
               "audit verify failed: " + report.status().message());
    return;
  }
  ReplyJson(call.res, 200,
            {{"ok", report->ok},
             {"records", report->records},
             {"first_seq", report->first_seq},
             {"last_seq", report->last_seq},
             {"first_bad_seq", report->first_bad_seq},
             {"reason", report->reason}});
}

void ApiServer::HandleAsset(Call& call) {
  // Static files of the dashboard: the same bytes for everyone, no data.
  const std::string name = call.req.path == "/" ? "index.html" : call.req.path.substr(1);
  const dashboard::Asset* a = dashboard::Find(name);
  if (a == nullptr) {
    ReplyError(call.res, 404, "no such endpoint: " + PrintablePath(call.req.path));
    return;
  }
  call.res.status = 200;
  call.res.set_header("Cache-Control", "no-cache");
  call.res.set_header("X-Content-Type-Options", "nosniff");
  call.res.set_header("Referrer-Policy", "no-referrer");
  call.res.set_header("X-Frame-Options", "DENY");
  call.res.set_header("Content-Security-Policy", dashboard::kContentSecurityPolicy);
  call.res.set_content(std::string(a->content), std::string(a->content_type));
}

void ApiServer::HandleAudit(Call& call) {
  if (!call.CheckParams({"since", "until", "service", "machine", "action", "result", "revision",
                         "actor", "trigger", "limit", "reverse", "cursor"})) {
    return;
  }
  const Request& req = call.req;
  Response& res = call.res;
  audit::AuditFilter f;
  const int64_t now = ClockOr(options_.clock).WallMs();
  for (const char* name : {"since", "until"}) {
    std::optional<std::string> text = Param(req, name);
    if (!text) continue;
    Result<int64_t> t = ParseTimeFlag(*text, now);
    if (!t.ok() && text->find(' ') != std::string::npos) {
      // The '+' of a UTC offset sent unencoded arrives as a space.
      std::string plus = *text;
      std::replace(plus.begin(), plus.end(), ' ', '+');
      Result<int64_t> again = ParseTimeFlag(plus, now);
      if (again.ok()) t = again;
    }
    if (!t.ok()) {
      ReplyError(res, 400, std::string(name) + ": " + t.status().message(), name);
      return;
    }
    (std::string_view(name) == "since" ? f.since_ms : f.until_ms) = *t;
  }
  f.service = Param(req, "service").value_or("");
  f.machine = Param(req, "machine").value_or("");
  f.action = Param(req, "action").value_or("");
  f.result = Param(req, "result").value_or("");
  f.revision_prefix = Param(req, "revision").value_or("");
  f.actor = Param(req, "actor").value_or("");
  f.trigger = Param(req, "trigger").value_or("");

  std::string error;
  if (!ParseLimit(Param(req, "limit"), kDefaultAuditLimit, &f.limit, &error)) {
    ReplyError(res, 400, error, "limit");
    return;
  }
  if (auto reverse = Param(req, "reverse")) {
    if (!ParseBool(*reverse, &f.oldest_first)) {
      ReplyError(res, 400, "reverse: expected true or false, got \"" + *reverse + "\"", "reverse");
      return;
    }
  }
  if (auto cursor = Param(req, "cursor")) {
    bool cursor_oldest_first = false;
    uint64_t seq = 0;
    if (!ParseCursor(*cursor, &cursor_oldest_first, &seq)) {
      ReplyError(res, 400, "cursor: not a cursor this server handed out", "cursor");
      return;
    }
    if (cursor_oldest_first != f.oldest_first) {
      ReplyError(res, 400,
                 std::string("cursor: it continues a listing with reverse=") +
                     (cursor_oldest_first ? "true" : "false") + "; repeat the same parameters",
                 "cursor");
      return;
    }
    (f.oldest_first ? f.after_seq : f.before_seq) = seq;
  }

  // The API's own messages first (they name the parameter), then whatever
  // else the audit log checks.
  if (!f.trigger.empty() && !Contains(audit::AuditTriggers(), f.trigger)) {
    ReplyError(res, 400,
               "trigger: \"" + f.trigger + "\" is not a trigger; use one of " +
                   Join(audit::AuditTriggers()),
               "trigger");
    return;
  }
  if (!f.result.empty() && !Contains(audit::AuditResults(), f.result)) {
    ReplyError(
        res, 400,
        "result: \"" + f.result + "\" is not a result; use one of " + Join(audit::AuditResults()),
        "result");
    return;
  }
  if (!std::all_of(f.revision_prefix.begin(), f.revision_prefix.end(),
                   [](unsigned char c) { return std::isxdigit(c); })) {
    ReplyError(res, 400,
               "revision: \"" + f.revision_prefix + "\" is not a commit sha prefix (hex digits)",
               "revision");
    return;
  }
  if (f.since_ms && f.until_ms && *f.since_ms >= *f.until_ms) {
    ReplyError(res, 400,
               "since (" + FormatRfc3339Ms(*f.since_ms) + ") must be before until (" +
                   FormatRfc3339Ms(*f.until_ms) + ")",
               "since");
    return;
  }
  if (Status s = audit::ValidateFilter(f); !s.ok()) {
    ReplyError(res, 400, s.message());
    return;
  }

  // One record more than asked tells whether there is a next page.
  const size_t page = f.limit;
  f.limit = page + 1;
  Result<std::vector<audit::AuditRecord>> records = view_->Audit(f);
  if (!records.ok()) {
    ReplyError(res, HttpStatusFor(records.status().code()),
               "audit query failed: " + records.status().message());
    return;
  }
  std::vector<audit::AuditRecord>& list = *records;
  json next_cursor = nullptr;
  if (list.size() > page) {
    list.resize(page);
    next_cursor = MakeCursor(f.oldest_first, list.back().seq);
  }
  json out = json::array();
  for (const audit::AuditRecord& r : list) out.push_back(ToJson(r));
  ReplyJson(res, 200, {{"records", std::move(out)}, {"next_cursor", next_cursor}});
}

void ApiServer::HandleSync(Call& call) {
  std::string reason;
  if (call.by_webhook) {
    // A git host's query parameters are its own business: none are read.
    reason = "webhook from " + call.req.remote_addr;
    std::string event = call.req.get_header_value("X-GitHub-Event");
    if (event.empty()) event = call.req.get_header_value("X-Gitea-Event");
    if (!event.empty() && event.size() <= 64 && NameChars(event, "")) {
      reason += " (" + event + ")";
    }
  } else {
    if (!call.CheckParams({})) return;
    reason = "api request by " + call.actor;
    // {"overrideWindow": true, "reason": "..."}: clusterctl apply --override-window.
    json body = call.req.body.empty()
                    ? json::object()
                    : json::parse(call.req.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object()) {
      ReplyError(call.res, 400, "body: expected {} or {\"overrideWindow\": true, \"reason\": ...}",
                 "body");
      return;
    }
    if (body.value("overrideWindow", false) == true) {
      const json why = body.value("reason", json());
      if (!why.is_string() || why.get<std::string>().empty() ||
          why.get<std::string>().size() > 1000 || !IsValidUtf8(why.get<std::string>())) {
        ReplyError(call.res, 400, "reason: required with overrideWindow: say why (it is audited)",
                   "reason");
        return;
      }
      Status s = view_->OverrideWindows(why.get<std::string>(), call.actor);
      if (!s.ok()) {
        ReplyError(call.res, HttpStatusFor(s.code()), s.message());
        return;
      }
      reason += ", overriding sync windows: " + why.get<std::string>();
    }
  }
  view_->Sync(reason);
  ReplyJson(call.res, 200, {{"status", "sync requested"}, {"reason", reason}});
}

void ApiServer::HandleRestart(Call& call) {
  if (!call.CheckParams({})) return;
  Response& res = call.res;
  json body = json::parse(call.req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    ReplyError(res, 400,
               "body: not valid JSON; expected {\"service\": \"...\", \"machine\": \"...\"}",
               "body");
    return;
  }
  if (!body.is_object()) {
    ReplyError(res, 400, "body: expected a JSON object {\"service\": ..., \"machine\": ...}",
               "body");
    return;
  }
  for (const auto& item : body.items()) {
    if (item.key() != "service" && item.key() != "machine") {
      ReplyError(res, 400, "body: unknown field \"" + item.key() + "\" (expected service, machine)",
                 item.key());
      return;
    }
  }
  if (!body.contains("service") || !body["service"].is_string() ||
      body["service"].get<std::string>().empty()) {
    ReplyError(res, 400, "service: required, a service name", "service");
    return;
  }
  std::string service = body["service"].get<std::string>();
  std::string machine;
  if (body.contains("machine") && !body["machine"].is_null()) {
    if (!body["machine"].is_string()) {
      ReplyError(res, 400, "machine: expected a machine name", "machine");
      return;
    }
    machine = body["machine"].get<std::string>();
  }
  Status s = view_->Restart(service, machine, call.actor);
  if (!s.ok()) {
    ReplyError(res, HttpStatusFor(s.code()), s.message());
    return;
  }
  json out = {{"status", "ok"}, {"service", service}, {"actor", call.actor}};
  out["machine"] = machine.empty() ? json(nullptr) : json(machine);
  ReplyJson(res, 200, out);
}

void ApiServer::HandleSuspend(Call& call) {
  if (!call.CheckParams({})) return;
  view_->Suspend(call.actor);
  ReplyJson(call.res, 200, {{"suspended", view_->suspended()}, {"actor", call.actor}});
}

void ApiServer::HandleResume(Call& call) {
  if (!call.CheckParams({})) return;
  view_->Resume(call.actor);
  ReplyJson(call.res, 200, {{"suspended", view_->suspended()}, {"actor", call.actor}});
}

}  // namespace clusterctl::api

#include "controller/api.h"

#include <httplib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "controller/time_util.h"

namespace clusterctl::controller {

namespace {

using json = nlohmann::json;

constexpr size_t kDefaultListLimit = 20;   // history, revisions
constexpr size_t kDefaultAuditLimit = 50;  // audit (AuditFilter's default)
constexpr size_t kMaxLimit = 1000;         // every list
constexpr auto kStartTimeout = std::chrono::seconds(5);

// Every JSON answer goes out through here: invalid UTF-8 in a view's data
// (a service's detail text, ...) is replaced instead of throwing.
void ReplyJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// {"error": message, "parameter": parameter (when given)}.
void ReplyError(httplib::Response& res, int status, const std::string& message,
                const std::string& parameter = "") {
  json body = {{"error", message}};
  if (!parameter.empty()) body["parameter"] = parameter;
  ReplyJson(res, status, body);
}

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

std::array<unsigned char, SHA256_DIGEST_LENGTH> Sha256(std::string_view s) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> out{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), out.data());
  return out;
}

// Compares two secrets in time independent of where they differ and of the
// length of `given`: both are hashed first, then compared with CRYPTO_memcmp.
bool SecretEquals(std::string_view given, std::string_view expected) {
  auto a = Sha256(given);
  auto b = Sha256(expected);
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
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
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac.data(),
           &mac_len) == nullptr ||
      mac_len != SHA256_DIGEST_LENGTH) {
    return false;
  }
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

// "127.0.0.1:7480" / "[::1]:0" / ":7480" -> host and port.
Status ParseListen(const std::string& listen, std::string* host, int* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return Status::Invalid("listen \"" + listen + "\": expected host:port, e.g. 127.0.0.1:7480");
  }
  std::string h = listen.substr(0, colon);
  std::string p = listen.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string::npos) {
    return Status::Invalid("listen \"" + listen +
                           "\": write IPv6 addresses in brackets, e.g. [::1]:7480");
  }
  if (h.empty()) h = "0.0.0.0";
  int value = -1;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || ec != std::errc() || end != p.data() + p.size() || value < 0 || value > 65535) {
    return Status::Invalid("listen \"" + listen + "\": port must be a number from 0 to 65535");
  }
  *host = h;
  *port = value;
  return Status::Ok();
}

// The value of query parameter `name`, if given.
std::optional<std::string> Param(const httplib::Request& req, const std::string& name) {
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
  Call(const httplib::Request& rq, httplib::Response& rs) : req(rq), res(rs) {}

  const httplib::Request& req;
  httplib::Response& res;
  bool by_token = false;    // Authenticated with the bearer token.
  bool by_webhook = false;  // Authenticated with a webhook signature.
  std::string actor;        // Who manual actions are done for.

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
  static const std::vector<Route> kRoutes = {
      {"GET", "/healthz", Auth::kNone, &ApiServer::HandleHealthz},
      {"GET", "/metrics", Auth::kNone, &ApiServer::HandleMetrics},
      {"GET", "/api/v1/status", Auth::kToken, &ApiServer::HandleStatus},
      {"GET", "/api/v1/alerts", Auth::kToken, &ApiServer::HandleAlerts},
      {"GET", "/api/v1/history", Auth::kToken, &ApiServer::HandleHistory},
      {"GET", "/api/v1/revisions", Auth::kToken, &ApiServer::HandleRevisions},
      {"GET", "/api/v1/audit", Auth::kToken, &ApiServer::HandleAudit},
      {"POST", "/api/v1/sync", Auth::kTokenOrWebhook, &ApiServer::HandleSync},
      {"POST", "/api/v1/restart", Auth::kToken, &ApiServer::HandleRestart},
      {"POST", "/api/v1/suspend", Auth::kToken, &ApiServer::HandleSuspend},
      {"POST", "/api/v1/resume", Auth::kToken, &ApiServer::HandleResume},
  };
  return kRoutes;
}

ApiServer::ApiServer(DaemonView* view, Options options)
    : view_(view), options_(std::move(options)) {
  if (!options_.now_ms) options_.now_ms = WallClockMs;
}

ApiServer::~ApiServer() { Stop(); }

Status ApiServer::Start() {
  if (started_) return Status::Conflict("API server already started");
  if (view_ == nullptr) return Status::Invalid("API server: no daemon view");
  if (options_.threads < 1) return Status::Invalid("API server: threads must be at least 1");
  if (options_.max_body_bytes == 0) {
    return Status::Invalid("API server: max_body_bytes must be at least 1");
  }
  std::string host;
  int port = 0;
  CLUSTERCTL_RETURN_IF_ERROR(ParseListen(options_.listen, &host, &port));

  auto server = std::make_unique<httplib::Server>();
  const int threads = options_.threads;
  server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // httplib's default sets SO_REUSEPORT, which lets a second clusterd bind
  // the same port without an error; SO_REUSEADDR alone still allows a quick
  // restart while old connections linger in TIME_WAIT.
  server->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server->set_payload_max_length(options_.max_body_bytes);
  server->set_read_timeout(10, 0);
  server->set_write_timeout(10, 0);
  server->set_keep_alive_timeout(5);

  // Every method and path comes to Dispatch(), which answers 404 and 405
  // itself; httplib reads (and size-checks) the body first.
  httplib::Server::Handler dispatch = [this](const httplib::Request& req, httplib::Response& res) {
    Dispatch(req, res);
  };
  server->Get(".*", dispatch);
  server->Post(".*", dispatch);
  server->Put(".*", dispatch);
  server->Patch(".*", dispatch);
  server->Delete(".*", dispatch);
  server->Options(".*", dispatch);
  // Errors httplib answers by itself (413 body too large, 400 malformed
  // request, 414, ...) get a JSON body too.
  server->set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message;
        switch (res.status) {
          case 413:
            message = "request body too large";
            break;
          case 404:
            message = "no such endpoint";
            break;
          case 414:
            message = "request URI too long";
            break;
          default:
            message = "request refused (HTTP " + std::to_string(res.status) + ")";
        }
        ReplyError(res, res.status, message);
        return httplib::Server::HandlerResponse::Handled;
      }));
  // httplib 0.11 bounds only a Content-Length body by the payload limit: a
  // chunked body, a body read until the client closes, and a compressed
  // body (inflated in memory) are not bounded. They are answered here,
  // before httplib reads anything, as every request is unauthenticated at
  // that point.
  server->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    using HR = httplib::Server::HandlerResponse;
    if (req.has_header("Transfer-Encoding")) {
      res.set_header("Connection", "close");
      ReplyError(res, 411, "chunked request bodies are not accepted: send Content-Length");
      return HR::Handled;
    }
    if (req.has_header("Content-Encoding") &&
        req.get_header_value("Content-Encoding") != "identity") {
      res.set_header("Connection", "close");
      ReplyError(res, 415, "compressed request bodies are not accepted");
      return HR::Handled;
    }
    // No Content-Length and no Transfer-Encoding: no body (RFC 9112 6.3),
    // while httplib would wait for the client to close. Serve it as is.
    if (!req.has_header("Content-Length") && req.method != "GET" && req.method != "HEAD") {
      Dispatch(req, res);
      return HR::Handled;
    }
    return HR::Unhandled;
  });
  MetricsRegistry* metrics = options_.metrics;
  std::function<void(const std::string&)> log = options_.log;
  server->set_logger([metrics, log](const httplib::Request& req, const httplib::Response& res) {
    std::string route = "other";
    for (const Route& r : Routes()) {
      if (req.path == r.path) route = r.path;
    }
    if (metrics != nullptr) {
      metrics->Inc(kMetricApiRequests, {{"route", route}, {"code", std::to_string(res.status)}});
    }
    if (log) {
      std::string line = PrintablePath(req.method) + " " + PrintablePath(req.path) + " " +
                         std::to_string(res.status) + " from " + req.remote_addr;
      if (res.status >= 400) {
        json body = json::parse(res.body, nullptr, /*allow_exceptions=*/false);
        if (body.is_object() && body.contains("error") && body["error"].is_string()) {
          line += ": " + body["error"].get<std::string>();
        }
      }
      log(line);
    }
  });

  errno = 0;
  int bound = -1;
  if (port == 0) {
    bound = server->bind_to_any_port(host);
  } else if (server->bind_to_port(host, port)) {
    bound = port;
  }
  if (bound <= 0) {
    int err = errno;
    std::string why = err != 0 ? std::strerror(err) : "address not available";
    return Status::Unavailable("cannot listen on " + options_.listen + ": " + why);
  }
  port_ = bound;
  server_ = std::move(server);
  started_ = true;
  done_.store(false);
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    done_.store(true);
  });

  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (!server_->is_running()) {
    if (done_.load()) {
      Stop();
      return Status::Unavailable("API server on " + options_.listen + " stopped at once");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      Stop();
      return Status::Timeout("API server on " + options_.listen + " did not start within 5s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (log) log("API listening on " + host + ":" + std::to_string(port_));
  return Status::Ok();
}

void ApiServer::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (!server_) return;
  // stop() does nothing until the server runs: repeat until the serving
  // thread has returned from listen_after_bind().
  while (!done_.load()) {
    server_->stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (thread_.joinable()) thread_.join();
  server_.reset();
  if (options_.log) options_.log("API stopped");
}

void ApiServer::Dispatch(const httplib::Request& req, httplib::Response& res) {
  using Auth = Route::Auth;
  const std::string method = req.method == "HEAD" ? "GET" : req.method;
  const Route* route = nullptr;
  std::string allow;
  for (const Route& r : Routes()) {
    if (req.path != r.path) continue;
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
  if (!call.CheckParams({})) return;
  ReplyJson(call.res, 200, view_->Alerts());
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
  ReplyJson(call.res, 200, view_->Revisions(limit));
}

void ApiServer::HandleAudit(Call& call) {
  if (!call.CheckParams({"since", "until", "service", "machine", "action", "result", "revision",
                         "actor", "trigger", "limit", "reverse", "cursor"})) {
    return;
  }
  const httplib::Request& req = call.req;
  httplib::Response& res = call.res;
  AuditFilter f;
  const int64_t now = options_.now_ms();
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
  if (!f.trigger.empty() && !Contains(AuditTriggers(), f.trigger)) {
    ReplyError(
        res, 400,
        "trigger: \"" + f.trigger + "\" is not a trigger; use one of " + Join(AuditTriggers()),
        "trigger");
    return;
  }
  if (!f.result.empty() && !Contains(AuditResults(), f.result)) {
    ReplyError(res, 400,
               "result: \"" + f.result + "\" is not a result; use one of " + Join(AuditResults()),
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
  if (Status s = ValidateFilter(f); !s.ok()) {
    ReplyError(res, 400, s.message());
    return;
  }

  // One record more than asked tells whether there is a next page.
  const size_t page = f.limit;
  f.limit = page + 1;
  Result<std::vector<AuditRecord>> records = view_->Audit(f);
  if (!records.ok()) {
    ReplyError(res, HttpStatusFor(records.status().code()),
               "audit query failed: " + records.status().message());
    return;
  }
  std::vector<AuditRecord>& list = *records;
  json next_cursor = nullptr;
  if (list.size() > page) {
    list.resize(page);
    next_cursor = MakeCursor(f.oldest_first, list.back().seq);
  }
  json out = json::array();
  for (const AuditRecord& r : list) out.push_back(ToJson(r));
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
  }
  view_->Sync(reason);
  ReplyJson(call.res, 200, {{"status", "sync requested"}, {"reason", reason}});
}

void ApiServer::HandleRestart(Call& call) {
  if (!call.CheckParams({})) return;
  httplib::Response& res = call.res;
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

}  // namespace clusterctl::controller
